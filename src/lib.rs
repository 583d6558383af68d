//! kiln: a graph compiler for neural networks in the W3C WebNN model.

pub mod conformance;
