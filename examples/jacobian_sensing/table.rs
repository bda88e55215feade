//! Experiments' results as Markdown tables, aligned for the terminal and
//! ready to paste into the docs.

/// A table: a header and rows of cells, printed with `print`.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headings.
    pub fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row, one cell per column.
    pub fn row(&mut self, cells: Vec<String>) {
        assert_eq!(cells.len(), self.header.len(), "one cell per column");
        self.rows.push(cells);
    }

    /// Prints the table, its columns padded to their widest cell.
    pub fn print(&self) {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r[c].chars().count())
                    .chain([self.header[c].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(cell, &w)| format!("{cell:<w$}"))
                .collect();
            format!("| {} |", padded.join(" | "))
        };
        report!("{}", line(&self.header));
        let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
        report!("{}", line(&rule));
        for row in &self.rows {
            report!("{}", line(row));
        }
        report!("");
    }
}
