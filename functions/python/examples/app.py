"""shoal's example functions in Python: the same names and results as the Rust example
component (``builtin:examples``, ``functions/examples/src/values.rs``); the end-to-end tests
compare the two on generated inputs.

Build: ``shoal function build functions/python/examples/app.py -o app.wasm``.

Numbers follow :func:`shoal.add_numbers`: integers stay integers when every operand is one,
otherwise the result is a float.
"""

from shoal import add_numbers, bag, delayed, items, mul_numbers, rows

# Unicode White_Space, what Rust's `str::split_whitespace` splits on (`str.split()` also splits
# on U+001C..U+001F, which are not White_Space).
_WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _sum(values):
    total = 0
    for i, value in enumerate(values):
        try:
            total = add_numbers(total, value)
        except TypeError as e:
            raise TypeError(f"element {i}: {e}") from None
    return total


@bag.map
def inc(x, by=1):
    """a number plus `by` (default 1): {by?}"""
    return add_numbers(x, by)


@bag.filter
def is_even(x):
    """whether an integer is even"""
    if isinstance(x, bool) or not isinstance(x, int):
        raise TypeError(f"not an integer: {x!r}")
    return x % 2 == 0


@bag.filter
def is_error(item):
    """whether an object's `status` is at least 500 (missing or null: false)"""
    if not isinstance(item, dict):
        raise TypeError(f"not an object: {item!r}")
    status = item.get("status")
    if status is None:
        return False
    if isinstance(status, bool) or not isinstance(status, (int, float)):
        raise TypeError(f"'status' is not a number: {status!r}")
    return status >= 500


@bag.map
def split_words(text):
    """a string's words, lowercased, split on whitespace"""
    if not isinstance(text, str):
        raise TypeError(f"not a string: {text!r}")
    words, word = [], []
    for ch in text:
        if ch in _WHITESPACE:
            if word:
                words.append("".join(word).lower())
                word = []
        else:
            word.append(ch)
    if word:
        words.append("".join(word).lower())
    return words


@items
def sum_list(values):
    """the sum of a list of numbers"""
    if not isinstance(values, list):
        raise TypeError(f"not a list: {values!r}")
    return _sum(values)


@rows
def row_total(row, columns):
    """{"total": sum of a row's `columns`, nulls as 0}: {columns}"""
    total = 0
    for column in columns:
        if column not in row:
            raise KeyError(f"the row has no column {column!r}")
        if row[column] is not None:
            total = add_numbers(total, row[column])
    return {"total": total}


@bag.binop
def add(acc, item):
    """acc + item (numbers)"""
    return add_numbers(acc, item)


@bag.binop
def add_field(acc, item, field):
    """acc + item[field] (missing or null: + 0): {field}"""
    if not isinstance(item, dict):
        raise TypeError(f"not an object: {item!r}")
    value = item.get(field)
    return add_numbers(acc, 0 if value is None else value)


@delayed
def add_values(*inputs):
    """the sum of all inputs"""
    return _sum(inputs)


@delayed
def mul(a, b):
    """a * b"""
    return mul_numbers(a, b)


@delayed
def total_len(*inputs):
    """the sum of the lengths of list inputs"""
    total = 0
    for i, value in enumerate(inputs):
        if not isinstance(value, list):
            raise TypeError(f"input {i} is not a list")
        total += len(value)
    return total


@items
def shift_block(block, block_index, block_shape, factor=1):
    """an array block times `factor` plus the sum of its block index: {factor?}"""
    shift = sum(block_index)

    def go(x):
        return [go(v) for v in x] if isinstance(x, list) else x * factor + shift

    return go(block)
