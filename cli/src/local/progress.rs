//! A one-line progress bar on stderr: `round 1  [#########           ] 60/120`. Redrawn in
//! place on a terminal; printed once when done otherwise (logs stay short).

use std::io::{IsTerminal, Write};

const WIDTH: u64 = 30;

pub struct Progress {
    label: String,
    total: u64,
    done: u64,
    tty: bool,
}

impl Progress {
    pub fn new(label: &str, total: u64) -> Self {
        let p = Self { label: label.to_owned(), total, done: 0, tty: std::io::stderr().is_terminal() };
        if p.tty {
            p.draw(false);
        }
        p
    }

    pub fn tick(&mut self) {
        self.done += 1;
        if self.tty {
            self.draw(false);
        }
    }

    pub fn finish(&self) {
        self.draw(true);
    }

    fn draw(&self, last: bool) {
        let line = bar(&self.label, self.done, self.total);
        let mut err = std::io::stderr().lock();
        let _ = if self.tty { write!(err, "\r{line}") } else { Ok(()) };
        let _ = match (self.tty, last) {
            (true, true) => writeln!(err),
            (false, true) => writeln!(err, "{line}"),
            _ => Ok(()),
        };
        let _ = err.flush();
    }
}

/// `label  [#####     ] done/total`.
pub fn bar(label: &str, done: u64, total: u64) -> String {
    let filled = (done.min(total) * WIDTH).checked_div(total).unwrap_or(WIDTH);
    format!("{label}  [{}{}] {done}/{total}", "#".repeat(filled as usize), " ".repeat((WIDTH - filled) as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_in_proportion() {
        assert_eq!(bar("r", 0, 10), format!("r  [{}] 0/10", " ".repeat(30)));
        assert_eq!(bar("r", 5, 10), format!("r  [{}{}] 5/10", "#".repeat(15), " ".repeat(15)));
        assert_eq!(bar("r", 10, 10), format!("r  [{}] 10/10", "#".repeat(30)));
        assert_eq!(bar("r", 0, 0), format!("r  [{}] 0/0", "#".repeat(30)));
    }
}
