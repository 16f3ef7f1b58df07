"""Dask's threaded scheduler on the same graph shape as bench/scheduler.rs: N trivial tasks,
10/11 of them independent, the rest each depending on 10 of those. Prints µs per task."""
import sys
import time

import dask
from dask.threaded import get

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
wide = n * 10 // 11


def leaf(i):
    return i


def combine(*xs):
    return len(xs)


dsk = {("scan", i): (leaf, i) for i in range(wide)}
outputs = []
for j in range(min(n - wide, (wide + 9) // 10)):
    deps = [("scan", d) for d in range(j * 10, min(j * 10 + 10, wide))]
    dsk[("combine", j)] = (combine, *deps)
    outputs.append(("combine", j))

started = time.perf_counter()
result = get(dsk, outputs, num_workers=8)
elapsed = time.perf_counter() - started
assert sum(result) == wide, "every leaf is combined once"
n = len(dsk)
print(f"dask {dask.__version__} threaded scheduler: {n} tasks in {elapsed:.3f} s = {elapsed * 1e6 / n:.1f} µs/task")
