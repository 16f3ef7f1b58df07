use super::*;
use crate::ops::Functions;
use arrow::array::Int64Array;
use shoal_protocol::{FunctionRef, ModuleRef, ObjectRef, TaskKey};
use std::collections::BTreeMap;

/// Returns its inputs as one JSON list (or an error for a function named `fail`).
struct Echo;

impl Functions for Echo {
    async fn call(
        &mut self,
        _: &ModuleRef,
        _: &str,
        _: RecordBatch,
        _: &serde_json::Value,
    ) -> Result<RecordBatch> {
        Err(Error::Execution("no table calls here".into()))
    }

    async fn call_json(
        &mut self,
        f: &FunctionRef,
        kind: FunctionKind,
        inputs: Vec<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        assert_eq!(kind, FunctionKind::Value);
        if f.function == "fail" {
            return Err(Error::Schema("it failed".into()));
        }
        let parts: Vec<String> = inputs.into_iter().map(|b| String::from_utf8(b).unwrap()).collect();
        Ok(format!("[{}]", parts.join(",")).into_bytes())
    }
}

fn function(name: &str) -> FunctionRef {
    FunctionRef {
        module: ModuleRef { object: ObjectRef { url: "m".into(), size: 0, e_tag: None }, sha256: "x".into() },
        function: name.into(),
        args: serde_json::Value::Null,
    }
}

fn call(name: &str, args: Vec<CallArg>) -> Operator {
    CallOp::Call { function: function(name), args }.into()
}

fn value(v: serde_json::Value) -> Table {
    value_table("f", serde_json::to_vec(&v).unwrap()).unwrap()
}

fn empty() -> Table {
    (Arc::new(Schema::empty()), vec![])
}

fn text(table: &Table) -> String {
    let mut items = item_texts(&table.1).unwrap();
    items.next().flatten().unwrap().to_string()
}

#[tokio::test]
async fn arguments_are_literals_values_and_collections() {
    let frame_schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
    let frame =
        RecordBatch::try_new(frame_schema.clone(), vec![Arc::new(Int64Array::from(vec![Some(1), None]))])
            .unwrap();
    let items_schema = Arc::new(Schema::new(vec![Field::new(ITEM_COLUMN, DataType::Utf8, true)]));
    let items =
        RecordBatch::try_new(items_schema.clone(), vec![Arc::new(StringArray::from(vec!["{\"k\":1}", "2"]))])
            .unwrap();
    let sides: Sides = BTreeMap::from([(1, (frame_schema, vec![frame])), (2, (items_schema, vec![items]))]);
    let args = vec![
        CallArg::Literal { value: serde_json::json!({"x": [1]}) },
        CallArg::Port { port: 0 },
        CallArg::Port { port: 1 },
        CallArg::Port { port: 2 },
    ];
    let out = run(&[call("f", args)], value(serde_json::json!(7)), &sides, &mut Echo).await.unwrap();
    assert!(out.0.metadata().contains_key(VALUE_METADATA));
    assert_eq!(text(&out), r#"[{"x":[1]},7,[{"a":1},{"a":null}],[{"k":1},2]]"#);
    // No input at all: a call of literals.
    let out = run(&[call("f", vec![])], empty(), &Sides::new(), &mut Echo).await.unwrap();
    assert_eq!(text(&out), "[]");
}

#[tokio::test]
async fn function_errors_and_bad_output_are_errors() {
    let err = run(&[call("fail", vec![])], empty(), &Sides::new(), &mut Echo).await.unwrap_err();
    assert!(err.to_string().contains("it failed"), "{err}");
    let err = value_table("g", b"{not json".to_vec()).unwrap_err();
    assert!(err.to_string().contains("value function 'g' returned invalid JSON"), "{err}");
    assert!(matches!(err.kind(), shoal_protocol::FailureKind::Fatal));
}

#[test]
fn ports_of_calls() {
    let input = |port| Input::Upstream {
        task_key: TaskKey(format!("t{port}")),
        objects: vec![],
        bucket: None,
        ranges: vec![],
        port,
        schema: None,
    };
    let out = shoal_protocol::Output::Intermediate;
    let lit = CallArg::Literal { value: serde_json::json!(1) };
    crate::ops::check_ports(&[], &[call("f", vec![lit.clone()])], &out).unwrap();
    let two = vec![CallArg::Port { port: 0 }, lit, CallArg::Port { port: 1 }, CallArg::Port { port: 1 }];
    crate::ops::check_ports(&[input(0), input(1)], &[call("f", two.clone())], &out).unwrap();
    let err = crate::ops::check_ports(&[input(0)], &[call("f", two)], &out).unwrap_err();
    assert!(err.to_string().contains("feed ports [0] but its calls read [0, 1]"), "{err}");
    let err = crate::ops::check_ports(&[input(3)], &[call("f", vec![])], &out).unwrap_err();
    assert!(err.to_string().contains("feed ports [3] but its calls read []"), "{err}");
}
