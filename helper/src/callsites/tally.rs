//! Outstanding bytes per call site: pure bookkeeping, fed with decoded kernel records.
//!
//! Heap blocks are keyed by address; mappings (and the brk heap) are kept as address ranges,
//! so a partial munmap, an mremap or a brk shrink takes bytes back from exactly the sites that
//! mapped them. Only memory obtained during the session is followed: releasing older memory
//! changes nothing.

use std::collections::{BTreeMap, HashMap};

/// Distinct stacks kept; later new stacks are counted in one "other stacks" site.
pub const MAX_STACKS: usize = 20_000;
/// Heap blocks and mapping ranges followed at once (the kernel's own tables are smaller).
pub const MAX_TRACKED: usize = 1 << 20;

/// Index into [`Tally::sites`]. Site 0 is "other stacks" (overflow).
pub type SiteId = u32;
pub const OTHER_SITE: SiteId = 0;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SiteFigures {
    pub outstanding_bytes: u64,
    pub outstanding_count: u64,
    pub allocated_bytes: u64,
    pub alloc_count: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Site {
    /// Lookup addresses, innermost first; empty for the overflow site.
    pub stack: Box<[u64]>,
    pub truncated: bool,
    pub figures: SiteFigures,
}

#[derive(Default)]
pub struct Tally {
    sites: Vec<Site>,
    by_stack: HashMap<Box<[u64]>, SiteId>,
    /// Heap: block address → (site, bytes it stands for, blocks it stands for).
    blocks: HashMap<u64, (SiteId, u64, u64)>,
    /// Mappings: start → (end, site).
    ranges: BTreeMap<u64, (u64, SiteId)>,
    /// The program break, once known.
    brk: Option<u64>,
    /// Stacks merged into the overflow site, and records beyond [`MAX_TRACKED`].
    pub merged_stacks: u64,
    pub untracked: u64,
}

impl Tally {
    pub fn new() -> Tally {
        Tally {
            sites: vec![Site::default()],
            ..Tally::default()
        }
    }

    pub fn sites(&self) -> &[Site] {
        &self.sites
    }

    pub fn distinct_stacks(&self) -> u64 {
        self.by_stack.len() as u64
    }

    /// The site for this stack (innermost first), created on first sight.
    pub fn intern(&mut self, stack: &[u64], truncated: bool) -> SiteId {
        if let Some(&id) = self.by_stack.get(stack) {
            if truncated {
                self.sites[id as usize].truncated = true;
            }
            return id;
        }
        if self.by_stack.len() >= MAX_STACKS {
            self.merged_stacks += 1;
            return OTHER_SITE;
        }
        let id = self.sites.len() as SiteId;
        self.sites.push(Site {
            stack: stack.into(),
            truncated,
            figures: SiteFigures::default(),
        });
        self.by_stack.insert(stack.into(), id);
        id
    }

    fn gained(&mut self, site: SiteId, bytes: u64, count: u64) {
        let f = &mut self.sites[site as usize].figures;
        f.outstanding_bytes = f.outstanding_bytes.saturating_add(bytes);
        f.outstanding_count = f.outstanding_count.saturating_add(count);
        f.allocated_bytes = f.allocated_bytes.saturating_add(bytes);
        f.alloc_count = f.alloc_count.saturating_add(count);
    }

    fn released(&mut self, site: SiteId, bytes: u64, count: u64) {
        let f = &mut self.sites[site as usize].figures;
        f.outstanding_bytes = f.outstanding_bytes.saturating_sub(bytes);
        f.outstanding_count = f.outstanding_count.saturating_sub(count);
    }

    // --- heap --------------------------------------------------------------------------------

    /// A sampled block of `size` bytes standing for `weight` blocks like it.
    pub fn alloc(&mut self, addr: u64, size: u64, weight: u64, site: SiteId) {
        // A block at the same address that is still listed was freed unseen (the allocator
        // reused its address): it is gone.
        self.free(addr);
        if self.blocks.len() >= MAX_TRACKED {
            self.untracked += 1;
            return;
        }
        let weight = weight.max(1);
        let bytes = size.saturating_mul(weight);
        self.blocks.insert(addr, (site, bytes, weight));
        self.gained(site, bytes, weight);
    }

    pub fn free(&mut self, addr: u64) {
        if let Some((site, bytes, weight)) = self.blocks.remove(&addr) {
            self.released(site, bytes, weight);
        }
    }

    // --- mappings ----------------------------------------------------------------------------

    /// A new mapping (it replaces whatever was mapped there, as MAP_FIXED does).
    pub fn map(&mut self, addr: u64, len: u64, site: SiteId) {
        let Some(end) = addr.checked_add(len).filter(|_| len > 0) else {
            return;
        };
        self.unmap(addr, len);
        if self.ranges.len() >= MAX_TRACKED {
            self.untracked += 1;
            return;
        }
        self.insert_range(addr, end, site);
        self.gained(site, len, 0);
        self.sites[site as usize].figures.alloc_count = self.sites[site as usize]
            .figures
            .alloc_count
            .saturating_add(1);
    }

    /// Releases `addr..addr + len`, wherever it was mapped during the session.
    pub fn unmap(&mut self, addr: u64, len: u64) {
        for (start, end, site) in self.take_range(addr, len) {
            self.released(site, end - start, 0);
        }
    }

    /// mremap: the bytes kept move with their sites; growth belongs to the mremap's site.
    pub fn remap(&mut self, old: u64, old_len: u64, new: u64, new_len: u64, site: SiteId) {
        let pieces = self.take_range(old, old_len);
        for &(start, end, s) in &pieces {
            self.released(s, end - start, 0);
        }
        self.unmap(new, new_len);
        let Some(new_end) = new.checked_add(new_len) else {
            return;
        };
        for (start, end, s) in pieces {
            let moved_start = start - old + new;
            let moved_end = (end - old + new).min(new_end);
            if moved_start < moved_end {
                self.insert_range(moved_start, moved_end, s);
                let f = &mut self.sites[s as usize].figures;
                f.outstanding_bytes = f.outstanding_bytes.saturating_add(moved_end - moved_start);
            }
        }
        if new_len > old_len {
            self.insert_range(new + old_len, new_end, site);
            self.gained(site, new_len - old_len, 0);
            self.sites[site as usize].figures.alloc_count = self.sites[site as usize]
                .figures
                .alloc_count
                .saturating_add(1);
        }
    }

    /// A brk call returned `new_brk`. The first one only says where the break is, unless the
    /// session learnt it before (`set_brk`).
    pub fn brk(&mut self, new_brk: u64, site: SiteId) {
        match self.brk {
            Some(old) if new_brk > old => {
                let len = new_brk - old;
                if self.ranges.len() < MAX_TRACKED {
                    self.insert_range(old, new_brk, site);
                    self.gained(site, len, 0);
                    self.sites[site as usize].figures.alloc_count = self.sites[site as usize]
                        .figures
                        .alloc_count
                        .saturating_add(1);
                } else {
                    self.untracked += 1;
                }
            }
            Some(old) if new_brk < old => self.unmap(new_brk, old - new_brk),
            _ => {}
        }
        self.brk = Some(new_brk);
    }

    /// The program break, once known.
    pub fn brk_value(&self) -> Option<u64> {
        self.brk
    }

    /// Where the break was when the session started (from /proc/PID/maps).
    pub fn set_brk(&mut self, brk: u64) {
        self.brk = Some(brk);
    }

    /// Removes `addr..addr + len` from the ranges, splitting ranges that stick out; returns the
    /// removed pieces.
    fn take_range(&mut self, addr: u64, len: u64) -> Vec<(u64, u64, SiteId)> {
        let end = addr.saturating_add(len);
        let mut pieces = Vec::new();
        if len == 0 {
            return pieces;
        }
        // The range starting at or before `addr` may reach into it.
        let first = self
            .ranges
            .range(..=addr)
            .next_back()
            .filter(|(_, (e, _))| *e > addr)
            .map(|(&s, _)| s);
        let inside: Vec<u64> = first
            .into_iter()
            .chain(self.ranges.range(addr..end).map(|(&s, _)| s))
            .collect();
        for start in inside {
            let Some((r_end, site)) = self.remove_range(start) else {
                continue;
            };
            let cut_start = start.max(addr);
            let cut_end = r_end.min(end);
            if start < cut_start {
                self.insert_range(start, cut_start, site);
            }
            if cut_end < r_end {
                self.insert_range(cut_end, r_end, site);
            }
            if cut_start < cut_end {
                pieces.push((cut_start, cut_end, site));
            }
        }
        pieces
    }

    /// Every range counts as one outstanding mapping of its site (a mapping cut in two by a
    /// munmap counts twice).
    fn insert_range(&mut self, start: u64, end: u64, site: SiteId) {
        self.ranges.insert(start, (end, site));
        let f = &mut self.sites[site as usize].figures;
        f.outstanding_count = f.outstanding_count.saturating_add(1);
    }

    fn remove_range(&mut self, start: u64) -> Option<(u64, SiteId)> {
        let (end, site) = self.ranges.remove(&start)?;
        let f = &mut self.sites[site as usize].figures;
        f.outstanding_count = f.outstanding_count.saturating_sub(1);
        Some((end, site))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(t: &Tally, site: SiteId) -> SiteFigures {
        t.sites()[site as usize].figures.clone()
    }

    #[test]
    fn heap_blocks_are_weighted_and_freed() {
        let mut t = Tally::new();
        let a = t.intern(&[1, 2], false);
        let b = t.intern(&[3], false);
        t.alloc(0x1000, 100, 4, a);
        t.alloc(0x2000, 50, 1, b);
        t.free(0x2000);
        t.free(0x9999); // never sampled: ignored
        assert_eq!(figures(&t, a).outstanding_bytes, 400);
        assert_eq!(figures(&t, a).outstanding_count, 4);
        assert_eq!(figures(&t, b).outstanding_bytes, 0);
        assert_eq!(figures(&t, b).allocated_bytes, 50);
        // The same stack interns to the same site.
        assert_eq!(t.intern(&[1, 2], false), a);
    }

    #[test]
    fn a_reused_address_replaces_the_unseen_freed_block() {
        let mut t = Tally::new();
        let a = t.intern(&[1], false);
        t.alloc(0x1000, 100, 1, a);
        t.alloc(0x1000, 30, 1, a);
        assert_eq!(figures(&t, a).outstanding_bytes, 30);
        assert_eq!(figures(&t, a).allocated_bytes, 130);
    }

    #[test]
    fn partial_unmaps_take_back_exactly_the_unmapped_bytes() {
        let mut t = Tally::new();
        let a = t.intern(&[1], false);
        let b = t.intern(&[2], false);
        t.map(0x10000, 0x4000, a);
        t.map(0x20000, 0x1000, b);
        t.unmap(0x11000, 0x1000); // a hole in a
        assert_eq!(figures(&t, a).outstanding_bytes, 0x3000);
        assert_eq!(figures(&t, a).outstanding_count, 2, "two pieces left");
        t.unmap(0x0, 0x100000); // everything
        assert_eq!(figures(&t, a).outstanding_bytes, 0);
        assert_eq!(figures(&t, b).outstanding_bytes, 0);
        assert_eq!(figures(&t, a).allocated_bytes, 0x4000);
        // Unmapping memory mapped before the session changes nothing.
        t.unmap(0x50000, 0x1000);
        assert_eq!(figures(&t, a).allocated_bytes, 0x4000);
    }

    #[test]
    fn fixed_mappings_replace_what_they_cover() {
        let mut t = Tally::new();
        let a = t.intern(&[1], false);
        let b = t.intern(&[2], false);
        t.map(0x10000, 0x4000, a);
        t.map(0x12000, 0x1000, b);
        assert_eq!(figures(&t, a).outstanding_bytes, 0x3000);
        assert_eq!(figures(&t, b).outstanding_bytes, 0x1000);
    }

    #[test]
    fn mremap_moves_bytes_and_gives_growth_to_its_caller() {
        let mut t = Tally::new();
        let a = t.intern(&[1], false);
        let r = t.intern(&[9], false);
        t.map(0x10000, 0x2000, a);
        t.remap(0x10000, 0x2000, 0x80000, 0x5000, r);
        assert_eq!(figures(&t, a).outstanding_bytes, 0x2000);
        assert_eq!(figures(&t, r).outstanding_bytes, 0x3000);
        // Shrinking in place gives bytes back from the moved part.
        t.remap(0x80000, 0x5000, 0x80000, 0x1000, r);
        assert_eq!(figures(&t, a).outstanding_bytes, 0x1000);
        assert_eq!(figures(&t, r).outstanding_bytes, 0);
        t.unmap(0x80000, 0x1000);
        assert_eq!(figures(&t, a).outstanding_bytes, 0);
    }

    #[test]
    fn brk_growth_belongs_to_the_grower_and_shrinks_from_the_top() {
        let mut t = Tally::new();
        let a = t.intern(&[1], false);
        let b = t.intern(&[2], false);
        t.brk(0x100000, a); // learns the break
        t.brk(0x110000, a);
        t.brk(0x118000, b);
        t.brk(0x118000, b); // a query
        assert_eq!(figures(&t, a).outstanding_bytes, 0x10000);
        assert_eq!(figures(&t, b).outstanding_bytes, 0x8000);
        t.brk(0x10c000, a);
        assert_eq!(figures(&t, b).outstanding_bytes, 0);
        assert_eq!(figures(&t, a).outstanding_bytes, 0xc000);
        assert_eq!(figures(&t, a).alloc_count, 1);
    }

    #[test]
    fn stacks_beyond_the_limit_share_the_overflow_site() {
        let mut t = Tally::new();
        for i in 0..MAX_STACKS as u64 {
            t.intern(&[i], false);
        }
        assert_eq!(t.intern(&[u64::MAX], false), OTHER_SITE);
        assert_eq!(t.merged_stacks, 1);
        assert_eq!(t.distinct_stacks(), MAX_STACKS as u64);
    }
}
