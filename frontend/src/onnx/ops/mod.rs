//! The ONNX operator table: every ONNX operator type kiln maps, with the
//! function that expresses a node of that type in WebNN operators.
//!
//! Handlers read attributes and inputs through [`NodeCx`] and [`Importer`],
//! add WebNN operators with [`Importer::op`] (which folds them when all
//! inputs are constants) and return one [`Value`] per ONNX output they
//! produce. They check the opset where ONNX changed an operator's form
//! (attributes that became inputs) and report what kiln cannot express as
//! [`NodeError::Unsupported`](super::import::NodeError::Unsupported).

mod control;
mod elementwise;
mod indexing;
mod nn;
mod quantization;
mod recurrent;
mod shape;
mod reduce;

use super::import::{Importer, NodeCx, NodeResult, Value, is_default_domain};

/// Expresses one ONNX node; returns one value per output it supports.
pub type Handler = fn(&mut Importer, &NodeCx) -> NodeResult<Vec<Value>>;

/// Every table, one per operator family.
const TABLES: [&[(&str, Handler)]; 8] = [
    elementwise::TABLE,
    nn::TABLE,
    shape::TABLE,
    reduce::TABLE,
    indexing::TABLE,
    quantization::TABLE,
    control::TABLE,
    recurrent::TABLE,
];

/// The handler of a default-domain operator type.
pub fn handler(domain: &str, op_type: &str) -> Option<Handler> {
    if !is_default_domain(domain) {
        return None;
    }
    TABLES.iter().flat_map(|t| t.iter()).find(|(name, _)| *name == op_type).map(|&(_, h)| h)
}

/// Why a node of this type has no handler.
pub fn unsupported_reason(domain: &str, op_type: &str) -> String {
    if is_default_domain(domain) {
        format!("the ONNX operator `{op_type}` is not supported")
    } else {
        format!("operators of domain `{domain}` are not supported")
    }
}

/// Every ONNX operator type the table maps, sorted.
pub fn supported_operators() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = TABLES.iter().flat_map(|t| t.iter()).map(|(n, _)| *n).collect();
    names.sort_unstable();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_names_are_unique() {
        let names = supported_operators();
        for pair in names.windows(2) {
            assert_ne!(pair[0], pair[1], "`{}` is in two tables", pair[0]);
        }
    }
}
