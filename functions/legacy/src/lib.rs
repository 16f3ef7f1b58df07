//! A component built against the old interface `shoal:function/functions@0.1.0`
//! (`functions/wit-0.1/shoal.wit`: table functions only, no kinds), as components built before
//! kinds existed are. The sandbox must keep loading and running such components; this one is
//! what its tests load (`builtin:legacy`).
//!
//! It uses wit-bindgen directly (the SDK speaks 0.2.0) and no Arrow: the functions pass the
//! Arrow IPC bytes through untouched.
//!
//! - `echo` — returns its first input (an Arrow IPC stream) unchanged.
//! - `fail` — returns an error: `{message?}` (the argument text is not parsed, only quoted).

#[allow(unsafe_code, missing_debug_implementations, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../wit-0.1",
        world: "shoal-function",
    });
}

use bindings::exports::shoal::function::functions::{FunctionInfo, Guest};

struct Legacy;

impl Guest for Legacy {
    fn list_functions() -> Vec<FunctionInfo> {
        vec![
            FunctionInfo { name: "echo".into(), description: "returns its first input unchanged".into() },
            FunctionInfo { name: "fail".into(), description: "returns an error naming its arguments".into() },
        ]
    }

    fn call(name: String, inputs: Vec<Vec<u8>>, args: String) -> Result<Vec<u8>, String> {
        match name.as_str() {
            "echo" => inputs.into_iter().next().ok_or_else(|| "echo needs one input".to_string()),
            "fail" => Err(format!("legacy failure, args {args}")),
            other => Err(format!("unknown function '{other}'; available: echo, fail")),
        }
    }
}

// The generated export glue is `unsafe` (the canonical ABI's entry points).
#[allow(unsafe_code)]
const _: () = {
    bindings::export!(Legacy with_types_in bindings);
};
