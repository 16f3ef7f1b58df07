//! This process's memory as Linux reports it in `/proc/self/status`, for the benches that
//! measure peak memory (included by `#[path]`: each bench is its own crate).

/// A field of `/proc/self/status` (`VmRSS:`, `VmHWM:`), in bytes; 0 where it cannot be read.
pub fn status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
