//! A graph builder for the passes' tests: random inputs and weights from a
//! small deterministic generator, and shorthands for the common operators.

#![allow(dead_code, reason = "each test file uses part of it")]

use kiln_ir::*;

/// A small deterministic generator (xorshift64*), uniform in [-2, 2).
pub struct Rng(pub u64);

impl Rng {
    pub fn float(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((x >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
    }

    pub fn tensor(&mut self, shape: &[u32]) -> Tensor {
        let n: u32 = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.float()).collect();
        Tensor::from_f32(shape.to_vec(), &v).unwrap()
    }
}

/// A graph under construction, with the random feeds of its inputs.
pub struct G {
    pub g: Graph,
    pub rng: Rng,
    pub feeds: Vec<(String, Tensor)>,
}

impl G {
    pub fn new() -> Self {
        G { g: Graph::new(), rng: Rng(0x9e37_79b9_7f4a_7c15), feeds: Vec::new() }
    }

    pub fn input(&mut self, name: &str, shape: &[u32]) -> OperandId {
        let id = self.g.add_input(name, OperandDescriptor::new(DataType::Float32, shape.to_vec())).unwrap();
        let t = self.rng.tensor(shape);
        self.feeds.push((name.into(), t));
        id
    }

    /// A random constant.
    pub fn constant(&mut self, shape: &[u32]) -> OperandId {
        let t = self.rng.tensor(shape);
        self.g.add_constant(None, t).unwrap()
    }

    /// A constant of `value`s.
    pub fn fill(&mut self, shape: &[u32], value: f32) -> OperandId {
        let n: u32 = shape.iter().product();
        self.g.add_constant(None, Tensor::from_f32(shape.to_vec(), &vec![value; n as usize]).unwrap()).unwrap()
    }

    /// A random constant of positive values (variances).
    pub fn positive(&mut self, shape: &[u32]) -> OperandId {
        let n: u32 = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.rng.float().abs() + 0.1).collect();
        self.g.add_constant(None, Tensor::from_f32(shape.to_vec(), &v).unwrap()).unwrap()
    }

    pub fn op(&mut self, op: Op) -> OperandId {
        self.g.add_node(op, "").unwrap()[0]
    }

    pub fn unary(&mut self, kind: UnaryOp, input: OperandId) -> OperandId {
        self.op(Op::Unary { kind, input })
    }

    pub fn binary(&mut self, kind: BinaryOp, a: OperandId, b: OperandId) -> OperandId {
        self.op(Op::Binary { kind, a, b })
    }

    /// A `k`x`k` conv2d from `i` to `o` channels with random weights.
    pub fn conv(&mut self, input: OperandId, o: u32, i: u32, k: u32, pad: u32, bias: bool) -> OperandId {
        let filter = self.constant(&[o, i, k, k]);
        let bias = bias.then(|| self.constant(&[o]));
        self.op(Op::Conv2d { input, filter, options: Conv2dOptions { padding: [pad; 4], bias, ..Default::default() } })
    }

    /// The feeds as `interp::run` and `kernel::eval` take them.
    pub fn feed_refs(&self) -> Vec<(&str, &Tensor)> {
        self.feeds.iter().map(|(n, t)| (n.as_str(), t)).collect()
    }
}

impl Rng {
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.float() + 2.0) / 4.0 * n as f32) as usize % n
    }
}
