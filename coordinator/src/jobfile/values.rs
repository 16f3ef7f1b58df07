//! Delayed values in a job file: `[values.NAME]`, each one call of a `value` function.
//!
//! ```toml
//! [values.n]
//! call = { module = "builtin:examples", function = "total_len", inputs = ["trips"] }
//!
//! [values.total]
//! call = { module = "builtin:examples", function = "add_values", args = [1, 2.5], inputs = ["n"] }
//! ```
//!
//! The call's positional arguments are `args` (JSON literals written in TOML), then `inputs` in
//! order: each names another value (its result) or a dataset (its rows, as a list of JSON
//! objects). `kwargs` (a table) are the function's keyword arguments. `shoal run` computes
//! every value in one graph (shared calls run once) and prints each; an `[[outputs]]` entry
//! with `value = "NAME"` and `to_json = "PATH"` also writes it to `PATH` as one JSON document.

use crate::client::{Client, FunctionModule};
use crate::collections::dataframe::DataFrame;
use crate::collections::delayed::{Arg, Delayed};
use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// One `[values.NAME]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueSpec {
    pub call: CallSpec,
}

/// `call = { module, function, args, inputs, kwargs }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallSpec {
    pub module: String,
    pub function: String,
    /// Literal positional arguments, first.
    #[serde(default)]
    pub args: Vec<serde_json::Value>,
    /// Values or datasets, as positional arguments after `args`.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Keyword arguments (a table).
    #[serde(default)]
    pub kwargs: Option<serde_json::Value>,
}

/// What building values may use: the client, the job file's directory, the modules loaded
/// so far, and the datasets the values read (built already).
#[derive(Debug)]
pub struct ValueEnv<'a> {
    pub client: &'a Client,
    pub base_dir: &'a Path,
    pub modules: &'a mut HashMap<String, FunctionModule>,
    pub datasets: &'a HashMap<String, DataFrame>,
}

/// Builds every value of `specs` as a [`Delayed`], each after the values it reads.
pub async fn build(
    specs: &BTreeMap<String, ValueSpec>,
    env: ValueEnv<'_>,
) -> Result<BTreeMap<String, Delayed>> {
    for (name, spec) in specs {
        super::env::load_module(env.client, env.base_dir, env.modules, &spec.call.module)
            .await
            .map_err(|e| Error::Value { name: name.to_string(), source: Box::new(e) })?;
    }
    let mut built = BTreeMap::new();
    for name in specs.keys() {
        build_one(name, specs, &env, &mut built, &mut Vec::new())?;
    }
    Ok(built)
}

/// Builds `name` after its inputs; `visiting` is the chain waiting for it, to report a cycle.
fn build_one(
    name: &str,
    specs: &BTreeMap<String, ValueSpec>,
    env: &ValueEnv<'_>,
    built: &mut BTreeMap<String, Delayed>,
    visiting: &mut Vec<String>,
) -> Result<()> {
    if built.contains_key(name) {
        return Ok(());
    }
    if visiting.iter().any(|v| v == name) {
        visiting.push(name.to_string());
        return Err(Error::Invalid(format!("values form a cycle: {}", visiting.join(" -> "))));
    }
    let spec = &specs[name];
    visiting.push(name.to_string());
    for input in &spec.call.inputs {
        if specs.contains_key(input) {
            build_one(input, specs, env, built, visiting)?;
        }
    }
    visiting.pop();
    let value =
        call(spec, env, built).map_err(|e| Error::Value { name: name.to_string(), source: Box::new(e) })?;
    built.insert(name.to_string(), value);
    Ok(())
}

/// The call of one value whose inputs are built.
fn call(spec: &ValueSpec, env: &ValueEnv<'_>, built: &BTreeMap<String, Delayed>) -> Result<Delayed> {
    let call = &spec.call;
    let module = env
        .modules
        .get(&call.module)
        .ok_or_else(|| Error::Invalid(format!("module '{}' was not loaded", call.module)))?;
    let mut function = env.client.delayed(module, &call.function)?;
    if let Some(kwargs) = &call.kwargs {
        function = function.with_kwargs(kwargs.clone());
    }
    let mut args: Vec<Arg> = call.args.iter().cloned().map(Arg::from).collect();
    for input in &call.inputs {
        let arg = match (built.get(input), env.datasets.get(input)) {
            (Some(value), _) => Arg::from(value),
            (None, Some(df)) => Arg::from(df),
            (None, None) => {
                return Err(Error::Invalid(format!(
                    "input '{input}' is neither a value nor a dataset of this job"
                )));
            }
        };
        args.push(arg);
    }
    Ok(function.call(args))
}

/// The inputs of `specs` that are not values: the datasets they read.
pub fn datasets_read(specs: &BTreeMap<String, ValueSpec>) -> Vec<&str> {
    let mut out: Vec<&str> = specs
        .values()
        .flat_map(|s| s.call.inputs.iter())
        .filter(|i| !specs.contains_key(*i))
        .map(String::as_str)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_calls_parse() {
        let specs: BTreeMap<String, ValueSpec> = toml::from_str(
            "[a]\ncall = { module = 'builtin:examples', function = 'add_values', args = [1, 2.5, 'x', [1]] }\n\
             [b]\ncall = { module = 'builtin:examples', function = 'mul', inputs = ['a', 'trips'], kwargs = { k = 1 } }\n",
        )
        .unwrap();
        assert_eq!(
            specs["a"].call.args,
            [serde_json::json!(1), serde_json::json!(2.5), "x".into(), serde_json::json!([1])]
        );
        assert_eq!(specs["b"].call.kwargs, Some(serde_json::json!({ "k": 1 })));
        assert_eq!(datasets_read(&specs), ["trips"]);
        let err =
            toml::from_str::<BTreeMap<String, ValueSpec>>("[a]\ncall = { module = 'm', functon = 'f' }")
                .unwrap_err()
                .to_string();
        assert!(err.contains("functon"), "{err}");
    }
}
