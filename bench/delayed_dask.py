"""dask.delayed on the same shape as bench/delayed.rs: LEAVES leaves add_values(i), then
pairwise add_values(a, b) up to the root, on Dask's threaded scheduler. Prints build and run
wall times and checks the root against n(n-1)/2."""
import os
import sys
import time

import dask
from dask import delayed

leaves = int(sys.argv[1]) if len(sys.argv) > 1 else 65_536


def add_values(*xs):
    return sum(xs)


add = delayed(add_values, pure=True)
started = time.perf_counter()
level = [add(i) for i in range(leaves)]
while len(level) > 1:
    level = [add(*level[i : i + 2]) for i in range(0, len(level), 2)]
root = level[0]
build = time.perf_counter() - started

workers = os.cpu_count() or 2
started = time.perf_counter()
value = root.compute(scheduler="threads", num_workers=workers)
run = time.perf_counter() - started
assert value == leaves * (leaves - 1) // 2, value
calls = 2 * leaves - 1
print(f"dask {dask.__version__} delayed, threaded scheduler ({workers} threads), {leaves} leaves: {calls} calls")
print(f"  build {build:.3f} s, run (graph optimisation + scheduling + calls) {run:.3f} s = {run * 1e6 / calls:.1f} µs/call; total {build + run:.3f} s")
print(f"  root = {value}")
