//! WebNN tensors (`MLTensor`): created, written, dispatched and read by
//! name, in call order, on every backend; every broken rule an error.

use kiln::runtime::block_on;
use kiln::{
    Backend, CompiledGraph, Context, ContextOptions, DataType, DeviceTensor, GraphBuilder, OperandDescriptor,
    RuntimeError, Tensor, TensorUsage,
};

const RW: TensorUsage = TensorUsage { readable: true, writable: true };

fn desc(dims: [u32; 2]) -> OperandDescriptor {
    OperandDescriptor::new(DataType::Float32, dims)
}

/// `y = relu(x W)`, x [2, 3], W [3, 2].
fn graph(ctx: &Context) -> CompiledGraph {
    let b = GraphBuilder::new();
    let x = b.input("x", desc([2, 3])).unwrap();
    let w = b.constant_f32([3, 2], &[1., 2., 3., 4., 5., 6.]).unwrap();
    let y = b.relu(b.matmul(x, w).unwrap()).unwrap();
    ctx.compile(b.build(&[("y", y)]).unwrap()).unwrap()
}

/// `y = 2 x`, x and y [2, 2].
fn double(ctx: &Context) -> CompiledGraph {
    let b = GraphBuilder::new();
    let x = b.input("x", desc([2, 2])).unwrap();
    let two = b.constant_f32([], &[2.]).unwrap();
    let y = b.mul(x, two).unwrap();
    ctx.compile(b.build(&[("y", y)]).unwrap()).unwrap()
}

fn bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn read(ctx: &Context, t: &DeviceTensor) -> Vec<f32> {
    block_on(ctx.read_tensor(t)).unwrap().to_f32_vec()
}

#[test]
fn tensors_flow_through_dispatches_in_call_order() {
    for &backend in Backend::ALL {
        let ctx = Context::new(ContextOptions { backend, threads: 2, ..Default::default() }).unwrap();
        let (g, d) = (graph(&ctx), double(&ctx));
        let x = ctx.create_tensor(desc([2, 3]), RW).unwrap();
        let y = ctx.create_tensor(desc([2, 2]), RW).unwrap();
        let z = ctx.create_tensor(desc([2, 2]), TensorUsage { readable: true, writable: false }).unwrap();
        assert_eq!(read(&ctx, &y), vec![0.; 4], "{backend}: zero-filled");
        ctx.write_tensor(&x, &bytes(&[1., -1., 2., 0.5, 0.5, -3.])).unwrap();
        let first = ctx.dispatch_tensors(&g, &[("x", &x)], &[("y", &y)]).unwrap();
        // Chained: the second graph reads the first one's output tensor.
        ctx.dispatch_tensors(&d, &[("x", &y)], &[("y", &z)]).unwrap();
        // A write queued after the dispatch does not change what it read.
        ctx.write_tensor(&x, &bytes(&[0.; 6])).unwrap();
        assert_eq!(read(&ctx, &y), vec![8., 10., 0., 0.], "{backend}");
        assert_eq!(read(&ctx, &z), vec![16., 20., 0., 0.], "{backend}");
        assert_eq!(read(&ctx, &x), vec![0.; 6], "{backend}");
        block_on(first).unwrap();
    }
}

fn tensor_rule(e: RuntimeError, needle: &str) {
    let text = e.to_string();
    assert!(text.contains(needle), "`{text}` does not say `{needle}`");
}

#[test]
fn broken_rules_are_errors() {
    let ctx = Context::new(ContextOptions::default()).unwrap();
    let other = Context::new(ContextOptions::default()).unwrap();
    let g = graph(&ctx);
    let x = ctx.create_tensor(desc([2, 3]), RW).unwrap();
    let y = ctx.create_tensor(desc([2, 2]), RW).unwrap();
    let write_only = ctx.create_tensor(desc([2, 2]), TensorUsage { readable: false, writable: true }).unwrap();
    let read_only = ctx.create_tensor(desc([2, 3]), TensorUsage { readable: true, writable: false }).unwrap();
    let wrong_shape = ctx.create_tensor(desc([3, 2]), RW).unwrap();
    let foreign = other.create_tensor(desc([2, 3]), RW).unwrap();
    let constant = ctx.create_constant_tensor(Tensor::from_f32([2, 2], &[1.; 4]).unwrap()).unwrap();

    tensor_rule(ctx.create_tensor(desc([0, 2]), RW).unwrap_err(), "zero dimension");
    tensor_rule(ctx.write_tensor(&x, &[0; 7]).unwrap_err(), "7 bytes");
    tensor_rule(ctx.write_tensor(&read_only, &bytes(&[0.; 6])).unwrap_err(), "not created writable");
    tensor_rule(ctx.write_tensor(&constant, &bytes(&[0.; 4])).unwrap_err(), "not created writable");
    tensor_rule(block_on(ctx.read_tensor(&write_only)).unwrap_err(), "not created readable");
    tensor_rule(ctx.write_tensor(&foreign, &bytes(&[0.; 6])).unwrap_err(), "another context");
    let dispatch = |inputs: &[(&str, &DeviceTensor)], outputs: &[(&str, &DeviceTensor)]| {
        ctx.dispatch_tensors(&g, inputs, outputs).map(|_| ()).unwrap_err()
    };
    tensor_rule(dispatch(&[("x", &wrong_shape)], &[("y", &y)]), "the graph wants f32[2, 3]");
    tensor_rule(dispatch(&[], &[("y", &y)]), "graph input `x` has no tensor");
    tensor_rule(dispatch(&[("x", &x), ("z", &x)], &[("y", &y)]), "`z` is not a graph input");
    tensor_rule(dispatch(&[("x", &x), ("x", &x)], &[("y", &y)]), "given more than once");
    tensor_rule(dispatch(&[("x", &x)], &[]), "graph output `y` has no tensor");
    tensor_rule(dispatch(&[("x", &foreign)], &[("y", &y)]), "another context");
    tensor_rule(dispatch(&[("x", &x)], &[("y", &constant)]), "constant tensor cannot be written");
    tensor_rule(x.constant_value().unwrap_err(), "only a constant tensor");

    // A tensor both read and written by one dispatch.
    let d = double(&ctx);
    let e = ctx.dispatch_tensors(&d, &[("x", &y)], &[("y", &y)]).map(|_| ()).unwrap_err();
    tensor_rule(e, "output `y` is also input `x`");

    // Destroyed tensors and graphs.
    y.destroy();
    assert!(y.is_destroyed());
    tensor_rule(ctx.write_tensor(&y, &bytes(&[0.; 4])).unwrap_err(), "the tensor was destroyed");
    tensor_rule(block_on(ctx.read_tensor(&y)).unwrap_err(), "the tensor was destroyed");
    tensor_rule(dispatch(&[("x", &x)], &[("y", &y)]), "the tensor was destroyed");
    g.destroy();
    let fresh = ctx.create_tensor(desc([2, 2]), RW).unwrap();
    tensor_rule(dispatch(&[("x", &x)], &[("y", &fresh)]), "the graph was destroyed");
    let input = Tensor::from_f32([2, 3], &[0.; 6]).unwrap();
    tensor_rule(ctx.compute(&g, &[("x", &input)]).unwrap_err(), "the graph was destroyed");
    // The context stays usable.
    let d2 = double(&ctx);
    let out = ctx.create_tensor(desc([2, 2]), RW).unwrap();
    ctx.dispatch_tensors(&d2, &[("x", &constant)], &[("y", &out)]).unwrap();
    assert_eq!(read(&ctx, &out), vec![2.; 4]);
}

#[test]
fn constant_tensors_become_graph_constants() {
    let ctx = Context::new(ContextOptions::default()).unwrap();
    let w = ctx.create_constant_tensor(Tensor::from_f32([2, 2], &[1., 2., 3., 4.]).unwrap()).unwrap();
    let b = GraphBuilder::new();
    let x = b.input("x", desc([1, 2])).unwrap();
    let c = b.constant_tensor(None, w.constant_value().unwrap()).unwrap();
    let y = b.matmul(x, c).unwrap();
    let g = ctx.compile(b.build(&[("y", y)]).unwrap()).unwrap();
    let out = ctx.compute(&g, &[("x", &Tensor::from_f32([1, 2], &[1., 1.]).unwrap())]).unwrap();
    assert_eq!(out[0].1.to_f32_vec(), vec![4., 6.]);
}

/// Tensors and graphs are shared by threads: each thread writes its own
/// input, dispatches the shared graph and reads its own output.
#[test]
fn tensors_are_usable_from_any_thread() {
    let ctx = Context::new(ContextOptions { threads: 2, ..Default::default() }).unwrap();
    let g = double(&ctx);
    std::thread::scope(|s| {
        for i in 0..4 {
            let (ctx, g) = (ctx.clone(), g.clone());
            s.spawn(move || {
                let x = ctx.create_tensor(desc([2, 2]), RW).unwrap();
                let y = ctx.create_tensor(desc([2, 2]), RW).unwrap();
                for round in 0..50 {
                    let v = (i * 100 + round) as f32;
                    ctx.write_tensor(&x, &bytes(&[v, v + 1., v + 2., v + 3.])).unwrap();
                    ctx.dispatch_tensors(&g, &[("x", &x)], &[("y", &y)]).unwrap();
                    assert_eq!(read(&ctx, &y), vec![2. * v, 2. * v + 2., 2. * v + 4., 2. * v + 6.]);
                }
            });
        }
    });
}
