//! The rough edges a new user hits (issue 11), each checked on the real window headless
//! (egui_kittest): the plot follows the keyboard at once, header titles sit over their values
//! and the whole header cell sorts, the plot gets a real share of the window (remembered), the
//! status bar stays on one line at the default width, and Embedded mode leaves out the columns
//! it can never fill.

use egui_kittest::kittest::Queryable as _;
use memmon::{
    settings::Settings,
    source::{Origin, Request, Update},
};
use memmon_common::process_key::ProcessKey;
use memmon_common::{
    diagnostics::{OomKill, OomSource, SystemPressure},
    series::{HistorySample, HistorySeries},
    snapshot::{ProcessRow, SortKey},
};

mod common;

use common::*;

fn history_of(pid: u32, name: &str) -> HistorySeries {
    HistorySeries {
        pid,
        start_time: 1000 + u64::from(pid),
        name: name.into(),
        last_seen_unix_ms: 1_795_000_002_000,
        samples: vec![HistorySample {
            unix_ms: 1_795_000_000_000,
            rss_kb: 300_000,
            peak_rss_kb: 300_000,
            net_mapped: None,
        }],
        ..Default::default()
    }
}

#[test]
fn arrow_keys_with_the_plot_open_ask_for_the_new_history_at_once() {
    let (mut h, f) = harness(sample_rows(), Origin::Helper);
    h.get_by_label("firefox").click();
    h.run();
    f.updates
        .send(Update::History(history_of(42, "firefox")))
        .expect("send");
    h.run();
    let _ = f.requests.try_iter().count();
    h.key_press(egui::Key::ArrowDown);
    h.run();
    assert_eq!(
        h.state().model.selected_process(),
        Some(ProcessKey::new(7, 1007))
    );
    let asked: Vec<Request> = f.requests.try_iter().collect();
    assert!(
        asked.contains(&Request::History(ProcessKey::new(7, 1007))),
        "asked at once, not at the next tick: {asked:?}"
    );
    h.get_by_label_contains("Xorg (PID 7) — RSS over time");
    // The answer replaces "Loading history…" without another snapshot.
    f.updates
        .send(Update::History(history_of(7, "Xorg")))
        .expect("send");
    h.run();
    assert!(h.query_by_label("Loading history…").is_none());
}

/// Rows whose cells are all different texts, so each can be found by its label.
fn distinct_rows() -> Vec<ProcessRow> {
    let mut a = row(42, "firefox", 900_000);
    a.peak_rss_kb = Some(1_900_000);
    let mut b = row(7, "Xorg", 300_000);
    b.peak_rss_kb = Some(700_000);
    vec![a, b]
}

#[test]
fn header_titles_sit_over_their_values_and_the_whole_cell_sorts() {
    let (mut h, f) = harness(distinct_rows(), Origin::Helper);
    let title = |h: &egui_kittest::Harness<'_, memmon::app::MemmonApp>, key| {
        h.state().grid().title_rect(key).expect("title drawn")
    };
    // Numbers and their titles end at the same right edge (RSS is sorted: its arrow sits left).
    let rss_value = h.get_by_label("878.9 MiB").rect();
    assert!(
        (title(&h, SortKey::Rss).right() - rss_value.right()).abs() <= 1.5,
        "RSS title {:?} over {rss_value:?}",
        title(&h, SortKey::Rss)
    );
    let peak_value = h.get_by_label("1.81 GiB").rect();
    assert!((title(&h, SortKey::Peak).right() - peak_value.right()).abs() <= 1.5);
    // Names and their title start at the same left edge.
    let name_value = h.get_by_label("firefox").rect();
    assert!((title(&h, SortKey::Name).left() - name_value.left()).abs() <= 1.5);

    // The sort state is in the header's accessible name.
    h.get_by_label("RSS, sorted descending");
    // A click far from the title, at the left end of the cell, still sorts.
    let cell = h.get_by_label("Virtual").rect();
    assert!(
        cell.width() > title(&h, SortKey::Virt).width() + 10.0,
        "the click target is the cell, not the title"
    );
    let _ = views(&f.requests);
    let spot = egui::pos2(cell.left() + 3.0, cell.center().y);
    h.hover_at(spot);
    for pressed in [true, false] {
        h.event(egui::Event::PointerButton {
            pos: spot,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: egui::Modifiers::NONE,
        });
    }
    h.run();
    assert_eq!(views(&f.requests), vec![(SortKey::Virt, true)]);
    h.get_by_label("Virtual, sorted descending");
}

fn many_rows() -> Vec<ProcessRow> {
    (1..=100).map(|p| row(p, "worker", u64::from(p))).collect()
}

#[test]
fn the_plot_gets_at_least_45_percent_and_the_split_is_remembered() {
    let (mut h, f) = harness(many_rows(), Origin::Helper);
    h.key_press(egui::Key::ArrowDown);
    h.key_press(egui::Key::Enter);
    h.run();
    f.updates
        .send(Update::History(history_of(1, "worker")))
        .expect("send");
    h.run();
    let below_status = h.get_by_label("Mode: Full").rect().bottom() + 6.0;
    let available = 760.0 - below_status;
    let heading = h.get_by_label_contains("RSS over time").rect();
    let plot_panel = 760.0 - heading.top() + 8.0;
    assert!(
        plot_panel >= 0.45 * available,
        "the plot panel has {plot_panel} of {available} points"
    );
    let plot = h.state().plot_rect().expect("the plot is drawn");
    assert!(
        plot.height() >= 150.0,
        "the RSS plot is {} points tall",
        plot.height()
    );

    // Dragging the split (here: through its accessible splitter) is remembered in Settings.
    h.get_by_label("Resize panel").set_value_accesskit(0.7);
    h.run();
    let fraction = h.state().model.settings.plot_fraction;
    assert!((fraction - 0.7).abs() < 0.02, "{fraction}");

    // The next run opens the plot at the remembered share.
    let settings = Settings {
        plot_fraction: 0.7,
        ..Settings::default()
    };
    let (mut h, _f) = harness_with(settings, many_rows(), Origin::Helper);
    h.key_press(egui::Key::ArrowDown);
    h.key_press(egui::Key::Enter);
    h.run();
    let heading = h.get_by_label_contains("RSS over time").rect();
    let share = (760.0 - heading.top() + 8.0) / available;
    assert!((share - 0.7).abs() < 0.05, "{share}");
}

#[test]
fn the_plot_never_hides_the_rows_of_a_short_grid_and_takes_the_room_left() {
    let (mut h, _f) = harness(sample_rows(), Origin::Helper);
    h.get_by_label("bash").click();
    h.run();
    let heading = h.get_by_label_contains("RSS over time").rect();
    let last_row = h.get_by_label("bash").rect();
    assert!(
        last_row.bottom() < heading.top(),
        "every row stays visible: {last_row:?} vs {heading:?}"
    );
    assert!(
        heading.top() - last_row.bottom() < 60.0,
        "no empty grid under three rows: {last_row:?} vs {heading:?}"
    );
}

#[test]
fn the_status_bar_stays_on_one_line_at_the_default_width() {
    let mut rows = sample_rows();
    rows.extend((1000..1200).map(|p| row(p, "worker", 10)));
    let (mut h, f) = harness(rows.clone(), Origin::Helper);
    let mut busy = snapshot(rows);
    busy.process_count = 12_345;
    busy.bpf_drops = 123_456;
    busy.system.swap_total_kb = 16 << 20;
    busy.pressure = Some(SystemPressure {
        some_avg10: Some(12.5),
        ..Default::default()
    });
    busy.oom_kills = (0..12)
        .map(|i| OomKill {
            unix_ms: 1_795_000_000_000 + i,
            pid: 5000 + i as u32,
            start_time: None,
            name: "hog".into(),
            last_rss_kb: None,
            rss_at_kill_kb: None,
            source: OomSource::Tracepoint,
        })
        .collect();
    f.updates
        .send(Update::Snapshot {
            snapshot: busy,
            origin: Origin::Helper,
        })
        .expect("send");
    h.run();
    h.state_mut().model.status_message = Some(format!(
        "Saved /home/someone/Pictures/{}/memmon-20260101-120000-grid.csv",
        "a-long-folder-name".repeat(4)
    ));
    h.run();
    let mode = h.get_by_label("Mode: Full").rect();
    for label in [
        "OOM kills: 12",
        "123456 eBPF events lost",
        "Filter:",
        "Export",
        "Pressure 12.5%",
    ] {
        let r = h.get_by_label(label).rect();
        assert!(
            (r.center().y - mode.center().y).abs() < 4.0,
            "{label} is on another line: {r:?} vs {mode:?}"
        );
        assert!(r.right() <= 1280.0, "{label} is cut off: {r:?}");
    }
}

#[test]
fn embedded_mode_leaves_out_the_columns_it_cannot_fill_and_says_so() {
    let (h, _f) = harness(
        sample_rows(),
        Origin::Embedded {
            why: "the helper is not installed".into(),
            can_retry: true,
        },
    );
    for title in ["Net mapped", "Mmap#", "Munmap#", "Brk"] {
        assert!(
            h.query_by_label(title).is_none(),
            "{title} is shown in Embedded mode"
        );
    }
    for title in [
        "RSS, sorted descending",
        "Virtual",
        "Peak RSS",
        "Swap",
        "Growth",
    ] {
        h.get_by_label(title);
    }
    h.get_by_label_contains("net mapped, mmap, munmap and brk columns, hidden until then");

    let (h, _f) = harness(sample_rows(), Origin::Helper);
    for title in ["Net mapped", "Mmap#", "Munmap#", "Brk"] {
        h.get_by_label(title);
    }
}

#[test]
fn ctrl_f_focuses_the_filter_and_typing_narrows_the_grid() {
    let (mut h, _f) = harness(sample_rows(), Origin::Helper);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::F);
    h.run();
    let filter = h.get_by_role(egui::accesskit::Role::TextInput);
    assert!(filter.is_focused());
    filter.type_text("fire");
    h.run();
    assert_eq!(h.state().model.filter, "fire");
    assert!(
        h.query_by_label("Xorg").is_none(),
        "the grid follows at once"
    );
    h.get_by_label("firefox");
}
