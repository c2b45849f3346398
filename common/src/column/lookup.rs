//! Tables derived from the column table at compile time: the sort keys with their columns and
//! names, and the CSV columns. Building them fails to compile when the column table breaks one
//! of their rules.

use super::Column;
use crate::snapshot::SortKey;

/// How many columns have a sort key (each has exactly one, checked at compile time).
pub(crate) const SORTABLE: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < Column::ALL.len() {
        if Column::ALL[i].sort_key().is_some() {
            n += 1;
        }
        i += 1;
    }
    n
};

/// The sort keys in the table's order.
pub(crate) const SORT_KEYS: [SortKey; SORTABLE] = {
    let mut keys = [SortKey::Pid; SORTABLE];
    let (mut n, mut i) = (0, 0);
    while i < Column::ALL.len() {
        if let Some(key) = Column::ALL[i].sort_key() {
            keys[n] = key;
            n += 1;
        }
        i += 1;
    }
    keys
};

/// The column of each sort key, indexed by the key's discriminant. Building it fails to compile
/// when a key has no column or two columns claim one key.
pub(crate) const BY_SORT_KEY: [Column; SORTABLE] = {
    let mut by_key: [Option<Column>; SORTABLE] = [None; SORTABLE];
    let mut i = 0;
    while i < Column::ALL.len() {
        if let Some(key) = Column::ALL[i].sort_key() {
            assert!(
                by_key[key as usize].is_none(),
                "two columns sort by one key"
            );
            by_key[key as usize] = Some(Column::ALL[i]);
        }
        i += 1;
    }
    let mut out = [Column::Pid; SORTABLE];
    let mut k = 0;
    while k < SORTABLE {
        out[k] = by_key[k].expect("a sort key without a column");
        k += 1;
    }
    out
};

/// The command-line name of each sort key, indexed by the key's discriminant.
pub(crate) const SORT_NAMES: [&str; SORTABLE] = {
    let mut names = [""; SORTABLE];
    let mut k = 0;
    while k < SORTABLE {
        names[k] = BY_SORT_KEY[k]
            .cli_name()
            .expect("a sortable column has a name");
        k += 1;
    }
    names
};

/// The CSV columns in order.
pub const CSV_COLUMNS: [Column; csv_count()] = {
    let mut out = [Column::Pid; csv_count()];
    let (mut n, mut i) = (0, 0);
    while i < Column::ALL.len() {
        if Column::ALL[i].csv_name().is_some() {
            out[n] = Column::ALL[i];
            n += 1;
        }
        i += 1;
    }
    out
};

const fn csv_count() -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < Column::ALL.len() {
        if Column::ALL[i].csv_name().is_some() {
            n += 1;
        }
        i += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The D-Bus API document, which lists the sort keys by hand.
    const DBUS_API: &str =
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/dbus-api.md"));

    /// The words of the code span that follows `marker` (it may wrap over lines).
    fn code_span_after<'a>(doc: &'a str, marker: &str) -> Vec<&'a str> {
        let (_, rest) = doc
            .split_once(marker)
            .unwrap_or_else(|| panic!("the document no longer says {marker:?}"));
        let (span, _) = rest.split_once('`').expect("the code span ends");
        span.split_whitespace().collect()
    }

    #[test]
    fn the_dbus_document_lists_exactly_the_sort_keys() {
        let listed = code_span_after(DBUS_API, "`sort_key` is one of `");
        let documented: BTreeSet<&str> = listed.iter().copied().collect();
        assert_eq!(
            documented.len(),
            listed.len(),
            "a key listed twice: {listed:?}"
        );
        let table: BTreeSet<&str> = SortKey::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            documented.difference(&table).collect::<Vec<_>>(),
            Vec::<&&str>::new(),
            "docs/dbus-api.md lists keys the column table does not have"
        );
        assert_eq!(
            table.difference(&documented).collect::<Vec<_>>(),
            Vec::<&&str>::new(),
            "docs/dbus-api.md leaves out sort keys"
        );
    }
}
