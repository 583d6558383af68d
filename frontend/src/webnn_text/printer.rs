//! Prints a [`Document`] in canonical form (the rules are in the module
//! documentation of [`super`]).

use std::fmt::Write;

use kiln_ir::Number;

use super::ast::*;

/// The canonical text of `doc`. Identifiers are printed as they are: a
/// document whose names are not valid identifiers (possible only when it is
/// built in code) prints text that does not parse back.
pub fn print(doc: &Document) -> String {
    let mut out = String::new();
    out.push_str("webnn_graph ");
    push_string(&mut out, &doc.name);
    let _ = write!(out, " v{}", doc.version);
    if doc.quantized {
        out.push_str(" @quantized");
    }
    out.push_str(" {\n");
    if !doc.inputs.is_empty() {
        out.push_str("  inputs {\n");
        for d in &doc.inputs {
            let _ = writeln!(out, "    {}: {};", d.name.name, type_text(&d.ty));
        }
        out.push_str("  }\n");
    }
    if !doc.consts.is_empty() {
        out.push_str("  consts {\n");
        for d in &doc.consts {
            let _ = write!(out, "    {}: {}", d.name.name, type_text(&d.ty));
            for a in &d.annotations {
                match a {
                    Annotation::Weights(key) => {
                        out.push_str(" @weights(");
                        push_string(&mut out, key);
                        out.push(')');
                    }
                    Annotation::Scalar(n) => {
                        let _ = write!(out, " @scalar({})", format_number(*n));
                    }
                }
            }
            out.push_str(";\n");
        }
        out.push_str("  }\n");
    }
    if !doc.nodes.is_empty() {
        out.push_str("  nodes {\n");
        for s in &doc.nodes {
            out.push_str("    ");
            let names: Vec<&str> = s.targets.iter().map(|t| t.name.as_str()).collect();
            if s.multi {
                let _ = write!(out, "[{}]", names.join(", "));
            } else {
                out.push_str(&names.join(", "));
            }
            out.push_str(" = ");
            match &s.expr {
                Expr::Call(call) => push_call(&mut out, call),
                Expr::Value(v) => push_value(&mut out, v),
            }
            out.push_str(";\n");
        }
        out.push_str("  }\n");
    }
    if !doc.outputs.is_empty() {
        out.push_str("  outputs {");
        for o in &doc.outputs {
            let _ = write!(out, " {};", o.name);
        }
        out.push_str(" }\n");
    }
    out.push_str("}\n");
    out
}

fn type_text(ty: &TensorType) -> String {
    let dims: Vec<String> = ty.shape.iter().map(u32::to_string).collect();
    format!("{}[{}]", ty.dtype.name(), dims.join(", "))
}

fn push_call(out: &mut String, call: &Call) {
    out.push_str(&call.op.name);
    out.push('(');
    for (i, arg) in call.args.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if let Some(name) = &arg.name {
            out.push_str(&name.name);
            out.push('=');
        }
        push_value(out, &arg.value);
    }
    out.push(')');
}

fn push_value(out: &mut String, v: &Value) {
    match v {
        Value::Ident(i) => out.push_str(&i.name),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(x) => out.push_str(&format_float(*x)),
        Value::Str(s) => push_string(out, s),
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Null => out.push_str("null"),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_value(out, item);
            }
            out.push(']');
        }
    }
}

fn push_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

pub(super) fn format_number(n: Number) -> String {
    match n {
        Number::Int(i) => i.to_string(),
        Number::Float(x) => format_float(x),
    }
}

/// The canonical spelling of a float: the shortest decimal that parses back
/// to the same `f64`, always with a `.` or an exponent so that it never
/// reads as an integer (Rust's `{:?}`: `1.0`, `0.5`, `1e-5`, `1e20`), and
/// `Infinity`, `-Infinity`, `NaN` for the non-finite values.
pub fn format_float(x: f64) -> String {
    if x.is_nan() {
        "NaN".to_string()
    } else if x.is_infinite() {
        if x > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else {
        format!("{x:?}")
    }
}
