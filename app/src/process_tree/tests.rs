//! The tree without egui: rows in, parents, order and totals out.

use std::collections::HashSet;

use memmon_common::diagnostics::Growth;

use super::*;

fn row(pid: u32, ppid: u32, name: &str, rss_kb: u64) -> ProcessRow {
    ProcessRow {
        pid,
        ppid: Some(ppid),
        start_time: 1000 + u64::from(pid),
        name: name.to_owned(),
        rss_kb: Some(rss_kb),
        swap_kb: Some(1),
        peak_rss_kb: Some(rss_kb * 2),
        ..Default::default()
    }
}

/// init(1) ─┬─ shell(100) ─┬─ a(101) ── grandchild(103)
///          │              └─ b(102)
///          └─ other(200)
/// orphan(300), whose parent 999 is not in the rows
fn family() -> Vec<ProcessRow> {
    vec![
        row(103, 101, "grandchild", 5000),
        row(1, 0, "init", 10),
        row(102, 100, "b", 2000),
        row(300, 999, "orphan", 7),
        row(100, 1, "shell", 100),
        row(200, 1, "other", 50),
        row(101, 100, "a", 1000),
    ]
}

fn index(rows: &[ProcessRow], pid: u32) -> usize {
    rows.iter().position(|r| r.pid == pid).expect("pid in rows")
}

fn pids(rows: &[ProcessRow], list: &[usize]) -> Vec<u32> {
    list.iter().map(|&i| rows[i].pid).collect()
}

fn node<'t>(tree: &'t ProcessTree, rows: &[ProcessRow], pid: u32) -> &'t TreeNode {
    &tree.nodes[index(rows, pid)]
}

fn parent_pid(tree: &ProcessTree, rows: &[ProcessRow], pid: u32) -> Option<u32> {
    node(tree, rows, pid).parent.map(|p| rows[p].pid)
}

#[test]
fn parents_depths_and_subtree_totals() {
    let rows = family();
    let tree = ProcessTree::build(&rows, SortKey::Rss, true);
    assert_eq!(parent_pid(&tree, &rows, 103), Some(101));
    assert_eq!(parent_pid(&tree, &rows, 101), Some(100));
    assert_eq!(parent_pid(&tree, &rows, 100), Some(1));
    assert_eq!(parent_pid(&tree, &rows, 1), None);
    assert_eq!(
        parent_pid(&tree, &rows, 300),
        None,
        "parent not in the rows: a root"
    );
    assert_eq!(node(&tree, &rows, 103).depth, 3);
    assert_eq!(node(&tree, &rows, 1).depth, 0);

    let shell = node(&tree, &rows, 100);
    assert_eq!(shell.descendants, 3);
    assert_eq!(shell.subtree.rss_kb, Some(100 + 1000 + 5000 + 2000));
    assert_eq!(shell.subtree.swap_kb, Some(4));
    assert_eq!(
        shell.subtree.peak_rss_kb, None,
        "peaks are not summed: they need not coincide"
    );
    let init = node(&tree, &rows, 1);
    assert_eq!(init.descendants, 5);
    assert_eq!(init.subtree.rss_kb, Some(10 + 8100 + 50));
    assert_eq!(node(&tree, &rows, 103).subtree.rss_kb, Some(5000));
    assert_eq!(node(&tree, &rows, 103).descendants, 0);
    assert_eq!(tree.order.len(), rows.len(), "every process once");
}

#[test]
fn siblings_are_ordered_by_subtree_totals_of_additive_columns() {
    let rows = family();
    let tree = ProcessTree::build(&rows, SortKey::Rss, true);
    // a (1000 of its own, 6000 with its child) before b (2000).
    assert_eq!(
        pids(&rows, &node(&tree, &rows, 100).children),
        vec![101, 102]
    );
    assert_eq!(pids(&rows, &tree.roots), vec![1, 300]);
    assert_eq!(
        pids(&rows, &tree.order),
        vec![1, 100, 101, 103, 102, 200, 300],
        "pre-order, largest subtree first"
    );
    let ascending = ProcessTree::build(&rows, SortKey::Rss, false);
    assert_eq!(
        pids(&rows, &ascending.order),
        vec![300, 1, 200, 100, 102, 101, 103]
    );
    // Not additive: by the process's own value (b's peak 4000 > a's 2000).
    let by_peak = ProcessTree::build(&rows, SortKey::Peak, true);
    assert_eq!(
        pids(&rows, &node(&by_peak, &rows, 100).children),
        vec![102, 101]
    );
    let by_name = ProcessTree::build(&rows, SortKey::Name, false);
    assert_eq!(
        pids(&rows, &node(&by_name, &rows, 1).children),
        vec![200, 100]
    );
}

#[test]
fn a_ppid_naming_a_younger_process_is_a_reused_pid_not_a_parent() {
    let mut rows = family();
    // 101's PID was reused after its child 103 started: 103's real parent has exited.
    let a = index(&rows, 101);
    rows[a].start_time = 5000;
    let tree = ProcessTree::build(&rows, SortKey::Rss, true);
    assert_eq!(parent_pid(&tree, &rows, 103), None);
    assert!(tree.roots.contains(&index(&rows, 103)));
    assert_eq!(node(&tree, &rows, 101).descendants, 0);
}

#[test]
fn a_parent_cycle_is_broken_and_every_process_shown_once() {
    // Same start times, ppids pointing at each other (read while PIDs were being reused).
    let mut rows = vec![
        row(5, 6, "x", 1),
        row(6, 7, "y", 2),
        row(7, 5, "z", 3),
        row(8, 6, "w", 4),
    ];
    for r in &mut rows {
        r.start_time = 1;
    }
    let tree = ProcessTree::build(&rows, SortKey::Rss, true);
    let mut seen = pids(&rows, &tree.order);
    seen.sort_unstable();
    assert_eq!(seen, vec![5, 6, 7, 8]);
    assert_eq!(tree.roots.len(), 1, "one cut per cycle");
    let root = tree.roots[0];
    assert_eq!(tree.nodes[root].descendants, 3);
    assert_eq!(tree.nodes[root].subtree.rss_kb, Some(10));
}

#[test]
fn reparenting_after_a_parent_exits_moves_the_child_and_keeps_expansion() {
    let rows = family();
    let collapsed: HashSet<ProcessKey> = [rows[index(&rows, 200)].key()].into();
    let open = |k: ProcessKey| !collapsed.contains(&k);
    let tree = ProcessTree::build(&rows, SortKey::Rss, true);
    let shown = tree.visible(&rows, open, None);
    assert_eq!(shown.len(), 7);

    // a(101) exits; its child is reparented to init (the kernel sets its ppid to 1).
    let mut after: Vec<ProcessRow> = rows.into_iter().filter(|r| r.pid != 101).collect();
    let g = index(&after, 103);
    after[g].ppid = Some(1);
    // A new process makes "other" a parent while it stays collapsed (same key).
    after.push(row(201, 200, "newcomer", 3));
    let tree = ProcessTree::build(&after, SortKey::Rss, true);
    assert_eq!(parent_pid(&tree, &after, 103), Some(1));
    assert_eq!(node(&tree, &after, 103).depth, 1);
    assert_eq!(node(&tree, &after, 100).subtree.rss_kb, Some(2100));
    let shown = tree.visible(&after, open, None);
    let order: Vec<u32> = shown.iter().map(|v| after[v.index].pid).collect();
    assert_eq!(
        order,
        vec![1, 103, 100, 102, 200, 300],
        "201 hidden under collapsed 200"
    );
    let other = shown
        .iter()
        .find(|v| after[v.index].pid == 200)
        .expect("200");
    assert!(other.has_children && !other.expanded);
}

#[test]
fn collapsed_nodes_hide_their_subtree() {
    let rows = family();
    let tree = ProcessTree::build(&rows, SortKey::Rss, true);
    let shell = rows[index(&rows, 100)].key();
    let shown = tree.visible(&rows, |k| k != shell, None);
    let order: Vec<u32> = shown.iter().map(|v| rows[v.index].pid).collect();
    assert_eq!(order, vec![1, 100, 200, 300]);
    let depths: Vec<usize> = shown.iter().map(|v| v.depth).collect();
    assert_eq!(depths, vec![0, 1, 1, 0]);
    assert!(
        shown
            .iter()
            .all(|v| v.has_children == matches!(rows[v.index].pid, 1 | 100))
    );
}

#[test]
fn a_filter_shows_matches_with_their_ancestors_opened() {
    let rows = family();
    let tree = ProcessTree::build(&rows, SortKey::Rss, true);
    let matches = |r: &ProcessRow| r.name.contains("grand");
    // Everything collapsed by the user: the way to the match is opened anyway.
    let shown = tree.visible(&rows, |_| false, Some(&matches));
    let order: Vec<u32> = shown.iter().map(|v| rows[v.index].pid).collect();
    assert_eq!(order, vec![1, 100, 101, 103]);
    let none = |_: &ProcessRow| false;
    assert!(tree.visible(&rows, |_| true, Some(&none)).is_empty());
}

#[test]
fn totals_of_what_is_known_and_of_allocation_and_growth() {
    let mut rows = vec![row(1, 0, "p", 100), row(2, 1, "c", 10), row(3, 1, "d", 1)];
    rows[1].rss_kb = None; // unreadable
    rows[0].alloc = Some(AllocStats {
        mmap_count: 3,
        net_mapped: -4096,
        peak_net_mapped: 9,
        ..Default::default()
    });
    rows[2].alloc = Some(AllocStats {
        mmap_count: 4,
        net_mapped: 8192,
        ..Default::default()
    });
    rows[1].growth = Some(Growth {
        rss_5m: Some(1000.0),
        sustained: true,
        ..Default::default()
    });
    rows[2].growth = Some(Growth {
        rss_1m: Some(500.0),
        rss_noise: true,
        ..Default::default()
    });
    let tree = ProcessTree::build(&rows, SortKey::Rss, true);
    let total = &tree.nodes[0].subtree;
    assert_eq!(total.rss_kb, Some(101));
    let alloc = total.alloc.expect("alloc summed");
    assert_eq!((alloc.mmap_count, alloc.net_mapped), (7, 4096));
    assert_eq!(alloc.peak_net_mapped, 0, "peaks are not summed");
    let growth = total.growth.expect("growth summed");
    assert_eq!(
        growth.shown(),
        Some(1000.0),
        "a noisy rate counts as 0, as in the grid"
    );
    assert!(growth.sustained);
    assert_eq!(
        Column::Growth.display(total),
        Column::Growth.display(&rows[1]),
        "the total is shown like any rate"
    );
}

#[test]
fn empty_rows_make_an_empty_tree() {
    let tree = ProcessTree::build(&[], SortKey::Rss, true);
    assert!(tree.roots.is_empty() && tree.order.is_empty());
    assert!(tree.visible(&[], |_| true, None).is_empty());
}
