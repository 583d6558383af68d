//! One compiled graph run from 8 threads, 1,000 times each with different
//! inputs, gives results bit-identical to serial runs of the same inputs;
//! the same through async dispatch (issue 15, concurrency). The graph has
//! a convolution (window kernel or GEMM), a reduction and element-wise work,
//! so the arena, the worker pool and the task split are all exercised; the
//! context runs each computation on 2 worker threads.

use kiln::runtime::block_on;
use kiln::{
    CompiledGraph, Context, ContextOptions, Conv2dOptions, DataType, GraphBuilder, OperandDescriptor, ReduceOptions,
    Tensor,
};

const THREADS: usize = 8;
const RUNS: usize = 1000;

fn graph(ctx: &Context) -> CompiledGraph {
    let b = GraphBuilder::new();
    let x = b.input("x", OperandDescriptor::new(DataType::Float32, [1, 3, 12, 12])).unwrap();
    let w: Vec<f32> = (0..8 * 3 * 9).map(|i| ((i * 37 % 23) as f32 - 11.0) / 17.0).collect();
    let w = b.constant_f32([8, 3, 3, 3], &w).unwrap();
    let options = Conv2dOptions { padding: [1; 4], ..Default::default() };
    let y = b.sigmoid(b.conv2d(x, w, options).unwrap()).unwrap();
    let m = b.reduce_mean(y, ReduceOptions { axes: Some(vec![2, 3]), keep_dimensions: false }).unwrap();
    ctx.compile(b.build(&[("y", y), ("m", m)]).unwrap()).unwrap()
}

/// The input of run `n`: distinct for every thread and run.
fn input(n: usize) -> Tensor {
    let values: Vec<f32> = (0..3 * 144).map(|i| (((i * 7919 + n * 104_729) % 1999) as f32 - 999.0) / 333.0).collect();
    Tensor::from_f32([1, 3, 12, 12], &values).unwrap()
}

/// The outputs' bytes, in output order.
fn bytes(outputs: &[(String, Tensor)]) -> Vec<Vec<u8>> {
    outputs.iter().map(|(_, t)| t.bytes().to_vec()).collect()
}

#[test]
fn threads_and_dispatches_give_the_serial_results_bit_for_bit() {
    let ctx = Context::new(ContextOptions { threads: 2, ..Default::default() }).unwrap();
    let g = graph(&ctx);
    let serial: Vec<Vec<Vec<u8>>> = (0..THREADS * RUNS)
        .map(|n| bytes(&ctx.compute(&g, &[("x", &input(n))]).unwrap()))
        .collect();
    assert!(serial[0] != serial[1], "distinct inputs give distinct outputs");
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (ctx, g, serial) = (ctx.clone(), g.clone(), &serial);
            s.spawn(move || {
                for r in 0..RUNS {
                    let n = t * RUNS + r;
                    let out = bytes(&ctx.compute(&g, &[("x", &input(n))]).unwrap());
                    assert!(out == serial[n], "thread {t}, run {r}: compute differs from the serial run");
                }
            });
        }
    });
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (ctx, g, serial) = (ctx.clone(), g.clone(), &serial);
            s.spawn(move || {
                // Batches of 50 dispatches in flight per thread.
                for batch in 0..RUNS / 50 {
                    let pending: Vec<_> = (0..50)
                        .map(|i| {
                            let n = t * RUNS + batch * 50 + i;
                            (n, ctx.dispatch(&g, vec![("x".into(), input(n))]))
                        })
                        .collect();
                    for (n, d) in pending {
                        let out = bytes(&block_on(d).unwrap());
                        assert!(out == serial[n], "thread {t}, input {n}: dispatch differs from the serial run");
                    }
                }
            });
        }
    });
}
