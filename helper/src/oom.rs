//! Which processes the kernel's OOM killer ended.
//!
//! Two sources, the better one first:
//! - **the tracepoint** (`oom:mark_victim`, Full mode): the kernel names each victim, with its
//!   RSS when it was chosen;
//! - **the counter** (`oom_kill` in `/proc/vmstat`, every mode): when it rose by N, the N largest
//!   processes that vanished are taken to be the victims ([`OomSource::Counter`], marked as
//!   inferred). The victim may die a tick or two after the counter rose, so an unexplained kill
//!   waits [`PENDING_TICKS`] ticks for its process to vanish.
//!
//! It reads nothing itself: the collector feeds it the counter, the named victims and the
//! processes that vanished, once per tick.

use std::collections::VecDeque;

use memmon_common::{
    OomVictim,
    diagnostics::{OomKill, OomSource},
    snapshot::ProcessRow,
    text::escape_name,
};

use crate::trends::Vanished;

/// OOM kills remembered (newest kept).
pub const MAX_OOM_KILLS: usize = 32;
/// Ticks an unexplained rise of the counter waits for its victim to vanish.
pub const PENDING_TICKS: u32 = 3;

/// A victim the kernel named through `oom:mark_victim`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedVictim {
    pub pid: u32,
    pub name: String,
    /// Anonymous + file + shmem RSS when the kernel chose it.
    pub rss_at_kill_kb: u64,
}

impl NamedVictim {
    /// From the record the eBPF program wrote (its `comm` NUL-padded).
    pub fn from_kernel(pid: u32, victim: &OomVictim) -> NamedVictim {
        let len = victim
            .comm
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(victim.comm.len());
        NamedVictim {
            pid,
            name: escape_name(&victim.comm[..len]),
            rss_at_kill_kb: victim.rss_kb,
        }
    }
}

/// The OOM kills seen so far (at most [`MAX_OOM_KILLS`]) and what is needed to see the next.
#[derive(Debug, Default)]
pub struct OomKills {
    /// The kernel's `oom_kill` counter at the previous tick that had it.
    counter: Option<u64>,
    /// Kills the counter showed that no vanished process explained yet, and for how many ticks.
    pending: (usize, u32),
    kills: VecDeque<OomKill>,
}

impl OomKills {
    pub fn new() -> OomKills {
        OomKills::default()
    }

    /// One tick at `now_ms`: the counter now (`None` if unreadable), the victims the kernel
    /// named since the last tick (`None` when it cannot name them: the counter decides then),
    /// the processes that vanished this tick and those alive.
    pub fn note(
        &mut self,
        now_ms: u64,
        counter: Option<u64>,
        named: Option<Vec<NamedVictim>>,
        vanished: &[Vanished],
        alive: &[ProcessRow],
    ) {
        let kills = match (self.counter, counter) {
            (Some(before), Some(after)) => after.saturating_sub(before) as usize,
            _ => 0,
        };
        if counter.is_some() {
            self.counter = counter;
        }
        let names_victims = named.is_some();
        let mut found: Vec<OomKill> = named
            .unwrap_or_default()
            .into_iter()
            .map(|victim| {
                let gone = vanished.iter().find(|v| v.pid == victim.pid);
                let row = alive.iter().find(|r| r.pid == victim.pid);
                OomKill {
                    unix_ms: now_ms,
                    pid: victim.pid,
                    start_time: gone.map(|v| v.start_time).or(row.map(|r| r.start_time)),
                    name: victim.name,
                    last_rss_kb: gone.map(|v| v.last_rss_kb).or(row.and_then(|r| r.rss_kb)),
                    rss_at_kill_kb: Some(victim.rss_at_kill_kb),
                    source: OomSource::Tracepoint,
                }
            })
            .collect();
        let (pending, age) = self.pending;
        let pending = if age >= PENDING_TICKS { 0 } else { pending } + kills;
        if !names_victims && pending > 0 {
            let mut gone = vanished.to_vec();
            gone.sort_by(|a, b| b.last_rss_kb.cmp(&a.last_rss_kb).then(a.pid.cmp(&b.pid)));
            gone.truncate(pending);
            self.pending = match pending - gone.len() {
                0 => (0, 0),
                left if kills > 0 => (left, 0),
                left => (left, age + 1),
            };
            found.extend(gone.into_iter().map(|v| OomKill {
                unix_ms: now_ms,
                pid: v.pid,
                start_time: Some(v.start_time),
                name: v.name,
                last_rss_kb: Some(v.last_rss_kb),
                rss_at_kill_kb: None,
                source: OomSource::Counter,
            }));
        }
        for kill in found {
            if self.kills.len() == MAX_OOM_KILLS {
                self.kills.pop_front();
            }
            self.kills.push_back(kill);
        }
    }

    /// The kills seen, oldest first.
    pub fn kills(&self) -> impl ExactSizeIterator<Item = &OomKill> {
        self.kills.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gone(pid: u32, last_rss_kb: u64) -> Vanished {
        Vanished {
            pid,
            start_time: 1000 + u64::from(pid),
            name: format!("p{pid}"),
            last_rss_kb,
        }
    }

    fn row(pid: u32, rss_kb: u64) -> ProcessRow {
        ProcessRow {
            pid,
            start_time: 1000 + u64::from(pid),
            name: format!("p{pid}"),
            ppid: None,
            uid: None,
            app: None,
            rss_kb: Some(rss_kb),
            virtual_kb: None,
            peak_rss_kb: None,
            rss_anon_kb: None,
            rss_file_kb: None,
            rss_shmem_kb: None,
            swap_kb: None,
            alloc: None,
            growth: None,
            spike: None,
            high_res: None,
        }
    }

    fn pids(o: &OomKills) -> Vec<(u32, OomSource)> {
        o.kills().map(|k| (k.pid, k.source)).collect()
    }

    #[test]
    fn a_rising_counter_blames_the_largest_vanished_processes() {
        let mut o = OomKills::new();
        o.note(1, Some(5), None, &[gone(1, 900_000)], &[]);
        assert_eq!(
            o.kills().len(),
            0,
            "the first reading only learns the counter"
        );
        o.note(2, Some(5), None, &[gone(2, 900_000)], &[]);
        assert_eq!(o.kills().len(), 0, "no kill: a process may just exit");
        o.note(
            3,
            Some(7),
            None,
            &[gone(3, 10), gone(4, 500), gone(5, 800)],
            &[],
        );
        assert_eq!(
            pids(&o),
            [(5, OomSource::Counter), (4, OomSource::Counter)],
            "two kills, the two largest"
        );
        let k = o.kills().next().expect("kill");
        assert_eq!(
            (k.unix_ms, k.start_time, k.last_rss_kb, k.rss_at_kill_kb),
            (3, Some(1005), Some(800), None)
        );
        assert_eq!(k.name, "p5");
    }

    #[test]
    fn a_victim_that_dies_late_is_still_found_within_the_pending_ticks() {
        let mut o = OomKills::new();
        o.note(1, Some(0), None, &[], &[]);
        o.note(2, Some(1), None, &[], &[]);
        o.note(3, Some(1), None, &[], &[]);
        o.note(4, Some(1), None, &[gone(9, 4_000)], &[]);
        assert_eq!(pids(&o), [(9, OomSource::Counter)]);
        assert_eq!(o.kills().next().map(|k| k.unix_ms), Some(4));
        // Explained: a later exit is not blamed.
        o.note(5, Some(1), None, &[gone(10, 8_000)], &[]);
        assert_eq!(o.kills().len(), 1);
    }

    #[test]
    fn an_unexplained_kill_expires() {
        let mut o = OomKills::new();
        o.note(1, Some(0), None, &[], &[]);
        o.note(2, Some(1), None, &[], &[]);
        for t in 3..=5 {
            o.note(t, Some(1), None, &[], &[]);
        }
        o.note(6, Some(1), None, &[gone(9, 4_000)], &[]);
        assert_eq!(o.kills().len(), 0, "{:?}", pids(&o));
    }

    #[test]
    fn named_victims_win_over_the_counter() {
        let mut o = OomKills::new();
        o.note(1, Some(0), Some(Vec::new()), &[], &[]);
        let named = vec![
            NamedVictim {
                pid: 3,
                name: "leaker".into(),
                rss_at_kill_kb: 700,
            },
            NamedVictim {
                pid: 4,
                name: "dying".into(),
                rss_at_kill_kb: 50,
            },
        ];
        // 3 vanished; 4 still listed (it dies next tick); 8 vanished but was not a victim.
        o.note(
            2,
            Some(2),
            Some(named),
            &[gone(3, 690), gone(8, 9_000)],
            &[row(4, 60)],
        );
        let kills: Vec<_> = o.kills().cloned().collect();
        assert_eq!(
            pids(&o),
            [(3, OomSource::Tracepoint), (4, OomSource::Tracepoint)]
        );
        assert_eq!(
            (
                kills[0].start_time,
                kills[0].last_rss_kb,
                kills[0].rss_at_kill_kb
            ),
            (Some(1003), Some(690), Some(700))
        );
        assert_eq!(kills[0].name, "leaker");
        assert_eq!(
            (kills[1].start_time, kills[1].last_rss_kb),
            (Some(1004), Some(60))
        );
        o.note(3, Some(2), Some(Vec::new()), &[gone(4, 60)], &[]);
        assert_eq!(
            o.kills().len(),
            2,
            "the counter adds nothing when the kernel names"
        );
    }

    #[test]
    fn only_the_newest_kills_are_kept() {
        let mut o = OomKills::new();
        o.note(0, Some(0), None, &[], &[]);
        for i in 1..=(MAX_OOM_KILLS as u32 + 5) {
            o.note(u64::from(i), Some(u64::from(i)), None, &[gone(i, 100)], &[]);
        }
        assert_eq!(o.kills().len(), MAX_OOM_KILLS);
        assert_eq!(o.kills().next().map(|k| k.pid), Some(6));
    }

    #[test]
    fn a_kernel_record_becomes_an_escaped_name() {
        let mut comm = [0u8; 16];
        comm[..6].copy_from_slice(b"a\x1bbcd!");
        let v = NamedVictim::from_kernel(
            42,
            &OomVictim {
                marked_ns: 1,
                rss_kb: 123,
                comm,
            },
        );
        assert_eq!((v.pid, v.rss_at_kill_kb), (42, 123));
        assert_eq!(
            v.name, r"a\x1bbcd!",
            "up to the NUL, control characters escaped"
        );
    }
}
