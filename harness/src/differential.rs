//! Differential testing's graphs: random graphs (operators, shapes,
//! options and values) and the check that a compiled backend agrees with
//! the reference interpreter on them, for `tests/differential.rs` (proptest
//! seeds, regression seeds) and the `differential` fuzz target.
//!
//! Some graphs do integer work beyond f32's exact 2^24 (int32/int64
//! arithmetic, comparisons, `where`, sums), which the lowering turns into
//! host kernels between float kernels.
//!
//! Tolerance: |actual - expected| <= 1e-4 * max(1, |expected|) per element
//! (f32 arithmetic against the interpreter's f64 rounded once; the graphs
//! are at most a dozen operators deep), NaN matches NaN, infinities match
//! exactly.

use kiln_frontend::builder::GraphBuilder;
use kiln_frontend::op_table::{build_call, ArgValue};
use kiln_ir::{DataType, Graph, Number, OperandDescriptor, OperandId, ReduceOptions, Tensor};
use kiln_runtime::{Backend, Context, ContextOptions};

/// xorshift64: the graph is a pure function of the proptest-chosen seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below((hi - lo + 1) as usize) as u32
    }

    fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0).collect()
    }
}

fn ints(v: &[u32]) -> ArgValue {
    ArgValue::List(v.iter().map(|&x| ArgValue::Number(Number::Int(x as i128))).collect())
}

fn int(x: u32) -> ArgValue {
    ArgValue::Number(Number::Int(x as i128))
}

/// One random operator applied to a random existing operand; `None` when the
/// chosen parameters are not valid for it (the builder says why; we move on).
fn random_op(b: &GraphBuilder, rng: &mut Rng, pool: &[OperandId]) -> Option<OperandId> {
    let x = pool[rng.below(pool.len())];
    let shape = b.descriptor(x).ok()?.shape.0;
    let rank = shape.len() as u32;
    let mut named = std::collections::BTreeMap::new();
    let constant = |rng: &mut Rng, shape: &[u32]| {
        let n = shape.iter().product::<u32>() as usize;
        b.constant_f32(shape, &rng.values(n)).ok().map(ArgValue::Operand)
    };
    const UNARY: &[&str] = &[
        "abs", "neg", "relu", "sigmoid", "tanh", "exp", "floor", "ceil", "hardSwish", "softsign", "gelu", "erf", "sin",
        "cos", "softplus", "identity",
    ];
    // Int32 constants of `shape` with values in `lo..=hi` (indices, some
    // negative or out of range, which the operators clamp).
    let indices = |rng: &mut Rng, shape: &[u32], lo: i32, hi: i32| {
        let n = shape.iter().product::<u32>() as usize;
        let bytes: Vec<u8> =
            (0..n).flat_map(|_| (lo + rng.below((hi - lo + 1) as usize) as i32).to_le_bytes()).collect();
        b.constant(OperandDescriptor::new(DataType::Int32, shape), bytes).ok().map(ArgValue::Operand)
    };
    let (name, positional): (&str, Vec<ArgValue>) = match rng.below(17) {
        0 | 1 => {
            // floor and ceil jump where a 1-ulp difference upstream (an f32
            // exp against the interpreter's f64) crosses an integer: they
            // take the graph's input, whose values are exact, instead.
            let op = UNARY[rng.below(UNARY.len())];
            let operand = if matches!(op, "floor" | "ceil") { pool[0] } else { x };
            (op, vec![ArgValue::Operand(operand)])
        }
        2 | 3 => {
            // A broadcastable constant: keep a suffix of the shape, set some dims to 1.
            let keep = rng.below(shape.len() + 1);
            let other: Vec<u32> = shape[shape.len() - keep..].iter().map(|&d| if rng.below(3) == 0 { 1 } else { d }).collect();
            let op = ["add", "sub", "mul", "max", "min", "div"][rng.below(6)];
            (op, vec![ArgValue::Operand(x), constant(rng, &other)?])
        }
        4 if rank >= 2 => {
            let k = shape[shape.len() - 1];
            let n = rng.range(1, 9);
            ("matmul", vec![ArgValue::Operand(x), constant(rng, &[k, n])?])
        }
        5 if rank == 4 => {
            let cin = shape[1];
            let depthwise = rng.below(2) == 0;
            let (groups, cout) = if depthwise { (cin, cin) } else { (1, rng.range(1, 8)) };
            let k = rng.range(1, 3);
            let filter = constant(rng, &[cout, cin / groups, k, k])?;
            named.insert("strides".into(), ints(&[rng.range(1, 2), rng.range(1, 2)]));
            named.insert("padding".into(), ints(&[rng.range(0, 1), rng.range(0, 1), rng.range(0, 1), rng.range(0, 1)]));
            named.insert("dilations".into(), ints(&[rng.range(1, 2), 1]));
            named.insert("groups".into(), int(groups));
            if rng.below(2) == 0 {
                named.insert("bias".into(), constant(rng, &[cout])?);
            }
            ("conv2d", vec![ArgValue::Operand(x), filter])
        }
        6 if rank == 4 => {
            let op = ["averagePool2d", "maxPool2d", "l2Pool2d"][rng.below(3)];
            named.insert("windowDimensions".into(), ints(&[rng.range(1, shape[2].min(3)), rng.range(1, shape[3].min(3))]));
            named.insert("strides".into(), ints(&[rng.range(1, 2), rng.range(1, 2)]));
            named.insert("padding".into(), ints(&[rng.range(0, 1), 0, rng.range(0, 1), 0]));
            (op, vec![ArgValue::Operand(x)])
        }
        7 if rank >= 1 => {
            let ops = ["reduceSum", "reduceMean", "reduceMax", "reduceMin", "reduceL1", "reduceL2", "reduceSumSquare", "reduceLogSumExp"];
            let axes: Vec<u32> = (0..rank).filter(|_| rng.below(2) == 0).collect();
            named.insert("axes".into(), ints(&axes));
            named.insert("keepDimensions".into(), ArgValue::Bool(rng.below(2) == 0));
            (ops[rng.below(ops.len())], vec![ArgValue::Operand(x)])
        }
        8 if rank >= 1 => ("softmax", vec![ArgValue::Operand(x), int(rng.range(0, rank - 1))]),
        9 if rank >= 1 => {
            let mut perm: Vec<u32> = (0..rank).collect();
            for i in (1..perm.len()).rev() {
                perm.swap(i, rng.below(i + 1));
            }
            named.insert("permutation".into(), ints(&perm));
            ("transpose", vec![ArgValue::Operand(x)])
        }
        10 if rank >= 1 => {
            let starts: Vec<u32> = shape.iter().map(|&d| rng.range(0, d - 1)).collect();
            let sizes: Vec<u32> = shape.iter().zip(&starts).map(|(&d, &s)| rng.range(1, d - s)).collect();
            ("slice", vec![ArgValue::Operand(x), ints(&starts), ints(&sizes)])
        }
        11 if rank >= 1 => {
            let axis = rng.range(0, rank - 1);
            ("concat", vec![ArgValue::List(vec![ArgValue::Operand(x), ArgValue::Operand(x)]), int(axis)])
        }
        12 => {
            let op = ["clamp", "leakyRelu", "elu", "hardSigmoid", "linear"][rng.below(5)];
            if op == "clamp" {
                named.insert("minValue".into(), ArgValue::Number(Number::Float(-0.5)));
                named.insert("maxValue".into(), ArgValue::Number(Number::Float(1.5)));
            }
            (op, vec![ArgValue::Operand(x)])
        }
        13 if rank >= 2 => {
            let axes: Vec<u32> = (1..rank).collect();
            named.insert("axes".into(), ints(&axes));
            ("layerNormalization", vec![ArgValue::Operand(x)])
        }
        // On the graph input: the float chains before it would make the
        // truncation to integers differ between backends.
        14 => return integer_ops(b, rng, pool[0]),
        15 if rank >= 1 => {
            let axis = rng.range(0, rank - 1);
            match rng.below(7) {
                0 => {
                    named.insert("axes".into(), ints(&[axis]));
                    ("reverse", vec![ArgValue::Operand(x)])
                }
                1 => ("tile", vec![ArgValue::Operand(x), ints(&shape.iter().map(|_| rng.range(1, 2)).collect::<Vec<_>>())]),
                2 => {
                    named.insert("exclusive".into(), ArgValue::Bool(rng.below(2) == 0));
                    named.insert("reversed".into(), ArgValue::Bool(rng.below(2) == 0));
                    ("cumulativeSum", vec![ArgValue::Operand(x), int(axis)])
                }
                3 => (["argMax", "argMin"][rng.below(2)], vec![ArgValue::Operand(x), int(axis)]),
                4 if rank >= 2 => {
                    named.insert("upper".into(), ArgValue::Bool(rng.below(2) == 0));
                    named.insert("diagonal".into(), ArgValue::Number(Number::Int(rng.range(0, 4) as i128 - 2)));
                    ("triangular", vec![ArgValue::Operand(x)])
                }
                5 => (["sign", "isNaN", "isInfinite"][rng.below(3)], vec![ArgValue::Operand(x)]),
                _ => {
                    // Quantize to uint8 and back, per tensor or per last axis.
                    let mut blocks = vec![1; shape.len()];
                    if rng.below(2) == 0 {
                        blocks[shape.len() - 1] = shape[shape.len() - 1];
                    }
                    let n = blocks.iter().product::<u32>() as usize;
                    let scale: Vec<f32> = rng.values(n).iter().map(|v| 0.01 + v.abs() * 0.05).collect();
                    let scale = b.constant_f32(blocks.as_slice(), &scale).ok()?;
                    let zero: Vec<u8> = (0..n).map(|_| rng.range(100, 150) as u8).collect();
                    let zero = b.constant(OperandDescriptor::new(DataType::Uint8, blocks.as_slice()), zero).ok()?;
                    let q = b.quantize_linear(x, scale, zero).ok()?;
                    return b.dequantize_linear(q, scale, zero).ok();
                }
            }
        }
        16 if rank >= 1 => {
            let axis = rng.range(0, rank - 1);
            let n = shape[axis as usize] as i32;
            let mut idx_shape = shape.clone();
            idx_shape[axis as usize] = rng.range(1, 4);
            named.insert("axis".into(), int(axis));
            match rng.below(4) {
                0 => ("gatherElements", vec![ArgValue::Operand(x), indices(rng, &idx_shape, -n - 1, n)?]),
                1 => {
                    let updates = constant(rng, &idx_shape)?;
                    ("scatterElements", vec![ArgValue::Operand(x), indices(rng, &idx_shape, -n, n - 1)?, updates])
                }
                nd => {
                    named.clear();
                    let k = rng.range(1, rank);
                    let tuples = rng.range(1, 4);
                    let lo = -(shape[0] as i32);
                    let idx = indices(rng, &[tuples, k], lo, shape[0] as i32)?;
                    if nd == 2 {
                        ("gatherND", vec![ArgValue::Operand(x), idx])
                    } else {
                        let mut u_shape = vec![tuples];
                        u_shape.extend(&shape[k as usize..]);
                        ("scatterND", vec![ArgValue::Operand(x), idx, constant(rng, &u_shape)?])
                    }
                }
            }
        }
        _ => ("reshape", vec![ArgValue::Operand(x), ints(&[shape.iter().product()])]),
    };
    build_call(b, name, positional, named).ok().map(|outs| outs[0])
}

/// Integer work on the float32 input `x` (host kernels for 32/64-bit
/// types): `x * 1000` cast to int32 or int64, offset by a constant beyond
/// 2^24 (where f32 is no longer exact), an operation on the big values
/// whose result is brought back near `x` exactly (`big - c`, `max(big, c) -
/// c`, `reduceMax(big) - c`, `where(big > c, big, c) - c`, `big == c + 1`,
/// ...), then back to float32, scaled down: well-conditioned for the float
/// operators that follow, and exact on every backend (the casts truncate
/// exactly computed products).
fn integer_ops(b: &GraphBuilder, rng: &mut Rng, x: OperandId) -> Option<OperandId> {
    use DataType::{Float32, Int32, Int64};
    let t = if rng.below(2) == 0 { Int32 } else { Int64 };
    let scalar = |v: i128| b.constant_scalar(t, Number::Int(v)).ok();
    let scale = b.constant_scalar(Float32, Number::Float(1000.0)).ok()?;
    let xi = b.cast(b.mul(x, scale).ok()?, t).ok()?;
    let k = (1 << 26) + 3 - rng.below(7) as i128;
    let c = scalar(k)?;
    let big = b.add(xi, c).ok()?;
    let r = match rng.below(6) {
        0 => b.sub(big, c).ok()?,
        1 => b.sub(b.max(big, c).ok()?, c).ok()?,
        2 => b.sub(b.min(big, c).ok()?, c).ok()?,
        3 => {
            let three = scalar(3)?;
            b.sub(b.div(b.mul(big, three).ok()?, three).ok()?, c).ok()?
        }
        4 => {
            let options = ReduceOptions { axes: None, keep_dimensions: true };
            b.sub(b.reduce_max(big, options).ok()?, c).ok()?
        }
        _ => b.sub(b.where_(b.greater(big, c).ok()?, big, c).ok()?, c).ok()?,
    };
    let r = if rng.below(3) == 0 { b.equal(big, scalar(k + 1)?).ok()? } else { r };
    let milli = b.constant_scalar(Float32, Number::Float(1e-3)).ok()?;
    b.mul(b.cast(r, Float32).ok()?, milli).ok()
}

/// The random graph of `seed` (a pure function of it) and its input.
pub fn random_graph(seed: u64) -> (Graph, Vec<(String, Tensor)>) {
    let mut rng = Rng(seed | 1);
    let b = GraphBuilder::new();
    let shape: Vec<u32> = match rng.below(3) {
        // Rows up to 20 wide: on AVX-512, convolutions with rows of 12 or
        // more are direct window sums, narrower ones im2col GEMMs.
        0 => vec![1, rng.range(1, 4), rng.range(2, 7), rng.range(2, 20)],
        1 => vec![rng.range(1, 5), rng.range(1, 9)],
        _ => (0..rng.range(1, 4)).map(|_| rng.range(1, 5)).collect(),
    };
    let x = b.input("x", OperandDescriptor::new(DataType::Float32, shape.clone())).unwrap();
    let mut pool = vec![x];
    let mut last = None;
    for _ in 0..rng.range(1, 6) {
        if let Some(y) = random_op(&b, &mut rng, &pool) {
            pool.push(y);
            last = Some(y);
        }
    }
    let y = match last {
        Some(y) => y,
        None => b.relu(x).unwrap(),
    };
    let graph = b.build(&[("y", y)]).unwrap();
    let n = shape.iter().product::<u32>() as usize;
    let input = Tensor::from_f32(shape, &rng.values(n)).unwrap();
    (graph, vec![("x".into(), input)])
}

fn close(actual: f32, expected: f32) -> bool {
    if expected.is_nan() {
        return actual.is_nan();
    }
    if expected.is_infinite() {
        return actual == expected;
    }
    (actual - expected).abs() <= 1e-4 * expected.abs().max(1.0)
}

/// Runs `seed`'s graph on `backend` and on the interpreter; the first
/// element that differs, with the graph as `.webnn` text, is the error.
pub fn check(seed: u64, backend: Backend) -> Result<(), String> {
    let (graph, inputs) = random_graph(seed);
    let text = kiln_frontend::webnn_text::print(&kiln_frontend::webnn_text::from_graph(&graph, "random"));
    let feeds: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let reference = Context::new(ContextOptions { backend: Backend::Interp, threads: 1, ..Default::default() }).unwrap();
    let expected = reference.compute(&reference.compile(graph.clone()).unwrap(), &feeds).unwrap();
    let ctx = Context::new(ContextOptions { backend, threads: 2, ..Default::default() }).unwrap();
    let compiled = ctx.compile(graph).map_err(|e| format!("{backend} cannot compile:\n{text}\n{e}"))?;
    let actual = ctx.compute(&compiled, &feeds).map_err(|e| format!("{backend} failed:\n{text}\n{e}"))?;
    for ((_, e), (_, a)) in expected.iter().zip(&actual) {
        let (e, a) = (e.to_f32_vec(), a.to_f32_vec());
        if let Some(i) = (0..e.len()).find(|&i| !close(a[i], e[i])) {
            return Err(format!("{backend} differs at element {i}: {} vs interp {}\n{text}", a[i], e[i]));
        }
    }
    Ok(())
}

