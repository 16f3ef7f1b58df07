//! The standard and example shoal functions as embedded WebAssembly components.
//!
//! `build.rs` compiles the guest crates `shoal-fn-examples` (`functions/examples`),
//! `shoal-fn-testing` (`functions/testing`) and `shoal-fn-legacy` (`functions/legacy`) for
//! `wasm32-wasip2` and this crate embeds the components. Refer to them by builtin name:
//! `"examples"`, `"testing"` or `"legacy"` ([`builtin`]).

use sha2::{Digest, Sha256};

/// Table functions `scale`, `filter_range`, `normalize_text`, `shift_block` (an Array block);
/// items functions `inc`,
/// `is_even`, `is_error`, `split_words`, `sum_list`, `row_total`; binop functions `add`,
/// `add_field`; value functions `add_values`, `mul`, `total_len` (see `functions/examples`).
pub static EXAMPLES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/shoal_fn_examples.wasm"));

/// Sandbox test guests: `identity`, `chatty`, `trap`, `spin`, `alloc_bomb`, `probe_sandbox`
/// (see `functions/testing`).
pub static TESTING: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/shoal_fn_testing.wasm"));

/// A component of the old interface `shoal:function/functions@0.1.0` (table functions without
/// kinds): `echo`, `fail` (see `functions/legacy`).
pub static LEGACY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/shoal_fn_legacy.wasm"));

/// Names accepted by [`builtin`].
pub const BUILTINS: &[&str] = &["examples", "testing", "legacy"];

/// The component bytes of a builtin function bundle, by name.
pub fn builtin(name: &str) -> Option<&'static [u8]> {
    match name {
        "examples" => Some(EXAMPLES),
        "testing" => Some(TESTING),
        "legacy" => Some(LEGACY),
        _ => None,
    }
}

/// Lower-case hex SHA-256 of `bytes` (the content hash modules are keyed by).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_components() {
        for name in BUILTINS {
            let bytes = builtin(name).unwrap();
            assert_eq!(&bytes[..4], b"\0asm");
            assert_eq!(&bytes[4..8], &[0x0d, 0x00, 0x01, 0x00], "{name} is not a component");
        }
        assert!(builtin("nope").is_none());
        assert_eq!(sha256_hex(b"").len(), 64);
    }
}
