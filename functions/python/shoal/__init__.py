"""shoal functions in Python: plain functions, decorated, compiled to a WebAssembly component.

    from shoal import bag, delayed, rows

    @bag.map
    def inc(x, by=1):
        return x + by

    @bag.filter
    def is_even(x):
        return x % 2 == 0

    @bag.binop
    def add(acc, item):
        return acc + item

    @rows
    def row_total(row, columns):
        return {"total": sum(row[c] or 0 for c in columns)}

    @delayed
    def mul(a, b):
        return a * b

Build the module into a component with ``shoal function build app.py -o app.wasm`` (it runs
componentize-py with shoal's WIT interface and this package) and use it like a Rust one.

Every decorator registers the function under its Python name (``@bag.map(name="x",
description="...")`` chooses others; the description defaults to the docstring's first line)
with a kind of ``shoal:function@0.2.0`` (``functions/wit/shoal.wit``):

- ``@items`` / ``@bag.map`` / ``@bag.filter`` / ``@rows`` — kind *items*: called once per item
  as ``f(item, **args)``. ``@bag.filter`` turns the result into a bool; ``@rows`` gets a row as
  a dict and must return a dict (the row's new values). Array ``map_blocks`` calls an
  ``@items`` function once per block: the block as nested lists, ``block_index`` and
  ``block_shape`` among the args, and nested lists of the same shape back.
- ``@bag.binop`` — kind *binop*: ``f(acc, item, **args) -> acc``, folded over items left to
  right.
- ``@delayed`` — kind *value*: ``f(*inputs, **args)``; a collection's result arrives as a list.

Items, rows and values are JSON values (dict, list, str, int, float, bool, None); the job's
keyword arguments arrive as ``**args``. An exception becomes the call's error, with the
function's name, the index of the failing item and the traceback.

This module needs nothing but the standard library, so it can be imported (and its functions
tested) in ordinary CPython; only ``shoal._component``, which the build imports, needs the
bindings componentize-py generates.
"""

import json
import traceback

__all__ = ["items", "rows", "delayed", "bag", "add_numbers", "mul_numbers", "FunctionError"]

TABLE, ITEMS, BINOP, VALUE = "table", "items", "binop", "value"

# name -> _Function, in registration order.
REGISTRY = {}


class FunctionError(Exception):
    """The error a call returns to the host (its message is the error text)."""


class _Function:
    def __init__(self, name, kind, description, fn, adapt):
        self.name = name
        self.kind = kind
        self.description = description
        self.fn = fn
        # Turns the user function's result into the value the host gets (bool for filters).
        self.adapt = adapt


def _register(fn, kind, name, description, adapt):
    name = name or fn.__name__
    if name in REGISTRY:
        raise ValueError(f"shoal: a function named {name!r} is already registered")
    if description is None:
        doc = (fn.__doc__ or "").strip()
        description = doc.splitlines()[0] if doc else ""
    REGISTRY[name] = _Function(name, kind, description, fn, adapt)
    return fn


def _decorator(kind, adapt=None):
    def decorate(fn=None, *, name=None, description=None):
        if fn is None:
            return lambda f: _register(f, kind, name, description, adapt)
        return _register(fn, kind, name, description, adapt)

    return decorate


def _as_bool(value):
    return bool(value)


def _as_row(value):
    if not isinstance(value, dict):
        raise TypeError(f"a @rows function must return a dict of new values, got {type(value).__name__}")
    return value


items = _decorator(ITEMS)
items.__doc__ = "Registers an items function: ``f(item, **args) -> value``, called per item."
rows = _decorator(ITEMS, _as_row)
rows.__doc__ = "Registers a row function (items kind): ``f(row: dict, **args) -> dict``."
delayed = _decorator(VALUE)
delayed.__doc__ = "Registers a value function: ``f(*inputs, **args) -> value`` (Delayed)."


class _Bag:
    """Decorators for Bag operations: ``map`` and ``filter`` (items kind), ``binop``."""

    map = staticmethod(_decorator(ITEMS))
    filter = staticmethod(_decorator(ITEMS, _as_bool))
    binop = staticmethod(_decorator(BINOP))


bag = _Bag()


def list_functions():
    """``(name, kind, description)`` of every registered function."""
    return [(f.name, f.kind, f.description) for f in REGISTRY.values()]


def dispatch(name, inputs, args):
    """Runs function ``name`` on the call's input bytes with JSON ``args``; returns the output
    bytes or raises :class:`FunctionError`."""
    function = REGISTRY.get(name)
    if function is None:
        raise FunctionError(f"unknown function '{name}'; available: {', '.join(REGISTRY)}")
    kwargs = _parse_args(name, args)
    if function.kind == ITEMS:
        batch = _one_array(name, inputs)
        out = [_run(function, f"item {i}", (item,), kwargs) for i, item in enumerate(batch)]
    elif function.kind == BINOP:
        out = [_fold(function, p, pair, kwargs) for p, pair in enumerate(_one_array(name, inputs))]
    elif function.kind == VALUE:
        values = []
        for i, data in enumerate(inputs):
            try:
                values.append(json.loads(data))
            except ValueError as e:
                raise FunctionError(f"input {i} of '{name}' is not JSON: {e}") from None
        out = _run(function, None, values, kwargs)
    else:
        raise FunctionError(f"function '{name}' has kind {function.kind}, which Python functions cannot have")
    try:
        return json.dumps(out, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise FunctionError(f"encoding the result of '{name}' as JSON: {e}") from None


def _fold(function, p, pair, kwargs):
    if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], list)):
        raise FunctionError(f"input of '{function.name}': pair {p} is not an [accumulator, items] array")
    acc, batch = pair
    for i, item in enumerate(batch):
        acc = _run(function, f"pair {p}, item {i}", (acc, item), kwargs)
    return acc


def _run(function, where, positional, kwargs):
    try:
        result = function.fn(*positional, **kwargs)
        return function.adapt(result) if function.adapt else result
    except (Exception, SystemExit):
        place = f", {where}" if where else ""
        raise FunctionError(f"function '{function.name}'{place} failed:\n{traceback.format_exc()}") from None


def _parse_args(name, text):
    if not text.strip():
        return {}
    try:
        args = json.loads(text)
    except ValueError as e:
        raise FunctionError(f"arguments of '{name}' are not valid JSON: {e}") from None
    if args is None:
        return {}
    if not isinstance(args, dict):
        raise FunctionError(f"arguments of '{name}' must be a JSON object, got {text}")
    return args


def _one_array(name, inputs):
    if len(inputs) != 1:
        raise FunctionError(f"function '{name}' takes exactly one input, got {len(inputs)}")
    try:
        batch = json.loads(inputs[0])
    except ValueError as e:
        raise FunctionError(f"input of '{name}' is not JSON: {e}") from None
    if not isinstance(batch, list):
        raise FunctionError(f"input of '{name}' is not a JSON array")
    return batch


_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"not a number: {_type_name(value)} ({json.dumps(value, ensure_ascii=False)})")
    if isinstance(value, int) and not _I64_MIN <= value <= _I64_MAX:
        return float(value)
    return value


def _combine(a, b, op):
    a, b = _number(a), _number(b)
    if isinstance(a, int) and isinstance(b, int):
        result = op(a, b)
        if _I64_MIN <= result <= _I64_MAX:
            return result
    return op(float(a), float(b))


def add_numbers(a, b):
    """``a + b`` as shoal's examples add (the Rust SDK's ``json::add``): integers stay integers
    while the result fits 64 bits, otherwise floats; a boolean or non-number is a TypeError."""
    return _combine(a, b, lambda x, y: x + y)


def mul_numbers(a, b):
    """``a * b``, with the rule of :func:`add_numbers`."""
    return _combine(a, b, lambda x, y: x * y)


def _type_name(value):
    if value is None:
        return "null"
    return {bool: "a boolean", str: "a string", list: "a list", dict: "an object"}.get(type(value), "a number")
