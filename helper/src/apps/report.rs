//! The apps as the CLI prints them (`memmon-helper snapshot --apps`).

use std::io;

use memmon_common::apps::{AppColumn, AppRow, AppsSnapshot};

/// Columns the CLI table shows (the CSV has them all).
pub const TABLE_COLUMNS: [AppColumn; 12] = [
    AppColumn::Memory,
    AppColumn::Anon,
    AppColumn::File,
    AppColumn::Swap,
    AppColumn::Rss,
    AppColumn::Processes,
    AppColumn::Growth,
    AppColumn::Limit,
    AppColumn::Pressure,
    AppColumn::OomKills,
    AppColumn::Kind,
    AppColumn::Name,
];

/// A header line, one line per app (and one per process of an expanded app), then notes.
pub fn write_table(out: &mut impl io::Write, snap: &AppsSnapshot, sort: &str) -> io::Result<()> {
    writeln!(
        out,
        "Memory Monitor — {} apps, {} processes — top {} by {} — {}",
        snap.app_count,
        snap.process_count,
        snap.apps.len(),
        sort,
        snap.grouping
    )?;
    let widths: Vec<usize> = TABLE_COLUMNS
        .iter()
        .map(|c| {
            c.cli_heading()
                .chars()
                .count()
                .max(if c.numeric() { 9 } else { 14 })
        })
        .collect();
    let mut line = String::new();
    let cell = |line: &mut String, column: AppColumn, text: &str, width: usize| {
        if column == AppColumn::Name {
            line.push_str(text);
        } else if column.numeric() {
            line.push_str(&format!("{text:>width$} "));
        } else {
            line.push_str(&format!("{text:<width$} "));
        }
    };
    for (c, w) in TABLE_COLUMNS.iter().zip(&widths) {
        cell(&mut line, *c, c.cli_heading(), *w);
    }
    writeln!(out, "{line}")?;
    for app in &snap.apps {
        line.clear();
        for (c, w) in TABLE_COLUMNS.iter().zip(&widths) {
            cell(&mut line, *c, &c.text(app), *w);
        }
        writeln!(out, "{line}{}", note(app))?;
        for p in &app.processes {
            writeln!(
                out,
                "    PID {:>7}  RSS {:>9.1} MiB  {}",
                p.pid,
                p.rss_kb.unwrap_or(0) as f64 / 1024.0,
                p.name
            )?;
        }
    }
    writeln!(
        out,
        "MEM is the kernel's count for the app's cgroup (page cache and kernel memory included); \
         RSS_SUM counts shared pages once per process."
    )
}

fn note(app: &AppRow) -> String {
    let mut note = String::new();
    if let Some(covers) = &app.memory_covers {
        note.push_str(&format!(
            "  (no cgroup of its own: MEM is the RSS sum; {covers} holds more)"
        ));
    }
    if app.growth.is_some_and(|g| g.sustained) {
        note.push_str("  sustained growth");
    }
    note
}
