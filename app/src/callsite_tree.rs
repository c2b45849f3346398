//! The call-site report as a bottom-up call tree: the functions that allocate at the top (the
//! innermost frame outside the C library, so "malloc" or "mmap" never hide who called them),
//! each expanding to its callers. A function reached through several call paths is one node
//! whose figures add up those paths, like heaptrack's and perf's caller trees.

use memmon_common::callsites::{CallSiteReport, Frame};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Node {
    /// The function (or `module@address` without symbols).
    pub label: String,
    /// `file:line` of the first path through here, when known.
    pub location: Option<String>,
    pub module: Option<String>,
    pub outstanding_bytes: u64,
    pub allocated_bytes: u64,
    pub alloc_count: u64,
    /// How the memory was obtained below the blamed function (roots only): `malloc → mmap`.
    pub via: Option<String>,
    /// Callers, the largest first.
    pub children: Vec<Node>,
}

/// Roots, the largest (outstanding bytes, then allocated) first.
pub fn bottom_up(report: &CallSiteReport) -> Vec<Node> {
    let mut roots: Vec<Node> = Vec::new();
    for site in &report.sites {
        let blamed = site
            .frames
            .iter()
            .position(|f| {
                !f.module
                    .as_deref()
                    .is_some_and(memmon_common::callsites::is_runtime_module)
            })
            .unwrap_or(0);
        let via = (blamed > 0).then(|| {
            let mut names: Vec<String> = site.frames[..blamed]
                .iter()
                .rev()
                .map(Frame::label)
                .collect();
            names.dedup();
            names.join(" → ")
        });
        let mut level = &mut roots;
        for (depth, frame) in site.frames.iter().skip(blamed).enumerate() {
            let label = frame.label();
            let i = match level.iter().position(|n| n.label == label) {
                Some(i) => i,
                None => {
                    level.push(Node {
                        label,
                        location: frame.location(),
                        module: frame.module.clone(),
                        via: if depth == 0 { via.clone() } else { None },
                        ..Node::default()
                    });
                    level.len() - 1
                }
            };
            let node = &mut level[i];
            node.outstanding_bytes = node
                .outstanding_bytes
                .saturating_add(site.outstanding_bytes);
            node.allocated_bytes = node.allocated_bytes.saturating_add(site.allocated_bytes);
            node.alloc_count = node.alloc_count.saturating_add(site.alloc_count);
            level = &mut node.children;
        }
    }
    sort(&mut roots);
    roots
}

fn sort(nodes: &mut [Node]) {
    nodes.sort_by(|a, b| {
        (b.outstanding_bytes, b.allocated_bytes).cmp(&(a.outstanding_bytes, a.allocated_bytes))
    });
    for n in nodes {
        sort(&mut n.children);
    }
}

#[cfg(test)]
mod tests {
    use memmon_common::callsites::CallSite;

    use super::*;

    fn f(name: &str, module: &str) -> Frame {
        Frame {
            addr: 0,
            function: Some(name.into()),
            file: Some("leaker.c".into()),
            line: Some(7),
            module: Some(module.into()),
        }
    }

    fn site(outstanding: u64, frames: &[(&str, &str)]) -> CallSite {
        CallSite {
            outstanding_bytes: outstanding,
            allocated_bytes: outstanding * 2,
            alloc_count: 1,
            frames: frames.iter().map(|(n, m)| f(n, m)).collect(),
            ..CallSite::default()
        }
    }

    #[test]
    fn roots_are_the_allocating_functions_outside_libc_with_their_callers() {
        let report = CallSiteReport {
            sites: vec![
                site(
                    100,
                    &[
                        ("mmap", "libc.so.6"),
                        ("malloc", "libc.so.6"),
                        ("leak", "app"),
                        ("a", "app"),
                        ("main", "app"),
                    ],
                ),
                site(50, &[("leak", "app"), ("b", "app"), ("main", "app")]),
                site(500, &[("big", "app"), ("main", "app")]),
            ],
            ..CallSiteReport::default()
        };
        let roots = bottom_up(&report);
        assert_eq!(roots.len(), 2);
        assert_eq!(roots[0].label, "big");
        let leak = &roots[1];
        assert_eq!((leak.label.as_str(), leak.outstanding_bytes), ("leak", 150));
        assert_eq!(leak.alloc_count, 2);
        assert_eq!(leak.via.as_deref(), Some("malloc → mmap"));
        assert_eq!(leak.location.as_deref(), Some("leaker.c:7"));
        // Its callers, the larger first, each leading to main.
        let callers: Vec<_> = leak
            .children
            .iter()
            .map(|c| (c.label.as_str(), c.outstanding_bytes))
            .collect();
        assert_eq!(callers, [("a", 100), ("b", 50)]);
        assert_eq!(leak.children[0].children[0].label, "main");
    }

    #[test]
    fn a_stack_only_in_libc_keeps_its_innermost_frame() {
        let report = CallSiteReport {
            sites: vec![site(10, &[("mmap", "libc.so.6"), ("start", "libc.so.6")])],
            ..CallSiteReport::default()
        };
        assert_eq!(bottom_up(&report)[0].label, "mmap");
    }
}
