"""The component export: ``wit_world.exports.Functions`` over the registry of ``shoal``.

Imported only by the entry module ``shoal function build`` generates, where componentize-py
has generated ``wit_world`` from ``functions/wit/shoal.wit``.
"""

import wit_world
from componentize_py_types import Err
from wit_world.exports import functions as wit

import shoal

_KINDS = {
    shoal.TABLE: wit.Kind.TABLE,
    shoal.ITEMS: wit.Kind.ITEMS,
    shoal.BINOP: wit.Kind.BINOP,
    shoal.VALUE: wit.Kind.VALUE,
}


class Functions(wit_world.exports.Functions):
    def list_functions(self):
        return [wit.FunctionInfo(name, _KINDS[kind], description) for name, kind, description in shoal.list_functions()]

    def call(self, name, inputs, args):
        try:
            return shoal.dispatch(name, inputs, args)
        except shoal.FunctionError as e:
            raise Err(str(e)) from None
