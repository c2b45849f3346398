//! Human units for the grid, the plot and the status bar.

/// KiB → "512 KiB", "3.4 MiB", "1.20 GiB".
pub fn kib(kb: u64) -> String {
    bytes(kb.saturating_mul(1024) as f64)
}

/// Signed bytes → "-3.4 MiB".
pub fn signed_bytes(b: i64) -> String {
    if b < 0 {
        format!("-{}", bytes(b.unsigned_abs() as f64))
    } else {
        bytes(b as f64)
    }
}

pub fn bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{v:.0} {}", UNITS[0]),
        1 => format!("{v:.0} {}", UNITS[1]),
        2 => format!("{v:.1} {}", UNITS[2]),
        _ => format!("{v:.2} {}", UNITS[unit]),
    }
}

/// Bytes per minute → "+2.0 MiB/min", "-512 KiB/min", "0 B/min".
pub fn rate(bytes_per_min: f64) -> String {
    let sign = if bytes_per_min > 0.5 {
        "+"
    } else if bytes_per_min < -0.5 {
        "-"
    } else {
        ""
    };
    format!("{sign}{}/min", bytes(bytes_per_min.abs().round()))
}

/// Unix milliseconds → local "HH:MM:SS".
pub fn clock(unix_ms: u64) -> String {
    local(unix_ms).format("%H:%M:%S").to_string()
}

/// Unix milliseconds → local date and time.
pub fn local(unix_ms: u64) -> chrono::DateTime<chrono::Local> {
    let utc = chrono::DateTime::from_timestamp_millis(unix_ms as i64).unwrap_or_default();
    utc.with_timezone(&chrono::Local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(kib(0), "0 B");
        assert_eq!(kib(512), "512 KiB");
        assert_eq!(kib(3 * 1024 + 400), "3.4 MiB");
        assert_eq!(kib(5 * 1024 * 1024 / 4), "1.25 GiB");
        assert_eq!(signed_bytes(-1536 * 1024), "-1.5 MiB");
        assert_eq!(clock(3_723_000).len(), "01:02:03".len());
        assert_eq!(rate(2.0 * 1048576.0), "+2.0 MiB/min");
        assert_eq!(rate(-512.0 * 1024.0), "-512 KiB/min");
        assert_eq!(rate(0.1), "0 B/min");
    }
}
