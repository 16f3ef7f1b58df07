"""The Python component of the end-to-end tests (`tests/e2e/python_functions.rs`): the example
functions (`functions/python/examples/app.py`, on the build's python path) and functions that
misbehave on purpose, for the sandbox's limits.
"""

from app import *  # noqa: F401,F403 - registers the example functions
from shoal import bag, delayed


@bag.map
def boom(x):
    """raises ValueError naming its item"""
    raise ValueError(f"boom on {x!r}")


@bag.map
def spin(x):
    """loops forever"""
    while True:
        x += 1


@bag.map
def alloc_bomb(x):
    """allocates 16 MB blocks until the memory runs out"""
    blocks = []
    while True:
        blocks.append(bytearray(16 << 20))


@delayed
def echo_args(*inputs, **args):
    """[inputs, args]"""
    return [list(inputs), args]
