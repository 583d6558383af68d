//! The outcome of a conformance run: per case, per operator, in total; as
//! text for people and as JSON for tools.

use std::collections::BTreeMap;
use std::io::{self, Write};

use kiln_runtime::Backend;
use serde_json::{Value, json};

use super::Failure;

/// What happened to one case.
#[derive(Clone, Debug)]
pub enum Outcome {
    Passed,
    /// Failed to build, to run, or to match; never skipped silently.
    Failed(Failure),
    /// Listed in the exclusion file with this reason; not run.
    Excluded(String),
}

/// One case's outcome.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// The operator the case's file tests.
    pub op: String,
    pub name: String,
    pub outcome: Outcome,
}

/// Case counts. `total() = passed + failed + excluded`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub excluded: usize,
}

impl Counts {
    pub fn total(&self) -> usize {
        self.passed + self.failed + self.excluded
    }

    fn add(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Passed => self.passed += 1,
            Outcome::Failed(_) => self.failed += 1,
            Outcome::Excluded(_) => self.excluded += 1,
        }
    }

    fn to_json(self) -> Value {
        json!({"passed": self.passed, "failed": self.failed, "excluded": self.excluded})
    }
}

/// The results of [`super::run_cases`], in the order the cases were given.
#[derive(Clone, Debug)]
pub struct Report {
    pub backend: Backend,
    pub results: Vec<CaseResult>,
}

/// How many failures [`Report::write_summary`] lists when not verbose.
const BRIEF_FAILURE_LIMIT: usize = 10;

impl Report {
    /// Counts over all cases.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for r in &self.results {
            counts.add(&r.outcome);
        }
        counts
    }

    /// Counts per operator, by operator name.
    pub fn op_counts(&self) -> BTreeMap<&str, Counts> {
        let mut ops: BTreeMap<&str, Counts> = BTreeMap::new();
        for r in &self.results {
            ops.entry(r.op.as_str()).or_default().add(&r.outcome);
        }
        ops
    }

    /// Every failed case with its failure.
    pub fn failures(&self) -> impl Iterator<Item = (&CaseResult, &Failure)> {
        self.results.iter().filter_map(|r| match &r.outcome {
            Outcome::Failed(f) => Some((r, f)),
            _ => None,
        })
    }

    /// Every excluded case with its reason.
    pub fn exclusions(&self) -> impl Iterator<Item = (&CaseResult, &str)> {
        self.results.iter().filter_map(|r| match &r.outcome {
            Outcome::Excluded(reason) => Some((r, reason.as_str())),
            _ => None,
        })
    }

    /// Whether no case failed (excluded cases do not count as failures).
    pub fn all_passed(&self) -> bool {
        self.counts().failed == 0
    }

    /// The machine-readable summary:
    /// `{"backend": "interp", "total": N, "passed": N, "failed": N,
    /// "excluded": N, "ops": {"conv2d": {"passed": n, "failed": n,
    /// "excluded": n}, ...}}`, with `total = passed + failed + excluded`
    /// overall and per operator. Keys are sorted.
    pub fn to_json(&self) -> Value {
        let counts = self.counts();
        let ops: serde_json::Map<String, Value> =
            self.op_counts().into_iter().map(|(op, c)| (op.to_string(), c.to_json())).collect();
        json!({
            "backend": self.backend.name(),
            "total": counts.total(),
            "passed": counts.passed,
            "failed": counts.failed,
            "excluded": counts.excluded,
            "ops": ops,
        })
    }

    /// Writes the per-operator table, the totals, and the failures (every
    /// one, with the excluded cases and their reasons, when `verbose`; the
    /// first few otherwise).
    pub fn write_summary(&self, out: &mut dyn Write, verbose: bool) -> io::Result<()> {
        writeln!(out, "WebNN conformance (WPT) on backend {}", self.backend)?;
        writeln!(out, "{:<24} {:>7} {:>7} {:>9}", "operator", "passed", "failed", "excluded")?;
        for (op, c) in self.op_counts() {
            writeln!(out, "{op:<24} {:>7} {:>7} {:>9}", c.passed, c.failed, c.excluded)?;
        }
        let c = self.counts();
        writeln!(out, "total {}: {} passed, {} failed, {} excluded", c.total(), c.passed, c.failed, c.excluded)?;
        self.write_failures(out, verbose)?;
        if verbose {
            for (r, reason) in self.exclusions() {
                writeln!(out, "EXCLUDED [{}] {}: {reason}", r.op, r.name)?;
            }
        }
        Ok(())
    }

    fn write_failures(&self, out: &mut dyn Write, verbose: bool) -> io::Result<()> {
        let limit = if verbose { usize::MAX } else { BRIEF_FAILURE_LIMIT };
        for (r, failure) in self.failures().take(limit) {
            writeln!(out, "FAILED [{}] {}: {failure}", r.op, r.name)?;
        }
        let failed = self.counts().failed;
        if failed > limit {
            writeln!(out, "... and {} more failures (verbose lists them all)", failed - limit)?;
        }
        Ok(())
    }

    /// [`Report::write_summary`] to standard output.
    pub fn print_summary(&self, verbose: bool) {
        let stdout = io::stdout();
        // A closed stdout is not worth a panic.
        let _ = self.write_summary(&mut stdout.lock(), verbose);
    }
}
