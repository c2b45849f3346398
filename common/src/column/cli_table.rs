//! The CLI table's view of a column: its heading, width and cell text (MB, MB/min), padded
//! to the column's alignment.

use super::{Align, Column, Unit, Value};
use crate::snapshot::ProcessRow;

impl Column {
    /// The CLI table's heading: the command-line name in capitals with the unit.
    pub fn table_heading(self) -> String {
        let name = self.cli_name().unwrap_or(self.title()).to_uppercase();
        format!("{name}{}", self.table_unit())
    }

    /// The unit the CLI table shows this column in, as its heading says it.
    const fn table_unit(self) -> &'static str {
        match self.unit() {
            Unit::KiB | Unit::Bytes => "(MB)",
            Unit::BytesPerMin => "(MB/min)",
            Unit::Count => "#",
            Unit::Id | Unit::Text | Unit::Flag => "",
        }
    }

    /// The CLI table's width for this column (text is cut to it).
    pub fn table_width(self) -> usize {
        let width = match self.unit() {
            Unit::Id => 7,
            Unit::Text => 16,
            Unit::Count | Unit::Flag => 8,
            Unit::KiB | Unit::Bytes => 10,
            Unit::BytesPerMin => 12,
        };
        let name = self.cli_name().unwrap_or(self.title());
        width.max(name.chars().count() + self.table_unit().len())
    }

    /// The cell as the CLI table prints it: MB with one decimal, growth in MB/min with a sign;
    /// "-" when absent.
    pub fn table_text(self, row: &ProcessRow) -> String {
        const MIB: f64 = 1_048_576.0;
        let Some(value) = self.value(row) else {
            return "-".to_owned();
        };
        match (value, self.unit()) {
            (Value::Int(n), Unit::KiB) => format!("{:.1}", n as f64 / 1024.0),
            (Value::Int(n), Unit::Bytes) => format!("{:.1}", n as f64 / MIB),
            (Value::Int(n), _) => n.to_string(),
            (Value::Rate(r), _) => format!("{:+.2}", r / MIB),
            (Value::Text(t), _) => t.chars().take(self.table_width()).collect(),
            (Value::Flag(b), _) => if b { "yes" } else { "no" }.to_owned(),
        }
    }

    /// `text` (a heading or a cell of this column) padded to the CLI table's width.
    pub fn table_cell(self, text: &str) -> String {
        let width = self.table_width();
        match self.align() {
            Align::Left => format!("{text:<width$}"),
            Align::Right => format!("{text:>width$}"),
        }
    }
}
