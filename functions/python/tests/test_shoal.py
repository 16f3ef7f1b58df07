"""Unit tests of the Python SDK in ordinary CPython (no component): registration, the JSON
batch shapes of each kind, arguments, errors. Run:

    python functions/python/tests/test_shoal.py

(the end-to-end test `python_sdk_unit_tests_pass` runs it with the test venv's Python).
"""

import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), os.path.join(os.path.dirname(HERE), "examples")]

import shoal  # noqa: E402
import app  # noqa: E402,F401 - registers the example functions


def call(name, inputs, args=""):
    return json.loads(shoal.dispatch(name, [json.dumps(i).encode() for i in inputs], args))


class Kinds(unittest.TestCase):
    def test_registry_lists_kinds_and_docstrings(self):
        kinds = {name: kind for name, kind, _ in shoal.list_functions()}
        self.assertEqual(kinds["inc"], "items")
        self.assertEqual(kinds["row_total"], "items")
        self.assertEqual(kinds["add"], "binop")
        self.assertEqual(kinds["mul"], "value")
        descriptions = {name: d for name, _, d in shoal.list_functions()}
        self.assertEqual(descriptions["mul"], "a * b")

    def test_items_binop_value_shapes(self):
        self.assertEqual(call("inc", [[1, 2.5]], '{"by": 2}'), [3, 4.5])
        self.assertEqual(call("is_even", [[1, 2]]), [False, True])
        self.assertEqual(call("add", [[[0, [1, 2]], [5, []]]]), [3, 5])
        self.assertEqual(call("add_values", [1, 2, 3]), 6)
        self.assertEqual(call("total_len", [[1], [2, 3]]), 3)
        self.assertEqual(call("split_words", [["x\x1cy Z"]]), [["x\x1cy", "z"]])

    def test_integers_overflow_into_floats(self):
        self.assertEqual(shoal.add_numbers(2**63 - 1, 1), float(2**63))
        self.assertIsInstance(shoal.add_numbers(2, 3), int)
        with self.assertRaises(TypeError):
            shoal.add_numbers(True, 1)

    def test_filter_results_are_booleans_and_rows_dicts(self):
        @shoal.bag.filter(name="truthy_test")
        def truthy(x):
            return x

        @shoal.rows(name="bad_row_test")
        def bad_row(row):
            return 1

        self.assertEqual(call("truthy_test", [[0, 1, "", "a", None]]), [False, True, False, True, False])
        with self.assertRaises(shoal.FunctionError) as e:
            call("bad_row_test", [[{}]])
        self.assertIn("must return a dict", str(e.exception))

    def test_errors_name_the_function_the_item_and_keep_the_traceback(self):
        with self.assertRaises(shoal.FunctionError) as e:
            call("inc", [[1, "x"]])
        text = str(e.exception)
        self.assertTrue(text.startswith("function 'inc', item 1 failed:"), text)
        self.assertIn("Traceback (most recent call last):", text)
        self.assertIn("TypeError: not a number", text)
        with self.assertRaises(shoal.FunctionError) as e:
            call("add", [[[0, [1]], [0, [None]]]])
        self.assertIn("function 'add', pair 1, item 0 failed", str(e.exception))
        with self.assertRaises(shoal.FunctionError) as e:
            call("nope", [[]])
        self.assertIn("available: inc", str(e.exception))
        with self.assertRaises(shoal.FunctionError):
            call("inc", [[1]], "[1]")
        with self.assertRaises(ValueError):
            shoal.items(lambda x: x, name="inc")


if __name__ == "__main__":
    unittest.main()
