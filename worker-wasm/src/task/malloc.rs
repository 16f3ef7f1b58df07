//! The process's allocator, set once for the tasks it runs.
//!
//! A task allocates and frees many buffers of 100 KB to a few MB (a decoded Parquet page, a
//! column of 8,192 `i128`s, a filtered copy). glibc's defaults serve such a buffer with its own
//! `mmap` until a freed one raises the threshold, and give the top of an arena back to the
//! kernel as soon as 128 KB of it are free; either way the next buffer is fresh pages that the
//! kernel faults in and zeroes. Fixing both thresholds (mapped only above 32 MiB, glibc's own
//! ceiling for its adaptive threshold; an arena trimmed only above 64 MiB free) keeps those
//! pages in the arenas: TPC-H q1 at SF1 went 0.50 s → 0.36 s (`bench/results/tpch-notes.md`).
//! The price is up to 64 MiB per arena that the process keeps after a burst of frees.
//!
//! Only on glibc, and only when the user has not set these thresholds themselves
//! (`GLIBC_TUNABLES` naming `malloc`, or `MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_`).

/// Allocations above this are mapped on their own.
pub const MMAP_THRESHOLD: usize = 32 << 20;
/// An arena's free top above this is given back to the kernel.
pub const TRIM_THRESHOLD: usize = 64 << 20;

/// Sets the thresholds once per process; later calls do nothing.
pub fn tune() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if user_set(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())) {
            return;
        }
        set_thresholds();
    });
}

/// Whether the environment (read through `var`) already sets malloc's thresholds.
fn user_set(var: impl Fn(&str) -> Option<String>) -> bool {
    var("GLIBC_TUNABLES").is_some_and(|t| t.contains("malloc"))
        || var("MALLOC_MMAP_THRESHOLD_").is_some()
        || var("MALLOC_TRIM_THRESHOLD_").is_some()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_thresholds() {
    let set = |param: libc::c_int, value: usize| {
        let value = libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
        // SAFETY: `mallopt` only changes the allocator's parameters (it takes its own lock); the
        // two it is given here are documented as safe to change at any time.
        #[allow(unsafe_code)]
        let ok = unsafe { libc::mallopt(param, value) };
        if ok != 1 {
            tracing::debug!(param, value, "mallopt refused a parameter");
        }
    };
    set(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    set(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_thresholds() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_own_thresholds_are_kept() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        assert!(!user_set(env(&[])));
        assert!(!user_set(env(&[("GLIBC_TUNABLES", "glibc.pthread.rseq=0")])));
        assert!(user_set(env(&[("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0")])));
        assert!(user_set(env(&[("MALLOC_MMAP_THRESHOLD_", "131072")])));
        assert!(user_set(env(&[("MALLOC_TRIM_THRESHOLD_", "0")])));
    }
}
