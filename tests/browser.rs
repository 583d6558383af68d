//! The WebGPU bundle (`kiln compile --target wgsl`, `kiln::web`) run for
//! real in a browser: Debian's chromium, headless, with WebGPU on
//! SwiftShader's Vulkan, driven by playwright-core (tests/browser/run.mjs;
//! scripts/install_browser.sh, run by scripts/test, installs both). A
//! thread of this test serves the bundle, its inputs and
//! tests/browser/page.html on 127.0.0.1; the page runs the model with
//! kiln.js and reports its outputs, which must match the interpreter.
//! A second test has the browser's own WGSL compiler (Tint) accept every
//! distinct shader of the WPT conformance programs, which naga validated
//! when they were generated. A missing browser is a failure, never a skip.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln::{Backend, Context, ContextOptions, Tensor};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Serves the files under `dir` over HTTP/1.0 (GET only) until the process
/// ends; returns the port.
fn serve(dir: PathBuf) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = String::new();
            if BufReader::new(&stream).read_line(&mut request).is_err() {
                continue;
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
            let file = dir.join(&path);
            let inside = !path.split('/').any(|part| part == "..");
            let response = match std::fs::read(&file) {
                Ok(body) if inside => {
                    let kind = match file.extension().and_then(|e| e.to_str()) {
                        Some("html") => "text/html",
                        Some("js" | "mjs") => "text/javascript",
                        Some("json") => "application/json",
                        Some("wgsl") => "text/plain",
                        _ => "application/octet-stream",
                    };
                    let mut r = format!("HTTP/1.0 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n", body.len())
                        .into_bytes();
                    r.extend(body);
                    r
                }
                _ => b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            };
            let _ = stream.write_all(&response);
        }
    });
    port
}

/// Opens `page` in chromium (tests/browser/run.mjs) and returns the
/// verdict it set, which must say `ok`.
fn open_page(port: u16, page: &str) -> serde_json::Value {
    let driver = root().join("tests/browser/run.mjs");
    assert!(
        root().join("tests/browser/node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run scripts/install_browser.sh (scripts/test does)"
    );
    let out = Command::new("node")
        .arg(&driver)
        .arg(format!("http://127.0.0.1:{port}/{page}"))
        .output()
        .expect("node runs (scripts/install_browser.sh)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the browser driver failed:\n{stderr}");
    let verdict: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(verdict["ok"], true, "the page failed: {}\n{stderr}", verdict["error"]);
    verdict
}

fn site(name: &str) -> PathBuf {
    let site = std::env::temp_dir().join(format!("kiln-browser-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&site);
    site
}

#[test]
fn the_web_bundle_runs_in_chromium_and_matches_the_interpreter() {
    let graph = kiln::frontend::webnn_text::load(&root().join("examples/small_cnn.webnn")).unwrap();
    let input = kiln::npy::parse(&std::fs::read(root().join("examples/small_cnn_input.npy")).unwrap()).unwrap();
    let site = site("model");
    let bundle = kiln::web::compile(&graph, &kiln::web::WebOptions { name: "model".into(), ..Default::default() }).unwrap();
    bundle.write(site.join("bundle")).unwrap();
    std::fs::create_dir_all(site.join("inputs")).unwrap();
    std::fs::write(site.join("inputs/x.bin"), input.bytes()).unwrap();
    std::fs::copy(root().join("tests/browser/page.html"), site.join("page.html")).unwrap();
    let port = serve(site.clone());

    let verdict = open_page(port, "page.html");
    println!("adapter: {}", verdict["adapter"]);

    let interp = Context::new(ContextOptions { backend: Backend::Interp, ..Default::default() }).unwrap();
    let expected: Vec<(String, Tensor)> = interp.compute(&interp.compile(graph).unwrap(), &[("x", &input)]).unwrap();
    for (name, want) in &expected {
        let got: Vec<f64> = verdict["outputs"][name]
            .as_array()
            .unwrap_or_else(|| panic!("no output `{name}` in {verdict}"))
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let want = want.to_f32_vec();
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let w = f64::from(*w);
            assert!((g - w).abs() <= 1e-5 + 1e-4 * w.abs(), "{name}[{i}]: browser {g}, interpreter {w}");
        }
    }
    let _ = std::fs::remove_dir_all(&site);
}

#[test]
fn chromium_accepts_every_wpt_shader() {
    use kiln_harness::conformance::{build_case, bundled_vectors_dir, load_cases};
    let site = site("shaders");
    std::fs::create_dir_all(&site).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for case in load_cases(&bundled_vectors_dir()).unwrap() {
        let Ok(built) = build_case(&case) else { continue };
        let Ok(compiled) = kiln::passes::Pipeline::default().run(&built.graph) else { continue };
        let limits = kiln::codegen::wgsl::Limits::default();
        let host = kiln::codegen::wgsl::HostKernels::CallerRuns;
        let Ok(program) = kiln::codegen::wgsl::compile(&compiled.program, &limits, host) else { continue };
        seen.extend(program.shaders.into_iter().map(|s| s.source));
    }
    // Constants at the edges of f32 (the largest finite, a subnormal,
    // infinities): literals every WGSL compiler must accept.
    use kiln::{DataType, GraphBuilder, Number, OperandDescriptor};
    let b = GraphBuilder::new();
    let x = b.input("x", OperandDescriptor::new(DataType::Float32, [8])).unwrap();
    let y = b.clamp(x, Some(Number::Float(-f64::from(f32::MAX))), Some(Number::Float(f64::from(f32::MAX)))).unwrap();
    let tiny = b.constant_f32([1], &[1e-40]).unwrap();
    let y = b.max(b.mul(y, tiny).unwrap(), b.constant_f32([1], &[f32::NEG_INFINITY]).unwrap()).unwrap();
    let graph = b.build(&[("y", y)]).unwrap();
    let compiled = kiln::passes::Pipeline::default().run(&graph).unwrap();
    let limits = kiln::codegen::wgsl::Limits::default();
    let extremes = kiln::codegen::wgsl::compile(&compiled.program, &limits, kiln::codegen::wgsl::HostKernels::Refuse).unwrap();
    seen.extend(extremes.shaders.into_iter().map(|s| s.source));
    let list: Vec<(String, &String)> = seen.iter().enumerate().map(|(n, s)| (format!("s{n}.wgsl"), s)).collect();
    assert!(list.len() > 500, "only {} distinct shaders", list.len());
    std::fs::write(site.join("shaders.json"), serde_json::to_string(&list).unwrap()).unwrap();
    std::fs::copy(root().join("tests/browser/shaders.html"), site.join("shaders.html")).unwrap();
    let verdict = open_page(serve(site.clone()), "shaders.html");
    println!("{} shaders compiled by the browser", verdict["checked"]);
    assert_eq!(verdict["checked"], list.len());
    let errors = verdict["errors"].as_array().unwrap();
    assert!(errors.is_empty(), "{} shaders rejected:\n{}", errors.len(), serde_json::to_string_pretty(errors).unwrap());
    let _ = std::fs::remove_dir_all(&site);
}

#[test]
fn bundles_are_deterministic_and_refuse_host_kernels_by_node() {
    let graph = kiln::frontend::webnn_text::load(&root().join("examples/small_cnn.webnn")).unwrap();
    let options = kiln::web::WebOptions { name: "m".into(), ..Default::default() };
    let (a, b) = (kiln::web::compile(&graph, &options).unwrap(), kiln::web::compile(&graph, &options).unwrap());
    assert_eq!(a.files(), b.files(), "same graph, same files");
    let manifest: serde_json::Value = serde_json::from_str(a.manifest()).unwrap();
    assert_eq!(manifest["format"], "kiln-webgpu-1");
    let shaders = manifest["kernels"].as_array().unwrap().len();
    assert_eq!(a.files().iter().filter(|(n, _)| n.ends_with(".wgsl")).count(), shaders);

    // int64 negation runs as a host kernel: no place in a page.
    use kiln::{DataType, GraphBuilder, OperandDescriptor};
    let b = GraphBuilder::new();
    let x = b.input("x", OperandDescriptor::new(DataType::Int64, [4])).unwrap();
    let y = b.neg(x).unwrap();
    let graph = b.build(&[("y", y)]).unwrap();
    let err = kiln::web::compile(&graph, &options).unwrap_err().to_string();
    assert!(err.contains("a web page") && err.contains("neg("), "{err}");
}
