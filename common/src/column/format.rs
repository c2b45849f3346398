//! Sizes and rates in human units ("3.4 MiB", "+2.0 MiB/min"), as the app shows them.

/// KiB → "512 KiB", "3.4 MiB", "1.20 GiB".
pub fn kib(kb: u64) -> String {
    bytes(kb.saturating_mul(1024) as f64)
}

/// Signed bytes → "-3.4 MiB".
pub fn signed_bytes(b: f64) -> String {
    if b < 0.0 {
        format!("-{}", bytes(-b))
    } else {
        bytes(b)
    }
}

/// Bytes → "0 B", "512 KiB", "3.4 MiB", "1.20 GiB".
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
pub fn rate_per_min(bytes_per_min: f64) -> String {
    let sign = if bytes_per_min > 0.5 {
        "+"
    } else if bytes_per_min < -0.5 {
        "-"
    } else {
        ""
    };
    format!("{sign}{}/min", bytes(bytes_per_min.abs().round()))
}
