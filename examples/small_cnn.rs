//! Builds the bundled example model `examples/small_cnn.webnn` (plus its
//! `small_cnn.safetensors` weights and a sample input `small_cnn_input.npy`)
//! with the builder API, from seeded random weights.
//!
//! ```sh
//! cargo run --example small_cnn            # rewrites the three files
//! ```
//!
//! The output is deterministic: running it again gives identical bytes.

use kiln::{
    BatchNormalizationOptions, Conv2dOptions, DataType, GemmOptions, GraphBuilder, OperandDescriptor, OperandId,
    Pool2dOptions, Tensor,
};

/// A small deterministic generator (xorshift64*), uniform in [-scale, scale).
struct Rng(u64);

impl Rng {
    fn uniform(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 >> 12;
                self.0 ^= self.0 << 25;
                self.0 ^= self.0 >> 27;
                let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
                (bits as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }
}

fn named(b: &GraphBuilder, name: &str, id: OperandId) -> Result<OperandId, kiln::BuildError> {
    b.set_name(id, name)?;
    Ok(id)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = Rng(0x6b69_6c6e);
    let b = GraphBuilder::new();
    // Uniform in [offset - scale, offset + scale).
    let mut weight = |name: &str, shape: &[u32], scale: f32, offset: f32| -> Result<OperandId, kiln::BuildError> {
        let n = shape.iter().product::<u32>() as usize;
        let values: Vec<f32> = rng.uniform(n, scale).iter().map(|v| v + offset).collect();
        let id = b.constant_f32(shape, &values)?;
        named(&b, name, id)
    };

    let x = b.input("x", OperandDescriptor::new(DataType::Float32, [1, 3, 32, 32]))?;
    // Block 1: conv 3x3 (8 channels) + bias + relu, 2x2 max pool.
    let w1 = weight("conv1_w", &[8, 3, 3, 3], 0.3, 0.0)?;
    let b1 = weight("conv1_b", &[8], 0.1, 0.0)?;
    let c1 = b.conv2d(x, w1, Conv2dOptions { padding: [1; 4], bias: Some(b1), ..Default::default() })?;
    let r1 = named(&b, "relu1", b.relu(c1)?)?;
    let p1 = b.max_pool2d(r1, Pool2dOptions { window_dimensions: Some([2, 2]), strides: [2, 2], ..Default::default() })?;
    // Block 2: conv 3x3 (16 channels, stride 2) + batch norm + relu.
    let w2 = weight("conv2_w", &[16, 8, 3, 3], 0.2, 0.0)?;
    let c2 = b.conv2d(p1, w2, Conv2dOptions { padding: [1; 4], strides: [2, 2], ..Default::default() })?;
    let mean = weight("bn_mean", &[16], 0.1, 0.0)?;
    let variance = weight("bn_var", &[16], 0.4, 0.6)?;
    let scale = weight("bn_scale", &[16], 1.0, 0.0)?;
    let n2 = b.batch_normalization(c2, mean, variance, BatchNormalizationOptions { scale: Some(scale), ..Default::default() })?;
    let r2 = named(&b, "relu2", b.relu(n2)?)?;
    // Head: global average pool, flatten, fully connected (10 classes), softmax.
    let g = b.average_pool2d(r2, Pool2dOptions::default())?;
    let flat = named(&b, "features", b.reshape(g, [1, 16])?)?;
    let fc_w = weight("fc_w", &[16, 10], 0.5, 0.0)?;
    let fc_b = weight("fc_b", &[1, 10], 0.1, 0.0)?;
    let logits = named(&b, "logits", b.gemm(flat, fc_w, GemmOptions { c: Some(fc_b), ..Default::default() })?)?;
    let probs = b.softmax(logits, 1)?;
    let graph = b.build(&[("probs", probs)])?;

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    kiln::frontend::webnn_text::save(&graph, &dir.join("small_cnn.webnn"))?;
    let input = Tensor::from_f32([1, 3, 32, 32], &rng.uniform(3 * 32 * 32, 1.0))?;
    std::fs::write(dir.join("small_cnn_input.npy"), kiln::npy::to_bytes(&input))?;
    println!("wrote examples/small_cnn.webnn, small_cnn.safetensors and small_cnn_input.npy");
    Ok(())
}
