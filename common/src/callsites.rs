//! Allocation call sites of one process: what a call-site session reports (the helper's CLI,
//! its D-Bus methods and the app all use this), and its text and folded-stack exports.
//!
//! A call site is one distinct user stack at which the process got memory. Its figures count
//! only what happened during the session: `outstanding_bytes` is what was allocated there and
//! not freed (unmapped) by the end, i.e. the site's growth during the session.

use std::{fmt, fmt::Write as _, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::column::bytes;

/// Longest session a caller may ask for.
pub const MAX_SESSION_SECONDS: u32 = 600;
/// Session length when none is asked for.
pub const DEFAULT_SESSION_SECONDS: u32 = 30;
/// Call sites a report carries (the highest by outstanding bytes, then by bytes allocated).
pub const MAX_REPORTED_SITES: usize = 200;
/// Frames kept per call site, innermost first.
pub const MAX_REPORTED_FRAMES: usize = 64;

/// Where a session gets its allocations from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallSiteSource {
    /// Successful mmap, mremap and brk growth of the process (munmap and brk shrink release).
    /// Works for every allocator and language; cheap.
    #[default]
    Mappings,
    /// Calls to the process's allocator (malloc, calloc, realloc, posix_memalign,
    /// aligned_alloc, memalign, free), sampled.
    Heap,
}

impl CallSiteSource {
    pub const ALL: [CallSiteSource; 2] = [CallSiteSource::Mappings, CallSiteSource::Heap];

    pub fn as_str(self) -> &'static str {
        match self {
            CallSiteSource::Mappings => "mappings",
            CallSiteSource::Heap => "heap",
        }
    }

    /// One line on what the source sees and what it costs (measured, see BENCHMARKS.md).
    pub fn describe(self) -> &'static str {
        match self {
            CallSiteSource::Mappings => {
                "memory the process maps from the kernel (mmap, mremap, brk): every allocator \
                 and language; while it runs each mmap/munmap/brk on the machine costs \
                 ~0.25 µs more, the process's own ~5 µs (a stack copy each)"
            }
            CallSiteSource::Heap => {
                "each malloc/calloc/realloc/free call, sampled: exact call sites for C/C++/Rust \
                 heaps; while it runs each allocator call of this process costs ~6 µs \
                 (uprobe traps, sampled or not); needs uprobes, which the kernel may allow \
                 only with CAP_SYS_ADMIN (then: sudo memmon-helper callsites PID --source heap)"
            }
        }
    }
}

impl fmt::Display for CallSiteSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CallSiteSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|source| source.as_str() == s)
            .ok_or_else(|| format!("unknown call-site source {s:?}: expected mappings or heap"))
    }
}

/// How far a session has got.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum SessionState {
    /// Still collecting.
    #[default]
    Running,
    /// Ended: its time ran out, it was stopped, its process exited, or its client left.
    Finished(String),
    /// Could not start or could not go on (the reason says why); what was collected is kept.
    Failed(String),
}

/// One frame of a call site, innermost first. Names come from the process's binaries, which
/// anyone can write: they are escaped like process names (`text::escape_name`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// The address looked up: the instruction pointer for the first frame, the return address
    /// minus one (inside the call instruction) for the others.
    pub addr: u64,
    /// Function name (demangled), when the binary has symbols.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Source file and line, when the binary has debug info.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// The binary or library the address is in (file name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
}

impl Frame {
    /// `function` or, without symbols, `module+0xADDR` / `0xADDR`.
    pub fn label(&self) -> String {
        match (&self.function, &self.module) {
            (Some(f), _) => f.clone(),
            (None, Some(m)) => format!("{m}@{:#x}", self.addr),
            (None, None) => format!("{:#x}", self.addr),
        }
    }

    /// `file:line`, when known.
    pub fn location(&self) -> Option<String> {
        let file = self.file.as_deref()?;
        Some(match self.line {
            Some(line) => format!("{file}:{line}"),
            None => file.to_owned(),
        })
    }
}

/// One distinct stack at which the process got memory during the session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSite {
    /// Allocated here during the session and not freed by now (heap: sampled blocks times the
    /// sampling interval; mappings: bytes still mapped).
    pub outstanding_bytes: u64,
    /// Blocks (heap) or mappings still outstanding.
    pub outstanding_count: u64,
    /// Everything allocated here during the session.
    pub allocated_bytes: u64,
    /// Allocations (heap calls, or mmap/mremap/brk-growth calls) made here.
    pub alloc_count: u64,
    /// Innermost first.
    pub frames: Vec<Frame>,
    /// The stack was deeper than the copied part (or could not be fully unwound): outer frames
    /// are missing.
    #[serde(default)]
    pub truncated: bool,
}

impl CallSite {
    /// The innermost frame that is not in the allocator itself (libc's malloc or mmap wrapper,
    /// the dynamic loader): the function a user would blame.
    pub fn blamed_frame(&self) -> Option<&Frame> {
        self.frames
            .iter()
            .find(|f| !f.module.as_deref().is_some_and(is_runtime_module))
            .or_else(|| self.frames.first())
    }
}

/// The C library and the dynamic loader: frames there are how memory was obtained, not who
/// asked for it.
pub fn is_runtime_module(module: &str) -> bool {
    module.starts_with("libc.so") || module.starts_with("libc-") || module.starts_with("ld-linux")
}

/// What the session saw and lost, so a reader can judge the figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSiteStats {
    /// Records received from the kernel.
    pub records: u64,
    /// Heap: allocator calls seen, and how many of them were sampled.
    pub allocs_seen: u64,
    pub allocs_sampled: u64,
    /// Heap: free calls seen.
    pub frees_seen: u64,
    /// Records lost because the ring buffer was full (the figures then undercount).
    pub lost_records: u64,
    /// Sampled blocks not followed because the kernel's table of live blocks was full.
    pub lost_blocks: u64,
    /// Records whose stack could not be read at all.
    pub no_stack: u64,
    /// Stacks deeper than the copied part.
    pub cut_stacks: u64,
    /// Distinct stacks seen; above the limit, new stacks are merged into one "other" site.
    pub distinct_stacks: u64,
    pub merged_stacks: u64,
}

/// What a call-site session found so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSiteReport {
    pub pid: u32,
    /// The process's name (escaped).
    pub comm: String,
    pub source: CallSiteSource,
    #[serde(flatten)]
    pub state: SessionState,
    /// How long it has run, and how long it was asked to run.
    pub elapsed_ms: u64,
    pub duration_ms: u64,
    /// Heap: one allocator call in this many is recorded (the last interval in force; each
    /// sample is weighted by the interval it was taken with). 1 for mappings.
    pub sample_every: u32,
    /// Whether the interval adapts to the call rate (no interval was asked for).
    pub adaptive: bool,
    /// Heap: the binaries whose allocator entry points are probed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probed: Vec<String>,
    pub stats: CallSiteStats,
    /// Sum over all call sites (not only the reported ones).
    pub outstanding_bytes: u64,
    pub allocated_bytes: u64,
    /// Ranked by outstanding bytes, then bytes allocated; at most [`MAX_REPORTED_SITES`].
    pub sites: Vec<CallSite>,
}

impl CallSiteReport {
    pub fn is_running(&self) -> bool {
        self.state == SessionState::Running
    }

    /// Folded stacks (`outer;…;inner bytes`, one line per site with outstanding bytes), the
    /// input of flamegraph.pl, inferno and speedscope. Frame names have `;` and line breaks
    /// replaced so a name cannot split a stack.
    pub fn folded(&self) -> String {
        let mut out = String::new();
        for site in self.sites.iter().filter(|s| s.outstanding_bytes > 0) {
            let mut first = true;
            for frame in site.frames.iter().rev() {
                if !first {
                    out.push(';');
                }
                first = false;
                out.push_str(&folded_name(&frame.label()));
            }
            if first {
                out.push_str("[unknown]");
            }
            let _ = writeln!(out, " {}", site.outstanding_bytes);
        }
        out
    }

    /// A plain-text report: a heading, then each site with its figures and top frames.
    pub fn text(&self, frames_per_site: usize) -> String {
        let mut out = String::new();
        let state = match &self.state {
            SessionState::Running => "running".to_owned(),
            SessionState::Finished(why) => format!("finished: {why}"),
            SessionState::Failed(why) => format!("failed: {why}"),
        };
        let _ = writeln!(
            out,
            "Call sites of {} (PID {}), {} source, {:.1} s of {:.0} s, {}",
            self.comm,
            self.pid,
            self.source,
            self.elapsed_ms as f64 / 1000.0,
            self.duration_ms as f64 / 1000.0,
            state
        );
        if self.source == CallSiteSource::Heap {
            let _ = writeln!(
                out,
                "Sampling 1 in {}{}; {} allocator calls seen, {} sampled, {} frees",
                self.sample_every,
                if self.adaptive { " (adaptive)" } else { "" },
                self.stats.allocs_seen,
                self.stats.allocs_sampled,
                self.stats.frees_seen
            );
        }
        let _ = writeln!(
            out,
            "Outstanding {} of {} allocated; {} distinct stacks",
            bytes(self.outstanding_bytes as f64),
            bytes(self.allocated_bytes as f64),
            self.stats.distinct_stacks
        );
        let lost = self.stats.lost_records + self.stats.lost_blocks;
        if lost > 0 {
            let _ = writeln!(out, "Lost {lost} records (figures undercount)");
        }
        for (i, site) in self.sites.iter().enumerate() {
            let _ = writeln!(
                out,
                "\n#{} {} outstanding in {} blocks; {} allocated in {} calls{}",
                i + 1,
                bytes(site.outstanding_bytes as f64),
                site.outstanding_count,
                bytes(site.allocated_bytes as f64),
                site.alloc_count,
                if site.truncated { " (stack cut)" } else { "" }
            );
            for frame in site.frames.iter().take(frames_per_site) {
                let _ = write!(out, "    {}", frame.label());
                if let Some(location) = frame.location() {
                    let _ = write!(out, " at {location}");
                }
                if let Some(module) = &frame.module {
                    let _ = write!(out, " [{module}]");
                }
                out.push('\n');
            }
        }
        out
    }
}

fn folded_name(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            ';' => ':',
            '\n' | '\r' => ' ',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str, module: &str) -> Frame {
        Frame {
            addr: 0x1000,
            function: Some(function.to_owned()),
            file: None,
            line: None,
            module: Some(module.to_owned()),
        }
    }

    fn report() -> CallSiteReport {
        CallSiteReport {
            pid: 42,
            comm: "leaker".into(),
            sites: vec![
                CallSite {
                    outstanding_bytes: 4096,
                    outstanding_count: 1,
                    allocated_bytes: 8192,
                    alloc_count: 2,
                    frames: vec![
                        frame("malloc", "libc.so.6"),
                        frame("leak_a", "leaker"),
                        frame("main", "leaker"),
                    ],
                    truncated: false,
                },
                CallSite {
                    outstanding_bytes: 0,
                    allocated_bytes: 100,
                    alloc_count: 1,
                    frames: vec![frame("churn;x", "leaker")],
                    ..CallSite::default()
                },
            ],
            ..CallSiteReport::default()
        }
    }

    #[test]
    fn folded_is_outermost_first_and_skips_freed_sites() {
        assert_eq!(report().folded(), "main;leak_a;malloc 4096\n");
    }

    #[test]
    fn folded_names_cannot_split_a_stack() {
        let mut r = report();
        r.sites[1].outstanding_bytes = 7;
        assert!(r.folded().ends_with("churn:x 7\n"), "{}", r.folded());
    }

    #[test]
    fn blamed_frame_skips_the_c_library() {
        assert_eq!(
            report().sites[0]
                .blamed_frame()
                .and_then(|f| f.function.as_deref()),
            Some("leak_a")
        );
    }

    #[test]
    fn sources_parse_and_reject() {
        assert_eq!("heap".parse(), Ok(CallSiteSource::Heap));
        assert_eq!("mappings".parse(), Ok(CallSiteSource::Mappings));
        assert!(
            "brk"
                .parse::<CallSiteSource>()
                .unwrap_err()
                .contains("mappings or heap")
        );
    }

    #[test]
    fn json_round_trip_keeps_the_state() {
        let mut r = report();
        r.state = SessionState::Finished("time is up".into());
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            json.contains(r#""state":"finished","reason":"time is up""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<CallSiteReport>(&json).unwrap(), r);
    }

    #[test]
    fn text_names_each_site_with_its_frames() {
        let text = report().text(2);
        assert!(text.contains("#1 4 KiB outstanding in 1 blocks"), "{text}");
        assert!(text.contains("    leak_a [leaker]"), "{text}");
        assert!(!text.contains("    main"), "only 2 frames per site: {text}");
    }
}
