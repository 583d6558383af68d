//! Single-core GEMM throughput of the generated code, per feature level.
//!
//! `cargo run -p kiln-codegen --example gemm_bench [size | m n k] [reps]`
//!
//! Builds an f32 `m x n x k` Gemm program (default 1024 cubed), compiles
//! it for every level this machine runs, runs it as task 0 of 1 (one
//! thread) `reps` times (default 5) after a warm-up, and prints the best
//! GFLOP/s, as a fraction of 227 GFLOP/s (the nominal one-core AVX-512 peak
//! of the development machine) and of this machine's FMA throughput
//! measured here (a register-only FMA loop).
//! Three variants: both operands inputs (packed while running), B a
//! constant (packed at compile time), and A a constant (a convolution's
//! weights times its activations). `FLUSH=1` writes 256 MiB between runs,
//! so that every run starts with cold caches (a model's weights are read
//! from memory once per inference).

use std::time::Instant;

use kiln_codegen::cpu::{compile, Features, Target};
use kiln_ir::kernel::*;
use kiln_ir::{DataType, Tensor};

const NOMINAL_PEAK: f64 = 227.0;

/// Which operand is a constant.
#[derive(Clone, Copy, PartialEq)]
enum Constant {
    Neither,
    A,
    B,
}

/// `out[m, n] = Σ_k a[m, k] * b[k, n]`, all row-major.
fn program((m, n, k): (usize, usize, usize), constant: Constant, a_values: &[f32], b_values: &[f32]) -> Program {
    let mut p = Program::default();
    let kind = |name: &str, is_const: bool, rows: usize, cols: usize, values: &[f32]| {
        if is_const {
            BufferKind::Constant(Tensor::from_f32(vec![rows as u32, cols as u32], values).unwrap())
        } else {
            BufferKind::Input(name.into())
        }
    };
    let a = p.add_buffer(kind("a", constant == Constant::A, m, k, a_values), DataType::Float32, m * k);
    let b = p.add_buffer(kind("b", constant == Constant::B, k, n, b_values), DataType::Float32, k * n);
    let o = p.add_buffer(BufferKind::Output("o".into()), DataType::Float32, m * n);
    let access = |buffer, shape: [usize; 2], rows: [isize; 3], cols: [isize; 3]| Access {
        buffer,
        shape: shape.to_vec(),
        base: vec![0, 0],
        coef: vec![rows.to_vec(), cols.to_vec()],
        guard: None,
    };
    p.kernels.push(Kernel::Gemm {
        domain: vec![m, n, k],
        a: access(a, [m, k], [1, 0, 0], [0, 0, 1]),
        b: access(b, [k, n], [0, 0, 1], [0, 1, 0]),
        epilogue_inputs: vec![],
        epilogue: Expr::acc(),
        out: Access::identity(o, &[m, n]),
    });
    p
}

/// GFLOP/s of a loop of independent FMAs in registers: this core's peak.
fn measured_peak(features: Features) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        #[target_feature(enable = "avx512f")]
        unsafe fn zmm(n: u64) -> f32 {
            let mut a = [_mm512_set1_ps(1.0); 12];
            let (x, y) = (_mm512_set1_ps(0.999_9), _mm512_set1_ps(1e-5));
            for _ in 0..n {
                for v in a.iter_mut() {
                    *v = _mm512_fmadd_ps(*v, x, y);
                }
            }
            a.iter().fold(0.0, |s, v| s + _mm512_reduce_add_ps(*v))
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn ymm(n: u64) -> f32 {
            let mut a = [_mm256_set1_ps(1.0); 12];
            let (x, y) = (_mm256_set1_ps(0.999_9), _mm256_set1_ps(1e-5));
            for _ in 0..n {
                for v in a.iter_mut() {
                    *v = _mm256_fmadd_ps(*v, x, y);
                }
            }
            let mut s = [0f32; 8];
            for v in a {
                let mut t = [0f32; 8];
                // SAFETY: `t` holds 8 floats.
                unsafe { _mm256_storeu_ps(t.as_mut_ptr(), v) };
                for i in 0..8 {
                    s[i] += t[i];
                }
            }
            s.iter().sum()
        }
        let n = 50_000_000u64;
        let (lanes, f): (u64, unsafe fn(u64) -> f32) = match features {
            Features::Avx512 => (16, zmm),
            Features::Avx2 => (8, ymm),
            Features::Baseline => return None,
        };
        let mut best = 0.0f64;
        for _ in 0..3 {
            let t = Instant::now();
            // SAFETY: the level was checked against the host.
            let r = unsafe { f(n) };
            std::hint::black_box(r);
            best = best.max((n * 12 * lanes * 2) as f64 / t.elapsed().as_secs_f64() / 1e9);
        }
        Some(best)
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().expect("numeric arguments")).collect();
    let (shape, reps) = match args.as_slice() {
        [] => ((1024, 1024, 1024), 5),
        [s] => ((*s, *s, *s), 5),
        [s, r] => ((*s, *s, *s), *r),
        [m, n, k] => ((*m, *n, *k), 5),
        [m, n, k, r, ..] => ((*m, *n, *k), *r),
    };
    let (m, n, k) = shape;
    let flops = 2.0 * (m * n * k) as f64;
    let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 + 3) % 17) as f32 / 17.0 - 0.5).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 + 1) % 13) as f32 / 13.0 - 0.5).collect();
    println!("f32 GEMM m={m} n={n} k={k}, one thread, best of {reps}");
    for target in Target::host_levels() {
        let peak = measured_peak(target.features);
        for (constant, label) in [(Constant::Neither, "inputs"), (Constant::B, "B const"), (Constant::A, "A const")] {
            let p = program(shape, constant, &a, &b);
            let t = Instant::now();
            let jit = compile(&p, &target).expect("compiles");
            let compile_ms = t.elapsed().as_secs_f64() * 1e3;
            let mut bufs: Vec<Vec<f32>> = vec![a.clone(), b.clone(), vec![0.0; m * n]];
            let mut scratch = jit.task_scratch(1);
            let mut ptrs: Vec<*mut u8> = bufs.iter_mut().map(|v| v.as_mut_ptr().cast()).collect();
            ptrs.push(scratch.base());
            let kernel = jit.kernels()[0].expect("a generated kernel");
            // SAFETY: buffers sized as the program declares.
            unsafe { kernel(ptrs.as_ptr(), 0, 1) };
            let mut best = f64::INFINITY;
            let mut flush = vec![0u8; if std::env::var_os("FLUSH").is_some() { 256 << 20 } else { 0 }];
            for r in 0..reps {
                for (i, b) in flush.iter_mut().enumerate().step_by(64) {
                    *b = b.wrapping_add((i + r) as u8);
                }
                std::hint::black_box(&flush);
                let t = Instant::now();
                unsafe { kernel(ptrs.as_ptr(), 0, 1) };
                best = best.min(t.elapsed().as_secs_f64());
            }
            // Spot check one element.
            let (i, j) = (m / 3, n / 2);
            let want: f64 = (0..k).map(|p| a[i * k + p] as f64 * b[p * n + j] as f64).sum();
            let got = bufs[2][i * n + j] as f64;
            assert!((got - want).abs() <= 1e-3 * (1.0 + want.abs()), "wrong result: {got} vs {want}");
            let gflops = flops / best / 1e9;
            let of_measured = peak.map(|p| format!(", {:.0}% of the measured {p:.0}", 100.0 * gflops / p)).unwrap_or_default();
            println!(
                "{target:<14} {label:<8} {gflops:7.1} GFLOP/s  {:5.1}% of {NOMINAL_PEAK}{of_measured}  (compile {compile_ms:.0} ms)",
                100.0 * gflops / NOMINAL_PEAK,
            );
        }
    }
}
