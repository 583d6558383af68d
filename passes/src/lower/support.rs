//! The per-operator summary of what the lowering does ([`op_support`],
//! for `kiln ops`): the names of the operators that become host kernels
//! for some data types, and why. It must agree with the decisions
//! `host_reason` makes per node. The operator names come from
//! [`kiln_ir::operator_names`], declared once with the operator enum.

/// How [`lower`](super::lower) handles the WebNN operator `name`. Either
/// way every data type and option the shape rules accept is lowered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Always to generated kernels.
    Full,
    /// To generated kernels, except the cases the note names, which run as
    /// host kernels ([`Kernel::Host`](kiln_ir::kernel::Kernel::Host): exact,
    /// slow; refused with
    /// [`LowerOptions::host_kernels`](super::LowerOptions::host_kernels)
    /// off).
    Host(&'static str),
}

/// The lowering's support for the WebNN operator `name` (for `kiln ops`);
/// `None` for a name that is not a WebNN operator kiln knows. Agrees with
/// the decisions `lower` makes per node (see the [`lower`](super) module
/// documentation).
pub fn op_support(name: &str) -> Option<Support> {
    const WIDE_INTS: &str = "32/64-bit integers";
    let host = match name {
        "add" | "sub" | "mul" | "div" | "max" | "min" | "abs" | "neg" | "relu" | "clamp" | "prelu" | "where"
        | "maxPool2d" | "reduceMax" | "reduceMin" => WIDE_INTS,
        "equal" | "notEqual" | "greater" | "greaterOrEqual" | "lesser" | "lesserOrEqual" => {
            "32/64-bit integers, unless one side is a constant within ±2^24"
        }
        "pow" => "integers",
        "reduceL1" | "reduceSum" | "reduceSumSquare" | "reduceProduct" => "integers",
        "cast" => "integer-to-integer casts from 32/64-bit integers, int8 to uint32/uint64 (see cast_rule)",
        "resample2d" => "linear mode on integers",
        "pad" => "constant values f32 cannot hold exactly",
        "triangular" => WIDE_INTS,
        "argMin" | "argMax" | "gatherElements" | "gatherND" | "scatterElements" | "scatterND" => {
            "32/64-bit integers, positions beyond 2^24"
        }
        "cumulativeSum" => "integers",
        "dequantizeLinear" => "int32/uint32 inputs",
        "quantizeLinear" => "int32/uint32 zero points",
        _ => return kiln_ir::operator_names().contains(&name).then_some(Support::Full),
    };
    Some(Support::Host(host))
}
