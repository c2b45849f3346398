//! No number in the apps table is cut off (egui_kittest, headless), even when the wide values
//! arrive after narrow ones (an auto-sized column keeps the width of its first rows): every
//! numeric cell's text, as laid out, fits inside its column (where its header cell is), the
//! columns do not overlap, and at the default size (1280×760) every numeric column is in view.

use egui_kittest::{Harness, kittest::Queryable as _};
use memmon::{app::MemmonApp, source::Update};
use memmon_common::{
    apps::{AppColumn, AppKind, AppRow, AppsSnapshot, CgroupMemory, CgroupPressure, MemoryEvents},
    diagnostics::Growth,
};

mod common;

use common::*;

const EPS: f32 = 0.5;

/// Two apps whose numeric cells are as wide as realistic values get, all different.
fn wide_apps() -> Vec<AppRow> {
    let wide = |id: &str, big: u64, growth: f64, procs: u32| AppRow {
        id: id.into(),
        kind: Some(AppKind::UserService),
        name: format!("{id} with a rather long name"),
        unit: format!("{id}.service"),
        cgroup_count: 3,
        process_count: procs,
        rss_sum_kb: big + 1_000_000,
        swap_sum_kb: 0,
        memory: Some(CgroupMemory {
            current_kb: big,
            anon_kb: Some(big - 2_000_000),
            file_kb: Some(big - 3_000_000),
            kernel_kb: Some(big - 4_000_000),
            swap_kb: Some(big - 5_000_000),
            limit_kb: Some(big + 7_000_000),
            pressure: Some(CgroupPressure {
                some_avg10: if id == "app:a" { 100.0 } else { 99.99 },
                ..CgroupPressure::default()
            }),
            events: MemoryEvents {
                oom_kill: u64::from(procs) * 3,
                ..MemoryEvents::default()
            },
            ..CgroupMemory::default()
        }),
        growth: Some(Growth {
            rss_5m: Some(growth),
            ..Growth::default()
        }),
        ..AppRow::default()
    };
    vec![
        wide("app:a", 1_073_731_000, -1023.9 * 1_048_576.0, 4_194_304),
        wide("app:b", 1_043_731_000, 1023.8 * 1_048_576.0, 3_999_999),
    ]
}

fn table(apps: Vec<AppRow>) -> Update {
    Update::Apps(Box::new(AppsSnapshot {
        app_count: apps.len() as u32,
        apps,
        ..AppsSnapshot::default()
    }))
}

fn header_rect(h: &Harness<'_, MemmonApp>, c: AppColumn) -> egui::Rect {
    let title = c.title();
    [
        title.to_owned(),
        format!("{title}, sorted descending"),
        format!("{title}, sorted ascending"),
    ]
    .iter()
    .find_map(|label| h.query_by_label(label))
    .unwrap_or_else(|| panic!("no header for {c:?}"))
    .rect()
}

#[test]
fn wide_app_numbers_fit_their_columns_even_when_they_come_late() {
    let rows = wide_apps();
    let cells: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            AppColumn::ALL
                .into_iter()
                .filter(|c| c.numeric())
                .map(|c| memmon::panels::apps::cell_text(c, r))
        })
        .collect();
    let distinct: std::collections::HashSet<&String> = cells.iter().collect();
    assert_eq!(distinct.len(), cells.len(), "cells alike: {cells:?}");
    for wide in ["1023.99 GiB", "-1023.9 MiB/min", "4194304", "100.00"] {
        assert!(cells.iter().any(|s| s == wide), "{wide:?} not in {cells:?}");
    }

    let (mut h, f) = harness(sample_rows(), memmon::source::Origin::Helper);
    h.get_by_label("Apps").click();
    h.run();
    // Narrow values first, then the wide ones.
    let narrow: Vec<AppRow> = rows
        .iter()
        .map(|r| AppRow {
            memory: None,
            growth: None,
            process_count: 1,
            rss_sum_kb: 10,
            ..r.clone()
        })
        .collect();
    f.updates.send(table(narrow)).expect("send");
    h.run();
    f.updates.send(table(rows.clone())).expect("send");
    h.run();

    let font = egui::TextStyle::Body.resolve(&h.ctx.global_style());
    let numeric: Vec<AppColumn> = AppColumn::ALL.into_iter().filter(|c| c.numeric()).collect();
    let headers: Vec<egui::Rect> = AppColumn::ALL.iter().map(|&c| header_rect(&h, c)).collect();
    for (pair, rects) in AppColumn::ALL.windows(2).zip(headers.windows(2)) {
        assert!(
            rects[0].right() <= rects[1].left() + EPS,
            "the {:?} column {:?} runs into {:?} {:?}",
            pair[0],
            rects[0],
            pair[1],
            rects[1]
        );
    }
    for &c in &numeric {
        let column = header_rect(&h, c);
        assert!(
            column.left() >= -EPS && column.right() <= 1280.0 + EPS,
            "{c:?} at {column:?} is not in the window"
        );
        for row in &rows {
            let text = memmon::panels::apps::cell_text(c, row);
            assert_cell_fits(&h, &text, column, &font, &format!("{c:?}"));
        }
    }
}
