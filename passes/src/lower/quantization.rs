//! `quantizeLinear` and `dequantizeLinear`: one Map each over the input,
//! the scale and zero point read block-wise. Along an axis where the scale
//! has neither 1 nor the input's size, the domain splits the axis into
//! `[blocks, block size]`: the input is read at `size * b + i` and the
//! scale at `b`.
//!
//! Exactness: int8/uint8 values and zero points are exact in f32, so
//! `(x - zeroPoint) * scale` rounds once, as the interpreter does (a
//! float16 output rounds twice: to f32, then to float16). `roundEven(x /
//! scale) + zeroPoint` divides in f32 and rounds the quotient to float16
//! for a float16 input, the quotient the interpreter rounds to the input's
//! type (f32 division is correctly rounded, and rounding it to float16 is
//! the same as rounding the exact quotient), so the results are exact;
//! stores saturate to the zero point's type, NaN giving 0, as the
//! interpreter encodes. 32-bit integer operands are host kernels.

use kiln_ir::kernel::{Access, UnaryFn};
use kiln_ir::{DataType, OperandId};

use super::values::{E, Row, Val, access};
use super::{Lowerer, R};

/// The Map domain of a block-wise operator on `input` with a `scale` of
/// the same rank, and the rows of the input (and output) and of the scale.
fn block_domain(input: &[usize], scale: &[usize]) -> (Vec<usize>, Vec<Row>, Vec<Row>) {
    let (mut domain, mut at_input, mut at_scale) = (Vec::new(), Vec::new(), Vec::new());
    for (&n, &s) in input.iter().zip(scale) {
        let d = domain.len();
        if s == n || s == 1 {
            domain.push(n);
            at_input.push(Row::axis(d));
            at_scale.push(if s == 1 { Row::fixed(0) } else { Row::axis(d) });
        } else {
            let block = n / s;
            domain.extend([s, block]);
            at_input.push(Row { base: 0, terms: vec![(d, block as isize), (d + 1, 1)] });
            at_scale.push(Row::axis(d));
        }
    }
    (domain, at_input, at_scale)
}

impl Lowerer<'_> {
    /// The accesses of a block-wise Map: input, scale, zero point, output.
    fn block_accesses(&mut self, input: OperandId, scale: OperandId, zero_point: OperandId, out: OperandId) -> (Vec<usize>, Vec<Access>, Access) {
        let (x, s, z): (Val, Val, Val) = (self.val(input), self.val(scale), self.val(zero_point));
        let (domain, at_input, at_scale) = block_domain(&x.shape, &s.shape);
        let rank = domain.len();
        let y = self.dest(out);
        let inputs = vec![
            access(&x, rank, &at_input, None),
            access(&s, rank, &at_scale, None),
            access(&z, rank, &at_scale, None),
        ];
        (domain, inputs, access(&y, rank, &at_input, None))
    }

    /// `dequantizeLinear`: `(x - zeroPoint) * scale`.
    pub(super) fn dequantize_linear(&mut self, input: OperandId, scale: OperandId, zero_point: OperandId, out: OperandId) -> R {
        let (domain, inputs, y) = self.block_accesses(input, scale, zero_point, out);
        let mut e = E::new();
        let (x, s, z) = (e.load(0), e.load(1), e.load(2));
        let d = e.sub(x, z);
        let r = e.mul(d, s);
        self.map(domain, inputs, e.done(r), y);
        Ok(())
    }

    /// `quantizeLinear`: `roundEven(x / scale) + zeroPoint` (the quotient
    /// rounded to float16 first for a float16 input), saturated by the store.
    pub(super) fn quantize_linear(&mut self, input: OperandId, scale: OperandId, zero_point: OperandId, out: OperandId) -> R {
        let half = self.desc(input).data_type == DataType::Float16;
        let (domain, inputs, y) = self.block_accesses(input, scale, zero_point, out);
        let mut e = E::new();
        let (x, s, z) = (e.load(0), e.load(1), e.load(2));
        let mut q = e.div(x, s);
        if half {
            q = e.un(UnaryFn::RoundF16, q);
        }
        let q = e.un(UnaryFn::RoundEven, q);
        let r = e.add(q, z);
        self.map(domain, inputs, e.done(r), y);
        Ok(())
    }
}
