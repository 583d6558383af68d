//! Differential testing: random graphs (operators, shapes, options and
//! values) run on every compiled backend and on the reference interpreter
//! must agree within a stated tolerance. The graphs, the check and its
//! tolerance are `kiln_harness::differential`'s, shared with the
//! `differential` fuzz target.

use kiln::Backend;
use kiln_harness::differential::{check, random_graph};
use proptest::prelude::*;

/// The backends under test: every backend except the reference itself.
fn compiled_backends() -> Vec<Backend> {
    Backend::ALL.iter().copied().filter(|b| *b != Backend::Interp).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn backends_agree_with_the_interpreter(seed in any::<u64>()) {
        for backend in compiled_backends() {
            if let Err(e) = check(seed, backend) {
                prop_assert!(false, "seed {seed}: {e}");
            }
        }
    }
}

/// Seeds that once failed, checked on every backend so the fix stays: a
/// Reduce whose fused finish had 33 or more values named one `f32` in WGSL
/// (maxPool2d -> gelu -> conv2d -> cos, and a similar graph).
#[test]
fn regression_seeds_agree_with_the_interpreter() {
    for seed in [211_261_527_425_963_518, 15_466_159_667_851_751_582] {
        for backend in compiled_backends() {
            if let Err(e) = check(seed, backend) {
                panic!("seed {seed}: {e}");
            }
        }
    }
}

#[test]
fn random_graphs_are_varied() {
    // Guards the generator itself: it must build real multi-operator graphs.
    let mut ops = std::collections::BTreeSet::new();
    let (mut multi, mut host) = (0, 0);
    for seed in 0..300 {
        let (g, _) = random_graph(seed);
        multi += usize::from(g.nodes().len() >= 2);
        ops.extend(g.nodes().iter().map(|n| n.op.name()));
        let p = kiln::passes::lower(&g).unwrap();
        host += usize::from(p.kernels.iter().any(|k| k.is_host()));
    }
    assert!(ops.len() >= 30, "only {} distinct operators: {ops:?}", ops.len());
    assert!(multi >= 100, "only {multi} graphs with two or more operators");
    assert!(host >= 30, "only {host} graphs with host kernels");
}

/// Random graphs whose memory plan writes a Map's output over one of its
/// inputs (a few percent of them; see `kiln::passes::writes_in_place`),
/// checked on every backend with two threads.
#[test]
fn in_place_plans_agree_with_the_interpreter() {
    let mut checked = 0;
    for n in 0..3000u64 {
        let seed = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let (graph, _) = random_graph(seed);
        let Ok(p) = kiln::passes::lower(&graph) else { continue };
        let ranges = kiln::passes::live_ranges(&p);
        let in_place = p.kernels.iter().enumerate().any(|(k, kernel)| match kernel {
            kiln::ir::kernel::Kernel::Map { inputs, .. } => {
                inputs.iter().any(|a| kiln::passes::writes_in_place(&p, &ranges, k, a.buffer))
            }
            _ => false,
        });
        if in_place {
            for backend in compiled_backends() {
                check(seed, backend).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            }
            checked += 1;
        }
    }
    assert!(checked >= 60, "only {checked} graphs write in place");
}

