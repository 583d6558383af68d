//! `gru`, `gruCell`, `lstm` and `lstmCell`: the WebNN recurrent networks,
//! step by step in `f64`, each output rounded once at the end.
//!
//! A cell is a network of one step and one direction: its operands are the
//! sequence's without the step and direction axes, so the same code runs
//! both. Gate rows follow the operator's weight layout; `peepholeWeight` is
//! always input, output, forget. The peephole terms read the cell state the
//! step starts from (the spec's decomposition), also for the output gate.
//! A backward direction reads the input from the last step to the first,
//! and its hidden states are stored in the sequence output at the position
//! of the input step they were computed from.

use super::{encode_f64, floats, Res};
use crate::{OperandDescriptor, OperandId, RecurrentActivation, RecurrentGates, RecurrentNetwork, Tensor};

fn activate(a: RecurrentActivation, x: f64) -> f64 {
    match a {
        RecurrentActivation::Relu => x.max(0.0),
        RecurrentActivation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        RecurrentActivation::Tanh => x.tanh(),
    }
}

/// Runs the network; the results are, in order, the last hidden state, the
/// last cell state (LSTM only) and the sequence of hidden states (when
/// `return_sequence`), encoded with `outputs`' descriptors.
pub(super) fn run<'t>(
    net: &RecurrentNetwork,
    operand: &dyn Fn(OperandId) -> &'t Tensor,
    outputs: &[OperandDescriptor],
) -> Res<Vec<Tensor>> {
    let opt = |id: Option<OperandId>| id.map(|id| floats(operand(id))).transpose();
    let input = operand(net.input);
    let (x, w, r) = (floats(input)?, floats(operand(net.weight))?, floats(operand(net.recurrent_weight))?);
    let (b, rb, p) = (opt(net.bias)?, opt(net.recurrent_bias)?, opt(net.peephole_weight)?);
    let (h0, c0) = (opt(net.hidden_state)?, opt(net.cell_state)?);
    let dims = input.shape().dims();
    let (batch, input_size) = (dims[dims.len() - 2] as usize, dims[dims.len() - 1] as usize);
    let steps = x.len() / (batch * input_size).max(1);
    let h = net.hidden_size as usize;
    let gates = match net.gates {
        RecurrentGates::Gru(_) => 3,
        RecurrentGates::Lstm(_) => 4,
    };
    let backward = net.backward();
    let dirs = backward.len();
    let state_len = batch * h;
    let mut hidden_out = vec![0.0; dirs * state_len];
    let mut cell_out = vec![0.0; dirs * state_len];
    let mut sequence = vec![0.0; steps * dirs * state_len];
    for (d, &backward) in backward.iter().enumerate() {
        let wd = &w[d * gates * h * input_size..][..gates * h * input_size];
        let rd = &r[d * gates * h * h..][..gates * h * h];
        let bd = b.as_ref().map(|v| &v[d * gates * h..][..gates * h]);
        let rbd = rb.as_ref().map(|v| &v[d * gates * h..][..gates * h]);
        let pd = p.as_ref().map(|v| &v[d * 3 * h..][..3 * h]);
        let mut hs = h0.as_ref().map_or(vec![0.0; state_len], |v| v[d * state_len..][..state_len].to_vec());
        let mut cs = c0.as_ref().map_or(vec![0.0; state_len], |v| v[d * state_len..][..state_len].to_vec());
        for step in 0..steps {
            let t = if backward { steps - 1 - step } else { step };
            let xt = &x[t * batch * input_size..][..batch * input_size];
            let mut new_h = vec![0.0; state_len];
            for n in 0..batch {
                let xr = &xt[n * input_size..][..input_size];
                let hr = &hs[n * h..][..h];
                // Row `j` of the input and recurrent products, with their biases.
                let input_term = |j: usize| {
                    let dot: f64 = (0..input_size).map(|k| xr[k] * wd[j * input_size + k]).sum();
                    dot + bd.map_or(0.0, |v| v[j])
                };
                let recurrent_term = |j: usize, state: &[f64]| {
                    let dot: f64 = (0..h).map(|k| state[k] * rd[j * h + k]).sum();
                    dot + rbd.map_or(0.0, |v| v[j])
                };
                match net.gates {
                    RecurrentGates::Gru(o) => {
                        let [zb, rbk, nb] = o.layout.blocks().map(|blk| blk * h);
                        let [fa, ga] = o.activations;
                        let z: Vec<f64> =
                            (0..h).map(|u| activate(fa, input_term(zb + u) + recurrent_term(zb + u, hr))).collect();
                        let reset: Vec<f64> =
                            (0..h).map(|u| activate(fa, input_term(rbk + u) + recurrent_term(rbk + u, hr))).collect();
                        let reset_state: Vec<f64> = hr.iter().zip(&reset).map(|(a, b)| a * b).collect();
                        for u in 0..h {
                            let candidate = if o.reset_after {
                                input_term(nb + u) + reset[u] * recurrent_term(nb + u, hr)
                            } else {
                                input_term(nb + u) + recurrent_term(nb + u, &reset_state)
                            };
                            let nv = activate(ga, candidate);
                            new_h[n * h + u] = z[u] * hr[u] + nv * (1.0 - z[u]);
                        }
                    }
                    RecurrentGates::Lstm(o) => {
                        let [ib, ob, fb, gb] = o.layout.blocks().map(|blk| blk * h);
                        let [fa, ga, ha] = o.activations;
                        for u in 0..h {
                            let c = cs[n * h + u];
                            let peep = |blk: usize| pd.map_or(0.0, |v| v[blk * h + u] * c);
                            let gate = |blk: usize| input_term(blk + u) + recurrent_term(blk + u, hr);
                            let i = activate(fa, gate(ib) + peep(0));
                            let f = activate(fa, gate(fb) + peep(2));
                            let g = activate(ga, gate(gb));
                            let o_gate = activate(fa, gate(ob) + peep(1));
                            let c_new = f * c + i * g;
                            cs[n * h + u] = c_new;
                            new_h[n * h + u] = o_gate * activate(ha, c_new);
                        }
                    }
                }
            }
            hs = new_h;
            sequence[(t * dirs + d) * state_len..][..state_len].copy_from_slice(&hs);
        }
        hidden_out[d * state_len..][..state_len].copy_from_slice(&hs);
        cell_out[d * state_len..][..state_len].copy_from_slice(&cs);
    }
    let mut results = vec![hidden_out];
    if let RecurrentGates::Lstm(_) = net.gates {
        results.push(cell_out);
    }
    if net.return_sequence {
        results.push(sequence);
    }
    if results.len() != outputs.len() {
        return Err(format!("{} outputs expected, the network gives {}", outputs.len(), results.len()));
    }
    results.into_iter().zip(outputs).map(|(v, d)| encode_f64(d, v)).collect()
}
