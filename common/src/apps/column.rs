//! The apps table's columns, in one place: title, tooltip, CLI heading, CSV name, sort key and
//! value. The GUI's apps view, the CLI table and CSV export all read this table, so adding a
//! column is one edit here.

use super::{AppRow, AppSortKey};
use crate::column::{Unit, Value};

/// A column of the apps table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AppColumn {
    Name,
    Kind,
    Memory,
    Anon,
    File,
    Swap,
    Kernel,
    Rss,
    Processes,
    Growth,
    Limit,
    Pressure,
    OomKills,
    Unit,
}

struct Spec {
    title: &'static str,
    cli: &'static str,
    csv: &'static str,
    tooltip: &'static str,
    sort: Option<AppSortKey>,
}

const fn spec(
    title: &'static str,
    cli: &'static str,
    csv: &'static str,
    tooltip: &'static str,
    sort: Option<AppSortKey>,
) -> Spec {
    Spec {
        title,
        cli,
        csv,
        tooltip,
        sort,
    }
}

impl AppColumn {
    pub const ALL: [AppColumn; 14] = [
        AppColumn::Name,
        AppColumn::Kind,
        AppColumn::Memory,
        AppColumn::Anon,
        AppColumn::File,
        AppColumn::Swap,
        AppColumn::Kernel,
        AppColumn::Rss,
        AppColumn::Processes,
        AppColumn::Growth,
        AppColumn::Limit,
        AppColumn::Pressure,
        AppColumn::OomKills,
        AppColumn::Unit,
    ];

    const fn spec(self) -> Spec {
        use AppSortKey as K;
        match self {
            AppColumn::Name => spec(
                "App",
                "APP",
                "name",
                "The desktop entry's name, else the unit's app id",
                Some(K::Name),
            ),
            AppColumn::Kind => spec(
                "Kind",
                "KIND",
                "kind",
                "What the app was recognised from: app, Flatpak, snap, session, service, container or process tree",
                None,
            ),
            AppColumn::Memory => spec(
                "Memory",
                "MEM_MiB",
                "memory_kb",
                "The kernel's own count for the app's cgroup (memory.current / usage_in_bytes): anonymous memory, page cache and kernel memory. Where the app has no cgroup of its own, the sum of its processes' RSS",
                Some(K::Memory),
            ),
            AppColumn::Anon => spec(
                "Anon",
                "ANON_MiB",
                "anon_kb",
                "Anonymous memory charged to the app's cgroup (heap, stacks)",
                Some(K::Anon),
            ),
            AppColumn::File => spec(
                "Page cache",
                "CACHE_MiB",
                "file_kb",
                "Page cache charged to the app's cgroup: files it read or wrote, which no RSS shows",
                Some(K::File),
            ),
            AppColumn::Swap => spec(
                "Swap",
                "SWAP_MiB",
                "swap_kb",
                "Swap used by the app's cgroup (else its processes' sum)",
                Some(K::Swap),
            ),
            AppColumn::Kernel => spec(
                "Kernel",
                "KERNEL_MiB",
                "kernel_kb",
                "Kernel memory charged to the app's cgroup (slab, stacks, page tables)",
                Some(K::Kernel),
            ),
            AppColumn::Rss => spec(
                "RSS sum",
                "RSS_SUM_MiB",
                "rss_sum_kb",
                "Sum of the processes' RSS: counts pages they share (libraries, shared memory) once per process",
                Some(K::Rss),
            ),
            AppColumn::Processes => spec(
                "Procs",
                "PROCS",
                "process_count",
                "Processes in the app",
                Some(K::Processes),
            ),
            AppColumn::Growth => spec(
                "Growth",
                "GROWTH_MiB/min",
                "growth_bytes_per_min",
                "Growth of Memory (Theil-Sen over 5 min, else 1 min); 0 when it cannot be told from noise",
                Some(K::Growth),
            ),
            AppColumn::Limit => spec(
                "Limit",
                "LIMIT_MiB",
                "limit_kb",
                "The cgroup's hard limit (memory.max / limit_in_bytes); empty when unlimited",
                Some(K::Limit),
            ),
            AppColumn::Pressure => spec(
                "Pressure",
                "PSI_SOME%",
                "pressure_some_avg10",
                "Share of the last 10 s in which the app's tasks stalled on memory (the cgroup's own PSI)",
                Some(K::Pressure),
            ),
            AppColumn::OomKills => spec(
                "OOM kills",
                "OOM_KILLS",
                "oom_kills",
                "Processes the OOM killer ended in the app's cgroup",
                Some(K::OomKills),
            ),
            AppColumn::Unit => spec(
                "Unit",
                "UNIT",
                "unit",
                "The systemd unit (cgroup) the app runs in",
                None,
            ),
        }
    }

    pub const fn title(self) -> &'static str {
        self.spec().title
    }
    pub const fn cli_heading(self) -> &'static str {
        self.spec().cli
    }
    pub const fn csv_name(self) -> &'static str {
        self.spec().csv
    }
    pub const fn tooltip(self) -> &'static str {
        self.spec().tooltip
    }
    pub const fn sort_key(self) -> Option<AppSortKey> {
        self.spec().sort
    }

    /// What the column's number means (sizes in KiB, growth in bytes per minute, counts; the
    /// pressure is a percentage, shown as it is).
    pub const fn unit(self) -> Unit {
        match self {
            AppColumn::Name | AppColumn::Kind | AppColumn::Unit => Unit::Text,
            AppColumn::Memory
            | AppColumn::Anon
            | AppColumn::File
            | AppColumn::Swap
            | AppColumn::Kernel
            | AppColumn::Rss
            | AppColumn::Limit => Unit::KiB,
            AppColumn::Growth => Unit::BytesPerMin,
            AppColumn::Processes | AppColumn::OomKills | AppColumn::Pressure => Unit::Count,
        }
    }

    /// Whether the value is a number (right-aligned).
    pub const fn numeric(self) -> bool {
        !matches!(self, AppColumn::Name | AppColumn::Kind | AppColumn::Unit)
    }

    /// The raw value: sizes in KiB, growth in bytes per minute.
    pub fn value(self, row: &AppRow) -> Option<Value<'_>> {
        let int = |v: u64| Some(Value::Int(i128::from(v)));
        let own = row.memory.filter(|_| row.memory_covers.is_none());
        match self {
            AppColumn::Name => Some(Value::Text(&row.name)),
            AppColumn::Kind => row.kind.map(|k| Value::Text(k.label())),
            AppColumn::Memory => int(row.memory_kb()),
            AppColumn::Anon => row.anon_kb().and_then(int),
            AppColumn::File => row.file_kb().and_then(int),
            AppColumn::Swap => int(row.swap_kb()),
            AppColumn::Kernel => own.and_then(|m| m.kernel_kb).and_then(int),
            AppColumn::Rss => int(row.rss_sum_kb),
            AppColumn::Processes => int(u64::from(row.process_count)),
            AppColumn::Growth => row.growth.and_then(|g| g.shown()).map(Value::Rate),
            AppColumn::Limit => row.memory.and_then(|m| m.limit_kb).and_then(int),
            AppColumn::Pressure => row
                .memory
                .and_then(|m| m.pressure)
                .map(|p| Value::Rate(p.some_avg10)),
            AppColumn::OomKills => row.memory.and_then(|m| int(m.events.oom_kill)),
            AppColumn::Unit => (!row.unit.is_empty()).then_some(Value::Text(&row.unit)),
        }
    }

    /// The value as the CLI table and the GUI show it: sizes in MiB with one decimal, growth in
    /// signed MiB/min, "—" when absent.
    pub fn text(self, row: &AppRow) -> String {
        match (self, self.value(row)) {
            (_, None) => "—".to_owned(),
            (AppColumn::Processes | AppColumn::OomKills, Some(Value::Int(n))) => n.to_string(),
            (_, Some(Value::Int(kb))) => format!("{:.1}", kb as f64 / 1024.0),
            (AppColumn::Growth, Some(Value::Rate(r))) => {
                let mib = r / (1024.0 * 1024.0);
                if r == 0.0 {
                    "≈ 0".to_owned()
                } else {
                    format!("{mib:+.1}")
                }
            }
            (_, Some(Value::Rate(r))) => format!("{r:.2}"),
            (_, Some(Value::Text(t))) => t.to_owned(),
            (_, Some(Value::Flag(b))) => b.to_string(),
        }
    }

    /// The value for CSV: numbers unformatted, empty when absent.
    pub fn csv_value(self, row: &AppRow) -> String {
        match self.value(row) {
            None => String::new(),
            Some(Value::Int(n)) => n.to_string(),
            Some(Value::Rate(r)) => format!("{r:.2}"),
            Some(Value::Text(t)) => crate::export::text(t),
            Some(Value::Flag(b)) => b.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::CgroupMemory;

    #[test]
    fn every_sort_key_has_a_column_and_names_are_unique() {
        for key in AppSortKey::ALL {
            assert!(
                AppColumn::ALL.iter().any(|c| c.sort_key() == Some(key)),
                "{key}"
            );
        }
        let mut csv: Vec<&str> = AppColumn::ALL.iter().map(|c| c.csv_name()).collect();
        csv.sort_unstable();
        csv.dedup();
        assert_eq!(csv.len(), AppColumn::ALL.len());
    }

    #[test]
    fn the_dbus_document_lists_exactly_the_app_sort_keys() {
        let doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/dbus-api.md"));
        let (_, section) = doc.split_once("### `GetApps").expect("a GetApps section");
        let (_, rest) = section
            .split_once("`sort_key` is one of `")
            .expect("the GetApps section lists its sort keys");
        let (span, _) = rest.split_once('`').expect("the code span ends");
        let listed: Vec<&str> = span.split_whitespace().collect();
        let table: Vec<&str> = AppSortKey::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            listed, table,
            "docs/dbus-api.md's GetApps keys, in the table's order"
        );
    }

    #[test]
    fn units_agree_with_the_csv_names() {
        for c in AppColumn::ALL {
            let name = c.csv_name();
            assert_eq!(c.unit() == Unit::KiB, name.ends_with("_kb"), "{name}");
            assert_eq!(
                c.unit() == Unit::BytesPerMin,
                name.ends_with("_per_min"),
                "{name}"
            );
            assert_eq!(c.unit() == Unit::Text, !c.numeric(), "{name}");
        }
    }

    #[test]
    fn cells_format_sizes_in_mib_and_absent_values_as_a_dash() {
        let row = AppRow {
            name: "=cmd".into(),
            process_count: 3,
            rss_sum_kb: 2048,
            memory: Some(CgroupMemory {
                current_kb: 3 * 1024 + 512,
                ..CgroupMemory::default()
            }),
            ..AppRow::default()
        };
        assert_eq!(AppColumn::Memory.text(&row), "3.5");
        assert_eq!(AppColumn::File.text(&row), "—");
        assert_eq!(AppColumn::Processes.text(&row), "3");
        assert_eq!(AppColumn::Memory.csv_value(&row), "3584");
        assert_eq!(AppColumn::File.csv_value(&row), "");
        assert!(
            !AppColumn::Name.csv_value(&row).starts_with('='),
            "formulas are neutralised"
        );
    }
}
