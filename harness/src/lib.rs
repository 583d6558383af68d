//! kiln's test harnesses, apart from the library users build on: the WebNN
//! conformance runner ([`conformance`]: W3C WPT vectors, judged as WPT
//! judges them) and the ONNX backend-test runner ([`onnx_tests`]: the onnx
//! package's node tests and model folders against their reference
//! outputs). The `kiln conformance` and `kiln onnx-tests` commands and the
//! test suites drive them. [`differential`] makes random graphs and checks
//! the backends against the interpreter on them; [`fuzz`] holds the fuzzing
//! entry points (the cargo-fuzz targets of `fuzz/` and
//! `tests/fuzz_regressions.rs`).

pub mod conformance;
pub mod differential;
pub mod fuzz;
pub mod onnx_tests;
