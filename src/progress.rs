//! Progress of the command line's long steps (loading and compiling a
//! model, the conformance and ONNX test runners) on a terminal, with
//! indicatif. Shown on stderr only when both stdout and stderr are
//! terminals: piped or redirected output stays exactly what the command
//! prints, with no control sequences in it.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A spinner or a bar that clears itself when dropped; does nothing when
/// nobody watches.
pub struct Progress(Option<ProgressBar>);

fn attended() -> bool {
    std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
}

impl Progress {
    /// A spinner with `message` (`loading model.onnx`), until dropped.
    pub fn step(message: impl Into<String>) -> Self {
        if !attended() {
            return Progress(None);
        }
        let spinner = ProgressBar::new_spinner().with_message(message.into());
        spinner.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("a valid template"));
        spinner.enable_steady_tick(Duration::from_millis(100));
        Progress(Some(spinner))
    }

    /// A bar over `len` items of `what` (`cases`), until dropped.
    pub fn bar(len: usize, what: &str) -> Self {
        if !attended() {
            return Progress(None);
        }
        let bar = ProgressBar::new(len as u64);
        let template = format!("{{bar:40}} {{pos}}/{{len}} {what} ({{elapsed}}, {{eta}} left) {{msg}}");
        bar.set_style(ProgressStyle::with_template(&template).expect("a valid template"));
        Progress(Some(bar))
    }

    /// One more item done; `message` names it (or what failed so far).
    pub fn advance(&self, message: impl Into<String>) {
        if let Some(bar) = &self.0 {
            bar.set_message(message.into());
            bar.inc(1);
        }
    }

    /// Prints `line` on stdout above the bar, which is redrawn below it.
    pub fn println(&self, line: &str) {
        match &self.0 {
            Some(bar) => bar.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
