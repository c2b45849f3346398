//! The source's part of the Apps view: while the view is shown, each tick also yields the apps
//! table (from the helper's `GetApps`, or from the embedded collector's grouping), sent only
//! when it changed. The embedded app history is recorded every tick whatever the view, so an
//! app's plot has history from before the click.

use memmon_common::{
    apps::{AppSortKey, AppsSnapshot},
    snapshot::Snapshot,
};
use memmon_helper::{
    Collector,
    apps::{self, Apps, Mounts, desktop},
    client::{ClientError, HelperClient},
    dbus::MAX_LIMIT,
};

use super::Update;

/// Apps the table shows at most (the source ranks all of them by the view's column).
pub const APPS_TOP_N: u32 = 500;

/// What the Apps view asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct AppsView {
    pub key: AppSortKey,
    pub descending: bool,
    pub limit: u32,
    /// Apps whose processes are listed (at most `MAX_EXPANDED_APPS`).
    pub expanded: Vec<String>,
}

/// The embedded collector, grouping apps with the user's own desktop entries too (the user's
/// `~/.local/share/applications` names the apps they installed themselves).
pub fn embedded_collector() -> Collector {
    let dirs = [desktop::user_dirs(), desktop::system_dirs()].concat();
    Collector::embedded("reading /proc as this user, without eBPF")
        .with_apps(Apps::with(Mounts::discover(), dirs))
}

#[derive(Default)]
pub struct AppsFeed {
    /// `None` outside the Apps view: no apps are fetched.
    view: Option<AppsView>,
    /// The user's own desktop entries (loaded at the first table from the helper, which reads
    /// only the system's): names and icons for apps the user installed.
    user_entries: Option<desktop::DesktopIndex>,
    /// The last table sent, to skip identical ones.
    last_sent: Option<AppsSnapshot>,
    /// The table of this tick, sent after the process snapshot.
    pending: Option<Update>,
}

impl AppsFeed {
    /// A new view (or none); the next table is always sent.
    pub fn set_view(&mut self, view: Option<AppsView>) {
        self.view = view;
        self.last_sent = None;
    }

    /// This tick's table from the helper.
    pub fn fetch_from_helper(&mut self, rt: &tokio::runtime::Runtime, client: &HelperClient) {
        let Some(view) = &self.view else { return };
        let expanded: Vec<&str> = view.expanded.iter().map(String::as_str).collect();
        let limit = view.limit.clamp(1, MAX_LIMIT);
        self.pending = Some(
            match rt.block_on(client.apps(view.key, view.descending, limit, &expanded)) {
                Ok(mut table) => {
                    let entries = self
                        .user_entries
                        .get_or_insert_with(|| desktop::DesktopIndex::load(&desktop::user_dirs()));
                    name_from_user_entries(entries, &mut table);
                    Update::Apps(Box::new(table))
                }
                Err(ClientError::Unavailable(why)) => {
                    Update::AppsError(format!("the helper is busy: {why}"))
                }
                Err(e) => Update::AppsError(format!("the helper cannot list apps: {e}")),
            },
        );
    }

    /// This tick's table from the embedded collector (`full` has every process).
    pub fn take_from_embedded(&mut self, all: &Apps, full: &Snapshot) {
        let Some(view) = &self.view else { return };
        let table = apps::view(
            &all.snapshot(),
            full,
            view.key,
            view.descending,
            view.limit,
            &view.expanded,
        );
        self.pending = Some(Update::Apps(Box::new(table)));
    }

    /// The table to send after this tick, if it is news (only its times differ otherwise).
    pub fn take_news(&mut self) -> Option<Update> {
        let update = self.pending.take()?;
        if let Update::Apps(table) = &update {
            let same = self.last_sent.as_ref().is_some_and(|last| {
                last.apps == table.apps
                    && last.app_count == table.app_count
                    && last.process_count == table.process_count
                    && last.grouping == table.grouping
            });
            if same {
                return None;
            }
            self.last_sent = Some((**table).clone());
        } else {
            self.last_sent = None;
        }
        Some(update)
    }
}

/// Names and icons from the user's own desktop entries for the apps the helper found no entry
/// for (their name is then their app id).
pub fn name_from_user_entries(entries: &desktop::DesktopIndex, table: &mut AppsSnapshot) {
    for row in table.apps.iter_mut().filter(|r| r.icon.is_none()) {
        let Some(kind) = row.kind else { continue };
        if let Some(entry) = entries.find(kind, &row.name) {
            row.name.clone_from(&entry.name);
            row.icon.clone_from(&entry.icon);
        }
    }
}

#[cfg(test)]
mod tests {
    use memmon_common::apps::AppRow;

    use super::*;

    #[test]
    fn apps_the_helper_could_not_name_get_the_users_own_desktop_entries() {
        let dir = std::env::temp_dir().join(format!("memmon-user-apps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(
            dir.join("org.example.Mine.desktop"),
            "[Desktop Entry]\nType=Application\nName=My Tool\nIcon=my-tool\nExec=mine\n",
        )
        .expect("write");
        let entries = desktop::DesktopIndex::load(std::slice::from_ref(&dir));
        let _ = std::fs::remove_dir_all(&dir);
        let row = |id: &str, name: &str, icon: Option<&str>| AppRow {
            id: id.into(),
            kind: Some(memmon_common::apps::AppKind::Flatpak),
            name: name.into(),
            icon: icon.map(Into::into),
            ..AppRow::default()
        };
        let mut table = AppsSnapshot {
            apps: vec![
                row("u1000/flatpak:org.example.Mine", "org.example.Mine", None),
                row("u1000/flatpak:org.other.App", "Other", Some("other")),
                row("u1000/flatpak:org.unknown", "org.unknown", None),
            ],
            ..AppsSnapshot::default()
        };
        name_from_user_entries(&entries, &mut table);
        let names: Vec<(&str, Option<&str>)> = table
            .apps
            .iter()
            .map(|r| (r.name.as_str(), r.icon.as_deref()))
            .collect();
        assert_eq!(
            names,
            [
                ("My Tool", Some("my-tool")),
                ("Other", Some("other")),
                ("org.unknown", None)
            ]
        );
    }

    fn table(memory_kb: u64, taken_at_unix_ms: u64) -> Update {
        Update::Apps(Box::new(AppsSnapshot {
            taken_at_unix_ms,
            app_count: 1,
            apps: vec![AppRow {
                id: "app:x".into(),
                rss_sum_kb: memory_kb,
                ..AppRow::default()
            }],
            ..AppsSnapshot::default()
        }))
    }

    #[test]
    fn only_changed_tables_are_sent_and_a_new_view_always_is() {
        let mut feed = AppsFeed::default();
        assert!(feed.take_news().is_none(), "nothing this tick");
        feed.pending = Some(table(1, 1));
        assert!(feed.take_news().is_some());
        feed.pending = Some(table(1, 2));
        assert!(feed.take_news().is_none(), "only the time differs");
        feed.pending = Some(table(2, 3));
        assert!(feed.take_news().is_some());
        feed.set_view(None);
        feed.pending = Some(table(2, 4));
        assert!(feed.take_news().is_some(), "a new view is always news");
        feed.pending = Some(Update::AppsError("busy".into()));
        assert!(feed.take_news().is_some());
        feed.pending = Some(table(2, 5));
        assert!(
            feed.take_news().is_some(),
            "the table after an error is news"
        );
    }
}
