//! Recurrent networks: `LSTM` and `GRU` are WebNN's `lstm` and `gru`;
//! `RNN` (WebNN has none) is decomposed, unrolled over its steps: one
//! `gemm` projects every step's input (`X W^T + Wb + Rb`), then each step is
//! `activation(gemm(H, R, bTranspose, c = the step's rows))`, and the
//! sequence output is their `concat`.
//!
//! ONNX's gate orders are WebNN's default layouts (LSTM `iofc` = `iofg`,
//! GRU `zrh` = `zrn`); the bias `B` is `[bias, recurrentBias]` side by side
//! and is sliced in two; `direction` `reverse`/`bidirectional` is
//! `backward`/`both`; GRU's `linear_before_reset` is `resetAfter`.
//! `layout = 1` (batch first) transposes the input and initial states in,
//! and the outputs back. The output `Y` is the sequence (`returnSequence`
//! only when a node reads it), `Y_h` and `Y_c` the last states.
//!
//! Unsupported, each named in the error: activations other than Sigmoid,
//! Tanh and Relu (or with `activation_alpha`/`activation_beta`), different
//! activations per direction, `clip`, LSTM's `input_forget`, per-sequence
//! lengths shorter than the input (`sequence_lens` that is not constant and
//! equal to the step count), and LSTM peepholes `P` that are not all zero
//! (ONNX's output gate reads the new cell state, WebNN's the previous one).

use kiln_ir::*;

use super::Handler;
use super::shape::reshape;
use crate::onnx::import::{Importer, NodeCx, NodeResult, Value, invalid, unsupported};

pub const TABLE: &[(&str, Handler)] = &[("GRU", gru), ("LSTM", lstm), ("RNN", rnn)];

/// What the two networks share: the operands after the layout and bias
/// conversions, and the sequence options.
struct Common {
    input: OperandId,
    weight: OperandId,
    recurrent_weight: OperandId,
    bias: Option<OperandId>,
    recurrent_bias: Option<OperandId>,
    steps: u32,
    hidden_size: u32,
    direction: RecurrentDirection,
    batch_first: bool,
    /// ONNX activation names, one list per direction.
    activations: Vec<Vec<String>>,
}

/// Reads the inputs and attributes the recurrent operators share; `gates`
/// is 4 (LSTM), 3 (GRU) or 1 (RNN).
fn common(im: &mut Importer, cx: &NodeCx, gates: u32) -> NodeResult<Common> {
    let op = &cx.node.op_type;
    let x = im.input(cx, 0)?;
    let t = im.desc(x).data_type;
    if !t.is_float() {
        return unsupported(format!("{op} on {t} tensors (kiln's is defined on float32 and float16)"));
    }
    let xd = im.desc(x).shape.dims().to_vec();
    if xd.len() != 3 {
        return invalid(format!("input X must have rank 3, got shape {:?}", xd));
    }
    let batch_first = match cx.int_or("layout", 0)? {
        0 => false,
        1 => true,
        other => return invalid(format!("layout {other} is not 0 or 1")),
    };
    let (steps, batch) = if batch_first { (xd[1], xd[0]) } else { (xd[0], xd[1]) };
    let direction = match cx.string_or("direction", "forward")?.as_str() {
        "forward" => RecurrentDirection::Forward,
        "reverse" => RecurrentDirection::Backward,
        "bidirectional" => RecurrentDirection::Both,
        other => return invalid(format!("direction \"{other}\" is not forward, reverse or bidirectional")),
    };
    let dirs = kiln_ir::infer::recurrent_directions(direction);
    let hidden_size = match cx.int("hidden_size")? {
        Some(h) if h > 0 && h <= i64::from(u32::MAX / 8) => h as u32,
        Some(h) => return invalid(format!("hidden_size {h} is out of range")),
        None => {
            // Optional in ONNX: R's last dimension.
            let r = im.input(cx, 2)?;
            let rd = im.desc(r).shape.dims().to_vec();
            *rd.last().ok_or_else(|| crate::onnx::import::NodeError::Invalid("R has rank 0".into()))?
        }
    };
    if cx.float("clip")?.is_some() {
        return unsupported(format!("{op} with `clip` (WebNN's recurrent networks do not clip)"));
    }
    if cx.floats("activation_alpha")?.is_some() || cx.floats("activation_beta")?.is_some() {
        return unsupported(format!("{op} activations with alpha/beta parameters"));
    }
    let per_direction = match gates {
        4 => 3,
        3 => 2,
        _ => 1,
    };
    let activations = match cx.strings("activations")? {
        None => vec![],
        Some(names) if names.len() == per_direction * dirs as usize => {
            names.chunks(per_direction).map(|c| c.to_vec()).collect()
        }
        Some(names) => {
            return invalid(format!("{} activations for {dirs} direction(s); expected {}", names.len(), per_direction * dirs as usize));
        }
    };
    if let Some(lens) = im.opt_input(cx, 4)? {
        match im.const_ints(cx, 4)? {
            Some(v) if v.len() == batch as usize && v.iter().all(|&l| l == i64::from(steps)) => {}
            Some(v) => return unsupported(format!("sequence_lens {v:?} shorter than the {steps} steps (WebNN runs every step)")),
            None => {
                return unsupported(format!(
                    "sequence_lens `{}` computed at run time (WebNN runs every step of every sequence)",
                    im.desc(lens)
                ));
            }
        }
    }
    let input = if batch_first { transpose(im, cx, x, &[1, 0, 2])? } else { x };
    let (weight, recurrent_weight) = (im.input(cx, 1)?, im.input(cx, 2)?);
    let (bias, recurrent_bias) = match im.opt_input(cx, 3)? {
        None => (None, None),
        Some(b) => {
            let bd = im.desc(b).shape.dims().to_vec();
            let rows = gates * hidden_size;
            if bd != [dirs, 2 * rows] {
                return invalid(format!("B has shape {bd:?}; expected [{dirs}, {}]", 2 * rows));
            }
            let half = |im: &mut Importer, start: u32| {
                im.op1(cx, Op::Slice { input: b, starts: vec![0, start], sizes: vec![dirs, rows], strides: None })
            };
            (Some(half(im, 0)?), Some(half(im, rows)?))
        }
    };
    Ok(Common {
        input,
        weight,
        recurrent_weight,
        bias,
        recurrent_bias,
        steps,
        hidden_size,
        direction,
        batch_first,
        activations,
    })
}

fn transpose(im: &mut Importer, cx: &NodeCx, x: OperandId, permutation: &[u32]) -> NodeResult<OperandId> {
    im.op1(cx, Op::Transpose { input: x, permutation: Some(permutation.to_vec()) })
}

/// An initial state input, `[batch, directions, hidden]` when batch first.
fn initial_state(im: &mut Importer, cx: &NodeCx, i: usize, c: &Common) -> NodeResult<Option<OperandId>> {
    match im.opt_input(cx, i)? {
        Some(s) if c.batch_first => Ok(Some(transpose(im, cx, s, &[1, 0, 2])?)),
        other => Ok(other),
    }
}

/// The WebNN activations of the ONNX names (the same for every direction).
fn activations<const N: usize>(op: &str, names: &[Vec<String>], default: [RecurrentActivation; N]) -> NodeResult<[RecurrentActivation; N]> {
    let Some(first) = names.first() else { return Ok(default) };
    if names.iter().any(|n| n != first) {
        return unsupported(format!("{op} with different activations per direction ({names:?})"));
    }
    let mut out = default;
    for (slot, name) in out.iter_mut().zip(first) {
        *slot = match name.as_str() {
            "Sigmoid" => RecurrentActivation::Sigmoid,
            "Tanh" => RecurrentActivation::Tanh,
            "Relu" => RecurrentActivation::Relu,
            other => return unsupported(format!("{op} activation `{other}` (WebNN has Sigmoid, Tanh and Relu)")),
        };
    }
    Ok(out)
}

/// The node's outputs from WebNN's `[last states..., sequence?]`: `Y` (the
/// sequence) first, then the states, batch first when asked.
fn outputs(im: &mut Importer, cx: &NodeCx, c: &Common, results: Vec<OperandId>, states: usize) -> NodeResult<Vec<Value>> {
    let mut out = Vec::with_capacity(states + 1);
    let sequence = results.get(states).copied();
    out.push(match sequence {
        Some(y) if c.batch_first => transpose(im, cx, y, &[2, 0, 1, 3])?.into(),
        Some(y) => y.into(),
        None => Value::Unavailable,
    });
    for &s in &results[..states] {
        out.push(if c.batch_first { transpose(im, cx, s, &[1, 0, 2])? } else { s }.into());
    }
    Ok(out)
}

fn lstm(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let c = common(im, cx, 4)?;
    if cx.int_or("input_forget", 0)? != 0 {
        return unsupported("LSTM with input_forget (coupled input and forget gates)");
    }
    // Peepholes are accepted only when they are constant zeros (PyTorch
    // exports none; some converters write zeros).
    if im.opt_input(cx, 7)?.is_some() {
        let zeros = im.const_floats(cx, 7)?.is_some_and(|v| v.iter().all(|&x| x == 0.0));
        if !zeros {
            return unsupported("LSTM peepholes P (ONNX's output gate reads the new cell state, WebNN's the previous one)");
        }
    }
    let cell = LstmCellOptions {
        bias: c.bias,
        recurrent_bias: c.recurrent_bias,
        peephole_weight: None,
        layout: LstmWeightLayout::Iofg,
        activations: activations("LSTM", &c.activations, LstmCellOptions::default().activations)?,
    };
    let options = LstmOptions {
        cell,
        initial_hidden_state: initial_state(im, cx, 5, &c)?,
        initial_cell_state: initial_state(im, cx, 6, &c)?,
        return_sequence: cx.has_output(0),
        direction: c.direction,
    };
    let op = Op::Lstm {
        input: c.input,
        weight: c.weight,
        recurrent_weight: c.recurrent_weight,
        steps: c.steps,
        hidden_size: c.hidden_size,
        options,
    };
    let results = im.op(cx, op)?;
    outputs(im, cx, &c, results, 2)
}

fn gru(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let c = common(im, cx, 3)?;
    let cell = GruCellOptions {
        bias: c.bias,
        recurrent_bias: c.recurrent_bias,
        reset_after: cx.int_or("linear_before_reset", 0)? != 0,
        layout: GruWeightLayout::Zrn,
        activations: activations("GRU", &c.activations, GruCellOptions::default().activations)?,
    };
    let options = GruOptions {
        cell,
        initial_hidden_state: initial_state(im, cx, 5, &c)?,
        return_sequence: cx.has_output(0),
        direction: c.direction,
    };
    let op = Op::Gru {
        input: c.input,
        weight: c.weight,
        recurrent_weight: c.recurrent_weight,
        steps: c.steps,
        hidden_size: c.hidden_size,
        options,
    };
    let results = im.op(cx, op)?;
    outputs(im, cx, &c, results, 1)
}

/// `RNN`: decomposed into `gemm`, `slice`, the activation and `concat` (see
/// the module documentation).
fn rnn(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let c = common(im, cx, 1)?;
    let [activation] = activations("RNN", &c.activations, [RecurrentActivation::Tanh])?;
    let kind = match activation {
        RecurrentActivation::Tanh => UnaryOp::Tanh,
        RecurrentActivation::Sigmoid => UnaryOp::Sigmoid,
        RecurrentActivation::Relu => UnaryOp::Relu,
    };
    let d = im.desc(c.input).shape.dims().to_vec();
    let (steps, batch, input) = (d[0], d[1], d[2]);
    let h = c.hidden_size;
    let dirs = kiln_ir::infer::recurrent_directions(c.direction);
    let initial = initial_state(im, cx, 5, &c)?;
    let slice = |im: &mut Importer, x: OperandId, starts: Vec<u32>, sizes: Vec<u32>| {
        im.op1(cx, Op::Slice { input: x, starts, sizes, strides: None })
    };
    let gemm = |im: &mut Importer, a: OperandId, b: OperandId, bias: Option<OperandId>| {
        let options = GemmOptions { c: bias, b_transpose: true, ..Default::default() };
        im.op1(cx, Op::Gemm { a, b, options })
    };
    let rows = reshape(im, cx, c.input, &[steps * batch, input])?;
    let mut finals = Vec::new();
    let mut sequences = Vec::new();
    for dir in 0..dirs {
        let backward = c.direction == RecurrentDirection::Backward || dir == 1;
        let w = slice(im, c.weight, vec![dir, 0, 0], vec![1, h, input])?;
        let w = reshape(im, cx, w, &[h, input])?;
        let r = slice(im, c.recurrent_weight, vec![dir, 0, 0], vec![1, h, h])?;
        let r = reshape(im, cx, r, &[h, h])?;
        let bias = match (c.bias, c.recurrent_bias) {
            (Some(b), Some(rb)) => {
                let b = slice(im, b, vec![dir, 0], vec![1, h])?;
                let rb = slice(im, rb, vec![dir, 0], vec![1, h])?;
                Some(im.op1(cx, Op::Binary { kind: BinaryOp::Add, a: b, b: rb })?)
            }
            _ => None,
        };
        let projected = gemm(im, rows, w, bias)?;
        let mut state = match initial {
            Some(s) => {
                let s = slice(im, s, vec![dir, 0, 0], vec![1, batch, h])?;
                Some(reshape(im, cx, s, &[batch, h])?)
            }
            None => None,
        };
        let mut states = vec![None; steps as usize];
        for step in 0..steps {
            let t = if backward { steps - 1 - step } else { step };
            let xt = slice(im, projected, vec![t * batch, 0], vec![batch, h])?;
            let pre = match state {
                Some(hp) => gemm(im, hp, r, Some(xt))?,
                None => xt,
            };
            let ht = im.unary(cx, kind, pre)?;
            states[t as usize] = Some(ht);
            state = Some(ht);
        }
        let last = state.expect("an RNN has at least one step");
        finals.push(reshape(im, cx, last, &[1, batch, h])?);
        if cx.has_output(0) {
            let per_step = states
                .into_iter()
                .map(|s| reshape(im, cx, s.expect("every step ran"), &[1, 1, batch, h]))
                .collect::<NodeResult<Vec<_>>>()?;
            sequences.push(concat(im, cx, per_step, 0)?);
        }
    }
    let mut results = vec![concat(im, cx, finals, 0)?];
    if !sequences.is_empty() {
        results.push(concat(im, cx, sequences, 1)?);
    }
    outputs(im, cx, &c, results, 1)
}

/// `inputs` joined along `axis` (one input: itself).
fn concat(im: &mut Importer, cx: &NodeCx, inputs: Vec<OperandId>, axis: u32) -> NodeResult<OperandId> {
    match inputs.as_slice() {
        [one] => Ok(*one),
        _ => im.op1(cx, Op::Concat { inputs, axis }),
    }
}
