//! Runs the model that build.rs compiled ahead of time and linked into this
//! binary: no kiln runtime, no JIT, just a function call.
//!
//! `cargo run -p kiln-aot-link` prints the class probabilities of a test
//! pattern.

mod small_cnn {
    include!(concat!(env!("OUT_DIR"), "/small_cnn.rs"));
}

/// 64-byte aligned scratch memory.
#[derive(Clone, Copy)]
#[repr(align(64))]
struct Line(#[allow(dead_code, reason = "only its size and alignment matter")] [u8; 64]);

/// Runs the linked model on `input` (1x3x32x32, row-major).
pub fn classify(input: &[f32]) -> Vec<f32> {
    assert_eq!(input.len(), small_cnn::INPUT_0_ELEMENTS, "input size");
    let mut probs = vec![0f32; small_cnn::OUTPUT_0_ELEMENTS];
    let mut scratch = vec![Line([0; 64]); small_cnn::SCRATCH_BYTES.div_ceil(64)];
    let inputs = [input.as_ptr().cast::<u8>()];
    let outputs = [probs.as_mut_ptr().cast::<u8>()];
    // SAFETY: the pointers address tensors of the sizes the header gives
    // and 64-byte aligned scratch of SCRATCH_BYTES, as docs/aot.md requires.
    let rc = unsafe { small_cnn::small_cnn_run(inputs.as_ptr(), outputs.as_ptr(), scratch.as_mut_ptr().cast()) };
    assert_eq!(rc, 0, "small_cnn_run failed");
    probs
}

/// A deterministic test pattern.
pub fn pattern() -> Vec<f32> {
    (0..small_cnn::INPUT_0_ELEMENTS).map(|i| ((i * 37) % 101) as f32 / 101.0 - 0.5).collect()
}

fn main() {
    let probs = classify(&pattern());
    let (best, p) = probs.iter().enumerate().fold((0, f32::MIN), |b, (i, &p)| if p > b.1 { (i, p) } else { b });
    println!("class probabilities: {probs:.4?}");
    println!("most likely class: {best} (p = {p:.4})");
}

#[cfg(test)]
mod tests {
    /// The linked artifact agrees with kiln's reference interpreter.
    #[test]
    fn linked_model_matches_the_interpreter() {
        let model = concat!(env!("CARGO_MANIFEST_DIR"), "/../small_cnn.webnn");
        let graph = kiln::load_graph(model, &Default::default()).unwrap();
        let input = super::pattern();
        let x = kiln::Tensor::from_f32([1, 3, 32, 32], &input).unwrap();
        let want = kiln::interp::run(&graph, &[("x", &x)]).unwrap()[0].to_f32_vec();
        let got = super::classify(&input);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-5 + 1e-4 * w.abs(), "{got:?} vs {want:?}");
        }
    }
}
