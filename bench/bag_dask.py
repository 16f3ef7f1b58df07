"""The data and the Dask peer of bench/bag.rs.

  python bench/bag_dask.py gen DIR FILES MB_PER_FILE
      writes FILES JSON-lines files of web-log-like objects (about MB_PER_FILE MB each) into
      DIR, with a seeded generator (the same bytes on every machine and run), in 2 processes;
      prints {"items": N, "errors": N_STATUS_AT_LEAST_500} as JSON.

  python bench/bag_dask.py run DIR OUT.json [REPEAT]
      runs, with dask.bag on the threaded and on the processes scheduler (num_workers=2),
      read_text(DIR/*.jsonl, blocksize=64MB).map(json.loads), then
        .filter(is_error).map(country).frequencies(sort=True)         ("frequencies")
        .foldby(method, add_bytes, 0, add, 0)                          ("foldby")
      best of REPEAT (default 2) wall times; writes the times and the answers to OUT.json.
"""
import json
import os
import random
import sys
import time
from multiprocessing import Pool

SEED = 20261201
METHODS = (["GET"] * 60) + (["POST"] * 20) + (["PUT"] * 8) + (["DELETE"] * 5) + (["PATCH"] * 4) + (["HEAD"] * 3)
STATUSES = [200, 201, 204, 301, 304, 400, 401, 403, 404, 500, 502, 503, 504]
STATUS_WEIGHTS = [70, 5, 3, 2, 4, 3, 2, 1.5, 4, 2.5, 1.5, 1.2, 0.8]
COUNTRIES = ["NL", "DE", "FR", "US", "GB", "JP", "BR", "IN", "ES", "IT", "SE", "PL", "CA", "AU", "Ísland", "Česko"]
RESOURCES = ["items", "users", "orders", "search", "images", "carts", "sessions"]
TAGS = ["api", "mobile", "web", "beta", "cached", "retry", "bot"]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "curl/8.11.0",
    "python-requests/2.32.3",
]


def gen_file(job):
    directory, index, target = job
    rng = random.Random(SEED * 1000 + index)
    path = os.path.join(directory, f"logs-{index:03d}.jsonl")
    items = errors = size = 0
    lines = []
    with open(path + ".partial", "w", encoding="utf-8") as f:
        while size < target:
            status = rng.choices(STATUSES, STATUS_WEIGHTS)[0]
            item = {
                "id": index * 100_000_000 + items,
                "ts": f"2026-11-{rng.randint(1, 30):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z",
                "method": rng.choice(METHODS),
                "path": f"/api/v1/{rng.choice(RESOURCES)}/{rng.randint(1, 99999)}",
                "status": status,
            }
            r = rng.random()
            if r < 0.85:
                item["bytes"] = rng.randint(0, 50_000)
            elif r < 0.95:
                item["bytes"] = None
            item["duration_ms"] = round(rng.expovariate(1 / 40), 2)
            r = rng.random()
            if r < 0.97:
                user = {"id": rng.randint(1, 1_000_000), "agent": rng.choice(AGENTS)}
                r = rng.random()
                if r < 0.90:
                    user["country"] = rng.choice(COUNTRIES)
                elif r < 0.95:
                    user["country"] = None
                item["user"] = user
            item["tags"] = rng.sample(TAGS, rng.randint(0, 3))
            line = json.dumps(item, ensure_ascii=False) + "\n"
            lines.append(line)
            size += len(line.encode("utf-8"))
            items += 1
            errors += status >= 500
            if len(lines) >= 10_000:
                f.write("".join(lines))
                lines = []
        f.write("".join(lines))
    os.rename(path + ".partial", path)
    return items, errors


def gen(directory, files, mb):
    os.makedirs(directory, exist_ok=True)
    with Pool(2) as pool:
        counts = pool.map(gen_file, [(directory, i, mb * 1_000_000) for i in range(files)])
    print(json.dumps({"items": sum(c[0] for c in counts), "errors": sum(c[1] for c in counts)}))


# The plain Python functions of the Dask pipelines (the same as the example functions).
def is_error(item):
    status = item.get("status")
    return status is not None and status >= 500


def country(item):
    user = item.get("user")
    return user.get("country") if isinstance(user, dict) else None


def method(item):
    return item["method"]


def add_bytes(acc, item):
    value = item.get("bytes")
    return acc + (0 if value is None else value)


def add(a, b):
    return a + b


def run(directory, out, repeat):
    import dask
    import dask.bag as db

    files = sorted(os.path.join(directory, f) for f in os.listdir(directory) if f.endswith(".jsonl"))

    def items():
        return db.read_text(files, blocksize=64_000_000).map(json.loads)

    pipelines = {
        "frequencies": lambda: items().filter(is_error).map(country).frequencies(sort=True),
        "foldby": lambda: items().foldby(method, add_bytes, 0, add, 0),
    }
    times, answers = {}, {}
    for name, build in pipelines.items():
        times[name] = {}
        for scheduler in ["threads", "processes"]:
            runs = []
            for _ in range(repeat):
                started = time.perf_counter()
                with dask.config.set(scheduler=scheduler, num_workers=2):
                    answer = [list(p) for p in build().compute()]
                runs.append(time.perf_counter() - started)
                print(f"  dask {name} {scheduler}: {runs[-1]:.2f} s", file=sys.stderr, flush=True)
            times[name][scheduler] = runs
            if name in answers and sorted(map(json.dumps, answers[name])) != sorted(map(json.dumps, answer)):
                raise SystemExit(f"dask {name}: the threaded and processes answers differ")
            answers[name] = answer
    meta = {}
    meta_path = directory.rstrip("/") + ".json"
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
    with open(out, "w") as f:
        json.dump({"version": dask.__version__, **meta, "times": times, "answers": answers}, f)


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 2)
    else:
        raise SystemExit(__doc__)
