//! Plain aligned text tables for the admin CLI's human-readable output:
//! one header line, then one line per row, columns padded with spaces.

/// Spaces between two columns.
const GAP: &str = "  ";

/// A table under construction: a header and rows of the same width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|&header| header.to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank and extra cells are dropped, so
    /// every row has the header's width.
    pub fn push(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, each line ending in a newline. Widths count
    /// characters, not bytes, so `…` in a masked key stays aligned; the last
    /// column is not padded.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            let last = line.len().saturating_sub(1);
            let mut text = String::new();
            for (index, (cell, width)) in line.iter().zip(&widths).enumerate() {
                text.push_str(cell);
                if index < last {
                    let pad = width.saturating_sub(cell.chars().count());
                    text.extend(std::iter::repeat_n(' ', pad));
                    text.push_str(GAP);
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_padded_to_the_widest_cell() {
        let mut table = Table::new(&["ID", "NAME", "ENABLED"]);
        table.push(vec!["key_1".into(), "a".into(), "yes".into()]);
        table.push(vec!["k".into(), "a-long-name".into(), "no".into()]);
        assert_eq!(
            table.render(),
            "ID     NAME         ENABLED\n\
             key_1  a            yes\n\
             k      a-long-name  no\n"
        );
    }

    #[test]
    fn widths_count_characters_and_rows_are_squared_off() {
        let mut table = Table::new(&["KEY", "X"]);
        table.push(vec!["tg-ab…1234".into(), "1".into()]);
        table.push(vec!["short".into()]);
        table.push(vec!["a".into(), "b".into(), "dropped".into()]);
        let text = table.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "KEY         X");
        assert_eq!(lines[1], "tg-ab…1234  1");
        // A blank last cell leaves no trailing spaces.
        assert_eq!(lines[2], "short");
        assert_eq!(lines[3], "a           b");
        assert!(!text.contains("dropped"));
    }

    #[test]
    fn an_empty_table_is_just_its_header() {
        let table = Table::new(&["GROUP", "REQUESTS"]);
        assert!(table.is_empty());
        assert_eq!(table.render(), "GROUP  REQUESTS\n");
    }
}
