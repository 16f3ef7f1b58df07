"""NumPy and zarr-python side of shoal's Array tests.

    python arrays.py make DIR CASES.json   writes the input arrays to DIR/in/<name> with
                                           zarr-python (several codecs and formats) and each
                                           case's NumPy answer to DIR/expected.json
    python arrays.py check DIR CASES.json  reads the arrays shoal wrote to DIR/out/<name> with
                                           zarr-python and compares them with NumPy's answers;
                                           prints one line per mismatch, exits 1 if any

CASES.json is a list of [name, expression]; an expression is Python over `np` and the inputs.
"""

import json
import sys

import numpy as np
import zarr
from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec


def inputs():
    rng = np.random.default_rng(20261201)
    a = rng.standard_normal((37, 23))
    return {
        # name: (array, chunks, how it is stored)
        "a": (a, (10, 7), "zstd"),
        "b": (rng.standard_normal((37, 23)), (8, 23), "gzip"),
        "v": (rng.standard_normal(23), (5,), "blosc"),
        "col": (rng.standard_normal((37, 1)), (10, 1), "zstd"),
        "i": (rng.integers(-50, 50, (37, 23)).astype(np.int32), (10, 10), "none"),
        "u": (rng.integers(0, 200, (37, 23)).astype(np.uint8), (9, 9), "v2"),
        "f": (a.astype(np.float32), (10, 7), "sharded"),
        "c": (rng.standard_normal((6, 5, 4)), (4, 2, 3), "zstd"),
        "m": (rng.standard_normal((23, 11)), (7, 5), "zstd"),
        "m2": (rng.standard_normal((23, 11)), (10, 4), "zstd"),
        "m3": (rng.standard_normal((5, 4, 3)), (2, 3, 2), "zstd"),
        "bo": (a > 0.3, (10, 7), "zstd"),
    }


def write(path, data, chunks, how):
    if how == "v2":
        z = zarr.create_array(store=path, shape=data.shape, chunks=chunks, dtype=data.dtype, zarr_format=2)
    elif how == "sharded":
        shards = tuple(2 * c for c in chunks)
        z = zarr.create_array(store=path, shape=data.shape, chunks=chunks, shards=shards, dtype=data.dtype)
    else:
        compressors = {"zstd": ZstdCodec(), "gzip": GzipCodec(), "blosc": BloscCodec(), "none": None}[how]
        z = zarr.create_array(store=path, shape=data.shape, chunks=chunks, dtype=data.dtype, compressors=compressors)
    z[...] = data


def answer(expr, env):
    value = np.asarray(eval(expr, {"np": np}, env))
    return {
        "shape": list(value.shape),
        "dtype": str(value.dtype),
        "data": value.ravel().tolist(),
    }


def main():
    mode, root, cases_path = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(cases_path) as fh:
        cases = json.load(fh)
    arrays = inputs()
    env = {name: data for name, (data, _, _) in arrays.items()}
    if mode == "make":
        for name, (data, chunks, how) in arrays.items():
            write(f"{root}/in/{name}", data, chunks, how)
        expected = {name: answer(expr, env) for name, expr in cases}
        with open(f"{root}/expected.json", "w") as fh:
            json.dump(expected, fh)
        return 0
    bad = 0
    for name, expr in cases:
        want = np.asarray(eval(expr, {"np": np}, env))
        got = zarr.open_array(f"{root}/out/{name}", mode="r")[...]
        if got.shape != want.shape or got.dtype != want.dtype:
            print(f"{name}: shape {got.shape} {got.dtype}, expected {want.shape} {want.dtype}")
            bad += 1
        elif not np.array_equal(got, want, equal_nan=want.dtype.kind == "f"):
            print(f"{name}: values differ (max difference {np.max(np.abs(got.astype(float) - want.astype(float)))})")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
