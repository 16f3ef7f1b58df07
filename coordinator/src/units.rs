//! Quantities as people read and write them.

use crate::error::{Error, Result};

/// `1.5 MB`: bytes in decimal units, one decimal.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// `"100MB"`, `"1.5 GB"`, `"64MiB"`, `"4096"` → bytes.
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| Error::Invalid(format!("size '{text}': expected a number and a unit like 100MB")))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(Error::Invalid(format!(
                "size '{text}': unknown unit '{other}' (B, KB, MB, GB, KiB, MiB, GiB)"
            )));
        }
    };
    Ok((n * mult) as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(super::human_bytes(999), "999 B");
        assert_eq!(super::human_bytes(1_500_000), "1.5 MB");
    }

    #[test]
    fn sizes_parse_with_units() {
        use super::parse_size;
        assert_eq!(parse_size("100MB").unwrap(), 100_000_000);
        assert_eq!(parse_size("1.5 GB").unwrap(), 1_500_000_000);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").unwrap_err().to_string().contains("lots"));
        assert!(parse_size("3 parsecs").unwrap_err().to_string().contains("parsecs"));
    }
}
