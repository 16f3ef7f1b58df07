"""Python functions for the Bag and Delayed examples (examples/bag/job.toml,
examples/delayed/job.toml). Build the component once:

    shoal function build examples/bag/functions.py -o examples/bag/functions.wasm
"""

from shoal import bag, delayed, rows


@bag.filter
def is_slow(item, ms=500):
    """whether a request took at least `ms` milliseconds (missing: no)"""
    return (item.get("ms") or 0) >= ms


@bag.map
def path_root(item):
    """the first segment of the request path: /api/users/7 -> api"""
    parts = [p for p in (item.get("path") or "").split("/") if p]
    return parts[0] if parts else ""


@bag.binop
def add_bytes(total, item):
    """total + the item's bytes (missing or null: + 0)"""
    return total + (item.get("bytes") or 0)


@bag.binop
def add(a, b):
    """a + b"""
    return a + b


@rows
def kilobytes(row):
    """{"kb": the row's bytes / 1000}"""
    return {"kb": (row.get("bytes") or 0) / 1000}


@delayed
def share(part, whole):
    """part / whole, rounded to 4 places"""
    return round(part / whole, 4) if whole else None
