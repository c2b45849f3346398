//! App names and icons from desktop entries (`freedesktop-desktop-entry`, the parser COSMIC uses).
//!
//! The helper reads the system's application directories (packages, Flatpak's and snapd's
//! exports); the GUI, which runs as the user, adds the user's own (`~/.local/share/applications`
//! and the user's Flatpak exports) through [`DesktopIndex::load`] with its XDG directories.
//! Bounded: at most [`MAX_ENTRIES`] files of at most [`MAX_FILE_BYTES`] each are read, once.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use freedesktop_desktop_entry::{DesktopEntry, Iter};
use memmon_common::{apps::AppKind, text::escape_name};

pub const MAX_ENTRIES: usize = 8_192;
pub const MAX_FILE_BYTES: u64 = 256 * 1024;

/// What a desktop entry says about an app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub icon: Option<String>,
}

/// Desktop entries by lower-case desktop file id (and by `StartupWMClass`, and snap name).
#[derive(Clone, Debug, Default)]
pub struct DesktopIndex {
    by_id: HashMap<String, Entry>,
}

/// The system-wide application directories.
pub fn system_dirs() -> Vec<PathBuf> {
    let data_dirs = std::env::var("XDG_DATA_DIRS")
        .ok()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/usr/local/share:/usr/share".to_owned());
    let mut dirs: Vec<PathBuf> = data_dirs
        .split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| Path::new(d).join("applications"))
        .collect();
    dirs.push("/var/lib/flatpak/exports/share/applications".into());
    dirs.push("/var/lib/snapd/desktop/applications".into());
    dirs
}

/// The user's own directories (for the GUI, which runs as the user).
pub fn user_dirs() -> Vec<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home.as_ref().map(|h| h.join(".local/share")));
    data_home
        .into_iter()
        .flat_map(|d| {
            [
                d.join("applications"),
                d.join("flatpak/exports/share/applications"),
            ]
        })
        .collect()
}

/// The modification time of each directory (`None`: missing): it changes when an entry is
/// added, removed or renamed in it, which is how packages, Flatpak and snapd install them.
pub fn dirs_stamp(dirs: &[PathBuf]) -> Vec<Option<std::time::SystemTime>> {
    dirs.iter()
        .map(|d| std::fs::metadata(d).and_then(|m| m.modified()).ok())
        .collect()
}

impl DesktopIndex {
    /// Reads every `.desktop` file below `dirs` (earlier directories win, as in XDG lookup).
    pub fn load(dirs: &[PathBuf]) -> DesktopIndex {
        let mut index = DesktopIndex::default();
        let no_locales: Option<&[&str]> = None;
        for path in Iter::new(dirs.iter().cloned()).take(MAX_ENTRIES) {
            if path.extension().is_none_or(|e| e != "desktop")
                || std::fs::metadata(&path).map_or(true, |m| m.len() > MAX_FILE_BYTES)
            {
                continue;
            }
            let Ok(entry) = DesktopEntry::from_path(path.clone(), no_locales) else {
                continue;
            };
            index.add(&path, &entry);
        }
        index
    }

    fn add(&mut self, path: &Path, entry: &DesktopEntry) {
        let no_locales: &[&str] = &[];
        let Some(name) = entry.name(no_locales) else {
            return;
        };
        let value = Entry {
            name: escape_name(name.trim().as_bytes()),
            icon: entry.icon().map(|i| escape_name(i.as_bytes())),
        };
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            return;
        };
        let mut keys = vec![stem.to_lowercase()];
        if let Some(class) = entry.startup_wm_class() {
            keys.push(class.to_lowercase());
        }
        // snapd exports `<snap>_<app>.desktop`.
        if path.starts_with("/var/lib/snapd")
            && let Some((snap, _)) = stem.split_once('_')
        {
            keys.push(format!("snap:{}", snap.to_lowercase()));
        }
        for key in keys {
            self.by_id.entry(key).or_insert_with(|| value.clone());
        }
    }

    /// The entry for an app of `kind` with decoded id `app_id`.
    pub fn find(&self, kind: AppKind, app_id: &str) -> Option<&Entry> {
        let id = app_id.to_lowercase();
        match kind {
            AppKind::Snap => self
                .by_id
                .get(&format!("snap:{id}"))
                .or_else(|| self.by_id.get(&id)),
            AppKind::App | AppKind::Flatpak => self.by_id.get(&id),
            // Services that are also apps (a D-Bus activated app's service unit).
            AppKind::UserService => self.by_id.get(&id).filter(|_| id.contains('.')),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_found_by_file_id_wm_class_and_snap_name() {
        let dir = std::env::temp_dir().join(format!("memmon-desktop-{}", std::process::id()));
        let apps = dir.join("applications");
        std::fs::create_dir_all(&apps).expect("dir");
        std::fs::write(
            apps.join("org.gnome.Nautilus.desktop"),
            "[Desktop Entry]\nType=Application\nName=Files\nName[de]=Dateien\nIcon=org.gnome.Nautilus\nStartupWMClass=nautilus-wm\nExec=nautilus\n",
        )
        .expect("write");
        std::fs::write(apps.join("broken.desktop"), "not a desktop entry\x00\x01").expect("write");
        std::fs::write(
            apps.join("evil.desktop"),
            "[Desktop Entry]\nType=Application\nName=\x1b[2Jevil\nExec=x\n",
        )
        .expect("write");
        let index = DesktopIndex::load(std::slice::from_ref(&apps));
        let stamp = dirs_stamp(std::slice::from_ref(&apps));
        assert_eq!(
            stamp,
            dirs_stamp(std::slice::from_ref(&apps)),
            "unchanged: no re-read"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(apps.join("new.desktop"), "[Desktop Entry]\nName=New\n").expect("write");
        assert_ne!(
            stamp,
            dirs_stamp(std::slice::from_ref(&apps)),
            "an entry installed"
        );
        let _ = std::fs::remove_dir_all(&dir);
        let files = index
            .find(AppKind::App, "org.gnome.Nautilus")
            .expect("by id");
        assert_eq!(files.name, "Files");
        assert_eq!(files.icon.as_deref(), Some("org.gnome.Nautilus"));
        assert_eq!(
            index
                .find(AppKind::Flatpak, "NAUTILUS-WM")
                .map(|e| e.name.as_str()),
            Some("Files")
        );
        assert_eq!(index.find(AppKind::Service, "org.gnome.Nautilus"), None);
        assert_eq!(
            index.find(AppKind::App, "evil").map(|e| e.name.as_str()),
            Some("\\x1b[2Jevil")
        );
        assert_eq!(index.find(AppKind::App, "broken"), None);
    }
}
