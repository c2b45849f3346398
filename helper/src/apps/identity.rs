//! Which app a process belongs to, from the cgroup path systemd put it in.
//!
//! Unit names follow systemd's conventions for desktops (systemd.io/DESKTOP_ENVIRONMENTS):
//! `app[-<launcher>]-<ApplicationID>-<RANDOM>.scope`, `app[-<launcher>]-<ApplicationID>[@<RANDOM>].service`
//! and `app-<ApplicationID>.slice`, with `-` inside the id escaped as `\x2d`; Flatpak uses the
//! `flatpak` launcher; snapd starts `snap.<snap>.<app>-<uuid>.scope`; logind puts logins in
//! `session-<N>.scope`; services are `<name>.service`. The path is walked from the leaf up and the
//! first component that names an app wins, so a terminal's shell in
//! `app-org.gnome.Terminal.slice/vte-spawn-….scope` belongs to the terminal.
//!
//! Everything here is pure: a hostile cgroup name (users create cgroups below their own
//! `user@.service`) can only mislabel that user's own processes, never cause a read outside
//! the cgroup mount (see [`CgroupPaths::parse`]).

use memmon_common::{apps::AppKind, text::escape_name};

/// The paths of `/proc/<pid>/cgroup` that memmon uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupPaths {
    /// The v1 `name=systemd` hierarchy (hybrid and legacy systemd setups).
    pub systemd_v1: Option<String>,
    /// The cgroup2 hierarchy (`0::`).
    pub unified: Option<String>,
    /// The v1 `memory` controller's hierarchy.
    pub memory_v1: Option<String>,
}

/// Lines longer than this, or files with more lines, are not a kernel's `/proc/<pid>/cgroup`.
const MAX_LINES: usize = 64;
const MAX_PATH: usize = 4096;

impl CgroupPaths {
    /// Parses `/proc/<pid>/cgroup` (`ID:controllers:path` per line).
    ///
    /// The kernel prints hierarchies in descending ID order, ending with `0::`. A cgroup name may
    /// contain a newline, which could fake further lines; so lines must keep descending and the
    /// first one that does not ends the parse. Paths must be absolute, without `.` or `..`
    /// components, so joining them to a mount point stays inside it.
    pub fn parse(text: &str) -> CgroupPaths {
        let mut paths = CgroupPaths::default();
        let mut previous_id: Option<u32> = None;
        for line in text.lines().take(MAX_LINES) {
            let mut fields = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                break;
            };
            let Ok(id) = id.parse::<u32>() else { break };
            if previous_id.is_some_and(|p| id >= p) {
                break;
            }
            previous_id = Some(id);
            if !is_clean_path(path) {
                continue;
            }
            let path = Some(path.to_owned());
            if id == 0 && controllers.is_empty() {
                paths.unified = path;
            } else if controllers.split(',').any(|c| c == "name=systemd") {
                paths.systemd_v1 = path;
            } else if controllers.split(',').any(|c| c == "memory") {
                paths.memory_v1 = path;
            }
        }
        paths
    }

    /// The path systemd manages: its own v1 hierarchy on hybrid/legacy systems, else cgroup2.
    pub fn systemd(&self) -> Option<&str> {
        self.systemd_v1.as_deref().or(self.unified.as_deref())
    }
}

fn is_clean_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() <= MAX_PATH
        && !path.split('/').any(|c| c == "." || c == "..")
        && !path.contains('\0')
}

/// An app recognised from a cgroup path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub kind: AppKind,
    /// The stable key ([`memmon_common::apps::AppRow::id`]).
    pub key: String,
    /// The decoded application id / unit name (escaped for display).
    pub app_id: String,
    /// The unit component, as in the path.
    pub unit: String,
    /// The path up to and including the unit: the app's own cgroup.
    pub unit_path: String,
    /// The user whose slice the unit is in (`user-UID.slice`).
    pub uid: Option<u32>,
}

/// Launchers that prefix the application id in `app-<launcher>-<id>` unit names.
const LAUNCHERS: &[&str] = &[
    "gnome",
    "kde",
    "flatpak",
    "dbus",
    "xfce",
    "cosmic",
    "lxqt",
    "mate",
    "cinnamon",
    "budgie",
    "sway",
    "hyprland",
    "niri",
    "uwsm",
    "wayfire",
    "river",
    "labwc",
    "systemd",
    "autostart",
];

/// The app a process in cgroup `path` belongs to, or `None` when no unit names one (no systemd,
/// or a process directly in a slice): then the caller falls back to the process tree.
pub fn identify(path: &str) -> Option<Identity> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let uid = components.iter().find_map(|c| {
        c.strip_prefix("user-")?
            .strip_suffix(".slice")?
            .parse::<u32>()
            .ok()
    });
    let manager = components
        .iter()
        .position(|c| c.starts_with("user@") && c.ends_with(".service"));
    let make = |index: usize, kind: AppKind, app_id: String| {
        let app_id = escape_name(app_id.as_bytes());
        let prefix = match kind {
            AppKind::App => "app",
            AppKind::Flatpak => "flatpak",
            AppKind::Snap => "snap",
            AppKind::Session => "session",
            AppKind::UserService => "user-service",
            AppKind::Service => "service",
            AppKind::Container => "container",
            AppKind::ProcessTree => "tree",
        };
        let key = match (uid, kind) {
            (Some(uid), AppKind::App | AppKind::Flatpak | AppKind::Snap | AppKind::UserService) => {
                format!("u{uid}/{prefix}:{app_id}")
            }
            _ => format!("{prefix}:{app_id}"),
        };
        Identity {
            kind,
            key,
            app_id,
            unit: components[index].to_owned(),
            unit_path: format!("/{}", components[..=index].join("/")),
            uid,
        }
    };
    // The leaf-most component that names an app.
    for (index, component) in components.iter().enumerate().rev() {
        if let Some((kind, id)) = named_app(component) {
            return Some(make(index, kind, id));
        }
    }
    // Else the leaf-most service or scope: a service (of the user's manager, or the system's).
    for (index, component) in components.iter().enumerate().rev() {
        let under_manager = manager.is_some_and(|m| index > m);
        let Some(name) = unit_stem(component) else {
            continue;
        };
        if component == &"init.scope" {
            let id = if under_manager {
                "systemd --user".to_owned()
            } else {
                "systemd".to_owned()
            };
            let kind = if under_manager {
                AppKind::UserService
            } else {
                AppKind::Service
            };
            return Some(make(index, kind, id));
        }
        if Some(index) == manager {
            return Some(make(
                index,
                AppKind::UserService,
                "systemd --user".to_owned(),
            ));
        }
        let kind = if under_manager {
            AppKind::UserService
        } else {
            AppKind::Service
        };
        return Some(make(index, kind, service_id(&unescape(name))));
    }
    None
}

/// `name.scope` / `name.service` → `name` (slices are not units processes run in directly).
fn unit_stem(component: &str) -> Option<&str> {
    component
        .strip_suffix(".service")
        .or_else(|| component.strip_suffix(".scope"))
}

/// A unit that names an app by itself: `app-…`, `snap.…`, `session-N.scope`, containers.
fn named_app(component: &str) -> Option<(AppKind, String)> {
    if let Some(rest) = component.strip_prefix("app-") {
        return desktop_app(rest);
    }
    if let Some(rest) = component.strip_prefix("snap.") {
        let stem = unit_stem(rest)?;
        let snap = stem.split('.').next().filter(|s| !s.is_empty())?;
        return Some((AppKind::Snap, unescape(snap)));
    }
    if let Some(n) = component
        .strip_prefix("session-")
        .and_then(|r| r.strip_suffix(".scope"))
    {
        return Some((AppKind::Session, unescape(n)));
    }
    for runtime in ["docker-", "libpod-", "cri-containerd-", "crio-"] {
        if let Some(id) = component
            .strip_prefix(runtime)
            .and_then(|r| r.strip_suffix(".scope"))
            && !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_hexdigit())
        {
            let short = &id[..id.len().min(12)];
            return Some((AppKind::Container, format!("{}{short}", runtime)));
        }
    }
    None
}

/// Decodes what follows `app-`: `[launcher-]id[-random].scope`, `[launcher-]id[@random].service`
/// or `[launcher-]id.slice`.
fn desktop_app(rest: &str) -> Option<(AppKind, String)> {
    let (stem, scope) = if let Some(s) = rest.strip_suffix(".scope") {
        (s, true)
    } else if let Some(s) = rest.strip_suffix(".service") {
        (s.split('@').next().unwrap_or(s), false)
    } else if let Some(s) = rest.strip_suffix(".slice") {
        (s, false)
    } else {
        return None;
    };
    let mut parts: Vec<&str> = stem.split('-').collect();
    if scope
        && parts.len() >= 2
        && parts
            .last()
            .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        parts.pop();
    }
    let mut launcher = None;
    if parts.len() >= 2 && LAUNCHERS.iter().any(|l| l.eq_ignore_ascii_case(parts[0])) {
        launcher = Some(parts.remove(0));
    }
    let id = unescape(&parts.join("-"));
    if id.is_empty() {
        return None;
    }
    let flatpak = launcher.is_some_and(|l| l.eq_ignore_ascii_case("flatpak"));
    let kind = if flatpak {
        AppKind::Flatpak
    } else {
        AppKind::App
    };
    // A D-Bus activated app unit: `app-dbus-:1.2-org.example.App.slice`.
    let id = dbus_name(&id).unwrap_or(id);
    Some((kind, id))
}

/// `dbus-:1.2-org.gnome.Foo` (a D-Bus activated service) → `org.gnome.Foo`.
fn dbus_name(name: &str) -> Option<String> {
    let rest = name.strip_prefix("dbus-:")?;
    let (_, well_known) = rest.split_once('-')?;
    (!well_known.is_empty()).then(|| well_known.to_owned())
}

/// A service's id: `getty@tty1` stays, a D-Bus activated one names its bus name.
fn service_id(name: &str) -> String {
    dbus_name(name).map_or_else(
        || name.to_owned(),
        |n| n.split('@').next().unwrap_or(&n).to_owned(),
    )
}

/// Undoes systemd's unit name escaping (`\xNN`); invalid escapes stay as they are.
pub fn unescape(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && bytes.get(i + 1) == Some(&b'x')
            && let Some(hex) = bytes.get(i + 2..i + 4)
            && let Ok(hex) = std::str::from_utf8(hex)
            && let Ok(value) = u8::from_str_radix(hex, 16)
        {
            out.push(value);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(path: &str) -> Option<(AppKind, String, String)> {
        identify(path).map(|i| (i.kind, i.key, i.unit_path))
    }

    const USER_APPS: &str = "/user.slice/user-1000.slice/user@1000.service/app.slice";

    #[test]
    fn desktop_app_scopes_and_services_decode_to_their_application_id() {
        let cases = [
            (
                "app-gnome-org.gnome.Nautilus-4242.scope",
                AppKind::App,
                "org.gnome.Nautilus",
            ),
            (
                "app-org.kde.konsole-1234.scope",
                AppKind::App,
                "org.kde.konsole",
            ),
            (
                "app-KDE-org.kde.okular@12345.service",
                AppKind::App,
                "org.kde.okular",
            ),
            (
                "app-gnome-firefox\\x2desr-3456.scope",
                AppKind::App,
                "firefox-esr",
            ),
            (
                "app-gnome-firefox-esr-3456.scope",
                AppKind::App,
                "firefox-esr",
            ),
            (
                "app-org.gnome.Terminal.slice",
                AppKind::App,
                "org.gnome.Terminal",
            ),
            (
                "app-flatpak-org.mozilla.firefox-12345.scope",
                AppKind::Flatpak,
                "org.mozilla.firefox",
            ),
            (
                "app-flatpak-org.telegram.desktop@12345.service",
                AppKind::Flatpak,
                "org.telegram.desktop",
            ),
            (
                "app-dbus\\x2d:1.2\\x2dorg.gnome.Nautilus.slice",
                AppKind::App,
                "org.gnome.Nautilus",
            ),
        ];
        for (unit, kind, app) in cases {
            let got = identify(&format!("{USER_APPS}/{unit}")).expect(unit);
            assert_eq!((got.kind, got.app_id.as_str()), (kind, app), "{unit}");
            assert_eq!(got.uid, Some(1000));
            assert_eq!(got.unit, unit);
            assert_eq!(got.unit_path, format!("{USER_APPS}/{unit}"));
        }
        let nautilus = identify(&format!(
            "{USER_APPS}/app-gnome-org.gnome.Nautilus-4242.scope"
        ));
        assert_eq!(
            nautilus.map(|i| i.key).as_deref(),
            Some("u1000/app:org.gnome.Nautilus")
        );
    }

    #[test]
    fn a_scope_below_an_app_slice_belongs_to_the_app() {
        let path = format!("{USER_APPS}/app-org.gnome.Terminal.slice/vte-spawn-5b1c.scope");
        let got = id(&path).expect("terminal");
        assert_eq!(got.0, AppKind::App);
        assert_eq!(got.1, "u1000/app:org.gnome.Terminal");
        assert_eq!(got.2, format!("{USER_APPS}/app-org.gnome.Terminal.slice"));
    }

    #[test]
    fn snaps_sessions_services_and_containers() {
        let snap = id(
            "/user.slice/user-1000.slice/user@1000.service/app.slice/snap.firefox.firefox-7d2e0c44-98a4-4b3c.scope",
        );
        assert_eq!(
            snap.map(|s| (s.0, s.1)),
            Some((AppKind::Snap, "u1000/snap:firefox".into()))
        );
        assert_eq!(
            id("/system.slice/snap.lxd.daemon.service").map(|s| s.1),
            Some("snap:lxd".into())
        );
        assert_eq!(
            id("/user.slice/user-1000.slice/session-3.scope"),
            Some((
                AppKind::Session,
                "session:3".into(),
                "/user.slice/user-1000.slice/session-3.scope".into()
            ))
        );
        assert_eq!(
            id("/system.slice/ssh.service").map(|s| (s.0, s.1)),
            Some((AppKind::Service, "service:ssh".into()))
        );
        assert_eq!(
            id("/system.slice/system-getty.slice/getty@tty1.service").map(|s| s.1),
            Some("service:getty@tty1".into())
        );
        assert_eq!(
            id("/init.scope").map(|s| s.1),
            Some("service:systemd".into())
        );
        assert_eq!(
            id("/user.slice/user-1000.slice/user@1000.service/session.slice/pipewire.service")
                .map(|s| (s.0, s.1)),
            Some((AppKind::UserService, "u1000/user-service:pipewire".into()))
        );
        assert_eq!(
            id("/user.slice/user-1000.slice/user@1000.service/init.scope").map(|s| s.1),
            Some("u1000/user-service:systemd --user".into())
        );
        assert_eq!(
            id("/user.slice/user-1000.slice/user@1000.service/session.slice/dbus\\x2d:1.2\\x2dorg.gnome.Shell.CalendarServer@0.service").map(|s| s.1),
            Some("u1000/user-service:org.gnome.Shell.CalendarServer".into())
        );
        let docker = format!("/system.slice/docker-{}.scope", "ab12".repeat(16));
        assert_eq!(
            id(&docker).map(|s| (s.0, s.1)),
            Some((AppKind::Container, "container:docker-ab12ab12ab12".into()))
        );
    }

    #[test]
    fn no_unit_means_no_identity() {
        assert_eq!(id("/"), None);
        assert_eq!(id("/user.slice/user-1000.slice"), None);
        assert_eq!(id("/process_api/b47037d36faaee2e4b2e3c132a486061"), None);
    }

    #[test]
    fn hostile_names_are_escaped_and_paths_cannot_leave_the_mount() {
        let got = identify(&format!("{USER_APPS}/app-gnome-evil\\x1b[31m-12.scope")).expect("app");
        assert_eq!(got.app_id, "evil\\x1b[31m");
        let text =
            "9:name=systemd:/user.slice/a\n0::/system.slice/ssh.service\n4:memory:/x\n0::/real\n";
        let paths = CgroupPaths::parse(text);
        assert_eq!(paths.systemd_v1.as_deref(), Some("/user.slice/a"));
        assert_eq!(paths.unified.as_deref(), Some("/system.slice/ssh.service"));
        assert_eq!(
            paths.memory_v1, None,
            "lines after the descent broke are ignored"
        );
        let dots = CgroupPaths::parse("4:memory:/a/../../etc\n0::/b/./c\n");
        assert_eq!(dots, CgroupPaths::default());
    }

    #[test]
    fn proc_cgroup_files_of_each_layout_parse() {
        let hybrid = "12:memory:/user.slice/user-1000.slice\n1:name=systemd:/user.slice/user-1000.slice/session-2.scope\n0::/user.slice/user-1000.slice/session-2.scope\n";
        let p = CgroupPaths::parse(hybrid);
        assert_eq!(p.memory_v1.as_deref(), Some("/user.slice/user-1000.slice"));
        assert_eq!(
            p.systemd(),
            Some("/user.slice/user-1000.slice/session-2.scope")
        );
        let unified = CgroupPaths::parse("0::/system.slice/cron.service\n");
        assert_eq!(unified.systemd(), Some("/system.slice/cron.service"));
        assert_eq!(unified.memory_v1, None);
        let machine = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/b47\n1:cpu:/\n0::/\n";
        let m = CgroupPaths::parse(machine);
        assert_eq!(
            (m.systemd(), m.memory_v1.as_deref()),
            (Some("/"), Some("/process_api/b47"))
        );
        assert_eq!(unescape("a\\x2db\\xZZ\\x"), "a-b\\xZZ\\x");
    }
}
