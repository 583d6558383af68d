//! `gru`, `gruCell`, `lstm` and `lstmCell`: compiled as a loop over the time
//! steps, unrolled at compile time (the steps are static), around Gemm
//! kernels, with the gates computed by Map kernels.
//!
//! For every direction: one Gemm projects the input of every step at once
//! (`x W^T + bias`, f32 scratch `[directions, steps x batch, gates x
//! hiddenSize]`); then each step is a Gemm of the previous hidden state by
//! the recurrent weight (`h R^T + recurrentBias`) and Maps that read both
//! products at the step's rows and compute the new states (LSTM: the cell
//! state, then the hidden state; GRU with `resetAfter` false: the reset
//! hidden state, a second Gemm for the new gate, then the hidden state).
//! States live in f32 scratch, one buffer per step, so each kernel writes
//! its buffer once; the outputs (and every step of the sequence output)
//! are copies rounded to the output type. A cell is a network of one step
//! and one direction: its operands are viewed with the two leading axes
//! of size 1. Missing initial states are zero-filled scratch.
//!
//! The semantics are the interpreter's (`kiln_ir::interp`, recurrent.rs).

use kiln_ir::kernel::{Access, Expr, Kernel};
use kiln_ir::{DataType, OperandId, RecurrentActivation, RecurrentGates, RecurrentNetwork};

use super::elementwise::sigmoid;
use super::values::{E, Row, V, Val, access, ident};
use super::{Lowerer, R};

/// The number of gates of a network.
fn gate_count(gates: RecurrentGates) -> usize {
    match gates {
        RecurrentGates::Gru(_) => 3,
        RecurrentGates::Lstm(_) => 4,
    }
}

/// The operands in memory, every one seen with a leading direction axis
/// (the input with a leading step axis).
struct Operands {
    /// `[steps, batch, inputSize]`.
    x: Val,
    /// `[directions, gates x hidden, inputSize]`.
    w: Val,
    /// `[directions, gates x hidden, hidden]`.
    r: Val,
    /// `[directions, gates x hidden]`.
    b: Option<Val>,
    rb: Option<Val>,
    /// `[directions, 3 x hidden]`.
    p: Option<Val>,
}

fn activation(e: &mut E, a: RecurrentActivation, x: V) -> V {
    match a {
        RecurrentActivation::Sigmoid => sigmoid(e, x),
        RecurrentActivation::Tanh => e.un(kiln_ir::kernel::UnaryFn::Tanh, x),
        RecurrentActivation::Relu => {
            let neg = e.negative(x);
            let zero = e.c(0.0);
            e.sel(neg, zero, x)
        }
    }
}

/// `v` (`[batch, n]`) at `[axis 0, offset + axis 1]` over a `[batch,
/// hidden]` domain.
fn columns(v: &Val, offset: usize) -> Access {
    access(v, 2, &[Row::axis(0), Row::axis(1).offset(offset as isize)], None)
}

/// Direction `d` of a per-gate vector (`[directions, n]`) from `offset`,
/// along the hidden axis of a `[batch, hidden]` domain.
fn vector_at(v: &Val, d: usize, offset: usize) -> Access {
    access(v, 2, &[Row::fixed(d as isize), Row::axis(1).offset(offset as isize)], None)
}

/// A `[batch, hidden]` state: direction `dir` of a `[directions, batch,
/// hidden]` value (an initial state, an output), or a whole `[batch,
/// hidden]` scratch (`dir` = `None`).
#[derive(Clone)]
struct State {
    val: Val,
    dir: Option<usize>,
}

impl State {
    /// Over a `[batch, hidden]` domain.
    fn map_access(&self) -> Access {
        self.over(2, 1)
    }

    /// As a Gemm's `a` over a `[batch, n, hidden]` domain.
    fn gemm_access(&self) -> Access {
        self.over(3, 2)
    }

    fn over(&self, rank: usize, hidden_axis: usize) -> Access {
        let mut rows: Vec<Row> = self.dir.map(|d| Row::fixed(d as isize)).into_iter().collect();
        rows.extend([Row::axis(0), Row::axis(hidden_axis)]);
        access(&self.val, rank, &rows, None)
    }
}

impl Lowerer<'_> {
    /// Lowers a recurrent operator; `outputs` are its results in order
    /// (hidden state, cell state for LSTM, then the sequence if asked).
    pub(super) fn recurrent(&mut self, net: &RecurrentNetwork, outputs: &[OperandId]) -> R {
        let h = net.hidden_size as usize;
        let g = gate_count(net.gates);
        let backward = net.backward();
        let dirs = backward.len();
        let with_dir = |v: Val| if net.direction.is_some() { v } else { v.view(&[[1].as_slice(), &v.shape].concat()) };
        // A cell's input gets a step axis of 1 the same way.
        let x = with_dir(self.val(net.input));
        let (steps, batch, input_size) = (x.shape[0], x.shape[1], x.shape[2]);
        let ops = Operands {
            x,
            w: with_dir(self.val(net.weight)),
            r: with_dir(self.val(net.recurrent_weight)),
            b: net.bias.map(|id| with_dir(self.val(id))),
            rb: net.recurrent_bias.map(|id| with_dir(self.val(id))),
            p: net.peephole_weight.map(|id| with_dir(self.val(id))),
        };
        let state = |l: &mut Self, id: Option<OperandId>| match id {
            Some(id) => with_dir(l.val(id)),
            None => {
                let zeros = l.scratch(DataType::Float32, &[dirs, batch, h]);
                let mut e = E::new();
                let z = e.c(0.0);
                l.map(vec![zeros.len()], vec![], e.done(z), ident(&zeros.view(&[zeros.len()])));
                zeros
            }
        };
        let h0 = state(self, net.hidden_state);
        let c0 = match net.gates {
            RecurrentGates::Lstm(_) => Some(state(self, net.cell_state)),
            RecurrentGates::Gru(_) => None,
        };
        let projected = self.input_projection(&ops, dirs, steps * batch, g * h, input_size);
        let dests: Vec<Val> = outputs.iter().map(|&o| with_dir(self.dest(o))).collect();
        let sequence = dests.get(if c0.is_some() { 2 } else { 1 }).cloned();
        for (d, &back) in backward.iter().enumerate() {
            let mut hidden = State { val: h0.clone(), dir: Some(d) };
            let mut cell = c0.clone().map(|val| State { val, dir: Some(d) });
            for step in 0..steps {
                let t = if back { steps - 1 - step } else { step };
                // Gate block `blk` of the input projection at step `t`.
                let xw = |blk: usize| {
                    let rows = [
                        Row::fixed(d as isize),
                        Row::axis(0).offset((t * batch) as isize),
                        Row::axis(1).offset((blk * h) as isize),
                    ];
                    access(&projected, 2, &rows, None)
                };
                let new_h = self.scratch(DataType::Float32, &[batch, h]);
                match net.gates {
                    RecurrentGates::Lstm(o) => {
                        let c = cell.clone().expect("an LSTM has a cell state");
                        let hr = self.recurrent_product(&ops, d, &hidden, g * h, 0);
                        let [ib, ob, fb, gb] = o.layout.blocks();
                        let [fa, ga, ha] = o.activations;
                        let pre = |blk: usize| [xw(blk), columns(&hr, blk * h)];
                        let peep = |k: usize| ops.p.as_ref().map(|p| vector_at(p, d, k * h));
                        // The cell state f * c + i * g; the peepholes read c.
                        let mut inputs = vec![c.map_access()];
                        inputs.extend(pre(ib));
                        inputs.extend(pre(fb));
                        inputs.extend(pre(gb));
                        inputs.extend(peep(0));
                        inputs.extend(peep(2));
                        let mut e = E::new();
                        let cv = e.load(0);
                        let (mut i_pre, mut f_pre, g_pre) = (sum2(&mut e, 1), sum2(&mut e, 3), sum2(&mut e, 5));
                        if ops.p.is_some() {
                            let (pi, pf) = (e.load(7), e.load(8));
                            let (ti, tf) = (e.mul(pi, cv), e.mul(pf, cv));
                            i_pre = e.add(i_pre, ti);
                            f_pre = e.add(f_pre, tf);
                        }
                        let i = activation(&mut e, fa, i_pre);
                        let f = activation(&mut e, fa, f_pre);
                        let gv = activation(&mut e, ga, g_pre);
                        let fc = e.mul(f, cv);
                        let ig = e.mul(i, gv);
                        let c_new = e.add(fc, ig);
                        let new_c = self.scratch(DataType::Float32, &[batch, h]);
                        self.map(vec![batch, h], inputs, e.done(c_new), ident(&new_c));
                        // The hidden state o * h(c'); the output gate's
                        // peephole reads the previous cell state too.
                        let mut inputs = vec![c.map_access(), ident(&new_c)];
                        inputs.extend(pre(ob));
                        inputs.extend(peep(1));
                        let mut e = E::new();
                        let (cv, cn) = (e.load(0), e.load(1));
                        let mut o_pre = sum2(&mut e, 2);
                        if ops.p.is_some() {
                            let po = e.load(4);
                            let t = e.mul(po, cv);
                            o_pre = e.add(o_pre, t);
                        }
                        let og = activation(&mut e, fa, o_pre);
                        let hc = activation(&mut e, ha, cn);
                        let hv = e.mul(og, hc);
                        self.map(vec![batch, h], inputs, e.done(hv), ident(&new_h));
                        cell = Some(State { val: new_c, dir: None });
                    }
                    RecurrentGates::Gru(o) => {
                        let [zb, rb, nb] = o.layout.blocks();
                        let [fa, ga] = o.activations;
                        let (inputs, n_pre) = if o.reset_after {
                            // n = g(xn + r * (h Rn^T + rbn)).
                            let hr = self.recurrent_product(&ops, d, &hidden, g * h, 0);
                            let inputs = vec![
                                hidden.map_access(),
                                xw(zb),
                                columns(&hr, zb * h),
                                xw(rb),
                                columns(&hr, rb * h),
                                xw(nb),
                                columns(&hr, nb * h),
                            ];
                            (inputs, None)
                        } else {
                            // n = g(xn + (r * h) Rn^T + rbn): the reset state
                            // first. z and r are blocks 0 and 1 in both
                            // layouts: one product of 2 x hidden rows.
                            let hr = self.recurrent_product(&ops, d, &hidden, 2 * h, 0);
                            let inputs = vec![hidden.map_access(), xw(rb), columns(&hr, rb * h)];
                            let mut e = E::new();
                            let hv = e.load(0);
                            let r = gate(&mut e, fa, 1);
                            let rh = e.mul(r, hv);
                            let reset = self.scratch(DataType::Float32, &[batch, h]);
                            self.map(vec![batch, h], inputs, e.done(rh), ident(&reset));
                            let reset = State { val: reset, dir: None };
                            let hn = self.recurrent_product(&ops, d, &reset, h, nb * h);
                            let inputs = vec![hidden.map_access(), xw(zb), columns(&hr, zb * h), xw(nb), ident(&hn)];
                            (inputs, Some(()))
                        };
                        let mut e = E::new();
                        let hv = e.load(0);
                        let z = gate(&mut e, fa, 1);
                        let n_pre = match n_pre {
                            None => {
                                let r = gate(&mut e, fa, 3);
                                let (xn, hn) = (e.load(5), e.load(6));
                                let rh = e.mul(r, hn);
                                e.add(xn, rh)
                            }
                            Some(()) => sum2(&mut e, 3),
                        };
                        let n = activation(&mut e, ga, n_pre);
                        let out = blend(&mut e, z, hv, n);
                        self.map(vec![batch, h], inputs, e.done(out), ident(&new_h));
                    }
                }
                if let Some(seq) = &sequence {
                    let rows = [Row::fixed(t as isize), Row::fixed(d as isize), Row::axis(0), Row::axis(1)];
                    self.map(vec![batch, h], vec![ident(&new_h)], Expr::load(0), access(seq, 2, &rows, None));
                }
                hidden = State { val: new_h, dir: None };
            }
            // The last states into the first outputs, at their direction.
            for (state, dest) in std::iter::once(hidden).chain(cell).zip(&dests) {
                let dst = State { val: dest.clone(), dir: Some(d) }.map_access();
                self.map(vec![batch, h], vec![state.map_access()], Expr::load(0), dst);
            }
        }
        Ok(())
    }

    /// `x W^T + bias` for every step and direction: f32 scratch
    /// `[directions, rows, n]`.
    fn input_projection(&mut self, ops: &Operands, dirs: usize, rows: usize, n: usize, k: usize) -> Val {
        let y = self.scratch(DataType::Float32, &[dirs, rows, n]);
        let x = ops.x.view(&[rows, k]);
        let mut e = E::new();
        let mut r = e.acc();
        let mut epilogue_inputs = vec![];
        if let Some(b) = &ops.b {
            epilogue_inputs.push(access(b, 3, &[Row::axis(0), Row::axis(2)], None));
            let bv = e.load(0);
            r = e.add(r, bv);
        }
        self.program.kernels.push(Kernel::Gemm {
            domain: vec![dirs, rows, n, k],
            a: access(&x, 4, &[Row::axis(1), Row::axis(3)], None),
            b: access(&ops.w, 4, &[Row::axis(0), Row::axis(2), Row::axis(3)], None),
            epilogue_inputs,
            epilogue: e.done(r),
            out: ident(&y),
        });
        y
    }

    /// `state R[first..first + n]^T + recurrentBias[first..first + n]` for
    /// direction `d`: f32 scratch `[batch, n]`.
    fn recurrent_product(&mut self, ops: &Operands, d: usize, state: &State, n: usize, first: usize) -> Val {
        let (batch, hidden) = (state.val.shape[state.val.rank() - 2], ops.r.shape[2]);
        let y = self.scratch(DataType::Float32, &[batch, n]);
        let mut e = E::new();
        let mut r = e.acc();
        let mut epilogue_inputs = vec![];
        if let Some(rb) = &ops.rb {
            epilogue_inputs.push(vector_at(rb, d, first));
            let bv = e.load(0);
            r = e.add(r, bv);
        }
        let b_rows = [Row::fixed(d as isize), Row::axis(1).offset(first as isize), Row::axis(2)];
        self.program.kernels.push(Kernel::Gemm {
            domain: vec![batch, n, hidden],
            a: state.gemm_access(),
            b: access(&ops.r, 3, &b_rows, None),
            epilogue_inputs,
            epilogue: e.done(r),
            out: ident(&y),
        });
        y
    }
}

/// `load(n) + load(n + 1)`.
fn sum2(e: &mut E, n: u32) -> V {
    let (x, y) = (e.load(n), e.load(n + 1));
    e.add(x, y)
}

/// `activation(load(n) + load(n + 1))`.
fn gate(e: &mut E, a: RecurrentActivation, n: u32) -> V {
    let s = sum2(e, n);
    activation(e, a, s)
}

/// The GRU's new hidden state `z * h + n * (1 - z)`.
fn blend(e: &mut E, z: V, h: V, n: V) -> V {
    let one = e.c(1.0);
    let zh = e.mul(z, h);
    let omz = e.sub(one, z);
    let nz = e.mul(n, omz);
    e.add(zh, nz)
}
