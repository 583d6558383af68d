//! Writes the benchmark models, built with the builder API from seeded
//! random weights (He-uniform), as `.webnn` + `.safetensors` pairs:
//! MobileNetV2 (224x224), SqueezeNet 1.1 (224x224) and ResNet-50 (224x224),
//! all batch 1, NCHW, float32.
//!
//! ```sh
//! cargo run --release --example zoo -- target/zoo     # then: kiln bench target/zoo/resnet50.webnn
//! ```
//!
//! The files are deterministic (same bytes on every run). They are not
//! committed: ResNet-50's weights alone are about 100 MB.

use kiln::{
    Conv2dOptions, DataType, GemmOptions, GraphBuilder, Number, OperandDescriptor, OperandId, Pool2dOptions,
    RoundingType,
};

type R<T> = Result<T, kiln::BuildError>;

/// Seeded weights: xorshift64*, uniform in [-scale, scale).
struct Weights<'b> {
    b: &'b GraphBuilder,
    state: u64,
    count: usize,
}

impl Weights<'_> {
    fn uniform(&mut self, shape: &[u32], scale: f32) -> R<OperandId> {
        let n = shape.iter().product::<u32>() as usize;
        let values: Vec<f32> = (0..n)
            .map(|_| {
                self.state ^= self.state >> 12;
                self.state ^= self.state << 25;
                self.state ^= self.state >> 27;
                let bits = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
                (bits as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect();
        let id = self.b.constant_f32(shape, &values)?;
        self.b.set_name(id, &format!("w{}", self.count))?;
        self.count += 1;
        Ok(id)
    }

    /// A convolution with He-uniform weights and a small bias (a folded
    /// batch normalisation), optionally followed by relu or relu6.
    #[allow(clippy::too_many_arguments, reason = "mirrors a layer's hyper-parameters")]
    fn conv(&mut self, x: OperandId, cin: u32, cout: u32, k: u32, stride: u32, groups: u32, act: Act) -> R<OperandId> {
        let fan_in = (cin / groups) * k * k;
        let w = self.uniform(&[cout, cin / groups, k, k], (6.0 / fan_in as f32).sqrt())?;
        let bias = self.uniform(&[cout], 0.05)?;
        let p = k / 2;
        let y = self.b.conv2d(
            x,
            w,
            Conv2dOptions { padding: [p; 4], strides: [stride; 2], groups, bias: Some(bias), ..Default::default() },
        )?;
        act.apply(self.b, y)
    }

    fn fc(&mut self, x: OperandId, cin: u32, cout: u32) -> R<OperandId> {
        let w = self.uniform(&[cin, cout], (6.0 / cin as f32).sqrt())?;
        let c = self.uniform(&[1, cout], 0.05)?;
        self.b.gemm(x, w, GemmOptions { c: Some(c), ..Default::default() })
    }
}

#[derive(Clone, Copy)]
enum Act {
    None,
    Relu,
    Relu6,
}

impl Act {
    fn apply(self, b: &GraphBuilder, x: OperandId) -> R<OperandId> {
        match self {
            Act::None => Ok(x),
            Act::Relu => b.relu(x),
            Act::Relu6 => b.clamp(x, Some(Number::Float(0.0)), Some(Number::Float(6.0))),
        }
    }
}

fn image(b: &GraphBuilder) -> R<OperandId> {
    b.input("input", OperandDescriptor::new(DataType::Float32, [1, 3, 224, 224]))
}

fn head(w: &mut Weights, x: OperandId, channels: u32) -> R<OperandId> {
    let g = w.b.average_pool2d(x, Pool2dOptions::default())?;
    let flat = w.b.reshape(g, [1, channels])?;
    let logits = w.fc(flat, channels, 1000)?;
    w.b.softmax(logits, 1)
}

fn mobilenet_v2(b: &GraphBuilder) -> R<OperandId> {
    let mut w = Weights { b, state: 0x6d6f_6269_6c65, count: 0 };
    let mut x = w.conv(image(b)?, 3, 32, 3, 2, 1, Act::Relu6)?;
    let mut cin = 32;
    // (expansion t, output channels c, repeats n, first stride s)
    for (t, c, n, s) in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)] {
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            let hidden = cin * t;
            let mut y = x;
            if t != 1 {
                y = w.conv(y, cin, hidden, 1, 1, 1, Act::Relu6)?;
            }
            y = w.conv(y, hidden, hidden, 3, stride, hidden, Act::Relu6)?;
            y = w.conv(y, hidden, c, 1, 1, 1, Act::None)?;
            x = if stride == 1 && cin == c { b.add(x, y)? } else { y };
            cin = c;
        }
    }
    let x = w.conv(x, 320, 1280, 1, 1, 1, Act::Relu6)?;
    head(&mut w, x, 1280)
}

fn fire(w: &mut Weights, x: OperandId, cin: u32, squeeze: u32, expand: u32) -> R<OperandId> {
    let s = w.conv(x, cin, squeeze, 1, 1, 1, Act::Relu)?;
    let e1 = w.conv(s, squeeze, expand, 1, 1, 1, Act::Relu)?;
    let e3 = w.conv(s, squeeze, expand, 3, 1, 1, Act::Relu)?;
    w.b.concat(&[e1, e3], 1)
}

fn squeezenet_1_1(b: &GraphBuilder) -> R<OperandId> {
    let mut w = Weights { b, state: 0x7371_7565_657a, count: 0 };
    let pool = |x| {
        b.max_pool2d(
            x,
            Pool2dOptions {
                window_dimensions: Some([3, 3]),
                strides: [2, 2],
                output_shape_rounding: RoundingType::Ceil,
                ..Default::default()
            },
        )
    };
    let x = image(b)?;
    // SqueezeNet's first convolution has no padding.
    let w0 = w.uniform(&[64, 3, 3, 3], (6.0f32 / 27.0).sqrt())?;
    let b0 = w.uniform(&[64], 0.05)?;
    let x = b.relu(b.conv2d(x, w0, Conv2dOptions { strides: [2, 2], bias: Some(b0), ..Default::default() })?)?;
    let x = pool(x)?;
    let x = fire(&mut w, x, 64, 16, 64)?;
    let x = fire(&mut w, x, 128, 16, 64)?;
    let x = pool(x)?;
    let x = fire(&mut w, x, 128, 32, 128)?;
    let x = fire(&mut w, x, 256, 32, 128)?;
    let x = pool(x)?;
    let x = fire(&mut w, x, 256, 48, 192)?;
    let x = fire(&mut w, x, 384, 48, 192)?;
    let x = fire(&mut w, x, 384, 64, 256)?;
    let x = fire(&mut w, x, 512, 64, 256)?;
    let x = w.conv(x, 512, 1000, 1, 1, 1, Act::Relu)?;
    let x = b.average_pool2d(x, Pool2dOptions::default())?;
    let x = b.reshape(x, [1, 1000])?;
    b.softmax(x, 1)
}

fn bottleneck(w: &mut Weights, x: OperandId, cin: u32, width: u32, stride: u32) -> R<OperandId> {
    let cout = width * 4;
    let y = w.conv(x, cin, width, 1, 1, 1, Act::Relu)?;
    let y = w.conv(y, width, width, 3, stride, 1, Act::Relu)?;
    let y = w.conv(y, width, cout, 1, 1, 1, Act::None)?;
    let shortcut = if stride != 1 || cin != cout { w.conv(x, cin, cout, 1, stride, 1, Act::None)? } else { x };
    w.b.relu(w.b.add(y, shortcut)?)
}

fn resnet50(b: &GraphBuilder) -> R<OperandId> {
    let mut w = Weights { b, state: 0x7265_736e_6574, count: 0 };
    let x = w.conv(image(b)?, 3, 64, 7, 2, 1, Act::Relu)?;
    let mut x = b.max_pool2d(
        x,
        Pool2dOptions { window_dimensions: Some([3, 3]), strides: [2, 2], padding: [1; 4], ..Default::default() },
    )?;
    let mut cin = 64;
    for (width, blocks, stride) in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)] {
        for i in 0..blocks {
            x = bottleneck(&mut w, x, cin, width, if i == 0 { stride } else { 1 })?;
            cin = width * 4;
        }
    }
    head(&mut w, x, 2048)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "target/zoo".into()));
    std::fs::create_dir_all(&dir)?;
    type Build = fn(&GraphBuilder) -> R<OperandId>;
    let models: [(&str, Build); 3] =
        [("mobilenetv2", mobilenet_v2), ("squeezenet1.1", squeezenet_1_1), ("resnet50", resnet50)];
    for (name, build) in models {
        let b = GraphBuilder::new();
        let probs = build(&b)?;
        let graph = b.build(&[("probs", probs)])?;
        let path = dir.join(format!("{name}.webnn"));
        kiln::frontend::webnn_text::save(&graph, &path)?;
        println!(
            "{}: {} nodes, {:.2} GFLOP",
            path.display(),
            graph.nodes().len(),
            kiln::ir::cost::graph_flops(&graph) as f64 / 1e9
        );
    }
    Ok(())
}
