//! Runtime behaviour shared by every backend: async dispatch, concurrency,
//! input checking.

use kiln::runtime::block_on;
use kiln::{Backend, CompiledGraph, Context, ContextOptions, DataType, GraphBuilder, OperandDescriptor, Tensor};

fn assert_send_sync<T: Send + Sync>() {}

fn graph(ctx: &Context) -> CompiledGraph {
    let b = GraphBuilder::new();
    let x = b.input("x", OperandDescriptor::new(DataType::Float32, [2, 3])).unwrap();
    let w = b.constant_f32([3, 2], &[1., 2., 3., 4., 5., 6.]).unwrap();
    let y = b.relu(b.matmul(x, w).unwrap()).unwrap();
    ctx.compile(b.build(&[("y", y)]).unwrap()).unwrap()
}

fn backends() -> Vec<Backend> {
    Backend::ALL.to_vec()
}

#[test]
fn compiled_graphs_are_send_and_sync() {
    assert_send_sync::<CompiledGraph>();
    assert_send_sync::<Context>();
}

#[test]
fn dispatch_matches_compute() {
    for backend in backends() {
        let ctx = Context::new(ContextOptions { backend, threads: 2, ..Default::default() }).unwrap();
        let g = graph(&ctx);
        let x = Tensor::from_f32([2, 3], &[1., -1., 2., 0.5, 0.5, -3.]).unwrap();
        let sync = ctx.compute(&g, &[("x", &x)]).unwrap();
        let outputs = block_on(ctx.dispatch(&g, vec![("x".into(), x)])).unwrap();
        assert_eq!(outputs[0].1.bytes(), sync[0].1.bytes(), "{backend}");
        // [1,-1,2]·W = [1-3+10, 2-4+12] = [8, 10]; [0.5,0.5,-3]·W = [-13, -15] -> relu 0
        assert_eq!(outputs[0].1.to_f32_vec(), vec![8., 10., 0., 0.], "{backend}");
    }
}

#[test]
fn concurrent_dispatches_do_not_interfere() {
    for backend in backends() {
        // Several threads per computation: concurrent computations share the
        // context's workers and must neither deadlock nor mix buffers.
        let ctx = Context::new(ContextOptions { backend, threads: 3, ..Default::default() }).unwrap();
        let g = graph(&ctx);
        let pending: Vec<_> = (0..8)
            .map(|i| {
                let x = Tensor::from_f32([2, 3], &[i as f32, 0., 0., 0., 0., i as f32]).unwrap();
                (i, ctx.dispatch(&g, vec![("x".into(), x)]))
            })
            .collect();
        for (i, d) in pending {
            let y = block_on(d).unwrap()[0].1.to_f32_vec();
            let i = i as f32;
            assert_eq!(y, vec![i, 2. * i, 5. * i, 6. * i], "{backend}");
        }
    }
}

#[test]
fn dispatch_reports_bad_inputs() {
    for backend in backends() {
        let ctx = Context::new(ContextOptions { backend, threads: 1, ..Default::default() }).unwrap();
        let g = graph(&ctx);
        let wrong = Tensor::from_f32([3, 2], &[0.; 6]).unwrap();
        let e = block_on(ctx.dispatch(&g, vec![("x".into(), wrong)])).unwrap_err().to_string();
        assert!(e.contains("expected f32[2, 3], got f32[3, 2]"), "{e}");
    }
}
