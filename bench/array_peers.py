"""Array benchmark peers: four cases on dask.array and on Cubed, each in a fresh process.

    python bench/array_peers.py [--case qmeans|sum|rechunk|matmul|all] [--peer dask|cubed|all]
        [--n N] [--chunk C] [--row-chunk CR] [--m M] [--mem-limit BYTES] [--workers W]
        [--data hash|native] [--seed S] [--blas-threads T] [--repeat R] [--tmp DIR] --out FILE

Run it with the venv of bench/array-venv.sh (cubed 0.27.0, dask 2026.8.0, zarr 3.1.6, numpy, psutil,
threadpoolctl).

Cases (all float64; a and b are two different seeded arrays):
  qmeans   mean((a - b) ** 2), a and b of shape (N, N) in (C, C) chunks.
           result: the mean.
  sum      sum(x, axis=0), x of shape (N, N) in (C, C) chunks; the (N,) vector is computed.
           result: the sum of that vector.
  rechunk  x of shape (N, N) in row chunks (CR, N) rechunked to column chunks (N, CR) and written
           to a Zarr v3 array in a temporary directory (dask: da.to_zarr; Cubed: cubed.to_zarr).
           result: the sum of the written Zarr array, read back chunk by chunk after the timing
           (and its chunk shape is checked to be (N, CR)).
  matmul   a @ b, a and b of shape (M, M) in (C, C) chunks, then summed: the product is never
           held whole or stored; only the scalar is computed.
           result: that sum.

Each (peer, case, repeat) runs in a child process of its own (this script with --child), so each
peak is that case's alone. In the child, after the imports, the RSS is read (the baseline), a
psutil thread samples the process's RSS every 20 ms, and the timed part runs: building the arrays
and the graph, and computing the result. Reported per run, one JSON line appended to --out:
  peer, case, params, wall_s, baseline_rss_bytes, peak_rss_bytes (highest sample, absolute),
  peak_delta_bytes (peak_rss_bytes - baseline_rss_bytes), ru_maxrss_bytes (the kernel's
  high-water mark for the whole child, imports included: catches spikes between samples),
  samples, result, expect (what the result tends to for uniform [0, 1) data: a sanity check),
  executor, versions, host; or error instead of the figures when the run failed.

Schedulers:
  dask   the threaded scheduler, num_workers = W (default: the cores this process may use).
  cubed  cubed.Spec(work_dir=<temp dir>, allowed_mem=--mem-limit, executor_name="threads",
         executor_options={"max_workers": W}): cubed 0.27's local ThreadsExecutor
         (cubed/runtime/executors/local.py), W threads. Cubed writes every intermediate array to
         Zarr under work_dir (zstd, Zarr v3's default codec, which Cubed cannot change with zarr 3),
         inside the timed part, as it does in use. --mem-limit is Cubed's allowed_mem (its
         per-task memory bound, checked when the plan is built); dask has no such knob.
  Zarr outputs of the rechunk case use Zarr's default codecs (zstd) on both peers.
  BLAS: the child's OpenBLAS/OpenMP/MKL thread counts are set to --blas-threads (default 1)
  before numpy loads, so W task threads do not each start a BLAS pool on the same cores (that
  matters for matmul only). Cubed's ThreadsExecutor sets OMP_NUM_THREADS=1 itself, but only after
  numpy has loaded, where it has no effect.

Data (--data):
  hash    (default) element (i, j) of an (R, K) array with seed s is the (n + 1)-th output of
          SplitMix64 seeded with s, n = i * K + j (row-major flat index), taken as its top 53 bits
          times 2**-53: uniform in [0, 1), the same whatever the chunking, and easy to produce in
          any language, so shoal can make the very same numbers and the results agree up to
          summation order. Made per block with the peers' map_blocks. Seeds: a = --seed,
          b = --seed + 1.
  native  each peer's own generator (dask.array.random.default_rng(seed).random; Cubed's
          cubed.random.random after random.seed(seed)): different numbers per peer, so results
          agree only statistically.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time

CASES = ["qmeans", "sum", "rechunk", "matmul"]
PEERS = ["dask", "cubed"]
SAMPLE_S = 0.020
BLAS_ENV = ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"]


def default_workers():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# ------------------------------------------------------------------------------------ data


def hash_uniform(rows, cols, ncols, seed):
    """Block [rows[0]:rows[1], cols[0]:cols[1]] of the `hash` data (see the module docstring)
    of an array with ncols columns: SplitMix64 over the flat index. In place where it can be
    (three block-sized buffers at most)."""
    import numpy as np

    u64 = np.uint64
    z = np.arange(rows[0], rows[1], dtype=u64)[:, None] * u64(ncols) + np.arange(cols[0], cols[1], dtype=u64)
    # state after n + 1 steps: seed + (n + 1) * golden gamma (wrapping, as uint64 does)
    z += u64(1)
    z *= u64(0x9E3779B97F4A7C15)
    z += u64(seed & 0xFFFFFFFFFFFFFFFF)
    # SplitMix64's output mix
    t = np.empty_like(z)
    np.right_shift(z, u64(30), out=t)
    z ^= t
    z *= u64(0xBF58476D1CE4E5B9)
    np.right_shift(z, u64(27), out=t)
    z ^= t
    z *= u64(0x94D049BB133111EB)
    np.right_shift(z, u64(31), out=t)
    z ^= t
    del t
    np.right_shift(z, u64(11), out=z)
    out = z.astype(np.float64)
    out *= 2.0**-53
    return out


def block_chunks(extent, size):
    """Regular chunk sizes along one axis, the last one short: (size, ..., rest)."""
    full, rest = divmod(extent, size)
    return (size,) * full + ((rest,) if rest else ())


def _span(block, size, extent):
    start = block * size
    return start, min(start + size, extent)


def dask_random(shape, chunks, seed, data):
    import dask.array as da
    import numpy as np

    if data == "native":
        return da.random.default_rng(seed).random(shape, chunks=chunks)

    def block(block_id=None):
        return hash_uniform(
            _span(block_id[0], chunks[0], shape[0]), _span(block_id[1], chunks[1], shape[1]), shape[1], seed
        )

    norm = (block_chunks(shape[0], chunks[0]), block_chunks(shape[1], chunks[1]))
    return da.map_blocks(block, chunks=norm, dtype=np.float64, meta=np.empty((0, 0), np.float64))


def cubed_random(shape, chunks, seed, data, spec):
    import random

    import cubed
    import cubed.random
    import numpy as np

    if data == "native":
        random.seed(seed)  # cubed.random draws its root seed from Python's random module
        return cubed.random.random(shape, chunks=chunks, spec=spec)

    # With no input arrays Cubed's map_blocks passes each call an empty block of the output's
    # shape (x) and, since the function takes block_id, the block's coordinates.
    def block(x, block_id=None):
        return hash_uniform(
            _span(block_id[0], chunks[0], shape[0]), _span(block_id[1], chunks[1], shape[1]), shape[1], seed
        )

    norm = (block_chunks(shape[0], chunks[0]), block_chunks(shape[1], chunks[1]))
    return cubed.map_blocks(block, dtype=np.float64, chunks=norm, spec=spec)


# ------------------------------------------------------------------------------------ cases


def zarr_checksum(path, want_chunks):
    """Sum of a Zarr array, a chunk-row at a time (never the whole array in memory)."""
    import numpy as np
    import zarr

    z = zarr.open_array(path, mode="r")
    if tuple(z.chunks) != tuple(want_chunks):
        raise RuntimeError(f"{path}: chunks {z.chunks}, want {want_chunks}")
    total = 0.0
    for c0 in range(0, z.shape[1], z.chunks[1]):
        total += float(np.sum(z[:, c0 : c0 + z.chunks[1]]))
    return total


def run_dask(case, p, tmp):
    """The timed part for dask; returns (result, after) where after() runs untimed."""
    import dask.array as da

    compute_kw = dict(scheduler="threads", num_workers=p["workers"])
    n, c, m, cr = p["n"], p["chunk"], p["m"], p["row_chunk"]
    seed, data = p["seed"], p["data"]
    if case == "qmeans":
        a = dask_random((n, n), (c, c), seed, data)
        b = dask_random((n, n), (c, c), seed + 1, data)
        return float(((a - b) ** 2).mean().compute(**compute_kw)), None
    if case == "sum":
        x = dask_random((n, n), (c, c), seed, data)
        v = x.sum(axis=0).compute(**compute_kw)
        return float(v.sum()), None
    if case == "rechunk":
        x = dask_random((n, n), (cr, n), seed, data)
        path = os.path.join(tmp, "rechunked.zarr")
        da.to_zarr(x.rechunk((n, cr)), path, compute=False).compute(**compute_kw)
        return None, lambda: zarr_checksum(path, (n, cr))
    if case == "matmul":
        a = dask_random((m, m), (c, c), seed, data)
        b = dask_random((m, m), (c, c), seed + 1, data)
        return float((a @ b).sum().compute(**compute_kw)), None
    raise ValueError(case)


def cubed_spec(p, tmp):
    import cubed

    return cubed.Spec(
        work_dir=os.path.join(tmp, "cubed-work"),
        allowed_mem=p["mem_limit"],
        executor_name="threads",
        executor_options={"max_workers": p["workers"]},
    )


def run_cubed(case, p, tmp):
    """The timed part for Cubed; returns (result, after) where after() runs untimed."""
    import cubed

    spec = cubed_spec(p, tmp)
    n, c, m, cr = p["n"], p["chunk"], p["m"], p["row_chunk"]
    seed, data = p["seed"], p["data"]
    if case == "qmeans":
        a = cubed_random((n, n), (c, c), seed, data, spec)
        b = cubed_random((n, n), (c, c), seed + 1, data, spec)
        return float(cubed.mean((a - b) ** 2).compute()), None
    if case == "sum":
        x = cubed_random((n, n), (c, c), seed, data, spec)
        v = cubed.sum(x, axis=0).compute()
        return float(v.sum()), None
    if case == "rechunk":
        x = cubed_random((n, n), (cr, n), seed, data, spec)
        path = os.path.join(tmp, "rechunked.zarr")
        cubed.to_zarr(cubed.rechunk(x, (n, cr)), path)
        return None, lambda: zarr_checksum(path, (n, cr))
    if case == "matmul":
        a = cubed_random((m, m), (c, c), seed, data, spec)
        b = cubed_random((m, m), (c, c), seed + 1, data, spec)
        return float(cubed.sum(cubed.matmul(a, b)).compute()), None
    raise ValueError(case)


def expect(case, p):
    """What the result tends to for independent uniform [0, 1) elements."""
    n, m = p["n"], p["m"]
    return {"qmeans": 1 / 6, "sum": n * n / 2, "rechunk": n * n / 2, "matmul": m**3 / 4}[case]


# ------------------------------------------------------------------------------------ child


class RssSampler:
    """Samples this process's RSS every SAMPLE_S seconds in a thread; keeps the highest."""

    def __init__(self):
        import psutil

        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self.samples += 1
            self._stop.wait(SAMPLE_S)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def versions():
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ["numpy", "dask", "cubed", "zarr", "psutil", "threadpoolctl"]:
        out[name] = md.version(name)
    # The BLAS numpy loaded, and the threads it uses (set by --blas-threads through the environment).
    from threadpoolctl import threadpool_info

    out["blas"] = [
        f"{pool.get('internal_api')} {pool.get('version')} {pool.get('architecture')}, "
        f"{pool.get('num_threads')} threads"
        for pool in threadpool_info()
        if pool.get("user_api") == "blas"
    ]
    return out


def child(peer, case, p):
    """Runs one case on one peer in this (fresh) process; returns the JSON record."""
    import gc
    import resource

    # This peer's imports (and zarr, which both use), before the baseline; not the other peer's.
    import numpy  # noqa: F401
    import zarr  # noqa: F401

    if peer == "dask":
        import dask.array  # noqa: F401

        executor = f"dask threaded scheduler, num_workers={p['workers']}"
    else:
        import cubed.random  # noqa: F401

        executor = f"cubed {cubed_spec(p, '/unused').executor.name} executor, max_workers={p['workers']}"
    record = {"peer": peer, "case": case, "params": p, "executor": executor, "versions": versions(),
              "host": {"cores": os.cpu_count(), "machine": platform.machine()}}
    run = run_dask if peer == "dask" else run_cubed
    tmp = tempfile.mkdtemp(prefix=f"array-{peer}-{case}-", dir=p["tmp"])
    try:
        gc.collect()
        sampler = RssSampler()
        baseline = sampler.peak
        with sampler:
            start = time.perf_counter()
            result, after = run(case, p, tmp)
            wall = time.perf_counter() - start
        if after is not None:
            result = after()
        record.update(
            wall_s=round(wall, 4),
            baseline_rss_bytes=baseline,
            peak_rss_bytes=sampler.peak,
            peak_delta_bytes=sampler.peak - baseline,
            ru_maxrss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            samples=sampler.samples,
            result=result,
            expect=expect(case, p),
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return record


# ------------------------------------------------------------------------------------ parent


def run_one(peer, case, p, timeout):
    """Runs one (peer, case) in a child process; returns its record (or an error record)."""
    env = dict(os.environ)
    for var in BLAS_ENV:
        env[var] = str(p["blas_threads"])
    job = json.dumps({"peer": peer, "case": case, "params": p})
    cmd = [sys.executable, os.path.abspath(__file__), "--child", job]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, timeout=timeout, text=True)
    except subprocess.TimeoutExpired:  # the child has been killed
        return {"peer": peer, "case": case, "params": p, "error": f"timed out after {timeout} s"}
    sys.stderr.write(proc.stderr)  # warnings, or the traceback
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        last = (proc.stderr.strip().splitlines() or [""])[-1]
        return {"peer": peer, "case": case, "params": p, "error": f"child exited {proc.returncode}: {last}"}
    return json.loads(lines[-1])


def mib(b):
    return f"{b / 2**20:8.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--case", choices=CASES + ["all"], default="all")
    ap.add_argument("--peer", choices=PEERS + ["all"], default="all")
    ap.add_argument("--n", type=int, default=6000, help="side of the qmeans, sum and rechunk arrays")
    ap.add_argument("--chunk", type=int, default=1000, help="square chunk side (qmeans, sum, matmul)")
    ap.add_argument("--row-chunk", type=int, default=None,
                    help="rechunk: rows per input chunk = columns per output chunk (default: --chunk)")
    ap.add_argument("--m", type=int, default=3000, help="side of the matmul arrays")
    ap.add_argument("--mem-limit", type=int, default=2 * 2**30,
                    help="Cubed's allowed_mem in bytes (Cubed wants it times --workers <= RAM)")
    ap.add_argument("--workers", type=int, default=default_workers(),
                    help="dask num_workers and Cubed max_workers (default: the cores)")
    ap.add_argument("--data", choices=["hash", "native"], default="hash")
    ap.add_argument("--seed", type=int, default=20261201)
    ap.add_argument("--blas-threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1, help="runs per (peer, case), each in a fresh process")
    ap.add_argument("--tmp", default=None, help="where the temporary Zarr directories go (default: $TMPDIR)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per child before it is killed")
    ap.add_argument("--out", help="JSON-lines file the records are appended to")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        job = json.loads(args.child)
        print(json.dumps(child(job["peer"], job["case"], job["params"])), flush=True)
        return
    if not args.out:
        ap.error("--out is required")
    for name in ["n", "chunk", "m", "mem_limit", "workers", "blas_threads", "repeat"]:
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be positive")

    p = {
        "n": args.n, "chunk": args.chunk, "row_chunk": args.row_chunk or args.chunk, "m": args.m,
        "mem_limit": args.mem_limit, "workers": args.workers, "data": args.data, "seed": args.seed,
        "blas_threads": args.blas_threads, "tmp": args.tmp,
    }
    cases = CASES if args.case == "all" else [args.case]
    peers = PEERS if args.peer == "all" else [args.peer]
    print(f"{'peer':6} {'case':8} {'wall s':>8} {'peak MiB':>8} {'delta MiB':>9} {'result':>22}  expect",
          flush=True)
    failed = 0
    results = {}
    for case in cases:
        for peer in peers:
            for _ in range(args.repeat):
                rec = run_one(peer, case, p, args.timeout)
                with open(args.out, "a", encoding="utf-8") as f:
                    f.write(json.dumps(rec) + "\n")
                if "error" in rec:
                    failed += 1
                    print(f"{peer:6} {case:8} ERROR: {rec['error']}", flush=True)
                    continue
                results.setdefault(case, {})[peer] = rec["result"]
                print(f"{peer:6} {case:8} {rec['wall_s']:8.2f} {mib(rec['peak_rss_bytes'])} "
                      f"{mib(rec['peak_delta_bytes']):>9} {rec['result']:22.15g}  {rec['expect']:.6g}",
                      flush=True)
    # With the hash data the peers compute the same numbers: their answers should agree.
    if args.data == "hash":
        for case, by_peer in results.items():
            if len(by_peer) == 2:
                d, c = by_peer["dask"], by_peer["cubed"]
                print(f"{case}: dask vs cubed relative difference {abs(d - c) / max(abs(d), 1e-300):.2e}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
