//! Progress on stderr, for people: one line redrawn in place on a terminal, few lines in a log.
//! [`Progress`] is a bar (`round 1  [#########           ] 60/120`, printed once when done in a
//! log); [`StatusLine`] a changing state (a line per change in a log, or a minute's silence).
//!
//! Hand-made rather than `indicatif`: `arcctl runs watch` needs the bar as a plain string
//! ([`bar`]) inside its own stdout line, and the rest is these few lines, where indicatif would
//! add four crates to the build (indicatif, console, unit-prefix, unicode-width).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const WIDTH: u64 = 30;

/// Writes `line` over the current stderr line (a terminal only).
fn redraw(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K{line}");
    let _ = err.flush();
}

/// A bar of `done` of `total` steps.
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
            redraw(&p.line());
        }
        p
    }

    pub fn tick(&mut self) {
        self.done += 1;
        if self.tty {
            redraw(&self.line());
        }
    }

    /// Ends the bar's line on a terminal; prints the bar once in a log.
    pub fn finish(&self) {
        if self.tty {
            eprintln!();
        } else {
            eprintln!("{}", self.line());
        }
    }

    fn line(&self) -> String {
        bar(&self.label, self.done, self.total)
    }
}

/// `label  [#####     ] done/total`.
pub fn bar(label: &str, done: u64, total: u64) -> String {
    let filled = (done.min(total) * WIDTH).checked_div(total).unwrap_or(WIDTH);
    format!("{label}  [{}{}] {done}/{total}", "#".repeat(filled as usize), " ".repeat((WIDTH - filled) as usize))
}

/// A state that changes now and then, shown with the time elapsed since `started`.
pub struct StatusLine {
    tty: bool,
    last: String,
    last_at: Instant,
}

impl Default for StatusLine {
    fn default() -> Self {
        Self::new()
    }
}

impl StatusLine {
    pub fn new() -> Self {
        Self { tty: std::io::stderr().is_terminal(), last: String::new(), last_at: Instant::now() }
    }

    /// Shows `state (1m05s elapsed)`: redrawn on a terminal; in a log, printed when `state`
    /// changed or a minute has passed.
    pub fn show(&mut self, state: &str, started: Instant) {
        let line = format!("{state} ({} elapsed)", elapsed(started.elapsed()));
        if self.tty {
            redraw(&line);
        } else if state != self.last || self.last_at.elapsed() >= Duration::from_secs(60) {
            eprintln!("{line}");
            self.last_at = Instant::now();
        }
        self.last = state.to_owned();
    }

    /// Ends the line on a terminal.
    pub fn done(&self) {
        if self.tty && !self.last.is_empty() {
            eprintln!();
        }
    }
}

/// `42s`, `3m07s`.
pub fn elapsed(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
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

    #[test]
    fn elapsed_time_reads_in_minutes_and_seconds() {
        assert_eq!(elapsed(Duration::from_secs(42)), "42s");
        assert_eq!(elapsed(Duration::from_secs(187)), "3m07s");
    }
}
