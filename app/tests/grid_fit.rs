//! No number in the grid is cut off (egui_kittest, headless): with realistic wide values (RSS in
//! the hundreds of GiB, call counts in the millions, growth near 1 GiB/min) every numeric cell's
//! text, as laid out, fits inside its column, at the default size (1280×760) with every column
//! in the window, and at a narrow 900 px, where the columns that do not fit come whole into view
//! when the grid is scrolled sideways. A column is where its header cell is (the header fills
//! the column); a cell's text is where its AccessKit label node is, and that node must be as
//! wide as the text measured on its own, so a truncated ("…") label fails too.

use egui_kittest::{Harness, kittest::Queryable as _};
use memmon::{app::MemmonApp, source::Origin};
use memmon_common::{
    column::{Align, Column},
    diagnostics::Growth,
    snapshot::{AllocStats, ProcessRow},
};

mod common;

use common::*;

/// Pixels of slack for rounding.
const EPS: f32 = 0.5;

/// Two rows whose every numeric cell is as wide as realistic values get, and differs from every
/// other cell (cells are found by their text).
fn wide_rows() -> Vec<ProcessRow> {
    let growth = |bytes_per_min: f64| Growth {
        rss_5m: Some(bytes_per_min),
        sustained: true,
        ..Default::default()
    };
    let a = ProcessRow {
        pid: 4_194_304, // pid_max's highest value
        start_time: 123_456_789,
        name: "a-process-with-a-rather-long-name".into(),
        rss_kb: Some(123_456_789),
        virtual_kb: Some(1_073_731_000),
        peak_rss_kb: Some(987_654_321),
        swap_kb: Some(1_048_000),
        alloc: Some(AllocStats {
            mmap_count: 12_345_678,
            munmap_count: 9_876_543,
            brk_count: 1_234_567,
            net_mapped: -1_099_000_000_000,
            ..Default::default()
        }),
        growth: Some(growth(-1023.9 * 1_048_576.0)),
        ..Default::default()
    };
    let b = ProcessRow {
        pid: 3_999_999,
        start_time: 99,
        name: "Web Content".into(),
        rss_kb: Some(1_047_500),
        virtual_kb: Some(1_000_000_000),
        peak_rss_kb: Some(1_047_000),
        swap_kb: Some(1_073_000_000),
        alloc: Some(AllocStats {
            mmap_count: 123_456_789,
            munmap_count: 98_765_432,
            brk_count: 23_456_789,
            net_mapped: 1_073_000_000,
            ..Default::default()
        }),
        growth: Some(growth(1023.9 * 1_048_576.0)),
        ..Default::default()
    };
    vec![a, b]
}

/// The header cell of a column: its accessible name is the title, plus the sort state.
fn header_rect(h: &Harness<'_, MemmonApp>, c: Column) -> egui::Rect {
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

/// Every listed numeric column's cells fit their column and the columns do not overlap, in a
/// window `width` wide. Returns the columns wholly inside the window (the rest are scrolled
/// out of view, never cut off at its edge).
fn assert_numbers_fit(h: &Harness<'_, MemmonApp>, rows: &[ProcessRow], width: f32) -> Vec<Column> {
    let font = egui::TextStyle::Body.resolve(&h.ctx.global_style());
    let columns: Vec<Column> = Column::listed_columns().collect();
    let headers: Vec<egui::Rect> = columns.iter().map(|&c| header_rect(h, c)).collect();
    for (pair, rects) in columns.windows(2).zip(headers.windows(2)) {
        assert!(
            rects[0].right() <= rects[1].left() + EPS,
            "at {width} px the {:?} column {:?} runs into {:?} {:?}",
            pair[0],
            rects[0],
            pair[1],
            rects[1]
        );
    }
    let mut checked = 0;
    for (&c, column) in columns.iter().zip(&headers) {
        if c.align() == Align::Left {
            continue; // names are cut to their column by design ("…")
        }
        for row in rows {
            let text = c.display(row);
            assert_cell_fits(h, &text, *column, &font, &format!("at {width} px {c:?}"));
            checked += 1;
        }
    }
    assert!(checked >= 16, "only {checked} cells checked");
    columns
        .into_iter()
        .zip(headers)
        .filter(|(_, r)| r.left() >= -EPS && r.right() <= width + EPS)
        .map(|(c, _)| c)
        .collect()
}

#[test]
fn wide_numbers_fit_their_columns_at_the_default_and_a_narrow_width() {
    let rows = wide_rows();
    let shown: Vec<String> = Column::listed_columns()
        .map(|c| c.display(&rows[0]))
        .collect();
    let cells: Vec<String> = rows
        .iter()
        .flat_map(|r| Column::listed_columns().map(|c| c.display(r)))
        .collect();
    let distinct: std::collections::HashSet<&String> = cells.iter().collect();
    assert_eq!(distinct.len(), cells.len(), "cells alike: {cells:?}");
    // The values are as wide as intended (these are what the cells must hold).
    for wide in [
        "4194304",
        "117.74 GiB",
        "1023.99 GiB",
        "12345678",
        "-1023.52 GiB",
        "-1023.9 MiB/min",
    ] {
        assert!(shown.iter().any(|s| s == wide), "{wide:?} not in {shown:?}");
    }
    let all: Vec<Column> = Column::listed_columns().collect();
    let (mut h, _f) = harness(rows.clone(), Origin::Helper);
    assert_eq!(
        assert_numbers_fit(&h, &rows, 1280.0),
        all,
        "at the default size every column is in view"
    );

    h.set_size(egui::vec2(900.0, 760.0));
    h.run();
    let mut seen = assert_numbers_fit(&h, &rows, 900.0);
    assert!(seen.contains(&Column::Name), "{seen:?}");
    // Too narrow for all of them: the grid scrolls sideways and shows the rest whole.
    h.hover_at(header_rect(&h, Column::Rss).center());
    h.event(egui::Event::MouseWheel {
        unit: egui::MouseWheelUnit::Point,
        delta: egui::vec2(-5000.0, 0.0),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Unknown,
        modifiers: egui::Modifiers::NONE,
    });
    h.run_steps(30); // the scroll is animated
    h.run();
    seen.extend(assert_numbers_fit(&h, &rows, 900.0));
    for c in all {
        assert!(
            seen.contains(&c),
            "at 900 px {c:?} never comes whole into view"
        );
    }
}
