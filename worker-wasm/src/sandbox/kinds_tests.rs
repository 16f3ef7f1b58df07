//! The sandbox with functions of every kind, on real components: the JSON kinds of
//! `builtin:examples` (items, binop, value) give the right bytes, a function called as another
//! kind is refused, and a component of the old interface (`builtin:legacy`, 0.1.0) loads with
//! its functions as table functions and runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{FunctionInfo, Module, Sandbox, SandboxConfig, SandboxError};
use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::record_batch::RecordBatch;
use serde_json::{Value, json};
use shoal_protocol::{FunctionKind, Limits};
use std::sync::{Arc, OnceLock};

fn shared() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| Sandbox::new(SandboxConfig::default()).unwrap())
}

fn load(name: &str) -> Arc<Module> {
    let bytes = shoal_functions::builtin(name).unwrap();
    shared().load(&shoal_functions::sha256_hex(bytes), bytes).unwrap()
}

fn call(function: &str, kind: FunctionKind, inputs: &[Value], args: Value) -> Result<Value, SandboxError> {
    let inputs: Vec<Vec<u8>> = inputs.iter().map(|v| serde_json::to_vec(v).unwrap()).collect();
    let out = shared().call_bytes(&load("examples"), function, kind, &inputs, &args, &Limits::default())?;
    Ok(serde_json::from_slice(&out.bytes).unwrap())
}

fn items(function: &str, items: Value, args: Value) -> Result<Value, SandboxError> {
    call(function, FunctionKind::Items, &[items], args)
}

#[test]
fn examples_declare_their_kinds() {
    let functions = shared().list_functions(&load("examples"), &Limits::default()).unwrap();
    let kind = |name: &str| functions.iter().find(|f| f.name == name).map(|f| f.kind);
    assert_eq!(kind("scale"), Some(FunctionKind::Table));
    for name in ["inc", "is_even", "is_error", "split_words", "sum_list", "row_total"] {
        assert_eq!(kind(name), Some(FunctionKind::Items), "{name}");
    }
    assert_eq!(kind("add"), Some(FunctionKind::Binop));
    assert_eq!(kind("add_field"), Some(FunctionKind::Binop));
    for name in ["add_values", "mul", "total_len"] {
        assert_eq!(kind(name), Some(FunctionKind::Value), "{name}");
    }
    assert_eq!(load("examples").interface_version(), "0.2.0");
}

#[test]
fn items_functions_give_one_value_per_item() {
    assert_eq!(items("inc", json!([1, -2, 0.5]), json!({})).unwrap(), json!([2, -1, 1.5]));
    assert_eq!(items("inc", json!([1, 2]), json!({"by": 10})).unwrap(), json!([11, 12]));
    assert_eq!(items("inc", json!([]), json!(null)).unwrap(), json!([]));
    assert_eq!(items("is_even", json!([0, 3, -8]), json!({})).unwrap(), json!([true, false, true]));
    assert_eq!(
        items("is_error", json!([{"status": 500}, {"status": 404}, {"status": null}, {}]), json!({}))
            .unwrap(),
        json!([true, false, false, false])
    );
    assert_eq!(
        items("split_words", json!(["Ça  VA\tbien", "", "ΟΔΟΣ x"]), json!({})).unwrap(),
        json!([["ça", "va", "bien"], [], ["οδος", "x"]])
    );
    assert_eq!(items("sum_list", json!([[1, 2, 3], [], [0.5, 1]]), json!({})).unwrap(), json!([6, 0, 1.5]));
    assert_eq!(
        items("row_total", json!([{"a": 1, "b": null}, {"a": 2.5, "b": 1}]), json!({"columns": ["a", "b"]}))
            .unwrap(),
        json!([{"total": 1}, {"total": 3.5}])
    );
}

#[test]
fn an_item_error_names_the_function_and_the_item() {
    let err = items("inc", json!([1, 2, "three"]), json!({})).unwrap_err();
    match &err {
        SandboxError::Guest { message, .. } => {
            assert!(message.starts_with("function 'inc', item 2: not a number"), "{message}")
        }
        other => panic!("expected a guest error, got {other:?}"),
    }
}

#[test]
fn binop_functions_fold_each_pair() {
    let pairs = json!([[0, [1, 2, 3]], [10, []], [0.5, [1]]]);
    assert_eq!(call("add", FunctionKind::Binop, &[pairs], json!({})).unwrap(), json!([6, 10, 1.5]));
    let pairs = json!([[0, [{"n": 2}, {"n": null}, {}, {"n": 5}]]]);
    assert_eq!(call("add_field", FunctionKind::Binop, &[pairs], json!({"field": "n"})).unwrap(), json!([7]));
    let err = call("add", FunctionKind::Binop, &[json!([[0, [1, "x"]]])], json!({})).unwrap_err();
    assert!(err.to_string().contains("function 'add', pair 0, item 1: not a number: a string"), "{err}");
}

#[test]
fn value_functions_take_positional_inputs() {
    let value = |f: &str, inputs: &[Value]| call(f, FunctionKind::Value, inputs, json!({}));
    assert_eq!(value("add_values", &[json!(1), json!(2), json!(3)]).unwrap(), json!(6));
    assert_eq!(value("add_values", &[json!(1), json!(0.25)]).unwrap(), json!(1.25));
    assert_eq!(value("mul", &[json!(6), json!(7)]).unwrap(), json!(42));
    assert_eq!(value("total_len", &[json!([1, 2]), json!([]), json!(["a"])]).unwrap(), json!(3));
    assert!(value("mul", &[json!(6)]).unwrap_err().to_string().contains("takes 2 inputs"));
}

#[test]
fn a_function_of_another_kind_is_refused() {
    let err = call("add", FunctionKind::Items, &[json!([1])], json!({})).unwrap_err();
    assert!(
        matches!(&err, SandboxError::WrongKind { name, declared: FunctionKind::Binop, wanted: FunctionKind::Items } if name == "add"),
        "{err:?}"
    );
    let err = call("inc", FunctionKind::Value, &[json!(1)], json!({})).unwrap_err();
    assert!(matches!(err, SandboxError::WrongKind { declared: FunctionKind::Items, .. }), "{err:?}");
    // A table function through the JSON path, and an items function through the table path.
    let err = call("scale", FunctionKind::Items, &[json!([1])], json!({})).unwrap_err();
    assert!(matches!(err, SandboxError::WrongKind { declared: FunctionKind::Table, .. }), "{err:?}");
    let x: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
    let batch = RecordBatch::try_from_iter([("x", x)]).unwrap();
    let err = shared().call(&load("examples"), "inc", &[batch], &json!({}), &Limits::default()).unwrap_err();
    assert!(matches!(err, SandboxError::WrongKind { wanted: FunctionKind::Table, .. }), "{err:?}");
}

#[test]
fn a_component_of_interface_0_1_loads_and_runs() {
    let module = load("legacy");
    assert_eq!(module.interface_version(), "0.1.0");
    let functions = shared().list_functions(&module, &Limits::default()).unwrap();
    assert_eq!(
        functions,
        [
            FunctionInfo {
                name: "echo".into(),
                kind: FunctionKind::Table,
                description: "returns its first input unchanged".into()
            },
            FunctionInfo {
                name: "fail".into(),
                kind: FunctionKind::Table,
                description: "returns an error naming its arguments".into()
            },
        ]
    );
    let name: ArrayRef = Arc::new(StringArray::from(vec![Some("ünï"), None]));
    let batch = RecordBatch::try_from_iter([("name", name)]).unwrap();
    let out =
        shared().call(&module, "echo", std::slice::from_ref(&batch), &json!({}), &Limits::default()).unwrap();
    assert_eq!(out.batch, batch);
    let err = shared().call(&module, "fail", &[batch], &json!({"a": 1}), &Limits::default()).unwrap_err();
    assert!(
        matches!(&err, SandboxError::Guest { message, .. } if message == r#"legacy failure, args {"a":1}"#),
        "{err:?}"
    );
    let err = shared()
        .call_bytes(&module, "echo", FunctionKind::Items, &[], &json!({}), &Limits::default())
        .unwrap_err();
    assert!(matches!(err, SandboxError::WrongKind { declared: FunctionKind::Table, .. }), "{err:?}");
}
