//! CSV export of the grid and of process histories (RFC 4180: comma-separated, CRLF-free, fields
//! quoted when they hold a comma, quote or line break). Empty cells mean "not known".
//!
//! Text cells (process names) are untrusted: one that a spreadsheet would evaluate as a formula
//! (first character `=`, `+`, `-`, `@`, tab or carriage return, or their full-width forms) gets a
//! leading `'`, as OWASP recommends, so `=1+1` is exported as `'=1+1`. Number cells are never
//! changed: a negative growth rate stays a number.

use std::fmt::Write as _;

use crate::{
    column::{CSV_COLUMNS, Value},
    series::HistorySeries,
    snapshot::ProcessRow,
};

/// The grid's CSV columns, in order: the names of [`CSV_COLUMNS`].
pub const GRID_COLUMNS: [&str; CSV_COLUMNS.len()] = {
    let mut names = [""; CSV_COLUMNS.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = match CSV_COLUMNS[i].csv_name() {
            Some(name) => name,
            None => "",
        };
        i += 1;
    }
    names
};

/// The series' columns, in order: one line per sample, all processes after each other.
pub const SERIES_COLUMNS: [&str; 8] = [
    "pid",
    "start_time",
    "name",
    "unix_ms",
    "time_utc",
    "rss_kb",
    "peak_rss_kb",
    "net_mapped_bytes",
];

/// The rows as CSV, header first.
pub fn grid_csv(rows: &[ProcessRow]) -> String {
    let mut out = String::with_capacity(64 + rows.len() * 120);
    header(&mut out, &GRID_COLUMNS);
    let mut cells: Vec<String> = Vec::with_capacity(CSV_COLUMNS.len());
    for r in rows {
        cells.clear();
        cells.extend(CSV_COLUMNS.iter().map(|c| cell(c.value(r))));
        csv_line(&mut out, &cells);
    }
    out
}

/// One grid cell: numbers as they are, text neutralised; empty when absent.
fn cell(value: Option<Value<'_>>) -> String {
    match value {
        None => String::new(),
        Some(Value::Int(n)) => n.to_string(),
        // A tenth of a byte per minute: enough to round-trip what the grid shows.
        Some(Value::Rate(r)) => format!("{r:.1}"),
        Some(Value::Text(t)) => text(t),
        Some(Value::Flag(b)) => b.to_string(),
    }
}

/// The samples of each series as CSV, header first.
pub fn series_csv(series: &[HistorySeries]) -> String {
    let mut out = String::new();
    header(&mut out, &SERIES_COLUMNS);
    for s in series {
        for sample in &s.samples {
            let cells: [String; 8] = [
                s.pid.to_string(),
                s.start_time.to_string(),
                text(&s.name),
                sample.unix_ms.to_string(),
                iso_utc(sample.unix_ms),
                sample.rss_kb.to_string(),
                sample.peak_rss_kb.to_string(),
                opt(sample.net_mapped),
            ];
            csv_line(&mut out, &cells);
        }
    }
    out
}

fn header(out: &mut String, columns: &[&str]) {
    out.push_str(&columns.join(","));
    out.push('\n');
}

/// One CSV line of `cells` (quoted where needed), with its newline.
pub fn csv_line(out: &mut String, cells: &[String]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if cell.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&cell.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(cell);
        }
    }
    out.push('\n');
}

/// A text cell: neutralised when a spreadsheet would run it as a formula (see the module docs).
pub fn text(cell: &str) -> String {
    const FORMULA_START: [char; 10] = ['=', '+', '-', '@', '\t', '\r', '＝', '＋', '－', '＠'];
    if cell.starts_with(FORMULA_START) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for milliseconds since the Unix epoch.
pub fn iso_utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut s = String::with_capacity(24);
    let _ = write!(
        s,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        diagnostics::Growth,
        series::HistorySample,
        snapshot::{AllocStats, ProcessRow},
    };

    fn parse(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
        let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
        let header = reader
            .headers()
            .expect("header")
            .iter()
            .map(str::to_owned)
            .collect();
        let rows = reader
            .records()
            .map(|r| r.expect("record").iter().map(str::to_owned).collect())
            .collect();
        (header, rows)
    }

    #[test]
    fn grid_csv_round_trips_every_number_and_awkward_names() {
        let rows = vec![
            ProcessRow {
                pid: 42,
                start_time: 9_000_000_000,
                name: "Web Content, \"tab\" 1".into(),
                ppid: None,
                uid: None,
                app: None,
                rss_kb: Some(123_456),
                virtual_kb: Some(9_999_999),
                peak_rss_kb: Some(200_000),
                rss_anon_kb: Some(100_000),
                rss_file_kb: Some(23_000),
                rss_shmem_kb: Some(456),
                swap_kb: Some(0),
                alloc: Some(AllocStats {
                    mmap_count: 7,
                    munmap_count: 3,
                    brk_count: 2,
                    total_allocated: 1 << 40,
                    total_freed: 4096,
                    net_mapped: -8192,
                    peak_net_mapped: 1 << 33,
                    ..Default::default()
                }),
                growth: Some(Growth {
                    rss_1m: Some(2_097_152.0),
                    rss_5m: Some(-1234.5),
                    rss_15m: None,
                    net_5m: Some(0.0),
                    sustained: true,
                    rss_noise: false,
                }),
                spike: None,
                high_res: None,
            },
            ProcessRow {
                pid: 2,
                name: "kthreadd".into(),
                ..Default::default()
            },
        ];
        let (header, back) = parse(&grid_csv(&rows));
        assert_eq!(header, GRID_COLUMNS);
        assert_eq!(back.len(), 2);
        let col = |r: &Vec<String>, name: &str| {
            r[GRID_COLUMNS
                .iter()
                .position(|c| *c == name)
                .expect("column")]
            .clone()
        };
        let first = &back[0];
        assert_eq!(col(first, "name"), "Web Content, \"tab\" 1");
        for (name, want) in [
            ("pid", 42_i128),
            ("start_time", 9_000_000_000),
            ("rss_kb", 123_456),
            ("virtual_kb", 9_999_999),
            ("peak_rss_kb", 200_000),
            ("rss_anon_kb", 100_000),
            ("rss_file_kb", 23_000),
            ("rss_shmem_kb", 456),
            ("swap_kb", 0),
            ("mmap_count", 7),
            ("munmap_count", 3),
            ("brk_count", 2),
            ("total_allocated_bytes", 1 << 40),
            ("total_freed_bytes", 4096),
            ("net_mapped_bytes", -8192),
            ("peak_net_mapped_bytes", 1 << 33),
        ] {
            assert_eq!(col(first, name).parse::<i128>(), Ok(want), "{name}");
        }
        let rate = |name| col(first, name).parse::<f64>().expect(name);
        assert_eq!(rate("rss_growth_1m_bytes_per_min"), 2_097_152.0);
        assert_eq!(rate("rss_growth_5m_bytes_per_min"), -1234.5);
        assert_eq!(rate("net_growth_5m_bytes_per_min"), 0.0);
        assert_eq!(col(first, "rss_growth_15m_bytes_per_min"), "");
        assert_eq!(col(first, "sustained_growth"), "true");
        // Unknown values stay empty rather than becoming 0.
        assert_eq!(col(&back[1], "rss_kb"), "");
        assert_eq!(col(&back[1], "mmap_count"), "");
    }

    #[test]
    fn series_csv_round_trips_samples() {
        let series = vec![HistorySeries {
            pid: 7,
            start_time: 55,
            name: "leaker".into(),
            samples: vec![
                HistorySample {
                    unix_ms: 1_764_118_800_123,
                    rss_kb: 100,
                    peak_rss_kb: 100,
                    net_mapped: Some(4096),
                },
                HistorySample {
                    unix_ms: 1_764_118_801_123,
                    rss_kb: 2148,
                    peak_rss_kb: 9000,
                    net_mapped: None,
                },
            ],
            ..Default::default()
        }];
        let (header, back) = parse(&series_csv(&series));
        assert_eq!(header, SERIES_COLUMNS);
        assert_eq!(back.len(), 2);
        for (row, sample) in back.iter().zip(&series[0].samples) {
            assert_eq!(row[0], "7");
            assert_eq!(row[1], "55");
            assert_eq!(row[2], "leaker");
            assert_eq!(row[3].parse::<u64>(), Ok(sample.unix_ms));
            assert_eq!(row[5].parse::<u64>(), Ok(sample.rss_kb));
            assert_eq!(row[6].parse::<u64>(), Ok(sample.peak_rss_kb));
            assert_eq!(row[7].parse::<i64>().ok(), sample.net_mapped);
        }
        assert_eq!(back[0][4], "2025-11-26T01:00:00.123Z");
    }

    #[test]
    fn formula_names_are_neutralised_and_numbers_are_not() {
        let names = [
            "=1+1",
            "+SUM(A1)",
            "-2+3",
            "@cmd",
            "\tx",
            "\r=x",
            "＝1",
            "=HYPERLINK(\"http://x\",\"y\")",
        ];
        let rows: Vec<ProcessRow> = names
            .iter()
            .map(|name| ProcessRow {
                pid: 1,
                name: (*name).into(),
                alloc: Some(AllocStats {
                    net_mapped: -8192,
                    ..Default::default()
                }),
                growth: Some(Growth {
                    rss_5m: Some(-1234.5),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        let (_, back) = parse(&grid_csv(&rows));
        let col = |name: &str| GRID_COLUMNS.iter().position(|c| *c == name).expect(name);
        for (row, name) in back.iter().zip(names) {
            assert_eq!(row[col("name")], format!("'{name}"));
            assert_eq!(row[col("net_mapped_bytes")], "-8192");
            assert_eq!(row[col("rss_growth_5m_bytes_per_min")], "-1234.5");
        }
        let series = vec![HistorySeries {
            name: "-leak".into(),
            samples: vec![HistorySample {
                net_mapped: Some(-4096),
                ..Default::default()
            }],
            ..Default::default()
        }];
        let (_, back) = parse(&series_csv(&series));
        assert_eq!(back[0][2], "'-leak");
        assert_eq!(back[0][7], "-4096");
        // Harmless names, including ones with a formula character later on, are unchanged.
        for name in ["a=1", "kworker/0:1-events", "x+y", "'quoted", " =1", ""] {
            assert_eq!(text(name), name);
        }
    }

    #[test]
    fn iso_utc_matches_known_dates() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso_utc(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }
}
