//! The process columns: one typed value per column that knows its title, tooltip, unit, names
//! (CSV, command line), alignment, whether it needs Full mode, and how to read it from a
//! [`ProcessRow`]. The app's grid, the CLI table, CSV export and the sort-key parser all read
//! this table; adding a column is one variant, one entry in [`Column::ALL`] and one arm of
//! [`Column::spec`].
//!
//! This module never decides layout or I/O: it formats one cell at a time.

use crate::snapshot::{ProcessRow, SortKey};

mod cli_table;
mod format;
mod lookup;

pub use format::{bytes, kib, rate_per_min, signed_bytes};
pub use lookup::CSV_COLUMNS;
pub(crate) use lookup::{BY_SORT_KEY, SORT_KEYS, SORT_NAMES, SORTABLE};

/// A column of the process table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Column {
    Pid,
    StartTime,
    Name,
    Rss,
    Virt,
    Peak,
    Anon,
    File,
    Shmem,
    Swap,
    Mmap,
    Munmap,
    Brk,
    Allocated,
    Freed,
    Net,
    PeakNet,
    /// The RSS growth rate the grid shows and sorts by ([`crate::diagnostics::Growth::headline`]).
    Growth,
    Growth1m,
    Growth5m,
    Growth15m,
    NetGrowth5m,
    Sustained,
}

/// What a column's number means, so each output can pick its own way to show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// An identifier or a clock-tick count shown as it is (PID, start time).
    Id,
    Text,
    /// A number of calls.
    Count,
    KiB,
    Bytes,
    BytesPerMin,
    Flag,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// One cell's value, in the column's [`Unit`]; absent cells are `None`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Int(i128),
    Rate(f64),
    Text(&'a str),
    Flag(bool),
}

impl Value<'_> {
    /// The number a column sorts by (text sorts by itself, not by this).
    pub fn sort_number(self) -> Option<i128> {
        match self {
            Value::Int(n) => Some(n),
            // Bytes per minute, whole: finer differences are noise.
            Value::Rate(r) => Some(r.round() as i128),
            Value::Flag(b) => Some(i128::from(b)),
            Value::Text(_) => None,
        }
    }
}

/// Everything memmon knows about one column.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// The grid's header, and the column's name in prose.
    pub title: &'static str,
    pub tooltip: &'static str,
    pub unit: Unit,
    /// The CSV column (and flat export field) name; `None`: not exported.
    pub csv: Option<&'static str>,
    /// The sort key and its name on the command line and over D-Bus; `None`: not sortable.
    pub sort: Option<(SortKey, &'static str)>,
    pub align: Align,
    /// Only eBPF allocation tracking (Full mode) fills it.
    pub full_mode_only: bool,
    /// Shown in the app's grid and the CLI table (needs a command-line name); otherwise the
    /// column is only exported or sorted by.
    pub listed: bool,
    /// The column's datum of a row.
    pub value: fn(&ProcessRow) -> Option<Value<'_>>,
}

/// The defaults most columns share: a right-aligned, unlisted /proc number.
const fn number(title: &'static str, tooltip: &'static str, unit: Unit) -> Spec {
    Spec {
        title,
        tooltip,
        unit,
        csv: None,
        sort: None,
        align: Align::Right,
        full_mode_only: false,
        listed: false,
        value: |_| None,
    }
}

fn kb(v: Option<u64>) -> Option<Value<'static>> {
    v.map(|v| Value::Int(i128::from(v)))
}

fn rate(v: Option<f64>) -> Option<Value<'static>> {
    v.map(Value::Rate)
}

fn alloc(row: &ProcessRow, f: fn(&crate::snapshot::AllocStats) -> i128) -> Option<Value<'_>> {
    row.alloc.as_ref().map(|a| Value::Int(f(a)))
}

impl Column {
    /// Every column, in the order every output lists them. Kept in declaration order (checked
    /// at compile time below).
    pub const ALL: [Column; 23] = [
        Column::Pid,
        Column::StartTime,
        Column::Name,
        Column::Rss,
        Column::Virt,
        Column::Peak,
        Column::Anon,
        Column::File,
        Column::Shmem,
        Column::Swap,
        Column::Mmap,
        Column::Munmap,
        Column::Brk,
        Column::Allocated,
        Column::Freed,
        Column::Net,
        Column::PeakNet,
        Column::Growth,
        Column::Growth1m,
        Column::Growth5m,
        Column::Growth15m,
        Column::NetGrowth5m,
        Column::Sustained,
    ];

    /// The column table.
    pub const fn spec(self) -> Spec {
        use Unit::*;
        match self {
            Column::Pid => Spec {
                csv: Some("pid"),
                sort: Some((SortKey::Pid, "pid")),
                listed: true,
                value: |r| Some(Value::Int(i128::from(r.pid))),
                ..number("PID", "Process ID (thread-group id)", Id)
            },
            Column::StartTime => Spec {
                csv: Some("start_time"),
                value: |r| Some(Value::Int(i128::from(r.start_time))),
                ..number(
                    "Start time",
                    "Start time in clock ticks after boot: with the PID it identifies the process",
                    Id,
                )
            },
            Column::Name => Spec {
                csv: Some("name"),
                sort: Some((SortKey::Name, "name")),
                align: Align::Left,
                listed: true,
                value: |r| Some(Value::Text(&r.name)),
                ..number("Name", "Process name (comm)", Text)
            },
            Column::Rss => Spec {
                csv: Some("rss_kb"),
                sort: Some((SortKey::Rss, "rss")),
                listed: true,
                value: |r| kb(r.rss_kb),
                ..number("RSS", "Resident set size: memory in RAM now (VmRSS)", KiB)
            },
            Column::Virt => Spec {
                csv: Some("virtual_kb"),
                sort: Some((SortKey::Virt, "virt")),
                listed: true,
                value: |r| kb(r.virtual_kb),
                ..number("Virtual", "Virtual address space size (VmSize)", KiB)
            },
            Column::Peak => Spec {
                csv: Some("peak_rss_kb"),
                sort: Some((SortKey::Peak, "peak")),
                listed: true,
                value: |r| kb(r.peak_rss_kb),
                ..number(
                    "Peak RSS",
                    "The highest RSS this process reached (VmHWM)",
                    KiB,
                )
            },
            Column::Anon => Spec {
                csv: Some("rss_anon_kb"),
                sort: Some((SortKey::Anon, "anon")),
                value: |r| kb(r.rss_anon_kb),
                ..number("Anonymous RSS", "Resident anonymous memory (RssAnon)", KiB)
            },
            Column::File => Spec {
                csv: Some("rss_file_kb"),
                sort: Some((SortKey::File, "file")),
                value: |r| kb(r.rss_file_kb),
                ..number("File RSS", "Resident file mappings (RssFile)", KiB)
            },
            Column::Shmem => Spec {
                csv: Some("rss_shmem_kb"),
                sort: Some((SortKey::Shmem, "shmem")),
                value: |r| kb(r.rss_shmem_kb),
                ..number("Shared RSS", "Resident shared memory (RssShmem)", KiB)
            },
            Column::Swap => Spec {
                csv: Some("swap_kb"),
                sort: Some((SortKey::Swap, "swap")),
                listed: true,
                value: |r| kb(r.swap_kb),
                ..number("Swap", "Memory swapped out (VmSwap)", KiB)
            },
            Column::Mmap => Spec {
                csv: Some("mmap_count"),
                sort: Some((SortKey::Mmap, "mmap")),
                listed: true,
                full_mode_only: true,
                value: |r| alloc(r, |a| i128::from(a.mmap_count)),
                ..number("Mmap#", "Successful mmap calls since tracking began", Count)
            },
            Column::Munmap => Spec {
                csv: Some("munmap_count"),
                sort: Some((SortKey::Munmap, "munmap")),
                listed: true,
                full_mode_only: true,
                value: |r| alloc(r, |a| i128::from(a.munmap_count)),
                ..number(
                    "Munmap#",
                    "Successful munmap calls since tracking began",
                    Count,
                )
            },
            Column::Brk => Spec {
                csv: Some("brk_count"),
                sort: Some((SortKey::Brk, "brk")),
                listed: true,
                full_mode_only: true,
                value: |r| alloc(r, |a| i128::from(a.brk_count)),
                ..number("Brk", "brk calls that moved the program break", Count)
            },
            Column::Allocated => Spec {
                csv: Some("total_allocated_bytes"),
                sort: Some((SortKey::Allocated, "allocated")),
                full_mode_only: true,
                value: |r| alloc(r, |a| i128::from(a.total_allocated)),
                ..number(
                    "Allocated",
                    "Bytes mapped (mmap, page-rounded) plus brk growth since tracking began",
                    Bytes,
                )
            },
            Column::Freed => Spec {
                csv: Some("total_freed_bytes"),
                sort: Some((SortKey::Freed, "freed")),
                full_mode_only: true,
                value: |r| alloc(r, |a| i128::from(a.total_freed)),
                ..number(
                    "Freed",
                    "Bytes unmapped (munmap, page-rounded) plus brk shrink since tracking began",
                    Bytes,
                )
            },
            Column::Net => Spec {
                csv: Some("net_mapped_bytes"),
                sort: Some((SortKey::Net, "net")),
                listed: true,
                full_mode_only: true,
                value: |r| alloc(r, |a| i128::from(a.net_mapped)),
                ..number(
                    "Net mapped",
                    "Net mapped: bytes mapped minus unmapped (mmap/munmap/brk) since tracking \
                     began — not RSS",
                    Bytes,
                )
            },
            Column::PeakNet => Spec {
                csv: Some("peak_net_mapped_bytes"),
                sort: Some((SortKey::PeakNet, "peak-net")),
                full_mode_only: true,
                value: |r| alloc(r, |a| i128::from(a.peak_net_mapped)),
                ..number("Peak net mapped", "The highest net mapped reached", Bytes)
            },
            Column::Growth => Spec {
                sort: Some((SortKey::Growth, "growth")),
                listed: true,
                value: |r| rate(r.growth.and_then(|g| g.shown())),
                ..number(
                    "Growth",
                    "RSS growth per minute (Theil–Sen over 5 min, 1 min while less is known), \
                     ranked across all processes; red: grown without falling back for 2 minutes \
                     or more",
                    BytesPerMin,
                )
            },
            Column::Growth1m => Spec {
                csv: Some("rss_growth_1m_bytes_per_min"),
                value: |r| rate(r.growth.and_then(|g| g.rss_1m)),
                ..number(
                    "Growth 1 min",
                    "RSS growth per minute over 1 minute",
                    BytesPerMin,
                )
            },
            Column::Growth5m => Spec {
                csv: Some("rss_growth_5m_bytes_per_min"),
                value: |r| rate(r.growth.and_then(|g| g.rss_5m)),
                ..number(
                    "Growth 5 min",
                    "RSS growth per minute over 5 minutes",
                    BytesPerMin,
                )
            },
            Column::Growth15m => Spec {
                csv: Some("rss_growth_15m_bytes_per_min"),
                value: |r| rate(r.growth.and_then(|g| g.rss_15m)),
                ..number(
                    "Growth 15 min",
                    "RSS growth per minute over 15 minutes",
                    BytesPerMin,
                )
            },
            Column::NetGrowth5m => Spec {
                csv: Some("net_growth_5m_bytes_per_min"),
                full_mode_only: true,
                value: |r| rate(r.growth.and_then(|g| g.net_5m)),
                ..number(
                    "Net growth 5 min",
                    "Net mapped growth per minute over 5 minutes",
                    BytesPerMin,
                )
            },
            Column::Sustained => Spec {
                csv: Some("sustained_growth"),
                value: |r| r.growth.map(|g| Value::Flag(g.sustained)),
                ..number(
                    "Sustained growth",
                    "RSS grown without falling back for 2 minutes or more",
                    Flag,
                )
            },
        }
    }

    pub const fn title(self) -> &'static str {
        self.spec().title
    }

    pub const fn tooltip(self) -> &'static str {
        self.spec().tooltip
    }

    pub const fn unit(self) -> Unit {
        self.spec().unit
    }

    pub const fn align(self) -> Align {
        self.spec().align
    }

    pub const fn csv_name(self) -> Option<&'static str> {
        self.spec().csv
    }

    /// The name on the command line (`--sort`) and over D-Bus.
    pub const fn cli_name(self) -> Option<&'static str> {
        match self.spec().sort {
            Some((_, name)) => Some(name),
            None => None,
        }
    }

    pub const fn sort_key(self) -> Option<SortKey> {
        match self.spec().sort {
            Some((key, _)) => Some(key),
            None => None,
        }
    }

    pub const fn full_mode_only(self) -> bool {
        self.spec().full_mode_only
    }

    /// Listed in the grid and the CLI table.
    pub const fn listed(self) -> bool {
        self.spec().listed
    }

    /// The columns of the grid and the CLI table, in order.
    pub fn listed_columns() -> impl Iterator<Item = Column> {
        Column::ALL.into_iter().filter(|c| c.listed())
    }

    pub fn value(self, row: &ProcessRow) -> Option<Value<'_>> {
        (self.spec().value)(row)
    }

    /// The number this column sorts by; `None` (absent, or text) sorts below every number.
    pub fn sort_number(self, row: &ProcessRow) -> Option<i128> {
        self.value(row)?.sort_number()
    }

    /// The cell as the app shows it, in human units; "—" when absent.
    pub fn display(self, row: &ProcessRow) -> String {
        let Some(value) = self.value(row) else {
            return "—".to_owned();
        };
        match (value, self.unit()) {
            (Value::Int(n), Unit::KiB) => kib(u64::try_from(n).unwrap_or(0)),
            (Value::Int(n), Unit::Bytes) => signed_bytes(n as f64),
            (Value::Int(n), _) => n.to_string(),
            // Zero, or within the noise (Growth::shown): no trend to speak of.
            (Value::Rate(0.0), _) => "≈ 0".to_owned(),
            (Value::Rate(r), _) => rate_per_min(r),
            (Value::Text(t), _) => t.to_owned(),
            (Value::Flag(b), _) => if b { "yes" } else { "no" }.to_owned(),
        }
    }
}

// `ALL` lists every variant once, in declaration order.
const _: () = {
    let mut i = 0;
    while i < Column::ALL.len() {
        assert!(Column::ALL[i] as usize == i, "Column::ALL out of order");
        i += 1;
    }
};

#[cfg(test)]
mod tests;
