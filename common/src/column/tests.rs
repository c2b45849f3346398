use std::collections::HashSet;

use super::*;
use crate::{diagnostics::Growth, snapshot::AllocStats};

fn full_row() -> ProcessRow {
    ProcessRow {
        pid: 42,
        start_time: 9_000,
        name: "firefox".into(),
        ppid: None,
        uid: None,
        app: None,
        rss_kb: Some(3 * 1024 + 400),
        virtual_kb: Some(5 * 1024 * 1024 / 4),
        peak_rss_kb: Some(512),
        rss_anon_kb: Some(1),
        rss_file_kb: Some(2),
        rss_shmem_kb: Some(3),
        swap_kb: Some(0),
        alloc: Some(AllocStats {
            mmap_count: 7,
            munmap_count: 3,
            brk_count: 2,
            total_allocated: 1 << 20,
            total_freed: 4096,
            net_mapped: -1536 * 1024,
            peak_net_mapped: 1 << 30,
            ..Default::default()
        }),
        growth: Some(Growth {
            rss_1m: Some(1.0),
            rss_5m: Some(2.0 * 1_048_576.0),
            rss_15m: Some(-3.0),
            net_5m: Some(0.0),
            sustained: true,
            rss_noise: false,
        }),
        ..Default::default()
    }
}

#[test]
fn growth_within_the_noise_shows_as_about_zero_and_ranks_as_zero() {
    let mut row = full_row();
    assert_eq!(Column::Growth.display(&row), "+2.0 MiB/min");
    if let Some(g) = row.growth.as_mut() {
        g.rss_noise = true;
    }
    assert_eq!(Column::Growth.display(&row), "≈ 0");
    assert_eq!(Column::Growth.sort_number(&row), Some(0));
    // The per-window columns keep the raw rates.
    assert_eq!(Column::Growth5m.display(&row), "+2.0 MiB/min");
}

#[test]
fn names_are_unique_and_every_sort_key_has_its_column() {
    let csv: Vec<_> = Column::ALL.iter().filter_map(|c| c.csv_name()).collect();
    assert_eq!(
        csv.iter().collect::<HashSet<_>>().len(),
        csv.len(),
        "{csv:?}"
    );
    let cli: Vec<_> = Column::ALL.iter().filter_map(|c| c.cli_name()).collect();
    assert_eq!(
        cli.iter().collect::<HashSet<_>>().len(),
        cli.len(),
        "{cli:?}"
    );
    let titles: HashSet<_> = Column::ALL.iter().map(|c| c.title()).collect();
    assert_eq!(titles.len(), Column::ALL.len());
    for key in SortKey::ALL {
        let column = key.column();
        assert_eq!(column.sort_key(), Some(key));
        assert_eq!(column.cli_name(), Some(key.as_str()));
    }
    assert_eq!(SortKey::ALL.len(), cli.len());
    for c in Column::ALL {
        assert!(
            !c.listed() || c.sort_key().is_some(),
            "{c:?} is listed unsortable"
        );
        assert!(!c.title().is_empty() && !c.tooltip().is_empty(), "{c:?}");
        // The sort-key parser quotes at most twice the longest name.
        assert!(c.cli_name().is_none_or(|n| n.len() <= 16), "{c:?}");
    }
}

#[test]
fn each_value_has_its_units_kind() {
    let row = full_row();
    for c in Column::ALL {
        let value = c.value(&row).unwrap_or_else(|| panic!("{c:?} is empty"));
        let fits = match value {
            Value::Int(_) => {
                matches!(c.unit(), Unit::Id | Unit::Count | Unit::KiB | Unit::Bytes)
            }
            Value::Rate(_) => c.unit() == Unit::BytesPerMin,
            Value::Text(_) => c.unit() == Unit::Text,
            Value::Flag(_) => c.unit() == Unit::Flag,
        };
        assert!(fits, "{c:?}: {value:?} is not in {:?}", c.unit());
    }
}

#[test]
fn cells_in_human_units_and_absent_ones_as_dashes() {
    let row = full_row();
    for (c, want) in [
        (Column::Pid, "42"),
        (Column::Name, "firefox"),
        (Column::Rss, "3.4 MiB"),
        (Column::Virt, "1.25 GiB"),
        (Column::Peak, "512 KiB"),
        (Column::Swap, "0 B"),
        (Column::Mmap, "7"),
        (Column::Net, "-1.5 MiB"),
        (Column::Growth, "+2.0 MiB/min"),
        (Column::Sustained, "yes"),
    ] {
        assert_eq!(c.display(&row), want, "{c:?}");
    }
    assert_eq!(Column::Rss.table_text(&row), "3.4");
    assert_eq!(Column::Net.table_text(&row), "-1.5");
    assert_eq!(Column::Growth.table_text(&row), "+2.00");
    let bare = ProcessRow {
        pid: 2,
        name: "kthreadd".into(),
        ..Default::default()
    };
    for c in Column::ALL {
        let present = matches!(c, Column::Pid | Column::StartTime | Column::Name);
        assert_eq!(c.value(&bare).is_some(), present, "{c:?}");
        if !present {
            assert_eq!(c.display(&bare), "—", "{c:?}");
            assert_eq!(c.table_text(&bare), "-", "{c:?}");
            assert_eq!(c.sort_number(&bare), None, "{c:?}");
        }
    }
}

#[test]
fn names_align_left_and_numbers_right() {
    for c in Column::ALL {
        let want = if c.unit() == Unit::Text {
            Align::Left
        } else {
            Align::Right
        };
        assert_eq!(c.align(), want, "{c:?}");
    }
    assert_eq!(Column::Name.table_cell("ab").len(), 16);
    assert!(Column::Name.table_cell("ab").starts_with("ab"));
    assert!(Column::Rss.table_cell("1.0").ends_with(" 1.0"));
    let long = ProcessRow {
        name: "a-very-long-process-name".into(),
        ..Default::default()
    };
    assert_eq!(Column::Name.table_text(&long), "a-very-long-proc");
}

#[test]
fn only_allocation_columns_need_full_mode() {
    let full: Vec<_> = Column::ALL
        .into_iter()
        .filter(|c| c.full_mode_only())
        .collect();
    let row = ProcessRow {
        growth: Some(Growth::default()),
        ..full_row()
    };
    let no_alloc = ProcessRow {
        alloc: None,
        ..row.clone()
    };
    for c in &full {
        if *c != Column::NetGrowth5m {
            assert!(c.value(&no_alloc).is_none(), "{c:?} is filled without eBPF");
        }
    }
    assert!(full.contains(&Column::Net) && !full.contains(&Column::Rss));
    let headings: Vec<String> = Column::listed_columns()
        .map(|c| c.table_heading())
        .collect();
    assert_eq!(
        headings,
        [
            "PID",
            "NAME",
            "RSS(MB)",
            "VIRT(MB)",
            "PEAK(MB)",
            "SWAP(MB)",
            "MMAP#",
            "MUNMAP#",
            "BRK#",
            "NET(MB)",
            "GROWTH(MB/min)"
        ]
    );
}

#[test]
fn human_units() {
    assert_eq!(kib(0), "0 B");
    assert_eq!(kib(512), "512 KiB");
    assert_eq!(signed_bytes(-1536.0 * 1024.0), "-1.5 MiB");
    assert_eq!(rate_per_min(-512.0 * 1024.0), "-512 KiB/min");
    assert_eq!(rate_per_min(0.1), "0 B/min");
}
