//! Apps: every process grouped into the app it belongs to, with the kernel's accounting of the
//! app's cgroup — in the collector library, so the helper, the CLI, D-Bus and the GUI's embedded
//! mode all have it.
//!
//! **Grouping.** A process's cgroup (`/proc/<pid>/cgroup`) names its systemd unit
//! ([`identity`]). It is read when the process is first seen, every tick for its first
//! [`YOUNG_TICKS`] ticks (desktops move a new process into its app's scope just after it
//! starts), then every [`RECHECK_TICKS`] ticks, staggered by PID. So a process that changes
//! cgroup is regrouped within one tick while young and within [`RECHECK_TICKS`] ticks later.
//! Where no unit names an app (no systemd), processes group under their top ancestor process
//! (the one just below PID 1), recomputed every tick from the parent PIDs.
//!
//! **Memory.** For each app's cgroup, the memory controller's own counters ([`cgroupfs`]):
//! `current` every tick while the app's RSS moves and at least every [`CURRENT_TICKS`]; the rest (stat, events, limits, swap, peak, pressure) stalest first
//! within [`DETAIL_BUDGET_PERCENT`] % of the tick's scan time, and at least every
//! [`DETAIL_TICKS`] ticks; all through files kept open. So the cost stays a bounded share of the
//! scan however many apps there are. Where the memory controller's cgroup of a
//! process is not the unit's own (a controller mounted coarser than the systemd tree), the figure
//! is labelled with the cgroup it covers and the app's headline falls back to its RSS sum.
//!
//! Bounds: at most [`MAX_CGROUPS`] cgroups have open files (10 each at most); apps beyond that
//! show sums only. Per-process state is one small record, dropped when the process exits.

mod cgroupfs;
pub mod desktop;
pub mod identity;
pub mod report;

use std::{
    collections::{BTreeSet, HashMap},
    path::PathBuf,
    sync::Arc,
    time::Instant,
};

use memmon_common::{
    apps::{
        AppEvent, AppEventKind, AppKind, AppRow, AppSortKey, AppsSnapshot, CgroupMemory,
        CgroupVersion, MAX_EXPANDED_PROCESSES, MemoryEvents, top_apps,
    },
    process_key::ProcessKey,
    snapshot::{AllocStats, ProcessRow, Snapshot, SortKey, top_by},
};

use cgroupfs::MemoryFiles;
pub use cgroupfs::{Mount, Mounts};
use desktop::DesktopIndex;
use identity::{CgroupPaths, Identity};

use crate::trends::SeriesTrend;

/// A new process's cgroup is re-read every tick for this many ticks.
pub const YOUNG_TICKS: u64 = 5;
/// Then every this many ticks.
pub const RECHECK_TICKS: u64 = 120;
/// A cgroup's `current` is re-read every tick while its app's processes' RSS moves, and at
/// least every this many ticks (page cache or kernel memory can grow with RSS still).
pub const CURRENT_TICKS: u64 = 5;
/// A cgroup's detailed counters (stat, events, limits, swap, peak, pressure) are re-read within
/// this many ticks at the latest; sooner while the tick's budget allows (`current` every tick).
pub const DETAIL_TICKS: u64 = 30;
/// The share of the tick's /proc scan time the detailed reads may take (at least
/// [`MIN_DETAIL_BUDGET_US`]): the stalest cgroups are read first until it is spent.
pub const DETAIL_BUDGET_PERCENT: u64 = 2;
/// ... but no more often than every this many ticks.
pub const MIN_DETAIL_TICKS: u64 = 5;
pub const MIN_DETAIL_BUDGET_US: u64 = 40;
/// Cgroups whose memory files are kept open.
pub const MAX_CGROUPS: usize = 256;
/// Desktop entries are re-read at most this often when an app has none, and at least this
/// often times ten.
const DESKTOP_RELOAD_MS: u64 = 60_000;

/// Where an app's memory figure comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct MemorySource {
    dir: PathBuf,
    version: CgroupVersion,
    /// The cgroup path when it is not the app's own.
    covers: Option<String>,
    /// `memory.pressure` elsewhere (the cgroup2 mirror on a hybrid system).
    pressure: Option<PathBuf>,
}

/// What one `/proc/<pid>/cgroup` content means; shared by every process with that content.
#[derive(Debug)]
struct Grouping {
    key: Arc<str>,
    identity: Identity,
    memory: Option<MemorySource>,
}

struct Member {
    start_time: u64,
    first_tick: u64,
    seen_tick: u64,
    next_check: u64,
    /// `None`: no unit names an app (grouped by process tree).
    grouping: Option<Arc<Grouping>>,
}

/// A fast hasher (FxHash's mixing) for the per-tick maps, keyed by PIDs and by app ids: a PID
/// cannot be chosen, and an app id only by naming a cgroup, where a flood of colliding names
/// could slow one user's own apps' sums, bounded by the processes they run (the map keyed by
/// whole cgroup file contents, looked up far less often, keeps SipHash).
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

type FxMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

/// Distinct `/proc/<pid>/cgroup` contents remembered (a desktop has a few hundred).
const MAX_INTERNED: usize = 4_096;

struct CgroupState {
    files: MemoryFiles,
    memory: CgroupMemory,
    seen_tick: u64,
    /// The tick of the last detailed read (0: never).
    detailed_tick: u64,
    /// The tick `current` was last read, and the app's RSS sum then.
    current_tick: u64,
    rss_kb: u64,
}

struct AppState {
    /// Made at the app's first row.
    trend: Option<SeriesTrend>,
    events: Option<MemoryEvents>,
    seen_tick: u64,
    /// The app's one own cgroup, read once more when its last process is gone: an OOM kill of
    /// that process shows in the cgroup's counters only after it vanished.
    own: Option<Arc<Grouping>>,
    /// The desktop entry's name and icon, with the generation of the index they came from.
    entry: Option<(u64, String, Option<String>)>,
}

pub struct Apps {
    mounts: Mounts,
    desktop: DesktopIndex,
    desktop_dirs: Vec<PathBuf>,
    desktop_loaded_ms: Option<u64>,
    /// The directories' modification times when the entries were read.
    desktop_stamp: Vec<Option<std::time::SystemTime>>,
    members: FxMap<u32, Member>,
    /// `/proc/<pid>/cgroup` contents already decoded, so most processes cost a lookup.
    interned: HashMap<Vec<u8>, Option<Arc<Grouping>>>,
    cgroups: HashMap<PathBuf, CgroupState>,
    states: FxMap<Arc<str>, AppState>,
    /// Bumped at every reload of the desktop entries.
    desktop_generation: u64,
    tick: u64,
    /// `/proc/<pid>/cgroup` contents.
    buf: Vec<u8>,
    /// Cgroup memory files (kept at its length: see `cgroupfs`).
    file_buf: Vec<u8>,
    rows: Vec<AppRow>,
    events: Vec<(String, AppEvent)>,
    grouping_us: u64,
    /// The last tick's parts, µs: memberships (cgroup re-reads), sums, cgroup reads, rows.
    phases: [u64; 4],
    process_count: u32,
    taken_at_unix_ms: u64,
    tree_fallback: bool,
}

/// Per-app sums while a tick is aggregated.
struct Acc {
    key: Arc<str>,
    kind: AppKind,
    /// The unit's app id, or the top ancestor's name.
    app_id: Arc<str>,
    unit: Arc<str>,
    process_count: u32,
    rss_kb: u64,
    swap_kb: u64,
    alloc: Option<AllocStats>,
    /// The distinct groupings (cgroups) of its processes that have a memory source.
    sources: Vec<Arc<Grouping>>,
}

impl Default for Apps {
    fn default() -> Self {
        Apps::new()
    }
}

impl Apps {
    /// Grouping with this machine's cgroup mounts and the system's desktop entries.
    pub fn new() -> Apps {
        Apps::with(Mounts::discover(), desktop::system_dirs())
    }

    /// Grouping with the given mounts and desktop entry directories (the GUI adds the user's).
    pub fn with(mounts: Mounts, desktop_dirs: Vec<PathBuf>) -> Apps {
        Apps {
            mounts,
            desktop: DesktopIndex::default(),
            desktop_dirs,
            desktop_loaded_ms: None,
            desktop_stamp: Vec::new(),
            members: FxMap::default(),
            interned: HashMap::new(),
            cgroups: HashMap::new(),
            states: FxMap::default(),
            desktop_generation: 0,
            tick: 0,
            buf: Vec::with_capacity(4 * 1024),
            file_buf: Vec::new(),
            rows: Vec::new(),
            events: Vec::new(),
            grouping_us: 0,
            phases: [0; 4],
            process_count: 0,
            taken_at_unix_ms: 0,
            tree_fallback: false,
        }
    }

    /// One tick over **all** processes: sets each row's `app` and computes every app's row.
    /// `read_cgroup` reads `/proc/<pid>/cgroup` of that exact process into the buffer;
    /// `scan_us` is what this tick's /proc scan took (the detailed cgroup reads get a share).
    pub fn update(
        &mut self,
        now_ms: u64,
        rows: &mut [ProcessRow],
        read_cgroup: &mut dyn FnMut(ProcessKey, &mut Vec<u8>) -> bool,
        scan_us: u64,
    ) {
        let detail_budget = std::time::Duration::from_micros(
            (scan_us * DETAIL_BUDGET_PERCENT / 100).max(MIN_DETAIL_BUDGET_US),
        );
        let started = Instant::now();
        self.tick += 1;
        self.taken_at_unix_ms = now_ms;
        self.reload_desktop_entries(now_ms, false);
        self.refresh_members(rows, read_cgroup);
        let members = Instant::now();
        let accs = self.aggregate(rows);
        let aggregated = Instant::now();
        self.read_cgroups(&accs, detail_budget);
        let read = Instant::now();
        self.build_rows(now_ms, accs);
        let us = |a: Instant, b: Instant| b.duration_since(a).as_micros() as u64;
        self.phases = [
            us(started, members),
            us(members, aggregated),
            us(aggregated, read),
            us(read, Instant::now()),
        ];
        self.grouping_us = started.elapsed().as_micros() as u64;
    }

    fn refresh_members(
        &mut self,
        rows: &[ProcessRow],
        read_cgroup: &mut dyn FnMut(ProcessKey, &mut Vec<u8>) -> bool,
    ) {
        let tick = self.tick;
        for row in rows.iter().filter(|r| r.rss_kb.is_some()) {
            let member = self.members.entry(row.pid).or_insert(Member {
                start_time: row.start_time,
                first_tick: tick,
                seen_tick: tick,
                next_check: tick,
                grouping: None,
            });
            if member.start_time != row.start_time {
                *member = Member {
                    start_time: row.start_time,
                    first_tick: tick,
                    seen_tick: tick,
                    next_check: tick,
                    grouping: None,
                };
            }
            member.seen_tick = tick;
            if tick < member.next_check {
                continue;
            }
            let age = tick - member.first_tick;
            member.next_check = if age + 1 < YOUNG_TICKS {
                tick + 1
            } else {
                // Staggered by PID so the re-reads spread over the ticks.
                tick + RECHECK_TICKS - (u64::from(row.pid) + tick) % (RECHECK_TICKS / 4)
            };
            if !read_cgroup(row.key(), &mut self.buf) {
                continue; // exited: it leaves `members` next tick
            }
            if let Some(known) = self.interned.get(&self.buf) {
                member.grouping = known.clone();
                continue;
            }
            let paths = CgroupPaths::parse(&String::from_utf8_lossy(&self.buf));
            let grouping = paths
                .systemd()
                .and_then(identity::identify)
                .map(|identity| {
                    let memory = memory_source(&self.mounts, &paths, &identity);
                    Arc::new(Grouping {
                        key: Arc::from(identity.key.as_str()),
                        identity,
                        memory,
                    })
                });
            if self.interned.len() >= MAX_INTERNED {
                self.interned.clear();
            }
            self.interned.insert(self.buf.clone(), grouping.clone());
            member.grouping = grouping;
        }
        self.members.retain(|_, m| m.seen_tick == tick);
    }

    /// Sums per app, and sets each row's `app`.
    fn aggregate(&mut self, rows: &mut [ProcessRow]) -> FxMap<Arc<str>, Acc> {
        let mut accs: FxMap<Arc<str>, Acc> = FxMap::default();
        let needs_tree = rows.iter().any(|r| {
            r.rss_kb.is_some()
                && self
                    .members
                    .get(&r.pid)
                    .is_some_and(|m| m.grouping.is_none())
        });
        self.tree_fallback = needs_tree;
        let by_pid: HashMap<u32, usize> = if needs_tree {
            rows.iter()
                .enumerate()
                .filter(|(_, r)| r.rss_kb.is_some())
                .map(|(i, r)| (r.pid, i))
                .collect()
        } else {
            HashMap::new()
        };
        // Tree keys by top ancestor (row index), made once per tick and ancestor.
        let mut tree_keys: HashMap<usize, (Arc<str>, Arc<str>)> = HashMap::new();
        let no_unit: Arc<str> = Arc::from("");
        let mut count = 0;
        for i in 0..rows.len() {
            let Some(rss_kb) = rows[i].rss_kb else {
                continue;
            };
            count += 1;
            let grouping = self
                .members
                .get(&rows[i].pid)
                .and_then(|m| m.grouping.clone());
            let key = match &grouping {
                Some(g) => Arc::clone(&g.key),
                None => {
                    let top = top_ancestor(i, rows, &by_pid);
                    let (key, _) = tree_keys.entry(top).or_insert_with(|| {
                        let t = &rows[top];
                        (
                            Arc::from(format!("tree:{}@{}", t.pid, t.start_time)),
                            Arc::from(t.name.as_str()),
                        )
                    });
                    Arc::clone(key)
                }
            };
            let acc = accs
                .entry(Arc::clone(&key))
                .or_insert_with(|| match &grouping {
                    Some(g) => Acc {
                        key: Arc::clone(&key),
                        kind: g.identity.kind,
                        app_id: Arc::from(g.identity.app_id.as_str()),
                        unit: Arc::from(g.identity.unit.as_str()),
                        ..Acc::empty(&no_unit)
                    },
                    None => {
                        let name = tree_keys
                            .values()
                            .find(|(k, _)| *k == key)
                            .map_or_else(|| Arc::clone(&no_unit), |(_, n)| Arc::clone(n));
                        Acc {
                            key: Arc::clone(&key),
                            app_id: name,
                            ..Acc::empty(&no_unit)
                        }
                    }
                });
            let row = &rows[i];
            acc.process_count += 1;
            acc.rss_kb += rss_kb;
            acc.swap_kb += row.swap_kb.unwrap_or(0);
            if let Some(a) = &row.alloc {
                add_alloc(acc.alloc.get_or_insert_with(AllocStats::default), a);
            }
            if let Some(g) = grouping.filter(|g| g.memory.is_some())
                && !acc.sources.iter().any(|s| Arc::ptr_eq(s, &g))
            {
                acc.sources.push(g);
            }
            rows[i].app = Some(key);
        }
        self.process_count = count;
        accs
    }

    /// Reads the counters of every cgroup an app uses this tick; forgets the others.
    fn read_cgroups(&mut self, accs: &FxMap<Arc<str>, Acc>, budget: std::time::Duration) {
        let tick = self.tick;
        let in_use = accs.values().flat_map(|a| {
            a.sources
                .iter()
                .filter_map(move |g| g.memory.as_ref().map(|m| (m, a.rss_kb)))
        });
        for (source, rss_kb) in in_use {
            if !self.cgroups.contains_key(&source.dir) {
                if self.cgroups.len() >= MAX_CGROUPS {
                    continue;
                }
                let Ok(files) =
                    MemoryFiles::open(&source.dir, source.version, source.pressure.as_deref())
                else {
                    continue;
                };
                self.cgroups.insert(
                    source.dir.clone(),
                    CgroupState {
                        files,
                        memory: CgroupMemory::default(),
                        seen_tick: 0,
                        detailed_tick: 0,
                        current_tick: 0,
                        rss_kb: 0,
                    },
                );
            }
            let Some(state) = self.cgroups.get_mut(&source.dir) else {
                continue;
            };
            if state.seen_tick == tick {
                continue;
            }
            state.seen_tick = tick;
            let still = state.current_tick != 0
                && state.rss_kb == rss_kb
                && tick - state.current_tick < CURRENT_TICKS;
            if still {
                continue;
            }
            let Some(current) = state.files.read_current(&mut self.file_buf) else {
                // Removed (its last process left); it is dropped below.
                state.seen_tick = 0;
                continue;
            };
            state.memory.current_kb = current;
            (state.current_tick, state.rss_kb) = (tick, rss_kb);
        }
        self.cgroups.retain(|_, s| s.seen_tick == tick);
        // The details, stalest first: new cgroups and those due at once, the rest while the
        // budget lasts.
        let mut due: Vec<(u64, &PathBuf)> = self
            .cgroups
            .iter()
            .map(|(dir, s)| (s.detailed_tick, dir))
            .collect();
        due.sort_unstable();
        let due: Vec<PathBuf> = due.into_iter().map(|(_, dir)| dir.clone()).collect();
        let started = Instant::now();
        for dir in due {
            let Some(state) = self.cgroups.get_mut(&dir) else {
                continue;
            };
            let age = tick - state.detailed_tick;
            let overdue = state.detailed_tick == 0 || age >= DETAIL_TICKS;
            if !overdue && (age < MIN_DETAIL_TICKS || started.elapsed() >= budget) {
                break; // sorted stalest first: the rest are younger
            }
            state
                .files
                .read_details(&mut self.file_buf, &mut state.memory);
            state.detailed_tick = tick;
        }
    }

    fn build_rows(&mut self, now_ms: u64, accs: FxMap<Arc<str>, Acc>) {
        let tick = self.tick;
        self.rows.clear();
        self.events.clear();
        let mut missing_entry = false;
        for acc in accs.into_values() {
            let key = String::from(&*acc.key);
            let memories: BTreeSet<&MemorySource> = acc
                .sources
                .iter()
                .filter_map(|g| g.memory.as_ref())
                .collect();
            let sources = outermost(&memories);
            let memory = combine(
                sources
                    .iter()
                    .filter_map(|s| self.cgroups.get(&s.dir).map(|c| c.memory)),
            );
            let covers: Vec<&str> = sources.iter().filter_map(|s| s.covers.as_deref()).collect();
            let memory_covers = (!covers.is_empty()).then(|| covers.join(", "));
            let state = match self.states.get_mut(&acc.key) {
                Some(state) => state,
                None => self.states.entry(Arc::clone(&acc.key)).or_insert(AppState {
                    trend: None,
                    events: None,
                    seen_tick: tick,
                    own: None,
                    entry: None,
                }),
            };
            // The desktop entry, looked up once per app and per reload of the entries.
            let generation = self.desktop_generation;
            let (name, icon) = match &state.entry {
                Some((g, name, icon)) if *g == generation => (name.clone(), icon.clone()),
                _ => {
                    let found = self.desktop.find(acc.kind, &acc.app_id);
                    let name = found
                        .map_or_else(|| default_name(acc.kind, &acc.app_id), |e| e.name.clone());
                    let icon = found.and_then(|e| e.icon.clone());
                    state.entry = Some((generation, name.clone(), icon.clone()));
                    (name, icon)
                }
            };
            missing_entry |= icon.is_none()
                && name == *acc.app_id
                && matches!(acc.kind, AppKind::App | AppKind::Flatpak | AppKind::Snap);
            let mut row = AppRow {
                id: key.clone(),
                kind: Some(acc.kind),
                name,
                icon,
                unit: acc.unit.to_string(),
                cgroup_count: sources.len() as u32,
                process_count: acc.process_count,
                rss_sum_kb: acc.rss_kb,
                swap_sum_kb: acc.swap_kb,
                alloc: acc.alloc,
                memory,
                memory_covers,
                ..AppRow::default()
            };
            // The kernel's peak shows spikes between samples only for one own cgroup.
            let peak = match (&row.memory, &row.memory_covers, sources.len()) {
                (Some(m), None, 1) => m.peak_kb,
                _ => None,
            };
            let value = row.memory_kb();
            state.seen_tick = tick;
            state.own = match (acc.sources.as_slice(), &row.memory_covers) {
                ([one], None) => Some(Arc::clone(one)),
                _ => None,
            };
            let trend = state
                .trend
                .get_or_insert_with(|| SeriesTrend::new(now_ms, seed(&key), value, peak));
            (row.growth, row.spike) = trend.update(now_ms, value, peak);
            if let Some(m) = &row.memory
                && row.memory_covers.is_none()
            {
                if let Some(before) = state.events {
                    push_events(&mut self.events, &key, now_ms, &before, &m.events);
                }
                state.events = Some(m.events);
            }
            self.rows.push(row);
        }
        // Apps whose last process left this tick: their cgroup's final counters.
        for (key, state) in self.states.iter().filter(|(_, s)| s.seen_tick != tick) {
            let (Some(own), Some(before)) = (
                state.own.as_ref().and_then(|g| g.memory.as_ref()),
                &state.events,
            ) else {
                continue;
            };
            let Ok(files) = MemoryFiles::open(&own.dir, own.version, own.pressure.as_deref())
            else {
                continue; // removed with its last process
            };
            let mut memory = CgroupMemory::default();
            files.read_details(&mut self.file_buf, &mut memory);
            push_events(&mut self.events, key, now_ms, before, &memory.events);
        }
        self.states.retain(|_, s| s.seen_tick == tick);
        self.rows.sort_unstable_by(|a, b| {
            b.memory_kb()
                .cmp(&a.memory_kb())
                .then_with(|| a.id.cmp(&b.id))
        });
        if missing_entry {
            self.reload_desktop_entries(now_ms, true);
        }
    }

    fn reload_desktop_entries(&mut self, now_ms: u64, something_missing: bool) {
        let due = match self.desktop_loaded_ms {
            None => true,
            Some(at) => {
                let age = now_ms.saturating_sub(at);
                age >= DESKTOP_RELOAD_MS * 10 || (something_missing && age >= DESKTOP_RELOAD_MS)
            }
        };
        if !due {
            return;
        }
        self.desktop_loaded_ms = Some(now_ms);
        // Re-read the files only when a directory changed (an entry installed or removed):
        // a few stat calls instead of parsing every desktop entry again.
        let stamp = desktop::dirs_stamp(&self.desktop_dirs);
        if self.desktop_generation > 0 && stamp == self.desktop_stamp {
            return;
        }
        self.desktop = DesktopIndex::load(&self.desktop_dirs);
        self.desktop_stamp = stamp;
        self.desktop_generation += 1;
    }

    /// Every app of the last tick, largest first.
    pub fn rows(&self) -> &[AppRow] {
        &self.rows
    }

    /// Limit and OOM events the last tick saw, by app id.
    pub fn events(&self) -> &[(String, AppEvent)] {
        &self.events
    }

    /// The last tick as an [`AppsSnapshot`] of all apps.
    pub fn snapshot(&self) -> AppsSnapshot {
        AppsSnapshot {
            taken_at_unix_ms: self.taken_at_unix_ms,
            app_count: self.rows.len() as u32,
            process_count: self.process_count,
            grouping: self.describe(),
            grouping_us: self.grouping_us,
            apps: self.rows.clone(),
        }
    }

    /// How processes are grouped and memory accounted here, as a sentence.
    pub fn describe(&self) -> String {
        let grouping = if self.tree_fallback {
            "by systemd unit where there is one, else by top ancestor process"
        } else {
            "by systemd unit"
        };
        format!("Grouped {grouping}; {}", self.mounts.describe())
    }

    /// The last tick's parts in µs: re-reading processes' cgroups, summing per app, reading
    /// the apps' cgroups, building the rows (trends, events, names).
    pub fn phases_us(&self) -> [u64; 4] {
        self.phases
    }

    /// Microseconds the last tick's grouping took.
    pub fn grouping_us(&self) -> u64 {
        self.grouping_us
    }
}

/// The top `limit` apps by `key`, with the processes of the `expanded` ones (largest RSS
/// first, bounded).
pub fn view(
    apps: &AppsSnapshot,
    snapshot: &Snapshot,
    key: AppSortKey,
    descending: bool,
    limit: u32,
    expanded: &[String],
) -> AppsSnapshot {
    let mut rows = top_apps(&apps.apps, key, descending, limit as usize);
    for id in expanded {
        if !rows.iter().any(|r| &r.id == id)
            && let Some(row) = apps.apps.iter().find(|r| &r.id == id)
        {
            rows.push(row.clone());
        }
    }
    for row in rows.iter_mut().filter(|r| expanded.contains(&r.id)) {
        let members: Vec<ProcessRow> = snapshot
            .processes
            .iter()
            .filter(|p| p.app.as_deref() == Some(row.id.as_str()))
            .cloned()
            .collect();
        row.processes = top_by(&members, SortKey::Rss, true, MAX_EXPANDED_PROCESSES);
    }
    AppsSnapshot {
        taken_at_unix_ms: apps.taken_at_unix_ms,
        app_count: apps.app_count,
        process_count: apps.process_count,
        grouping: apps.grouping.clone(),
        grouping_us: apps.grouping_us,
        apps: rows,
    }
}

/// The memory cgroup for a process grouped as `identity`: the unit's own cgroup where the
/// memory controller's hierarchy has it, else the (coarser) one it is in, labelled.
fn memory_source(
    mounts: &Mounts,
    paths: &CgroupPaths,
    identity: &Identity,
) -> Option<MemorySource> {
    let unit = identity.unit_path.as_str();
    let within =
        |path: &str| path == unit || path.strip_prefix(unit).is_some_and(|r| r.starts_with('/'));
    let (mount, path, version) = if mounts.unified_has_memory {
        (
            mounts.unified.as_ref()?,
            paths.unified.as_deref()?,
            CgroupVersion::V2,
        )
    } else {
        (
            mounts.memory_v1.as_ref()?,
            paths.memory_v1.as_deref()?,
            CgroupVersion::V1,
        )
    };
    let own = within(path);
    if !own && path == "/" && !mounts.cgroup_namespace {
        return None; // the root cgroup is the whole machine, not this app
    }
    let chosen = if own { unit } else { path };
    let pressure = match version {
        CgroupVersion::V1 if own => mounts
            .unified
            .as_ref()
            .filter(|_| paths.unified.as_deref().is_some_and(within))
            .and_then(|u| u.dir(unit))
            .map(|d| d.join("memory.pressure")),
        _ => None,
    };
    Some(MemorySource {
        dir: mount.dir(chosen)?,
        version,
        covers: (!own).then(|| {
            if path == "/" {
                "/ (the root of this cgroup namespace)".to_owned()
            } else {
                path.to_owned()
            }
        }),
        pressure,
    })
}

/// The sources that are not inside another one of the set (their counters include the inner).
fn outermost<'a>(sources: &BTreeSet<&'a MemorySource>) -> Vec<&'a MemorySource> {
    let mut kept: Vec<&MemorySource> = Vec::new();
    for &source in sources {
        if !kept.iter().any(|k| source.dir.starts_with(&k.dir)) {
            kept.push(source);
        }
    }
    kept
}

/// Sums several cgroups' counters (instances of one app). Limits are kept for one cgroup only.
fn combine(memories: impl Iterator<Item = CgroupMemory>) -> Option<CgroupMemory> {
    let mut total: Option<CgroupMemory> = None;
    let mut count = 0;
    for m in memories {
        count += 1;
        let Some(t) = total.as_mut() else {
            total = Some(m);
            continue;
        };
        let add = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
        t.current_kb += m.current_kb;
        t.peak_kb = add(t.peak_kb, m.peak_kb);
        t.anon_kb = add(t.anon_kb, m.anon_kb);
        t.file_kb = add(t.file_kb, m.file_kb);
        t.kernel_kb = add(t.kernel_kb, m.kernel_kb);
        t.shmem_kb = add(t.shmem_kb, m.shmem_kb);
        t.sock_kb = add(t.sock_kb, m.sock_kb);
        t.swap_kb = add(t.swap_kb, m.swap_kb);
        t.events.low += m.events.low;
        t.events.high += m.events.high;
        t.events.max += m.events.max;
        t.events.oom += m.events.oom;
        t.events.oom_kill += m.events.oom_kill;
        if m.pressure.map(|p| p.some_avg10) > t.pressure.map(|p| p.some_avg10) {
            t.pressure = m.pressure;
        }
    }
    if count > 1
        && let Some(t) = total.as_mut()
    {
        (t.limit_kb, t.high_kb, t.peak_kb) = (None, None, None);
    }
    total
}

/// The limit and OOM events between two readings of an app's counters.
fn push_events(
    out: &mut Vec<(String, AppEvent)>,
    key: &str,
    now_ms: u64,
    before: &MemoryEvents,
    now: &MemoryEvents,
) {
    for (kind, then, now) in [
        (AppEventKind::High, before.high, now.high),
        (AppEventKind::Max, before.max, now.max),
        (AppEventKind::OomKill, before.oom_kill, now.oom_kill),
    ] {
        if now > then {
            let event = AppEvent {
                unix_ms: now_ms,
                kind,
                count: now - then,
            };
            out.push((key.to_owned(), event));
        }
    }
}

impl Acc {
    fn empty(no_unit: &Arc<str>) -> Acc {
        Acc {
            key: Arc::clone(no_unit),
            kind: AppKind::ProcessTree,
            app_id: Arc::clone(no_unit),
            unit: Arc::clone(no_unit),
            process_count: 0,
            rss_kb: 0,
            swap_kb: 0,
            alloc: None,
            sources: Vec::new(),
        }
    }
}

fn add_alloc(total: &mut AllocStats, a: &AllocStats) {
    total.mmap_count += a.mmap_count;
    total.munmap_count += a.munmap_count;
    total.brk_count += a.brk_count;
    total.total_allocated += a.total_allocated;
    total.total_freed += a.total_freed;
    total.alloc_count += a.alloc_count;
    total.free_count += a.free_count;
    total.net_mapped += a.net_mapped;
    total.peak_net_mapped += a.peak_net_mapped;
    total.last_activity_unix_ms = total.last_activity_unix_ms.max(a.last_activity_unix_ms);
}

/// The index of the ancestor of `rows[i]` just below PID 1 (or the namespace's root), among the
/// processes that have memory.
fn top_ancestor(i: usize, rows: &[ProcessRow], by_pid: &HashMap<u32, usize>) -> usize {
    let mut current = i;
    for _ in 0..256 {
        let Some(ppid) = rows[current].ppid else {
            break;
        };
        if ppid <= 1 {
            break;
        }
        match by_pid.get(&ppid) {
            Some(&parent) if parent != current => current = parent,
            _ => break,
        }
    }
    current
}

fn default_name(kind: AppKind, app_id: &str) -> String {
    match kind {
        AppKind::Session => format!("Session {app_id}"),
        _ => app_id.to_owned(),
    }
}

fn seed(key: &str) -> u32 {
    key.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    })
}

#[cfg(test)]
mod tests;
