//! Peak resident memory while loading an ONNX model with 100 MiB of
//! weights, inline (`raw_data`) and as external data: the weights are
//! memory-mapped and shared, never copied, so importing peaks under 1.2x
//! the weights. Compiling for `cpu` packs the GEMM weights into their
//! panel layout, giving the mapped pages back as they are consumed, so
//! loading and compiling also peaks under 1.2x.
//!
//! One test in its own binary, so no other test's allocations share the
//! process. Peak RSS is reset through `/proc/self/clear_refs` (Linux).

use std::io::Write;
use std::path::Path;

use kiln::frontend::onnx::proto::*;
use prost::Message;

const K: usize = 5120;
const N: usize = 5120;
const WEIGHT_BYTES: usize = K * N * 4; // 100 MiB

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Key and length of a length-delimited field.
fn field_header(tag: u32, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    varint(u64::from(tag << 3 | 2), &mut out);
    varint(len as u64, &mut out);
    out
}

fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    use tensor_shape_proto::{Dimension, dimension::Value as D};
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem_type::FLOAT,
                shape: Some(TensorShapeProto {
                    dim: dims.iter().map(|&d| Dimension { value: Some(D::DimValue(d)) }).collect(),
                }),
            })),
        }),
    }
}

/// Writes the weights' bytes in 1 MiB chunks (never all in memory).
fn write_weights(out: &mut impl Write) {
    let chunk: Vec<u8> = (0..(1 << 18)).flat_map(|i: u32| ((i % 97) as f32 * 1e-3).to_le_bytes()).collect();
    for _ in 0..WEIGHT_BYTES / chunk.len() {
        out.write_all(&chunk).unwrap();
    }
}

/// `y = x @ w` with `w: [K, N]`, streamed to `dir/model.onnx` (and
/// `dir/weights.bin` when `external`).
fn write_model(dir: &Path, external: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let graph = GraphProto {
        name: "matmul".into(),
        node: vec![NodeProto {
            op_type: "MatMul".into(),
            name: "matmul".into(),
            input: vec!["x".into(), "w".into()],
            output: vec!["y".into()],
            ..Default::default()
        }],
        input: vec![value_info("x", &[1, K as i64])],
        output: vec![value_info("y", &[1, N as i64])],
        ..Default::default()
    };
    let mut tensor = TensorProto { name: "w".into(), dims: vec![K as i64, N as i64], data_type: elem_type::FLOAT, ..Default::default() };
    if external {
        tensor.data_location = 1;
        tensor.external_data = [("location", "weights.bin"), ("offset", "0"), ("length", &WEIGHT_BYTES.to_string())]
            .iter()
            .map(|(k, v)| StringStringEntryProto { key: k.to_string(), value: v.to_string() })
            .collect();
        let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("weights.bin")).unwrap());
        write_weights(&mut f);
    }
    let tensor_head = tensor.encode_to_vec();
    let raw_len = if external { 0 } else { WEIGHT_BYTES };
    let raw_head = if external { Vec::new() } else { field_header(9, raw_len) };
    let tensor_len = tensor_head.len() + raw_head.len() + raw_len;
    let graph_head = graph.encode_to_vec();
    let init_head = field_header(5, tensor_len);
    let graph_len = graph_head.len() + init_head.len() + tensor_len;
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
        ..Default::default()
    };
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("model.onnx")).unwrap());
    for part in [model.encode_to_vec(), field_header(7, graph_len), graph_head, init_head, tensor_head, raw_head] {
        f.write_all(&part).unwrap();
    }
    if !external {
        write_weights(&mut f);
    }
}

/// `(VmRSS, VmHWM)` in bytes.
fn rss() -> (usize, usize) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Peak RSS growth while `f` runs, in bytes.
fn peak_growth<T>(f: impl FnOnce() -> T) -> (T, usize) {
    std::fs::write("/proc/self/clear_refs", "5").expect("resetting the peak RSS needs Linux");
    let (base, _) = rss();
    let value = f();
    let (_, peak) = rss();
    (value, peak.saturating_sub(base))
}

#[test]
fn loading_maps_weights_instead_of_copying_them() {
    let root = std::env::temp_dir().join(format!("kiln-onnx-memory-{}", std::process::id()));
    for external in [false, true] {
        let dir = root.join(if external { "external" } else { "inline" });
        write_model(&dir, external);
        let path = dir.join("model.onnx");
        let options = kiln::LoadOptions::default();
        let (graph, import_peak) = peak_growth(|| kiln::load_graph(&path, &options).unwrap());
        drop(graph);
        let ctx = kiln::Context::new(kiln::ContextOptions::default()).unwrap();
        let (compiled, compile_peak) = peak_growth(|| ctx.load(&path, &options).unwrap());
        let ratio = |b: usize| b as f64 / WEIGHT_BYTES as f64;
        println!(
            "{}: weights {} MiB; import peak +{:.1} MiB ({:.2}x); import + compile (cpu) peak +{:.1} MiB ({:.2}x)",
            if external { "external data" } else { "inline raw_data" },
            WEIGHT_BYTES >> 20,
            import_peak as f64 / (1 << 20) as f64,
            ratio(import_peak),
            compile_peak as f64 / (1 << 20) as f64,
            ratio(compile_peak)
        );
        // The compiled graph computes the right thing from the mapped weights.
        let x = kiln::Tensor::from_f32([1, K as u32], &vec![1.0; K]).unwrap();
        let y = ctx.compute(&compiled, &[("x", &x)]).unwrap()[0].1.to_f32_vec();
        let column_sum = |j: usize| (0..K).map(|k| (((k * N + j) % (1 << 18)) % 97) as f64 * 1e-3).sum::<f64>();
        for j in [0, 1, N / 2, N - 1] {
            assert!((y[j] as f64 - column_sum(j)).abs() <= 1e-4 * column_sum(j).abs() + 1e-3, "y[{j}] = {}", y[j]);
        }
        assert!(ratio(import_peak) < 1.2, "importing peaked at {:.2}x the weights", ratio(import_peak));
        assert!(ratio(compile_peak) < 1.2, "compiling peaked at {:.2}x the weights", ratio(compile_peak));
    }
    std::fs::remove_dir_all(&root).unwrap();
}
