//! Golden files for generated code: for a few small graphs, the kernel
//! program, the Cranelift IR and the machine code for every x86-64 feature
//! level, whatever the host. Review changes with `cargo insta review`.

use kiln::codegen::cpu::{listing, Listing, Target};
use kiln::{
    Conv2dOptions, DataType, GemmOptions, Graph, GraphBuilder, OperandDescriptor, OperandId, Pool2dOptions,
};

fn values(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7 % 11) as f32 - 5.0) / 10.0).collect()
}

fn input(b: &GraphBuilder, shape: &[u32]) -> OperandId {
    b.input("x", OperandDescriptor::new(DataType::Float32, shape)).unwrap()
}

/// conv2d 3x3 (2 -> 4 channels, padding 1) + bias + relu.
fn conv_bias_relu() -> Graph {
    let b = GraphBuilder::new();
    let x = input(&b, &[1, 2, 6, 6]);
    let w = b.constant_f32([4, 2, 3, 3], &values(72)).unwrap();
    let bias = b.constant_f32([4], &values(4)).unwrap();
    let y = b.conv2d(x, w, Conv2dOptions { padding: [1; 4], bias: Some(bias), ..Default::default() }).unwrap();
    let y = b.relu(y).unwrap();
    b.build(&[("y", y)]).unwrap()
}

/// gemm (8x16 by 16x10, plus c) + softmax.
fn gemm_softmax() -> Graph {
    let b = GraphBuilder::new();
    let x = input(&b, &[8, 16]);
    let w = b.constant_f32([16, 10], &values(160)).unwrap();
    let c = b.constant_f32([1, 10], &values(10)).unwrap();
    let y = b.gemm(x, w, GemmOptions { c: Some(c), ..Default::default() }).unwrap();
    let y = b.softmax(y, 1).unwrap();
    b.build(&[("y", y)]).unwrap()
}

/// depthwise conv2d 3x3, stride 2 (4 channels).
fn depthwise_conv() -> Graph {
    let b = GraphBuilder::new();
    let x = input(&b, &[1, 4, 8, 8]);
    let w = b.constant_f32([4, 1, 3, 3], &values(36)).unwrap();
    let options = Conv2dOptions { padding: [1; 4], strides: [2, 2], groups: 4, ..Default::default() };
    let y = b.conv2d(x, w, options).unwrap();
    b.build(&[("y", y)]).unwrap()
}

/// conv2d 3x3 + bias + relu over 16-wide rows, 3 -> 10 channels: a direct
/// convolution on AVX-512 (blocks of 8 output channels, then 1 at a time).
fn direct_conv() -> Graph {
    let b = GraphBuilder::new();
    let x = input(&b, &[1, 3, 4, 16]);
    let w = b.constant_f32([10, 3, 3, 3], &values(270)).unwrap();
    let bias = b.constant_f32([10], &values(10)).unwrap();
    let options = Conv2dOptions { padding: [1; 4], bias: Some(bias), ..Default::default() };
    let y = b.relu(b.conv2d(x, w, options).unwrap()).unwrap();
    b.build(&[("y", y)]).unwrap()
}

/// maxPool2d 3x3, stride 2, padding 1 over 20-wide rows: a window maximum
/// on AVX-512 (-inf padding, VRANGEPS), an F32X4 guarded reduction below.
fn max_pool() -> Graph {
    let b = GraphBuilder::new();
    let x = input(&b, &[1, 2, 6, 20]);
    let options = Pool2dOptions {
        window_dimensions: Some([3, 3]),
        padding: [1; 4],
        strides: [2, 2],
        ..Default::default()
    };
    let y = b.max_pool2d(x, options).unwrap();
    b.build(&[("y", y)]).unwrap()
}

const TARGETS: [&str; 3] = ["x86_64", "x86_64+avx2", "x86_64+avx512"];

/// Snapshots the kernels (as `kiln::passes::lower` gives them), then per
/// target the program the cpu backend compiles (its kernels too where the
/// target's lowering differs: direct convolutions on AVX-512), as CLIF
/// and as disassembly.
fn snapshot_all(name: &str, graph: Graph) {
    let default = kiln::passes::lower(&graph).unwrap();
    insta::assert_snapshot!(format!("{name}.kernels"), default.to_string());
    for t in TARGETS {
        let target: Target = t.parse().unwrap();
        let program = kiln::runtime::pipeline_for(&target).run(&graph).unwrap().program;
        if program.to_string() != default.to_string() {
            insta::assert_snapshot!(format!("{name}.{t}.kernels"), program.to_string());
        }
        let clif = listing(&program, &target, Listing::Clif).unwrap();
        let asm = listing(&program, &target, Listing::Asm).unwrap();
        // Every listing is deterministic: compiling again gives the same text.
        assert_eq!(asm, listing(&program, &target, Listing::Asm).unwrap());
        insta::assert_snapshot!(format!("{name}.{t}.clif"), clif);
        insta::assert_snapshot!(format!("{name}.{t}.asm"), asm);
    }
}

#[test]
fn conv_bias_relu_code() {
    snapshot_all("conv_bias_relu", conv_bias_relu());
}

#[test]
fn gemm_softmax_code() {
    snapshot_all("gemm_softmax", gemm_softmax());
}

#[test]
fn depthwise_conv_code() {
    snapshot_all("depthwise_conv", depthwise_conv());
}

#[test]
fn direct_conv_code() {
    snapshot_all("direct_conv", direct_conv());
}

#[test]
fn max_pool_code() {
    snapshot_all("max_pool", max_pool());
}
