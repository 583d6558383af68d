//! Throughput of each micro-kernel alone, with its panels in L1: the
//! ceiling for the whole GEMM.
//!
//! `cargo run -p kiln-codegen --example microkernel_bench`

use std::time::Instant;

use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::default_libcall_names;
use kiln_codegen::cpu::microkernel::{self, Kind, Spec};
use kiln_codegen::cpu::{Features, Target};

type Micro = unsafe extern "C" fn(*const f32, *const f32, *mut f32, i64, i64, i64);

fn main() {
    let cases = [
        (Features::Avx512, Kind::Avx512, vec![(4, 32), (8, 32), (12, 32), (14, 32)]),
        (Features::Avx2, Kind::Avx2, vec![(4, 16), (6, 16)]),
        (Features::Baseline, Kind::F32x4, vec![(2, 16), (4, 8), (6, 8), (8, 8)]),
    ];
    for (features, kind, shapes) in cases {
        let target = Target::x86_64(features);
        if !target.is_host_compatible() {
            continue;
        }
        for (mr, nr) in shapes {
            let builder = JITBuilder::with_isa(target.isa().unwrap(), default_libcall_names());
            let mut module = JITModule::new(builder);
            let id = microkernel::define(&mut module, Spec { kind, mr, nr, cols: nr, ldb: 4 * nr, epilogue: None }).unwrap();
            module.finalize_definitions().unwrap();
            // SAFETY: defined with the micro-kernel signature.
            let f: Micro = unsafe { std::mem::transmute(module.get_finalized_function(id)) };
            let kc = 256;
            let (a, b) = (vec![0.5f32; mr * kc], vec![0.25f32; nr * kc]);
            let mut c = vec![0f32; mr * nr];
            let iters = 10_000_000 / kc;
            let mut best = 0f64;
            for _ in 0..3 {
                let t = Instant::now();
                for i in 0..iters {
                    // SAFETY: panels and tile sized for (mr, nr, kc).
                    unsafe { f(a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), (nr * 4) as i64, kc as i64, (i & 1) as i64) };
                }
                best = best.max((iters * mr * nr * kc * 2) as f64 / t.elapsed().as_secs_f64() / 1e9);
            }
            println!("{}: {best:.1} GFLOP/s", Spec { kind, mr, nr, cols: nr, ldb: 4 * nr, epilogue: None }.name());
        }
    }
}
