//! Plain aligned text tables for people (`--json` is for scripts).
//!
//! Hand-made rather than `comfy-table`: this borderless layout (two spaces between columns,
//! numbers right-aligned, no trailing spaces) is the 40 lines of `render`, and comfy-table would
//! need about as many lines of per-column padding, trimming and the same numeric test, plus
//! three crates (comfy-table, unicode-width, unicode-segmentation).

/// A table: a header row and data rows; numeric-looking columns are right-aligned.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<I, S>(headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self { headers: headers.into_iter().map(Into::into).collect(), rows: Vec::new() }
    }

    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one line per row, no trailing spaces.
    pub fn render(&self) -> String {
        let cols = self.headers.len().max(self.rows.iter().map(Vec::len).max().unwrap_or(0));
        let cell = |row: &Vec<String>, i: usize| row.get(i).cloned().unwrap_or_default();
        let widths: Vec<usize> = (0..cols)
            .map(|i| {
                let head = self.headers.get(i).map_or(0, |h| h.chars().count());
                self.rows.iter().map(|r| cell(r, i).chars().count()).fold(head, usize::max)
            })
            .collect();
        let numeric: Vec<bool> =
            (0..cols).map(|i| !self.rows.is_empty() && self.rows.iter().all(|r| looks_numeric(&cell(r, i)))).collect();
        let line = |row: &Vec<String>| {
            let mut out = String::new();
            for (i, w) in widths.iter().enumerate() {
                let c = cell(row, i);
                let pad = w.saturating_sub(c.chars().count());
                if i > 0 {
                    out.push_str("  ");
                }
                if numeric[i] {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(&c);
                } else {
                    out.push_str(&c);
                    out.push_str(&" ".repeat(pad));
                }
            }
            out.trim_end().to_owned()
        };
        let mut out = line(&self.headers);
        for r in &self.rows {
            out.push('\n');
            out.push_str(&line(r));
        }
        out
    }
}

fn looks_numeric(s: &str) -> bool {
    let s = s.trim_start_matches('$').trim_end_matches('%');
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_text_left_and_numbers_right() {
        let mut t = Table::new(["STATUS", "TASKS"]);
        t.row(["COMPLETED", "10"]);
        t.row(["FAILED_PERMANENT", "2"]);
        assert_eq!(t.render(), "STATUS            TASKS\nCOMPLETED            10\nFAILED_PERMANENT      2");
    }

    #[test]
    fn missing_cells_are_blank() {
        let mut t = Table::new(["A", "B"]);
        t.row(["x"]);
        assert_eq!(t.render(), "A  B\nx");
    }
}
