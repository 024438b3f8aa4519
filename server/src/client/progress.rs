//! Progress of a long client operation on standard error: a bar redrawn in
//! place on a terminal, a plain line every [`PROGRESS_LINE_MS`] otherwise
//! (a log, a pipe), each with the rate and the time left.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often a plain progress line is written when stderr is no terminal.
pub const PROGRESS_LINE_MS: u64 = 5_000;
/// How often the bar is redrawn on a terminal.
const REDRAW_MS: u64 = 200;
/// Characters of the bar.
const BAR_WIDTH: usize = 24;

/// One operation's progress.
pub struct Progress {
    what: &'static str,
    total: u64,
    done: u64,
    bytes: u64,
    start: Instant,
    last: Instant,
    terminal: bool,
    drawn: bool,
}

impl Progress {
    /// An operation on about `total` items (0: unknown).
    pub fn new(what: &'static str, total: u64) -> Progress {
        let now = Instant::now();
        Progress {
            what,
            total,
            done: 0,
            bytes: 0,
            start: now,
            last: now,
            terminal: std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    /// Counts `items` more, of `bytes`.
    pub fn add(&mut self, items: u64, bytes: u64) {
        self.done += items;
        self.bytes += bytes;
        let every = if self.terminal {
            REDRAW_MS
        } else {
            PROGRESS_LINE_MS
        };
        if self.last.elapsed() >= Duration::from_millis(every) {
            self.last = Instant::now();
            self.draw();
        }
    }

    /// What the progress line says.
    pub fn line(&self) -> String {
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let rate = self.done as f64 / secs;
        let mut line = format!("{}: {}", self.what, self.done);
        if self.total >= self.done && self.total > 0 {
            let left = (self.total - self.done) as f64 / rate.max(1e-9);
            line.push_str(&format!(
                "/{} ({:.0} %), {:.1} MB, {rate:.0}/s, about {left:.0} s left",
                self.total,
                100.0 * self.done as f64 / self.total as f64,
                self.bytes as f64 / 1e6
            ));
        } else {
            line.push_str(&format!(", {:.1} MB, {rate:.0}/s", self.bytes as f64 / 1e6));
        }
        line
    }

    fn draw(&mut self) {
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let filled = match self.total {
                0 => 0,
                total => (BAR_WIDTH as u64 * self.done.min(total) / total) as usize,
            };
            let bar = format!("[{}{}]", "#".repeat(filled), ".".repeat(BAR_WIDTH - filled));
            let _ = write!(err, "\r\x1b[2K{bar} {}", self.line());
        } else {
            let _ = writeln!(err, "{}", self.line());
        }
        self.drawn = true;
    }

    /// Ends the bar (a terminal gets its last state and a newline).
    pub fn done(&mut self) {
        if self.drawn && self.terminal {
            self.draw();
            let _ = writeln!(std::io::stderr());
        }
    }
}
