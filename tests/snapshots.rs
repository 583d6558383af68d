//! Golden files for the compiler, in the style of naga's snapshot tests:
//! every `.webnn` graph under `tests/golden/` (with its weights beside it)
//! is compiled, and its graph after the graph passes (`opt`), its kernel
//! program as `kiln::passes::lower` gives it (`kernels`) and, for every
//! x86-64 feature level whatever the host, the program the cpu backend
//! compiles where it differs (`<target>.kernels`), its Cranelift IR
//! (`<target>.clif`) and its machine code (`<target>.asm`), and the gpu
//! backend's WGSL shaders (`wgsl`), are compared with the snapshots in
//! `tests/snapshots/`. Add a case by adding a
//! `.webnn` file; review changes with `cargo insta review` (or
//! `INSTA_UPDATE=always` and `git diff`), reading every changed line.
//!
//! Operand and kernel numbers are those of the printers (in order of
//! definition), so a change elsewhere in the compiler does not renumber a
//! snapshot it does not change.

use std::path::Path;

use kiln::codegen::cpu::Target;
use kiln::{emit, Stage};

const TARGETS: [&str; 3] = ["x86_64", "x86_64+avx2", "x86_64+avx512"];

fn snapshot_all(name: &str, path: &Path) {
    let graph = kiln::frontend::webnn_text::load(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let any: Target = TARGETS[0].parse().unwrap();
    insta::assert_snapshot!(format!("{name}.opt"), emit(&graph, Stage::Opt, &any).unwrap());
    let default = kiln::passes::lower(&graph).unwrap().to_string();
    insta::assert_snapshot!(format!("{name}.kernels"), default);
    let wgsl = emit(&graph, Stage::Wgsl, &any).unwrap();
    assert_eq!(wgsl, emit(&graph, Stage::Wgsl, &any).unwrap());
    insta::assert_snapshot!(format!("{name}.wgsl"), wgsl);
    for t in TARGETS {
        let target: Target = t.parse().unwrap();
        let program = emit(&graph, Stage::Kernels, &target).unwrap();
        // The cpu backend's program: the graph passes ran, and the lowering
        // may use the target's kernels (direct convolutions on AVX-512).
        if program != default {
            insta::assert_snapshot!(format!("{name}.{t}.kernels"), program);
        }
        let clif = emit(&graph, Stage::Clif, &target).unwrap();
        let asm = emit(&graph, Stage::Asm, &target).unwrap();
        // Every listing is deterministic: compiling again gives the same text.
        assert_eq!(asm, emit(&graph, Stage::Asm, &target).unwrap());
        insta::assert_snapshot!(format!("{name}.{t}.clif"), clif);
        insta::assert_snapshot!(format!("{name}.{t}.asm"), asm);
    }
}

#[test]
fn golden_graphs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "webnn"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 9, "the golden folder lost cases: {cases:?}");
    for path in cases {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        snapshot_all(&name, &path);
    }
}
