//! WPT's precision rules (`webnn/resources/utils.js`: `toHalf`,
//! `ulpDistance`, `assert_array_approx_equals_ulp`, `assertResultsEquals`),
//! replicated element for element. Where kiln departs from WPT the function
//! says so.

use std::fmt;

use half::f16;
use kiln_ir::{DataType, Number, Tensor};

use super::Failure;
use super::case::{CaseTensor, Data, Tolerance};

/// WPT's `kMaximumIndexToValidate`: a scalar expected value with a
/// non-scalar shape is checked on this many leading elements only.
pub const MAX_FILL_ELEMENTS_TO_VALIDATE: usize = 1000;

/// WPT's `toHalf(value)`, bit for bit: the value is first stored as float32
/// (round to nearest even), then converted to float16 bits with the
/// rounding of that function: ties round away from zero, magnitudes below
/// 2^-24 (float32 exponent < 103) become signed zero, NaN becomes `0x7c01`
/// (with the sign). It is what WPT feeds as float16 data and what it
/// compares float16 results against, so kiln encodes float16 vectors with it
/// too.
pub fn to_half_bits(value: f64) -> u16 {
    let x = (value as f32).to_bits();
    let mut bits = (x >> 16) & 0x8000;
    let mut m = (x >> 12) & 0x07ff;
    let e = (x >> 23) & 0xff;
    if e < 103 {
        return bits as u16;
    }
    if e > 142 {
        bits |= 0x7c00;
        if e == 255 && (x & 0x007f_ffff) != 0 {
            bits |= 1;
        }
        return bits as u16;
    }
    if e < 113 {
        m |= 0x0800;
        bits |= (m >> (114 - e)) + ((m >> (113 - e)) & 1);
        return bits as u16;
    }
    bits |= ((e - 112) << 10) | (m >> 1);
    bits += m & 1;
    bits as u16
}

/// The value of float16 bits (WPT's `float16AsUint16ToNumber`).
pub fn f16_bits_to_f64(bits: u16) -> f64 {
    f16::from_bits(bits).to_f64()
}

fn f16_bits_is_nan(bits: u16) -> bool {
    bits & 0x7c00 == 0x7c00 && bits & 0x03ff != 0
}

/// WPT's float32 `getBitwise`: |x| rounded to float32, its bit pattern as an
/// integer, negated when x < 0. This maps sign-magnitude floats onto one
/// monotone integer line on which +0 and −0 are both 0. Every NaN maps to
/// the canonical quiet NaN `0x7fc00000`, as a JavaScript `Float32Array`
/// stores it.
fn f32_line(x: f64) -> i64 {
    if x.is_nan() {
        return 0x7fc0_0000;
    }
    let magnitude = i64::from((x.abs() as f32).to_bits());
    if x < 0.0 { -magnitude } else { magnitude }
}

/// WPT's `ulpDistance` for float32: |A − B|, where a value's position is
/// its magnitude rounded to float32, as an integer bit pattern, negated for
/// negative values (WPT's `getBitwise`). So sign-magnitude floats lie on one
/// monotone line, +0 and −0 both at 0, and `expected` is rounded to float32
/// first. Every NaN sits at the canonical quiet NaN `0x7fc00000`.
pub fn ulp_distance_f32(actual: f32, expected: f64) -> u64 {
    (f32_line(f64::from(actual)) - f32_line(expected)).unsigned_abs()
}

/// WPT's `ulpDistance` for float16: `actual_bits` are the raw result bits,
/// `expected` goes through [`to_half_bits`], and the distance is the
/// difference of the raw bit patterns, NOT sign-folded (so +x and −x are
/// about 0x8000 apart). Any zero against any zero is 0.
pub fn ulp_distance_f16(actual_bits: u16, expected: f64) -> u64 {
    let expected_bits = to_half_bits(expected);
    if actual_bits & 0x7fff == 0 && expected_bits & 0x7fff == 0 {
        return 0;
    }
    (i64::from(actual_bits) - i64::from(expected_bits)).unsigned_abs()
}

/// WPT's `ulpDistance` for integer types, 64-bit ones included: |a − b|,
/// exact.
pub fn int_distance(actual: i128, expected: i128) -> u128 {
    actual.abs_diff(expected)
}

/// One element of a result tensor, exactly as stored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Element {
    F32(f32),
    /// Raw float16 bits.
    F16(u16),
    Int(i128),
}

impl Element {
    /// Element `index` of `tensor` (which must have more elements).
    pub fn read(tensor: &Tensor, index: usize) -> Element {
        let size = tensor.data_type().byte_size();
        let b = &tensor.bytes()[index * size..(index + 1) * size];
        match tensor.data_type() {
            DataType::Float32 => Element::F32(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            DataType::Float16 => Element::F16(u16::from_le_bytes([b[0], b[1]])),
            DataType::Int32 => Element::Int(i32::from_le_bytes([b[0], b[1], b[2], b[3]]).into()),
            DataType::Uint32 => Element::Int(u32::from_le_bytes([b[0], b[1], b[2], b[3]]).into()),
            DataType::Int64 => Element::Int(i64::from_le_bytes(b.try_into().expect("8 bytes")).into()),
            DataType::Uint64 => Element::Int(u64::from_le_bytes(b.try_into().expect("8 bytes")).into()),
            DataType::Int8 => Element::Int((b[0] as i8).into()),
            DataType::Uint8 => Element::Int(b[0].into()),
        }
    }

    /// The element's value as a JavaScript number would hold it.
    pub fn as_f64(self) -> f64 {
        match self {
            Element::F32(x) => f64::from(x),
            Element::F16(bits) => f16_bits_to_f64(bits),
            Element::Int(i) => i as f64,
        }
    }

    fn is_nan(self) -> bool {
        match self {
            Element::F32(x) => x.is_nan(),
            Element::F16(bits) => f16_bits_is_nan(bits),
            Element::Int(_) => false,
        }
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Element::F32(x) => write!(f, "{x:?}"),
            Element::F16(bits) => write!(f, "{:?} (f16 bits 0x{bits:04x})", f16_bits_to_f64(*bits)),
            Element::Int(i) => write!(f, "{i}"),
        }
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tolerance::Ulp(n) => write!(f, "{n} ULP"),
            Tolerance::Atol(x) => write!(f, "ATOL {x}"),
        }
    }
}

/// Judges one element. `Ok` when it passes; otherwise the distance, in
/// words.
///
/// The rules, in order:
/// 1. NaN against NaN passes (WPT gets there for float32 because both map
///    to the same bits; for float16 it would compare `0x7c01` with the
///    result's NaN bits, and for ATOL `NaN <= x` is false: kiln passes both,
///    a deliberate departure).
/// 2. ULP: float32 by [`ulp_distance_f32`], float16 by
///    [`ulp_distance_f16`], integers by [`int_distance`] (the expected value
///    must be an integer); the distance must be ≤ the tolerance.
/// 3. ATOL: equal values pass (so do equal infinities, where WPT's
///    `Inf − Inf = NaN` would fail); else |actual − expected| ≤ tolerance,
///    float16 results decoded to numbers first.
pub fn check_element(actual: Element, expected: Number, tolerance: Tolerance) -> Result<(), String> {
    if actual.is_nan() && expected.as_f64().is_nan() {
        return Ok(());
    }
    match tolerance {
        Tolerance::Ulp(max) => {
            let distance = ulp_distance(actual, expected)?;
            if distance <= max { Ok(()) } else { Err(format!("distance {distance} ULP")) }
        }
        Tolerance::Atol(max) => {
            let (a, e) = (actual.as_f64(), expected.as_f64());
            let diff = (a - e).abs();
            if a == e || diff <= max { Ok(()) } else { Err(format!("|actual - expected| = {diff:e}")) }
        }
    }
}

/// The ULP distance of an element to an expected value, by the element's type.
fn ulp_distance(actual: Element, expected: Number) -> Result<u128, String> {
    Ok(match actual {
        Element::F32(a) => u128::from(ulp_distance_f32(a, expected.as_f64())),
        Element::F16(bits) => u128::from(ulp_distance_f16(bits, expected.as_f64())),
        Element::Int(a) => int_distance(a, expected_int(expected)?),
    })
}

fn expected_int(expected: Number) -> Result<i128, String> {
    match expected {
        Number::Int(i) => Ok(i),
        Number::Float(x) if x.fract() == 0.0 && x.abs() < 1e38 => Ok(x as i128),
        Number::Float(x) => Err(format!("the expected value {x} of an integer output is not an integer")),
    }
}

/// A result element outside the tolerance.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueMismatch {
    pub output: String,
    /// The first element (row-major) that fails.
    pub index: usize,
    pub actual: String,
    pub expected: String,
    pub distance: String,
    pub tolerance: Tolerance,
}

impl fmt::Display for ValueMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "output `{}` element {}: actual {}, expected {}, {} (tolerance {})",
            self.output, self.index, self.actual, self.expected, self.distance, self.tolerance
        )
    }
}

/// Judges output `name` as WPT's `assertResultsEquals` does: the result's
/// descriptor must equal the expected one, then every element must pass
/// [`check_element`]. A scalar expected `data` for a shape of more than one
/// element is compared with the first [`MAX_FILL_ELEMENTS_TO_VALIDATE`]
/// elements only. Reports the first failing element.
pub fn check_output(name: &str, expected: &CaseTensor, actual: &Tensor, tolerance: Tolerance) -> Result<(), Failure> {
    if actual.desc() != &expected.desc {
        return Err(Failure::Descriptor {
            output: name.to_string(),
            expected: expected.desc.clone(),
            actual: actual.desc().clone(),
        });
    }
    let count = expected.desc.shape.element_count();
    let (checked, expected_at): (usize, Box<dyn Fn(usize) -> Number + '_>) = match &expected.data {
        Data::Fill(v) => (count.min(MAX_FILL_ELEMENTS_TO_VALIDATE), Box::new(move |_| *v)),
        Data::List(values) if values.len() == count => (count, Box::new(move |i| values[i])),
        Data::List(values) => {
            return Err(Failure::Build(format!(
                "expected output `{name}`: {} has {count} elements but the data has {} values",
                expected.desc,
                values.len()
            )));
        }
    };
    for index in 0..checked {
        let (a, e) = (Element::read(actual, index), expected_at(index));
        if let Err(distance) = check_element(a, e, tolerance) {
            return Err(Failure::Value(Box::new(ValueMismatch {
                output: name.to_string(),
                index,
                actual: a.to_string(),
                expected: describe_number(e),
                distance,
                tolerance,
            })));
        }
    }
    Ok(())
}

fn describe_number(n: Number) -> String {
    match n {
        Number::Int(i) => i.to_string(),
        Number::Float(x) => format!("{x:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::{OperandDescriptor, Shape};

    fn next_up(x: f32) -> f32 {
        f32::from_bits(x.to_bits() + 1)
    }

    #[test]
    fn to_half_matches_wpt_including_its_rounding_quirks() {
        assert_eq!(to_half_bits(1.0), 0x3c00);
        assert_eq!(to_half_bits(-2.0), 0xc000);
        assert_eq!(to_half_bits(0.0), 0x0000);
        assert_eq!(to_half_bits(-0.0), 0x8000);
        assert_eq!(to_half_bits(65504.0), 0x7bff);
        assert_eq!(to_half_bits(65520.0), 0x7c00, "rounds up to infinity");
        assert_eq!(to_half_bits(1e6), 0x7c00);
        assert_eq!(to_half_bits(f64::INFINITY), 0x7c00);
        assert_eq!(to_half_bits(f64::NEG_INFINITY), 0xfc00);
        assert_eq!(to_half_bits(f64::NAN), 0x7c01);
        assert_eq!(to_half_bits(2f64.powi(-24)), 0x0001, "smallest subnormal");
        assert_eq!(to_half_bits(2f64.powi(-14)), 0x0400, "smallest normal");
        // Ties round away from zero, not to even (half's f16 gives 0x3c00).
        let tie = 1.0 + 2f64.powi(-11);
        assert_eq!(to_half_bits(tie), 0x3c01);
        assert_eq!(f16::from_f64(tie).to_bits(), 0x3c00);
        assert_eq!(to_half_bits(-tie), 0xbc01);
        // Below 2^-24 (float32 exponent < 103) everything becomes zero.
        assert_eq!(to_half_bits(1.5 * 2f64.powi(-25)), 0x0000);
        // Ordinary values agree with correct rounding.
        for x in [0.1, -3.75, 1234.5678, 6.1e-5, -0.000123] {
            assert_eq!(to_half_bits(x), f16::from_f64(x).to_bits(), "{x}");
        }
    }

    #[test]
    fn f32_ulp_distance_is_sign_magnitude_on_one_line() {
        assert_eq!(ulp_distance_f32(1.0, 1.0), 0);
        assert_eq!(ulp_distance_f32(next_up(1.0), 1.0), 1);
        assert_eq!(ulp_distance_f32(-next_up(1.0), -1.0), 1);
        assert_eq!(ulp_distance_f32(1.0, f64::from(next_up(next_up(1.0)))), 2);
        assert_eq!(ulp_distance_f32(-0.0, 0.0), 0);
        assert_eq!(ulp_distance_f32(0.0, -0.0), 0);
        let tiny = f32::from_bits(1);
        assert_eq!(ulp_distance_f32(tiny, -f64::from(tiny)), 2, "across zero");
        assert_eq!(ulp_distance_f32(1.0, -1.0), 2 * 0x3f80_0000);
        // The expected double is rounded to float32 first.
        assert_eq!(ulp_distance_f32(0.1f32, 0.1), 0);
        assert_eq!(ulp_distance_f32(f32::MAX, f64::INFINITY), 1);
        // NaNs map to one canonical pattern.
        assert_eq!(ulp_distance_f32(f32::NAN, f64::NAN), 0);
        assert_eq!(ulp_distance_f32(f32::INFINITY, f64::NAN), 0x40_0000);
    }

    #[test]
    fn f16_ulp_distance_is_on_raw_bits_not_sign_folded() {
        assert_eq!(ulp_distance_f16(0x3c00, 1.0), 0);
        assert_eq!(ulp_distance_f16(0x3c01, 1.0), 1);
        assert_eq!(ulp_distance_f16(0x3bff, 1.0), 1);
        assert_eq!(ulp_distance_f16(0xbc01, -1.0), 1);
        assert_eq!(ulp_distance_f16(0x8000, 0.0), 0, "-0 against +0");
        assert_eq!(ulp_distance_f16(0x0000, -0.0), 0, "+0 against -0");
        assert_eq!(ulp_distance_f16(0x3c00, -1.0), 0x8000);
        // Across zero: WPT does not fold the sign, so +tiny and -tiny are far apart.
        assert_eq!(ulp_distance_f16(0x0001, -(2f64.powi(-24))), 0x8000);
        assert_eq!(ulp_distance_f16(0x0001, 0.0), 1);
        // The expected value goes through toHalf: the tie rounds up.
        assert_eq!(ulp_distance_f16(0x3c01, 1.0 + 2f64.powi(-11)), 0);
    }

    #[test]
    fn int_distance_is_exact_for_64_bit_values() {
        assert_eq!(int_distance(3, -2), 5);
        assert_eq!(int_distance(i64::MAX.into(), (i64::MAX - 1).into()), 1);
        assert_eq!(int_distance(u64::MAX.into(), (u64::MAX - 1).into()), 1);
        assert_eq!(int_distance(i64::MIN.into(), i64::MAX.into()), u128::from(u64::MAX));
        // As doubles these would compare equal.
        assert_eq!(i64::MAX as f64, (i64::MAX - 1) as f64);
    }

    #[test]
    fn nan_against_nan_passes_every_metric() {
        let nan = Number::Float(f64::NAN);
        assert_eq!(check_element(Element::F32(f32::NAN), nan, Tolerance::Ulp(0)), Ok(()));
        assert_eq!(check_element(Element::F16(0x7e00), nan, Tolerance::Ulp(0)), Ok(()));
        assert_eq!(check_element(Element::F32(f32::NAN), nan, Tolerance::Atol(0.0)), Ok(()));
        assert!(check_element(Element::F32(f32::NAN), Number::Float(1.0), Tolerance::Ulp(1000)).is_err());
        assert!(check_element(Element::F32(1.0), nan, Tolerance::Ulp(1000)).is_err());
        assert!(check_element(Element::F16(0x3c00), nan, Tolerance::Atol(1.0)).is_err());
    }

    #[test]
    fn ulp_tolerance_is_inclusive() {
        let e = Number::Float(1.0);
        let two_up = next_up(next_up(1.0));
        assert_eq!(check_element(Element::F32(two_up), e, Tolerance::Ulp(2)), Ok(()));
        assert_eq!(check_element(Element::F32(two_up), e, Tolerance::Ulp(1)), Err("distance 2 ULP".into()));
        assert_eq!(check_element(Element::F16(0x3c02), e, Tolerance::Ulp(2)), Ok(()));
        assert!(check_element(Element::F16(0x3c03), e, Tolerance::Ulp(2)).is_err());
        assert_eq!(check_element(Element::Int(7), Number::Int(7), Tolerance::Ulp(0)), Ok(()));
        assert!(check_element(Element::Int(8), Number::Int(7), Tolerance::Ulp(0)).is_err());
        assert_eq!(check_element(Element::Int(8), Number::Float(7.0), Tolerance::Ulp(1)), Ok(()));
        assert!(check_element(Element::Int(7), Number::Float(7.5), Tolerance::Ulp(1)).is_err());
    }

    #[test]
    fn atol_compares_absolute_differences() {
        let tol = Tolerance::Atol(1.0 / 1024.0);
        assert_eq!(check_element(Element::F32(1.0), Number::Float(1.0 + 1.0 / 1024.0), tol), Ok(()));
        assert!(check_element(Element::F32(1.0), Number::Float(1.001), tol).is_err());
        // float16 results are decoded to numbers first: 0x3c01 is 1 + 2^-10.
        assert_eq!(check_element(Element::F16(0x3c01), Number::Float(1.0), tol), Ok(()));
        assert!(check_element(Element::F16(0x3c02), Number::Float(1.0), tol).is_err());
        // Equal infinities pass; opposite ones do not.
        assert_eq!(check_element(Element::F32(f32::NEG_INFINITY), Number::Float(f64::NEG_INFINITY), tol), Ok(()));
        assert!(check_element(Element::F32(f32::INFINITY), Number::Float(f64::NEG_INFINITY), tol).is_err());
    }

    fn f32_tensor(shape: &[u32], values: &[f32]) -> Tensor {
        Tensor::from_f32(Shape::new(shape), values).unwrap()
    }

    fn expected(data_type: DataType, shape: &[u32], data: Data) -> CaseTensor {
        CaseTensor { desc: OperandDescriptor::new(data_type, Shape::new(shape)), data }
    }

    #[test]
    fn a_scalar_expected_value_fills_and_checks_the_first_1000_elements() {
        let fill = expected(DataType::Float32, &[2000], Data::Fill(Number::Float(2.0)));
        let mut values = vec![2.0f32; 2000];
        values[1500] = 99.0;
        assert_eq!(check_output("y", &fill, &f32_tensor(&[2000], &values), Tolerance::Ulp(0)), Ok(()));
        values[999] = 99.0;
        match check_output("y", &fill, &f32_tensor(&[2000], &values), Tolerance::Ulp(0)) {
            Err(Failure::Value(m)) => {
                assert_eq!((m.output.as_str(), m.index), ("y", 999));
                assert_eq!((m.actual.as_str(), m.expected.as_str()), ("99.0", "2.0"));
            }
            other => panic!("expected a value mismatch, got {other:?}"),
        }
        let scalar = expected(DataType::Float32, &[], Data::Fill(Number::Float(-1.5)));
        assert_eq!(check_output("y", &scalar, &f32_tensor(&[], &[-1.5]), Tolerance::Ulp(0)), Ok(()));
        assert!(check_output("y", &scalar, &f32_tensor(&[], &[1.5]), Tolerance::Ulp(0)).is_err());
    }

    #[test]
    fn list_data_checks_every_element_and_reports_the_first_mismatch() {
        let list =
            expected(DataType::Float32, &[3], Data::List(vec![Number::Float(1.0), Number::Int(2), Number::Float(3.0)]));
        assert_eq!(check_output("y", &list, &f32_tensor(&[3], &[1.0, 2.0, 3.0]), Tolerance::Ulp(0)), Ok(()));
        let err = check_output("y", &list, &f32_tensor(&[3], &[1.0, 2.5, 4.0]), Tolerance::Ulp(0)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "output `y` element 1: actual 2.5, expected 2, distance 2097152 ULP (tolerance 0 ULP)"
        );
        let short = expected(DataType::Float32, &[3], Data::List(vec![Number::Float(1.0)]));
        assert!(matches!(
            check_output("y", &short, &f32_tensor(&[3], &[1.0, 2.0, 3.0]), Tolerance::Ulp(0)),
            Err(Failure::Build(_))
        ));
    }

    #[test]
    fn the_output_descriptor_must_match() {
        let want = expected(DataType::Float32, &[2, 1], Data::Fill(Number::Float(0.0)));
        let err = check_output("y", &want, &f32_tensor(&[2], &[0.0, 0.0]), Tolerance::Ulp(0)).unwrap_err();
        assert_eq!(err.to_string(), "output `y`: descriptor f32[2], expected f32[2, 1]");
    }

    #[test]
    fn int64_outputs_compare_exactly() {
        let big = i64::MAX - 1;
        let actual =
            Tensor::from_bytes(OperandDescriptor::new(DataType::Int64, [1]), big.to_le_bytes().to_vec()).unwrap();
        let want = |v: i64| expected(DataType::Int64, &[1], Data::List(vec![Number::Int(v.into())]));
        assert_eq!(check_output("y", &want(big), &actual, Tolerance::Ulp(0)), Ok(()));
        assert!(check_output("y", &want(i64::MAX), &actual, Tolerance::Ulp(0)).is_err());
        assert_eq!(check_output("y", &want(i64::MAX), &actual, Tolerance::Ulp(1)), Ok(()));
    }
}
