//! The Apps view's data: the latest apps table (kept in the view's sort order, so a header
//! click reorders at once, before the source answers), the apps' histories and which apps list
//! their processes. Plain Rust, driven by [`Model`](super::Model).

use std::collections::HashMap;

use memmon_common::apps::{
    AppHistorySeries, AppKind, AppRow, AppSortKey, AppsSnapshot, MAX_EXPANDED_APPS,
};

#[derive(Debug, Default)]
pub struct AppsModel {
    /// The last apps table the source sent, rows in display order.
    pub snapshot: Option<AppsSnapshot>,
    /// Why the source could not list apps (until the next table).
    pub error: Option<String>,
    pub histories: HashMap<String, AppHistorySeries>,
    /// Apps whose processes the table lists (oldest first, at most [`MAX_EXPANDED_APPS`]).
    pub expanded: Vec<String>,
}

impl AppsModel {
    /// Takes a new table and puts it in the view's order.
    pub fn apply(&mut self, mut snapshot: AppsSnapshot, key: AppSortKey, descending: bool) {
        snapshot.apps.sort_by(|a, b| key.order(descending, a, b));
        self.snapshot = Some(snapshot);
        self.error = None;
    }

    /// Reorders the rows shown now (the source ranks all apps on its next answer).
    pub fn sort(&mut self, key: AppSortKey, descending: bool) {
        if let Some(s) = &mut self.snapshot {
            s.apps.sort_by(|a, b| key.order(descending, a, b));
        }
    }

    /// Shows or hides an app's processes; the oldest expansion goes when too many are open.
    pub fn toggle_expanded(&mut self, id: &str) {
        if let Some(i) = self.expanded.iter().position(|e| e == id) {
            self.expanded.remove(i);
            return;
        }
        if self.expanded.len() == MAX_EXPANDED_APPS {
            self.expanded.remove(0);
        }
        self.expanded.push(id.to_owned());
    }

    pub fn is_expanded(&self, id: &str) -> bool {
        self.expanded.iter().any(|e| e == id)
    }

    /// A newer history of an app, keeping what only the older one had (a restarted helper
    /// starts its history anew).
    pub fn apply_history(&mut self, series: AppHistorySeries) {
        let merged = match self.histories.remove(&series.id) {
            Some(old) => merge_app_history(old, series),
            None => series,
        };
        self.histories.insert(merged.id.clone(), merged);
    }

    /// The app's row in the current table.
    pub fn row(&self, id: &str) -> Option<&AppRow> {
        self.snapshot.as_ref()?.apps.iter().find(|r| r.id == id)
    }

    /// Rows whose name or id contains `filter` (case-insensitive), in display order.
    pub fn visible_rows(&self, filter: &str) -> Vec<&AppRow> {
        let Some(snapshot) = &self.snapshot else {
            return Vec::new();
        };
        let needle = filter.trim().to_lowercase();
        snapshot
            .apps
            .iter()
            .filter(|r| {
                needle.is_empty()
                    || r.name.to_lowercase().contains(&needle)
                    || r.id.to_lowercase().contains(&needle)
            })
            .collect()
    }

    /// An app's name, from its row or its history (else its id).
    pub fn name_of(&self, id: &str) -> String {
        self.row(id)
            .map(|r| r.name.clone())
            .or_else(|| self.histories.get(id).map(|h| h.name.clone()))
            .unwrap_or_else(|| id.to_owned())
    }
}

/// What a reader must know before trusting an app's Memory figure, if anything: the cgroup
/// holds more than the app (the figure is then its processes' RSS sum), or it is a whole
/// login session.
pub fn memory_note(row: &AppRow) -> Option<String> {
    let mut notes = Vec::new();
    if let Some(covers) = &row.memory_covers {
        let whole = row
            .memory
            .map(|m| format!(" ({} in all)", crate::format::kib(m.current_kb)))
            .unwrap_or_default();
        notes.push(format!(
            "Memory is the sum of its processes' RSS: the cgroup the kernel counts it in, \
             {covers}, also holds other processes{whole}."
        ));
    }
    if row.kind == Some(AppKind::Session) {
        notes.push(
            "Its cgroup covers the whole login session: everything started from that \
             terminal or SSH login, not one app."
                .to_owned(),
        );
    }
    (!notes.is_empty()).then(|| notes.join(" "))
}

/// Samples and markers of the older history from before the newer one begins, then the newer.
pub fn merge_app_history(old: AppHistorySeries, mut new: AppHistorySeries) -> AppHistorySeries {
    super::prepend_older(old.samples, &mut new.samples, |s| s.unix_ms);
    super::prepend_older(old.events, &mut new.events, |e| e.unix_ms);
    super::prepend_older(old.spikes, &mut new.spikes, |s| s.unix_ms);
    new
}

#[cfg(test)]
mod tests {
    use memmon_common::apps::{AppEvent, AppEventKind, AppSample, CgroupMemory};

    use super::*;

    fn app(id: &str, memory_kb: u64) -> AppRow {
        AppRow {
            id: id.into(),
            name: id.to_uppercase(),
            rss_sum_kb: memory_kb,
            ..AppRow::default()
        }
    }

    #[test]
    fn a_new_table_and_a_new_sort_order_the_rows_at_once() {
        let mut m = AppsModel::default();
        let snapshot = AppsSnapshot {
            apps: vec![app("b", 10), app("a", 30), app("c", 20)],
            ..AppsSnapshot::default()
        };
        m.apply(snapshot, AppSortKey::Memory, true);
        let ids = |m: &AppsModel| -> Vec<String> {
            m.visible_rows("").iter().map(|r| r.id.clone()).collect()
        };
        assert_eq!(ids(&m), ["a", "c", "b"]);
        m.sort(AppSortKey::Name, false);
        assert_eq!(ids(&m), ["a", "b", "c"]);
        assert_eq!(m.visible_rows("C").len(), 1, "the filter matches names");
    }

    #[test]
    fn expansions_toggle_and_stay_bounded() {
        let mut m = AppsModel::default();
        for i in 0..MAX_EXPANDED_APPS + 3 {
            m.toggle_expanded(&format!("app:{i}"));
        }
        assert_eq!(m.expanded.len(), MAX_EXPANDED_APPS);
        assert!(!m.is_expanded("app:0"), "the oldest expansion went");
        m.toggle_expanded("app:5");
        assert!(!m.is_expanded("app:5"));
    }

    #[test]
    fn a_restarted_helpers_history_keeps_the_older_samples_and_events() {
        let sample = |t| AppSample {
            unix_ms: t,
            memory_kb: t,
            ..AppSample::default()
        };
        let event = |t| AppEvent {
            unix_ms: t,
            kind: AppEventKind::OomKill,
            count: 1,
        };
        let old = AppHistorySeries {
            id: "app:x".into(),
            samples: vec![sample(1), sample(2), sample(3)],
            events: vec![event(2)],
            ..AppHistorySeries::default()
        };
        let new = AppHistorySeries {
            id: "app:x".into(),
            samples: vec![sample(3), sample(4)],
            events: vec![event(4)],
            ..AppHistorySeries::default()
        };
        let mut m = AppsModel::default();
        m.apply_history(old);
        m.apply_history(new);
        let merged = &m.histories["app:x"];
        let times: Vec<u64> = merged.samples.iter().map(|s| s.unix_ms).collect();
        assert_eq!(times, [1, 2, 3, 4]);
        assert_eq!(merged.events, [event(2), event(4)]);
    }

    #[test]
    fn notes_say_when_the_figure_is_not_the_apps_own() {
        assert_eq!(memory_note(&app("a", 1)), None);
        let shared = AppRow {
            memory_covers: Some("/user.slice".into()),
            memory: Some(CgroupMemory {
                current_kb: 2048,
                ..CgroupMemory::default()
            }),
            ..app("b", 1)
        };
        let note = memory_note(&shared).expect("a note");
        assert!(note.contains("sum of its processes' RSS"), "{note}");
        assert!(note.contains("/user.slice") && note.contains("2.0 MiB in all"));
        let session = AppRow {
            kind: Some(AppKind::Session),
            ..app("session:3", 1)
        };
        let note = memory_note(&session).expect("a note");
        assert!(note.contains("whole login session"), "{note}");
    }
}
