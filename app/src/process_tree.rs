//! The process tree: snapshot rows arranged by parent PID, with totals per subtree. Plain Rust
//! (no egui), rebuilt from the rows' `ppid` on every update, so a process whose parent exited
//! simply appears under its new parent (init or a subreaper) the next time.
//!
//! A row's parent is the row with its `ppid` that **started no later than it**: a parent is
//! always older than its child, so a `ppid` naming a PID that was since reused by a younger
//! process is not followed. Processes whose parent is not in the rows become roots.
//!
//! Siblings are ordered by the grid's sort column: for the additive columns (RSS, swap, counts,
//! net mapped, growth…) by the **subtree total**, so the group using the most memory comes first;
//! for the others (PID, name, peaks) by the process's own value.

use std::collections::HashMap;

use memmon_common::{
    column::Column,
    diagnostics::Growth,
    process_key::ProcessKey,
    snapshot::{AllocStats, ProcessRow, SortKey},
};

/// Whether a column's subtree total is the sum of its processes' values. Peaks are not: two
/// processes' peaks need not have happened at the same time.
pub fn is_additive(column: Column) -> bool {
    matches!(
        column,
        Column::Rss
            | Column::Virt
            | Column::Anon
            | Column::File
            | Column::Shmem
            | Column::Swap
            | Column::Mmap
            | Column::Munmap
            | Column::Brk
            | Column::Allocated
            | Column::Freed
            | Column::Net
            | Column::Growth
    )
}

/// One process in the tree; indexes are into the rows the tree was built from.
#[derive(Clone, Debug, PartialEq)]
pub struct TreeNode {
    pub parent: Option<usize>,
    /// Ordered by the sort column.
    pub children: Vec<usize>,
    /// 0 for a root.
    pub depth: usize,
    /// Processes below this one (children, grandchildren, …).
    pub descendants: usize,
    /// This process plus its descendants, summed over the additive columns ([`is_additive`]);
    /// PID and start time are the process's own, the other fields empty.
    pub subtree: ProcessRow,
}

/// Rows as a forest.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessTree {
    /// One per row, at the row's index.
    pub nodes: Vec<TreeNode>,
    /// Ordered by the sort column.
    pub roots: Vec<usize>,
    /// Every node, parents before children and siblings in order (what a fully expanded tree
    /// shows).
    pub order: Vec<usize>,
}

/// A row of the tree as drawn: which process, how deep, and whether its children are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VisibleNode {
    pub index: usize,
    pub depth: usize,
    pub has_children: bool,
    pub expanded: bool,
}

impl ProcessTree {
    /// Arranges `rows` by parent PID and orders siblings by `sort` (ties by PID ascending).
    pub fn build(rows: &[ProcessRow], sort: SortKey, descending: bool) -> ProcessTree {
        let by_pid: HashMap<u32, usize> =
            rows.iter().enumerate().map(|(i, r)| (r.pid, i)).collect();
        let mut parents: Vec<Option<usize>> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let p = *by_pid.get(&r.ppid?)?;
                let parent = rows.get(p)?;
                (p != i && parent.start_time <= r.start_time).then_some(p)
            })
            .collect();
        break_cycles(&mut parents);

        let mut children: Vec<Vec<usize>> = vec![Vec::new(); rows.len()];
        let mut roots = Vec::new();
        for (i, parent) in parents.iter().enumerate() {
            match parent.and_then(|p| children.get_mut(p)) {
                Some(siblings) => siblings.push(i),
                None => roots.push(i),
            }
        }

        // Depths top-down, then totals bottom-up (reverse pre-order visits children first).
        let unsorted = pre_order(&roots, &children);
        let mut depth = vec![0usize; rows.len()];
        for &i in &unsorted {
            for &c in children.get(i).into_iter().flatten() {
                depth[c] = depth[i] + 1;
            }
        }
        let mut subtree: Vec<ProcessRow> = rows.iter().map(own_totals).collect();
        let mut descendants = vec![0usize; rows.len()];
        for &i in unsorted.iter().rev() {
            if let Some(p) = parents[i] {
                let (child, count) = (subtree[i].clone(), descendants[i]);
                add_into(&mut subtree[p], &child);
                descendants[p] += count + 1;
            }
        }

        let sort_value = |i: &usize| -> &ProcessRow {
            if is_additive(sort.column()) {
                &subtree[*i]
            } else {
                &rows[*i]
            }
        };
        let order_by = |a: &usize, b: &usize| sort.order(descending, sort_value(a), sort_value(b));
        roots.sort_by(order_by);
        for siblings in &mut children {
            siblings.sort_by(order_by);
        }
        let order = pre_order(&roots, &children);

        let nodes = parents
            .into_iter()
            .zip(children)
            .zip(depth)
            .zip(descendants)
            .zip(subtree)
            .map(
                |((((parent, children), depth), descendants), subtree)| TreeNode {
                    parent,
                    children,
                    depth,
                    descendants,
                    subtree,
                },
            )
            .collect();
        ProcessTree {
            nodes,
            roots,
            order,
        }
    }

    /// The rows to draw, in order: every root, and below an expanded node its children.
    /// `expanded(key)` says whether the user left a node open. With a filter (`matches` not
    /// `None`), only processes that match or have a matching descendant are shown, and those
    /// with a matching descendant are opened so the matches can be seen.
    pub fn visible(
        &self,
        rows: &[ProcessRow],
        expanded: impl Fn(ProcessKey) -> bool,
        matches: Option<&dyn Fn(&ProcessRow) -> bool>,
    ) -> Vec<VisibleNode> {
        // Whether a node or one of its descendants matches (bottom-up).
        let wanted: Option<Vec<bool>> = matches.map(|matches| {
            let mut wanted: Vec<bool> = rows.iter().map(matches).collect();
            for &i in self.order.iter().rev() {
                if let Some(p) = self.nodes.get(i).and_then(|n| n.parent)
                    && wanted.get(i).copied().unwrap_or(false)
                {
                    wanted[p] = true;
                }
            }
            wanted
        });
        let shown = |i: usize| {
            wanted
                .as_ref()
                .is_none_or(|w| w.get(i).copied().unwrap_or(false))
        };
        let mut out = Vec::new();
        let mut stack: Vec<usize> = self
            .roots
            .iter()
            .rev()
            .copied()
            .filter(|&i| shown(i))
            .collect();
        while let Some(i) = stack.pop() {
            let (Some(node), Some(row)) = (self.nodes.get(i), rows.get(i)) else {
                continue;
            };
            let has_children = node.children.iter().any(|&c| shown(c));
            let open = match &wanted {
                // A filter opens what leads to a match (the match itself as the user left it).
                Some(_) => {
                    has_children && (!matches.is_some_and(|m| m(row)) || expanded(row.key()))
                }
                None => has_children && expanded(row.key()),
            };
            out.push(VisibleNode {
                index: i,
                depth: node.depth,
                has_children,
                expanded: open,
            });
            if open {
                stack.extend(node.children.iter().rev().copied().filter(|&c| shown(c)));
            }
        }
        out
    }
}

/// Cuts one link of every parent cycle (a `ppid` read while PIDs were being reused could form
/// one), so every node is reachable from a root.
fn break_cycles(parents: &mut [Option<usize>]) {
    let n = parents.len();
    // 0: not yet known, 1: on the current walk, 2: reaches a root.
    let mut state = vec![0u8; n];
    for start in 0..n {
        let mut path = Vec::new();
        let mut at = start;
        loop {
            match state[at] {
                2 => break,
                1 => {
                    // Back on this walk: a cycle. Make the node where it closed a root.
                    parents[at] = None;
                    break;
                }
                _ => {}
            }
            state[at] = 1;
            path.push(at);
            match parents[at] {
                Some(p) if p < n => at = p,
                _ => {
                    parents[at] = None;
                    break;
                }
            }
        }
        for i in path {
            state[i] = 2;
        }
    }
}

/// Parents before children, siblings in their order.
fn pre_order(roots: &[usize], children: &[Vec<usize>]) -> Vec<usize> {
    let mut order = Vec::with_capacity(children.len());
    let mut stack: Vec<usize> = roots.iter().rev().copied().collect();
    while let Some(i) = stack.pop() {
        order.push(i);
        stack.extend(children.get(i).into_iter().flatten().rev());
    }
    order
}

/// A process's own values of the additive columns, as the start of its subtree's totals.
fn own_totals(row: &ProcessRow) -> ProcessRow {
    ProcessRow {
        pid: row.pid,
        start_time: row.start_time,
        rss_kb: row.rss_kb,
        virtual_kb: row.virtual_kb,
        rss_anon_kb: row.rss_anon_kb,
        rss_file_kb: row.rss_file_kb,
        rss_shmem_kb: row.rss_shmem_kb,
        swap_kb: row.swap_kb,
        alloc: row.alloc.map(|a| AllocStats {
            mmap_count: a.mmap_count,
            munmap_count: a.munmap_count,
            brk_count: a.brk_count,
            total_allocated: a.total_allocated,
            total_freed: a.total_freed,
            net_mapped: a.net_mapped,
            ..Default::default()
        }),
        // The shown rate (0 within the noise), as the grid ranks it.
        growth: row.growth.and_then(|g| {
            g.shown().map(|rate| Growth {
                rss_5m: Some(rate),
                sustained: g.sustained,
                ..Default::default()
            })
        }),
        ..Default::default()
    }
}

/// Adds a child's subtree totals to its parent's. A value missing in one process (unreadable)
/// does not hide the others': the total is of what is known.
fn add_into(total: &mut ProcessRow, child: &ProcessRow) {
    let sum = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some(a.saturating_add(b)),
        (a, b) => a.or(b),
    };
    total.rss_kb = sum(total.rss_kb, child.rss_kb);
    total.virtual_kb = sum(total.virtual_kb, child.virtual_kb);
    total.rss_anon_kb = sum(total.rss_anon_kb, child.rss_anon_kb);
    total.rss_file_kb = sum(total.rss_file_kb, child.rss_file_kb);
    total.rss_shmem_kb = sum(total.rss_shmem_kb, child.rss_shmem_kb);
    total.swap_kb = sum(total.swap_kb, child.swap_kb);
    total.alloc = match (total.alloc, child.alloc) {
        (Some(a), Some(b)) => Some(AllocStats {
            mmap_count: a.mmap_count.saturating_add(b.mmap_count),
            munmap_count: a.munmap_count.saturating_add(b.munmap_count),
            brk_count: a.brk_count.saturating_add(b.brk_count),
            total_allocated: a.total_allocated.saturating_add(b.total_allocated),
            total_freed: a.total_freed.saturating_add(b.total_freed),
            net_mapped: a.net_mapped.saturating_add(b.net_mapped),
            ..Default::default()
        }),
        (a, b) => a.or(b),
    };
    total.growth = match (total.growth, child.growth) {
        (Some(a), Some(b)) => Some(Growth {
            rss_5m: Some(a.rss_5m.unwrap_or(0.0) + b.rss_5m.unwrap_or(0.0)),
            sustained: a.sustained || b.sustained,
            ..Default::default()
        }),
        (a, b) => a.or(b),
    };
}

#[cfg(test)]
mod tests;
