//! The two versions of the function interface a component may export, behind one face.
//!
//! - `shoal:function/functions@0.2.0` (`functions/wit/shoal.wit`): every function declares its
//!   kind (table, items, binop, value).
//! - `shoal:function/functions@0.1.0` (`functions/wit-0.1/shoal.wit`): table functions only,
//!   no kind; such a component's functions are all listed as [`FunctionKind::Table`].
//!
//! [`Pre`] is a component linked against one of them (the newest it exports), [`Instance`] an
//! instance of it in a store; both only dispatch to the bindings of their version.

use shoal_protocol::FunctionKind;
use wasmtime::Store;
use wasmtime::component::InstancePre;

mod v2 {
    wasmtime::component::bindgen!({
        path: "../functions/wit",
        world: "shoal-function",
    });
}

mod v1 {
    wasmtime::component::bindgen!({
        path: "../functions/wit-0.1",
        world: "shoal-function",
    });
}

/// One function as a component's `list-functions` describes it, whatever its interface version.
pub(super) struct ListedFunction {
    pub(super) name: String,
    pub(super) kind: FunctionKind,
    pub(super) description: String,
}

/// A component ready to instantiate, by the interface version it exports.
pub(super) enum Pre<T: 'static> {
    V2(v2::ShoalFunctionPre<T>),
    V1(v1::ShoalFunctionPre<T>),
}

/// An instantiated component.
pub(super) enum Instance {
    V2(v2::ShoalFunction),
    V1(v1::ShoalFunction),
}

impl<T: 'static> Pre<T> {
    /// Links `instance_pre` against the newest interface version the component exports.
    pub(super) fn new(instance_pre: InstancePre<T>) -> Result<Self, String> {
        let v2_error = match v2::ShoalFunctionPre::new(instance_pre.clone()) {
            Ok(pre) => return Ok(Pre::V2(pre)),
            Err(e) => e,
        };
        match v1::ShoalFunctionPre::new(instance_pre) {
            Ok(pre) => Ok(Pre::V1(pre)),
            Err(v1_error) => Err(format!(
                "component exports neither shoal:function/functions@0.2.0 ({v2_error:#}) nor \
                 shoal:function/functions@0.1.0 ({v1_error:#})"
            )),
        }
    }

    /// The interface version this component was linked against (`"0.2.0"` or `"0.1.0"`).
    pub(super) fn version(&self) -> &'static str {
        match self {
            Pre::V2(_) => "0.2.0",
            Pre::V1(_) => "0.1.0",
        }
    }

    pub(super) fn instantiate(&self, store: &mut Store<T>) -> wasmtime::Result<Instance> {
        match self {
            Pre::V2(pre) => pre.instantiate(store).map(Instance::V2),
            Pre::V1(pre) => pre.instantiate(store).map(Instance::V1),
        }
    }
}

impl Instance {
    pub(super) fn list_functions<T: 'static>(
        &self,
        store: &mut Store<T>,
    ) -> wasmtime::Result<Vec<ListedFunction>> {
        Ok(match self {
            Instance::V2(bindings) => bindings
                .shoal_function_functions()
                .call_list_functions(store)?
                .into_iter()
                .map(|f| ListedFunction {
                    name: f.name,
                    kind: from_v2_kind(f.kind),
                    description: f.description,
                })
                .collect(),
            Instance::V1(bindings) => bindings
                .shoal_function_functions()
                .call_list_functions(store)?
                .into_iter()
                .map(|f| ListedFunction {
                    name: f.name,
                    kind: FunctionKind::Table,
                    description: f.description,
                })
                .collect(),
        })
    }

    pub(super) fn call<T: 'static>(
        &self,
        store: &mut Store<T>,
        name: &str,
        inputs: &[Vec<u8>],
        args: &str,
    ) -> wasmtime::Result<Result<Vec<u8>, String>> {
        match self {
            Instance::V2(bindings) => {
                bindings.shoal_function_functions().call_call(store, name, inputs, args)
            }
            Instance::V1(bindings) => {
                bindings.shoal_function_functions().call_call(store, name, inputs, args)
            }
        }
    }
}

fn from_v2_kind(kind: v2::exports::shoal::function::functions::Kind) -> FunctionKind {
    use v2::exports::shoal::function::functions::Kind;
    match kind {
        Kind::Table => FunctionKind::Table,
        Kind::Items => FunctionKind::Items,
        Kind::Binop => FunctionKind::Binop,
        Kind::Value => FunctionKind::Value,
    }
}
