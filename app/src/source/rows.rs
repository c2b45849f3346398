//! How many processes each snapshot carries: the grid's top [`TOP_N`], or every process for the
//! process tree (which needs each one's parent) — all of them from the embedded collector, up to
//! the helper's [`MAX_LIMIT`] from the helper, the first by the sort column.

use memmon_helper::dbus::MAX_LIMIT;

use super::TOP_N;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Rows {
    /// The top [`TOP_N`] by the sort column (the grid).
    #[default]
    Top,
    /// Every process (the tree).
    All,
}

impl Rows {
    /// The `limit` of the helper's `GetSnapshot`.
    pub fn helper_limit(self) -> u32 {
        match self {
            Rows::Top => TOP_N.min(MAX_LIMIT),
            Rows::All => MAX_LIMIT,
        }
    }

    /// How many of the embedded collector's rows are kept.
    pub fn embedded_limit(self) -> usize {
        match self {
            Rows::Top => TOP_N as usize,
            Rows::All => usize::MAX,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_asks_for_as_many_as_the_helper_sends() {
        assert_eq!(Rows::Top.helper_limit(), 100);
        assert_eq!(Rows::All.helper_limit(), MAX_LIMIT);
        assert_eq!(Rows::Top.embedded_limit(), 100);
        assert_eq!(Rows::All.embedded_limit(), usize::MAX, "every process");
    }
}
