//! The `.webnn` graph text format (`shared/formats/webnn-text.md`): parse,
//! print, convert to and from [`Graph`], load and save with a weights
//! sidecar.
//!
//! ```
//! use std::collections::BTreeMap;
//! use kiln_frontend::webnn_text::{from_graph, parse, print, to_graph};
//!
//! let text = "webnn_graph \"g\" v1 {
//!   inputs {
//!     x: f32[2, 3];
//!   }
//!   consts {
//!     two: f32[] @scalar(2.0);
//!   }
//!   nodes {
//!     y = mul(x, two);
//!   }
//!   outputs { y; }
//! }
//! ";
//! let doc = parse(text)?;
//! assert_eq!(print(&doc), text);
//! let graph = to_graph(&doc, &BTreeMap::new())?;
//! assert_eq!(print(&from_graph(&graph, "g")), text);
//! # Ok::<(), kiln_frontend::webnn_text::TextError>(())
//! ```
//!
//! # Syntax
//!
//! The grammar of the format document, plus:
//! - `//` and `#` start a comment that runs to the end of the line;
//! - identifiers are ASCII; `true`, `false`, `null`, `Infinity` and `NaN`
//!   are values, so they cannot name an operand;
//! - integers are exact within `i128`; a number with a fraction or an
//!   exponent is an `f64` (an exponent too large gives infinity);
//!   `Infinity`, `-Infinity` and `NaN` spell the non-finite floats;
//! - strings stay on one line and know the escapes `\"`, `\\` and `\n`;
//! - each block appears at most once, in any order, and the graph's closing
//!   `}` must be the last token;
//! - arrays nest at most [`MAX_NESTING`] deep.
//!
//! Errors are [`ParseError`]s with a 1-based line and column (in characters).
//!
//! # Canonical form
//!
//! [`print()`] writes one canonical text per document, and for text already in
//! that form `print(&parse(text)?) == text`, byte for byte:
//! - the header `webnn_graph "NAME" vN {`, with ` @quantized` before the `{`
//!   when set;
//! - the blocks `inputs`, `consts`, `nodes`, `outputs` in that order; a
//!   block with no entries is left out;
//! - `inputs`, `consts` and `nodes` open with `  name {` on their own line,
//!   hold one entry per line indented by four spaces, and close with `  }`;
//! - `outputs` takes one line: `  outputs { a; b; }`;
//! - single spaces only where shown: `x: f32[1, 2];`,
//!   `W: f32[2, 2] @weights("W") @scalar(1.0);` (annotations in order),
//!   `y = op(a, b, axis=1);`, `[s0, s1] = split(x, 2);`, `[1, 2]`; a
//!   statement written with brackets keeps them, even around one name;
//! - integers in decimal; floats in the shortest form that reads back as the
//!   same `f64` and always with a `.` or an exponent (`1.0`, `0.5`, `1e-5`,
//!   `1e20`), or `Infinity`, `-Infinity`, `NaN`;
//! - strings escape only `"`, `\` and newline;
//! - no comments and no blank lines; the file ends with `}` and a newline.
//!
//! The example of the format document is canonical except for its
//! alignment spaces and `0.00001`, which prints as `1e-5`.
//!
//! # Graphs
//!
//! [`to_graph`] and [`from_graph`] convert (see them for what the text
//! means); [`load`] and [`save`] add the files. Weights come from a
//! [`WeightSource`]: the sidecar next to the file ([`Sidecar::find`]), or
//! tensors in memory.

mod ast;
mod convert;
mod lexer;
mod parser;
mod printer;
mod weights;

use std::fmt;
use std::path::{Path, PathBuf};

use kiln_ir::Graph;

pub use ast::*;
pub use convert::{from_graph, to_graph, MAX_FILLED_BYTES};
pub use parser::{parse, MAX_NESTING};
pub use printer::{format_float, print};
pub use weights::{
    safetensors_bytes, SafeTensorsFile, Sidecar, WeightError, WeightSource, WeightsFile, MAX_SAFETENSORS_HEADER,
};

/// A syntax error: where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct ParseError {
    pub pos: Pos,
    pub message: String,
}

impl ParseError {
    pub fn new(pos: Pos, message: impl Into<String>) -> Self {
        ParseError { pos, message: message.into() }
    }
}

/// An operator name the operator table does not know, where it is first
/// called, and how many statements call it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownOperator {
    pub name: String,
    pub pos: Pos,
    pub uses: usize,
}

impl fmt::Display for UnknownOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (line {}, column {}", self.name, self.pos.line, self.pos.col)?;
        if self.uses > 1 {
            write!(f, "; {} uses", self.uses)?;
        }
        f.write_str(")")
    }
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    items.iter().map(T::to_string).collect::<Vec<_>>().join(", ")
}

/// An error reading, converting or writing a `.webnn` graph.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TextError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// Every unknown operator of the file, in order of first use.
    #[error("unknown operators: {}", list(.0))]
    UnknownOperators(Vec<UnknownOperator>),
    /// A declaration, statement or output that does not make a valid graph:
    /// an undefined or duplicate name, an argument of the wrong kind, a
    /// shape rule broken.
    #[error("{pos}: {message}")]
    Invalid { pos: Pos, message: String },
    /// A constant whose value cannot be had: no or several annotations, a
    /// missing or unusable weights entry, a type or shape that disagrees
    /// with the declaration, a bad `@scalar`.
    #[error("{pos}: constant `{name}`: {message}")]
    Constant { pos: Pos, name: String, message: String },
    /// A weights sidecar that cannot be opened or is malformed as a whole.
    #[error(transparent)]
    Weights(#[from] WeightError),
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
}

fn io_error(path: &Path, e: impl fmt::Display) -> TextError {
    TextError::Io { path: path.to_path_buf(), message: e.to_string() }
}

/// Reads the graph file at `path` and builds its graph. When a constant is
/// marked `@weights`, its data comes from the sidecar next to the file
/// ([`Sidecar::find`]), memory-mapped; otherwise no sidecar is opened.
pub fn load(path: &Path) -> Result<Graph, TextError> {
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| io_error(path, format!("not UTF-8 text: {e}")))?;
    let doc = parse(&text)?;
    let weights = if doc.uses_weights() { Sidecar::find(path)? } else { Sidecar::None { tried: Vec::new() } };
    to_graph(&doc, &weights)
}

/// Writes `graph` to `path` (conventionally `NAME.webnn`) as
/// `print(&from_graph(graph, NAME))` and its `@weights` constants
/// to `NAME.safetensors` beside it ([`safetensors_bytes`]; written even when
/// empty, so a stale file never stands in). `NAME` is the file stem. Both
/// files are deterministic: saving what [`load`] reads back writes the same
/// bytes again.
pub fn save(graph: &Graph, path: &Path) -> Result<(), TextError> {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .ok_or_else(|| io_error(path, "the path has no file name"))?;
    let (doc, tensors) = convert::graph_document(graph, &name);
    std::fs::write(path, print(&doc)).map_err(|e| io_error(path, e))?;
    let sidecar = path.with_extension("safetensors");
    let bytes = safetensors_bytes(&tensors).map_err(|e| io_error(&sidecar, e))?;
    std::fs::write(&sidecar, bytes).map_err(|e| io_error(&sidecar, e))
}
