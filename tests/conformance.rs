//! WebNN conformance: every WPT vector in `tests/data/wpt-webnn`, built and
//! run through kiln and judged with WPT's tolerances.

use kiln_harness::conformance::judge::{f16_bits_to_f64, to_half_bits};
use kiln_harness::conformance::{
    Backend, Case, CaseTensor, Element, Exclusions, Tolerance, build_case, bundled_exclusions_file,
    bundled_vectors_dir, check_output, encode_tensor, hand_checked_vectors_dir, load_cases, run_cases,
};
use kiln_ir::{DataType, Tensor};

/// The number of cases in the bundled vectors (their README's total).
const WPT_CASES: usize = 1546;

/// The number of hand-checked cases (`scripts/webnn_hand_cases.py`).
const HAND_CASES: usize = 140;

fn bundled_cases() -> Vec<Case> {
    load_cases(&bundled_vectors_dir()).unwrap_or_else(|e| panic!("loading the WPT vectors: {e}"))
}

fn hand_cases() -> Vec<Case> {
    load_cases(&hand_checked_vectors_dir()).unwrap_or_else(|e| panic!("loading the hand-checked cases: {e}"))
}

#[test]
fn every_hand_checked_case_passes_on_the_interpreter() {
    let cases = hand_cases();
    assert_eq!(cases.len(), HAND_CASES);
    assert!(cases.iter().all(|c| c.lossy.is_none()));
    let report = run_cases(&cases, Backend::Interp, &Exclusions::none());
    report.print_summary(true);
    let counts = report.counts();
    assert_eq!(counts.passed, HAND_CASES, "{} of {} hand-checked cases failed on interp", counts.failed, counts.total());
}

fn bundled_exclusions() -> Exclusions {
    Exclusions::load(&bundled_exclusions_file()).unwrap_or_else(|e| panic!("loading the exclusion list: {e}"))
}

#[test]
fn every_case_builds_with_the_expected_output_descriptors() {
    let cases = bundled_cases();
    assert_eq!(cases.len(), WPT_CASES);
    let failures: Vec<String> = cases.iter().filter_map(|c| build_case(c).err().map(|e| format!("{c}: {e}"))).collect();
    for f in &failures {
        println!("{f}");
    }
    assert!(failures.is_empty(), "{} of {} cases do not build", failures.len(), cases.len());
}

#[test]
fn the_exclusion_list_names_existing_cases_and_covers_the_lossy_ones() {
    let cases = bundled_cases();
    let exclusions = bundled_exclusions();
    assert_eq!(exclusions.unknown(&cases), Vec::<&str>::new(), "stale exclusions");
    for case in cases.iter().filter(|c| c.lossy.is_some()) {
        assert!(exclusions.reason(&case.name).is_some(), "{case} is lossy but not excluded");
    }
}

#[test]
fn every_case_passes_on_the_interpreter() {
    let cases = bundled_cases();
    let report = run_cases(&cases, Backend::Interp, &bundled_exclusions());
    report.print_summary(true);
    println!("{}", report.to_json());
    let counts = report.counts();
    assert_eq!(counts.total(), WPT_CASES);
    assert!(report.all_passed(), "{} of {} WPT cases failed on interp", counts.failed, counts.total());
}

/// The first element of `exact` moved just outside `tolerance`: by
/// tolerance + 1 ULP (toward zero where there is room), or by at least 1 and
/// |value| under ATOL; a NaN becomes 0.
fn just_outside(exact: &Tensor, tolerance: Tolerance) -> Tensor {
    let size = exact.data_type().byte_size();
    let mut bytes = exact.bytes().to_vec();
    let moved: Vec<u8> = match (Element::read(exact, 0), tolerance) {
        // Any number where NaN is expected is outside every tolerance.
        (Element::F32(v), _) if v.is_nan() => 0f32.to_le_bytes().to_vec(),
        (Element::F16(bits), _) if bits & 0x7c00 == 0x7c00 && bits & 0x03ff != 0 => 0u16.to_le_bytes().to_vec(),
        (Element::F32(v), Tolerance::Ulp(t)) => f32_steps(v, t + 1).to_le_bytes().to_vec(),
        (Element::F16(bits), Tolerance::Ulp(t)) => f16_steps(bits, t + 1).to_le_bytes().to_vec(),
        (Element::Int(i), Tolerance::Ulp(t)) => int_steps(exact.data_type(), i, t + 1),
        (Element::F32(v), Tolerance::Atol(_)) => (v + v.abs().max(1.0)).to_le_bytes().to_vec(),
        (Element::F16(bits), Tolerance::Atol(_)) => {
            let v = f16_bits_to_f64(bits);
            to_half_bits(v + v.abs().max(1.0)).to_le_bytes().to_vec()
        }
        (Element::Int(i), Tolerance::Atol(_)) => int_steps(exact.data_type(), i, 2),
    };
    bytes[..size].copy_from_slice(&moved);
    Tensor::from_bytes(exact.desc().clone(), bytes).unwrap()
}

/// `v` moved `n` steps along WPT's float32 line (sign-magnitude bits).
fn f32_steps(v: f32, n: u128) -> f32 {
    let line = |x: f32| if x < 0.0 { -i64::from(x.abs().to_bits()) } else { i64::from(x.to_bits()) };
    let l = line(v);
    let n = n as i64;
    let moved = if l > 0 { l - n } else { l + n };
    if moved < 0 { -f32::from_bits((-moved) as u32) } else { f32::from_bits(moved as u32) }
}

/// Raw float16 bits moved `n` steps, toward zero magnitude where there is room.
fn f16_steps(bits: u16, n: u128) -> u16 {
    let n = n as u16;
    if bits & 0x7fff > n { bits - n } else { bits + n }
}

fn int_steps(data_type: DataType, i: i128, n: u128) -> Vec<u8> {
    let (lo, _) = data_type.int_range().unwrap();
    let moved = if i - (n as i128) >= lo { i - n as i128 } else { i + n as i128 };
    let expected = CaseTensor {
        desc: kiln_ir::OperandDescriptor::new(data_type, [1]),
        data: kiln_harness::conformance::Data::List(vec![kiln_ir::Number::Int(moved)]),
    };
    encode_tensor(&expected).unwrap().bytes().to_vec()
}

#[test]
fn exact_results_pass_and_results_just_outside_the_tolerance_fail() {
    let mut checked = 0;
    for case in bundled_cases().iter().chain(&hand_cases()).filter(|c| c.lossy.is_none()) {
        for (name, expected) in &case.expected {
            let exact = encode_tensor(expected).unwrap_or_else(|e| panic!("{case}: output `{name}`: {e}"));
            if let Err(e) = check_output(name, expected, &exact, case.tolerance) {
                panic!("{case}: the exact result fails: {e}");
            }
            let off = just_outside(&exact, case.tolerance);
            assert!(
                check_output(name, expected, &off, case.tolerance).is_err(),
                "{case}: output `{name}` passes with element 0 = {} ({})",
                Element::read(&off, 0),
                case.tolerance
            );
            checked += 1;
        }
    }
    assert!(checked >= WPT_CASES - 7 + HAND_CASES);
}
