//! The compiler driver: a [`Pipeline`] owns the passes in order, runs them
//! on a graph, times each one and keeps what each decided (a [`Report`]).
//!
//! ```text
//! graph ─fold─> graph ─rewrite─> graph ─layout─> graph ─lower─> kernels ─fuse─> kernels ─views─> kernels ─plan─> program
//! ```
//!
//! * `fold` ([`crate::fold()`]): nodes whose operands are all constants are
//!   computed at compile time.
//! * `rewrite` ([`crate::rewrite()`]): equality saturation with the rules
//!   of [`crate::rewrite::rules`], extraction by a cost model.
//! * `layout` ([`crate::relayout`]): NHWC convolutions, and what flows
//!   between them, compute channels-first.
//! * `lower` ([`crate::lower`]): every node becomes kernels.
//! * `fuse` ([`crate::fuse()`]): elementwise Maps fold into the kernels
//!   that produce their inputs.
//! * `views` ([`crate::elide_copies`]): copies into or out of a contiguous
//!   part of a buffer (concat inputs, split outputs) disappear, the copied
//!   buffer becoming a view of that part.
//! * `plan` ([`crate::plan()`]): scratch buffers get arena offsets; the
//!   program is validated.
//!
//! A pass can be left out ([`Pipeline::without`]) except `lower` and
//! `plan`, which every program needs. An observer passed to
//! [`Pipeline::run_observed`] sees the graph or the program after every
//! pass (for `kiln emit --dump-after PASS`).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use kiln_ir::kernel::Program;
use kiln_ir::{Graph, GraphError};

use crate::fold::{FoldError, Folded};
use crate::fuse::Fusion;
use crate::layout::Relayout;
use crate::views::View;
use crate::lower::{LowerError, LowerOptions};
use crate::rewrite::{RewriteOptions, Rewritten};

/// A pass of the compiler, in pipeline order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pass {
    Fold,
    Rewrite,
    Layout,
    Lower,
    Fuse,
    Views,
    Plan,
}

impl Pass {
    /// Every pass, in the order a pipeline runs them.
    pub const ALL: &'static [Pass] =
        &[Pass::Fold, Pass::Rewrite, Pass::Layout, Pass::Lower, Pass::Fuse, Pass::Views, Pass::Plan];

    pub fn name(self) -> &'static str {
        match self {
            Pass::Fold => "fold",
            Pass::Rewrite => "rewrite",
            Pass::Layout => "layout",
            Pass::Lower => "lower",
            Pass::Fuse => "fuse",
            Pass::Views => "views",
            Pass::Plan => "plan",
        }
    }

    /// Whether the pass rewrites the graph (else the kernel program).
    pub fn on_graph(self) -> bool {
        matches!(self, Pass::Fold | Pass::Rewrite | Pass::Layout)
    }
}

impl fmt::Display for Pass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Pass {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pass::ALL.iter().copied().find(|p| p.name() == s).ok_or_else(|| {
            let known: Vec<_> = Pass::ALL.iter().map(|p| p.name()).collect();
            format!("unknown pass `{s}` (the passes are: {})", known.join(", "))
        })
    }
}

/// What an observer sees after a pass.
#[derive(Clone, Copy, Debug)]
pub enum Snapshot<'a> {
    Graph(&'a Graph),
    Program(&'a Program),
}

/// Why compiling failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompileError {
    #[error(transparent)]
    Fold(#[from] FoldError),
    #[error(transparent)]
    Lower(#[from] LowerError),
    /// Building the rewritten graph failed (a rule's bug).
    #[error("rewrite: {0}")]
    Rewrite(GraphError),
    /// Building the relaid-out graph failed (the pass's bug).
    #[error("layout: {0}")]
    Layout(GraphError),
}

/// What the passes did, for `kiln explain` and for tests.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Every pass that ran, in order, with its wall time.
    pub timings: Vec<(Pass, Duration)>,
    /// Operators in the graph given to the pipeline.
    pub operators_before: usize,
    /// Operators in the graph that was lowered.
    pub operators_after: usize,
    /// Kernels lowering produced, before fusion.
    pub kernels_lowered: usize,
    /// For every kernel of the program, the indices of the nodes of the
    /// lowered graph ([`Compiled::graph`]) it computes, ascending (several
    /// after fusion).
    pub kernel_nodes: Vec<Vec<usize>>,
    /// Nodes folded into constants.
    pub folded: Folded,
    /// What the rewrite pass did, if it ran.
    pub rewrite: Option<Rewritten>,
    /// What the layout pass did.
    pub layout: Relayout,
    /// Fusion decisions, in the kernel numbering of the lowered program at
    /// the time each was made.
    pub fusions: Vec<Fusion>,
    /// Copies that became views, in the kernel numbering after fusion at
    /// the time each was made.
    pub views: Vec<View>,
}

impl Report {
    /// The wall time of all passes.
    pub fn total(&self) -> Duration {
        self.timings.iter().map(|(_, t)| *t).sum()
    }
}

/// The result of a pipeline run.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The graph that was lowered (after the graph passes).
    pub graph: Graph,
    /// The fused, planned and validated kernel program.
    pub program: Program,
    pub report: Report,
}

/// The ordered list of passes and their options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pipeline {
    passes: Vec<Pass>,
    pub rewrite: RewriteOptions,
    pub lower: LowerOptions,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline::new(LowerOptions::default())
    }
}

impl Pipeline {
    /// Every pass, lowering with `lower`.
    pub fn new(lower: LowerOptions) -> Self {
        Pipeline { passes: Pass::ALL.to_vec(), rewrite: RewriteOptions::default(), lower }
    }

    /// The pipeline without `pass` (`lower` and `plan` always run).
    pub fn without(mut self, pass: Pass) -> Self {
        if !matches!(pass, Pass::Lower | Pass::Plan) {
            self.passes.retain(|&p| p != pass);
        }
        self
    }

    /// The passes, in the order they run.
    pub fn passes(&self) -> &[Pass] {
        &self.passes
    }

    /// Compiles `graph` to a kernel program.
    pub fn run(&self, graph: &Graph) -> Result<Compiled, CompileError> {
        self.run_observed(graph, &mut |_, _| {})
    }

    /// [`Pipeline::run`], showing `observe` the graph or program after
    /// every pass.
    pub fn run_observed(
        &self,
        graph: &Graph,
        observe: &mut dyn FnMut(Pass, Snapshot<'_>),
    ) -> Result<Compiled, CompileError> {
        let mut report = Report { operators_before: graph.nodes().len(), ..Report::default() };
        let mut current: Option<Graph> = None;
        let mut program: Option<Program> = None;
        for &pass in &self.passes {
            let start = Instant::now();
            let input = current.as_ref().unwrap_or(graph);
            match pass {
                Pass::Fold => {
                    let (folded, record) = crate::fold::fold(input)?;
                    report.folded = record;
                    current = Some(folded);
                }
                Pass::Rewrite => {
                    let (rewritten, record) = crate::rewrite::rewrite(input, &self.rewrite).map_err(CompileError::Rewrite)?;
                    report.rewrite = Some(record);
                    current = Some(rewritten);
                }
                Pass::Layout => {
                    let (relaid, record) = crate::layout::relayout(input).map_err(CompileError::Layout)?;
                    report.layout = record;
                    current = Some(relaid);
                }
                Pass::Lower => {
                    report.operators_after = input.nodes().len();
                    let lowered = crate::lower::lower_nodes(input, self.lower)?;
                    report.kernels_lowered = lowered.program.kernels.len();
                    report.kernel_nodes = lowered.origins.iter().map(|&n| vec![n]).collect();
                    program = Some(lowered.program);
                }
                Pass::Fuse => {
                    let p = program.as_mut().expect("lower runs before fuse");
                    report.fusions = crate::fuse::fuse(p);
                    for f in &report.fusions {
                        let gone = if f.at == f.producer { f.consumer } else { f.producer };
                        let mut nodes = report.kernel_nodes.remove(gone);
                        let at = if gone < f.at { f.at - 1 } else { f.at };
                        report.kernel_nodes[at].append(&mut nodes);
                        report.kernel_nodes[at].sort_unstable();
                        report.kernel_nodes[at].dedup();
                    }
                }
                Pass::Views => {
                    let p = program.as_mut().expect("lower runs before views");
                    report.views = crate::views::elide_copies(p);
                    // The copies' nodes are computed by no kernel now.
                    for v in &report.views {
                        for &k in v.kernels.iter().rev() {
                            report.kernel_nodes.remove(k);
                        }
                    }
                }
                Pass::Plan => {
                    let p = program.as_mut().expect("lower runs before plan");
                    crate::plan::plan(p);
                    p.validate().map_err(LowerError::Invalid)?;
                }
            }
            report.timings.push((pass, start.elapsed()));
            match (&program, pass.on_graph()) {
                (Some(p), false) => observe(pass, Snapshot::Program(p)),
                _ => observe(pass, Snapshot::Graph(current.as_ref().unwrap_or(graph))),
            }
        }
        let program = program.expect("every pipeline lowers");
        Ok(Compiled { graph: current.unwrap_or_else(|| graph.clone()), program, report })
    }
}
