//! Human units for the grid, the plot and the status bar.

// The byte and rate units are the column table's, so the grid and the rest of the app agree.
pub use memmon_common::column::{bytes, kib, rate_per_min as rate};

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
        assert_eq!(clock(3_723_000).len(), "01:02:03".len());
        assert_eq!(rate(2.0 * 1048576.0), "+2.0 MiB/min");
        assert_eq!(rate(-512.0 * 1024.0), "-512 KiB/min");
        assert_eq!(rate(0.1), "0 B/min");
    }
}
