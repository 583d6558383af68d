//! Bad `.tflite` input gets a clear error (a `TfliteError` whose message
//! names what is wrong), never a panic, an endless loop or a huge
//! allocation: files that are not TFLite flatbuffers, every truncation and
//! sweeps of single-byte and 32-bit-word corruptions of valid models,
//! lying vector lengths, indices out of range, cycles and tensors written
//! twice, constants of the wrong size, broken quantization, unsupported
//! operators and types (all of them in one error), dynamic shapes, bad
//! options and sparse constants that point outside their arrays.
//!
//! Models are written here by a small flatbuffer writer
//! (`tflite_bad_input/model.rs`), not committed as binaries; the first test
//! shows the writer is right by importing and running valid models.
//!
//! A global allocator refuses any single allocation over 64 GiB (the
//! process then aborts, deterministically, whatever the machine's
//! overcommit policy), and the tests at risk of it (the sweeps and the
//! huge sparse constant) run in a child process of this test binary with a
//! deadline, so an abort or an endless loop fails that test with the case
//! it was on instead of killing or hanging the whole binary.

#[path = "tflite_bad_input/model.rs"]
mod model;

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kiln_frontend::tflite::{TfliteError, TfliteModel, Unsupported};
use kiln_ir::{DataType, Graph, OperandDescriptor, Tensor, Values, interp};
use model::*;

// ---------------------------------------------------------------------------
// Harness: the allocation cap and child processes.

/// kiln's own tensor limit (64 GiB): no allocation it allows is refused.
const MAX_ALLOCATION: usize = kiln_ir::MAX_TENSOR_BYTES as usize;

struct Capped;

// SAFETY: forwards to `System`, or fails (null) for oversized requests.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION { std::ptr::null_mut() } else { unsafe { System.alloc(layout) } }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION { std::ptr::null_mut() } else { unsafe { System.alloc_zeroed(layout) } }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOCATION { std::ptr::null_mut() } else { unsafe { System.realloc(ptr, layout, new_size) } }
    }
}

#[global_allocator]
static ALLOCATOR: Capped = Capped;

const CHILD: &str = "KILN_TFLITE_BAD_INPUT_CHILD";

/// In the parent: runs test `name` alone in a child process of this
/// binary, fails unless it passes within `deadline`, and returns true (the
/// caller returns). In the child: returns false (the caller runs the test).
fn ran_in_child(name: &str, deadline: Duration) -> bool {
    if std::env::var_os(CHILD).is_some() {
        return false;
    }
    let log = std::env::temp_dir().join(format!("kiln-tflite-bad-input-{}-{name}.log", std::process::id()));
    let file = std::fs::File::create(&log).expect("log file");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log file"))
        .stderr(file)
        .spawn()
        .expect("spawn the test binary");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let tail: Vec<&str> = output.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
    let tail = tail.join("\n");
    match status {
        None => panic!("`{name}` ran past {deadline:?} (an endless loop?); its last output:\n{tail}"),
        Some(s) if !s.success() || !output.contains("1 passed") => {
            panic!("`{name}` failed in its child process ({s}; an abort is a refused huge allocation); its last output:\n{tail}")
        }
        Some(_) => true,
    }
}

// ---------------------------------------------------------------------------
// Importing and checking errors.

fn import_bytes(bytes: Vec<u8>) -> Result<Graph, TfliteError> {
    TfliteModel::from_bytes(bytes)?.to_graph()
}

fn import(m: &Model) -> Result<Graph, TfliteError> {
    import_bytes(m.bytes())
}

/// Fails unless `message` contains every one of `words`.
#[track_caller]
fn assert_names(message: &str, words: &[&str]) {
    for w in words {
        assert!(message.contains(w), "the message does not name `{w}`:\n{message}");
    }
}

/// The message of a `TfliteError::Model` from `result`.
#[track_caller]
fn model_error(result: Result<Graph, TfliteError>) -> String {
    match result {
        Err(TfliteError::Model(m)) => m,
        Err(e) => panic!("expected TfliteError::Model, got {e:?}"),
        Ok(_) => panic!("expected TfliteError::Model, the model imported"),
    }
}

/// The (index, op_type, message) of a `TfliteError::Operator`.
#[track_caller]
fn operator_error(result: Result<Graph, TfliteError>) -> (usize, String, String) {
    match result {
        Err(TfliteError::Operator { index, op_type, message, .. }) => (index, op_type, message),
        Err(e) => panic!("expected TfliteError::Operator, got {e:?}"),
        Ok(_) => panic!("expected TfliteError::Operator, the model imported"),
    }
}

/// The operators of a `TfliteError::Unsupported`, and its message.
#[track_caller]
fn unsupported_error(result: Result<Graph, TfliteError>) -> (Vec<Unsupported>, String) {
    match result {
        Err(e @ TfliteError::Unsupported(_)) => {
            let message = e.to_string();
            let TfliteError::Unsupported(ops) = e else { unreachable!() };
            (ops, message)
        }
        Err(e) => panic!("expected TfliteError::Unsupported, got {e:?}"),
        Ok(_) => panic!("expected TfliteError::Unsupported, the model imported"),
    }
}

fn f32_tensor(shape: &[u32], values: &[f32]) -> Tensor {
    Tensor::from_f32(shape.to_vec(), values).expect("tensor")
}

fn run(g: &Graph, feeds: &[(&str, &Tensor)]) -> Vec<Tensor> {
    interp::run(g, feeds).unwrap_or_else(|e| panic!("interp: {e}"))
}

// ---------------------------------------------------------------------------
// Valid models: each error case below changes one thing in one of these.

const C: [f32; 4] = [0.5, 0.5, -5.0, 5.0];

fn add_options(activation: i8) -> Option<(u8, T)> {
    Some((ADD_OPTIONS, T::default().with(0, V::I8(activation))))
}

/// x [1, 4] float32 -> ADD(x, c) -> sum -> RELU -> y. Tensors: x 0, c 1,
/// sum 2, y 3; operators ADD 0, RELU 1.
fn base() -> Model {
    let mut m = Model::default();
    let x = m.tensor(tensor("x", &[1, 4], FLOAT32));
    let c = m.constant(tensor("c", &[1, 4], FLOAT32), le_f32(&C));
    let s = m.tensor(tensor("sum", &[1, 4], FLOAT32));
    let y = m.tensor(tensor("y", &[1, 4], FLOAT32));
    m.op(ADD, &[x, c], &[s], add_options(0));
    m.op(RELU, &[s], &[y], None);
    m.inputs = vec![x];
    m.outputs = vec![y];
    m
}

/// int8 x (scale 0.5, zero point 1) + int8 w (per-channel scales along
/// dimension 1) -> int8 y (scale 0.5).
fn quantized() -> Model {
    let mut m = Model::default();
    let x = m.tensor(tensor("x", &[1, 4], INT8).quant(&[0.5], &[1], 0));
    let w = m.constant(tensor("w", &[1, 4], INT8).quant(&[0.5, 1.0, 2.0, 4.0], &[0, 0, 0, 0], 1), vec![1, 2, 3, 4]);
    let y = m.tensor(tensor("y", &[1, 4], INT8).quant(&[0.5], &[0], 0));
    m.op(ADD, &[x, w], &[y], add_options(0));
    m.inputs = vec![x];
    m.outputs = vec![y];
    m
}

fn conv_options(stride_w: i32, stride_h: i32) -> Option<(u8, T)> {
    // padding VALID (1), stride_w, stride_h.
    Some((CONV_2D_OPTIONS, T::default().with(0, V::I8(1)).with(1, V::I32(stride_w)).with(2, V::I32(stride_h))))
}

/// x [1, 3, 3, 1] -> CONV_2D with a 1x1 filter of 2 and bias 1 -> y.
/// Tensors: x 0, w 1, b 2, y 3.
fn conv(stride_w: i32, stride_h: i32) -> Model {
    let mut m = Model::default();
    let x = m.tensor(tensor("x", &[1, 3, 3, 1], FLOAT32));
    let w = m.constant(tensor("w", &[1, 1, 1, 1], FLOAT32), le_f32(&[2.0]));
    let b = m.constant(tensor("b", &[1], FLOAT32), le_f32(&[1.0]));
    let y = m.tensor(tensor("y", &[1, 3, 3, 1], FLOAT32));
    m.op(CONV_2D, &[x, w, b], &[y], conv_options(stride_w, stride_h));
    m.inputs = vec![x];
    m.outputs = vec![y];
    m
}

/// x [1, 4] -> RESHAPE to the constant `target` -> y of shape `declared`.
fn reshape(target: &[i32], declared: &[i32]) -> Model {
    let mut m = Model::default();
    let x = m.tensor(tensor("x", &[1, 4], FLOAT32));
    let s = m.constant(tensor("shape", &[target.len() as i32], INT32), le_i32(target));
    let y = m.tensor(tensor("y", declared, FLOAT32));
    m.op(RESHAPE, &[x, s], &[y], None);
    m.inputs = vec![x];
    m.outputs = vec![y];
    m
}

/// A CSR index vector: `SparseIndexVector` type and table (Int32Vector 1,
/// Uint16Vector 2).
fn index_vector(kind: u8, values: &[i32]) -> (V, V) {
    let v = match kind {
        1 => i32s(values),
        2 => u16s(&values.iter().map(|&v| v as u16).collect::<Vec<_>>()),
        _ => unreachable!(),
    };
    (V::U8(kind), V::Table(T::default().with(0, v)))
}

/// w of `shape` [rows, cols] stored CSR (rows dense, columns sparse: int32
/// `segments`, uint16 `indices`) with float32 `values` -> DENSIFY -> wd;
/// x + wd -> y.
fn sparse(shape: [i32; 2], segments: &[i32], indices: &[i32], values: &[f32]) -> Model {
    let (seg_type, seg) = index_vector(1, segments);
    let (idx_type, idx) = index_vector(2, indices);
    let dense = T::default().with(0, V::I8(0)).with(1, V::I32(shape[0]));
    let csr = T::default().with(0, V::I8(1)).with(2, seg_type).with(3, seg).with(4, idx_type).with(5, idx);
    let sparsity = T::default().with(0, i32s(&[0, 1])).with(2, V::Tables(vec![dense, csr]));
    let mut m = Model::default();
    let x = m.tensor(tensor("x", &shape, FLOAT32));
    let mut w = tensor("w", &shape, FLOAT32);
    w.sparsity = Some(sparsity);
    let w = m.constant(w, le_f32(values));
    let wd = m.tensor(tensor("wd", &shape, FLOAT32));
    let y = m.tensor(tensor("y", &shape, FLOAT32));
    m.op(DENSIFY, &[w], &[wd], None);
    m.op(ADD, &[x, wd], &[y], add_options(0));
    m.inputs = vec![x];
    m.outputs = vec![y];
    m
}

/// [[1, 0], [0, 2]] stored sparse.
fn valid_sparse() -> Model {
    sparse([2, 2], &[0, 1, 2], &[0, 1], &[1.0, 2.0])
}

fn valid_models() -> Vec<(&'static str, Model)> {
    vec![
        ("base", base()),
        ("quantized", quantized()),
        ("conv", conv(1, 1)),
        ("reshape", reshape(&[2, 2], &[2, 2])),
        ("sparse", valid_sparse()),
    ]
}

#[test]
fn writer_builds_models_that_import_and_run() {
    let bytes = base().bytes();
    assert_eq!(&bytes[4..8], b"TFL3");
    let model = TfliteModel::from_bytes(bytes).expect("parses");
    assert_eq!(model.description(), "kiln test writer");
    let counts = model.operator_counts().expect("counts");
    assert_eq!(counts.into_iter().collect::<Vec<_>>(), vec![("ADD".to_string(), 1), ("RELU".to_string(), 1)]);
    let g = model.to_graph().expect("imports");
    assert_eq!(g.outputs().iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["y"]);
    let x = f32_tensor(&[1, 4], &[1.0, -2.0, 3.0, -4.0]);
    let out = run(&g, &[("x", &x)]);
    assert_eq!(out[0].shape().dims(), [1, 4]);
    assert_eq!(out[0].to_f32_vec(), [1.5, 0.0, 0.0, 1.0], "relu(x + c)");

    // A fused RELU on ADD instead of the RELU operator.
    let mut m = base();
    m.operators.pop();
    m.operators[0].options = add_options(1);
    m.operators[0].outputs = vec![3];
    let out = run(&import(&m).expect("imports"), &[("x", &x)]);
    assert_eq!(out[0].to_f32_vec(), [1.5, 0.0, 0.0, 1.0], "ADD with a fused RELU");

    // Quantized: x dequantized per tensor, w per channel, y quantized.
    let g = import(&quantized()).expect("quantized model imports");
    let xq = Tensor::from_values(OperandDescriptor::new(DataType::Int8, vec![1u32, 4]), &Values::Int(vec![-3, 0, 1, 5]))
        .expect("tensor");
    let out = run(&g, &[("x", &xq)]);
    assert_eq!(out[0].data_type(), DataType::Int8);
    // (x - 1) * 0.5 = [-2, -0.5, 0, 2]; w = [0.5, 2, 6, 16]; sum / 0.5.
    assert_eq!(out[0].to_f32_vec(), [-3.0, 3.0, 12.0, 36.0]);

    // CONV_2D options: y = 2x + 1.
    let g = import(&conv(1, 1)).expect("conv model imports");
    let x: Vec<f32> = (0..9).map(|v| v as f32).collect();
    let out = run(&g, &[("x", &f32_tensor(&[1, 3, 3, 1], &x))]);
    assert_eq!(out[0].to_f32_vec(), x.iter().map(|v| 2.0 * v + 1.0).collect::<Vec<_>>());

    // RESHAPE to a constant shape.
    let g = import(&reshape(&[2, 2], &[2, 2])).expect("reshape model imports");
    let out = run(&g, &[("x", &f32_tensor(&[1, 4], &[1.0, 2.0, 3.0, 4.0]))]);
    assert_eq!(out[0].shape().dims(), [2, 2]);

    // DENSIFY of a CSR constant.
    let g = import(&valid_sparse()).expect("sparse model imports");
    let out = run(&g, &[("x", &f32_tensor(&[2, 2], &[10.0, 20.0, 30.0, 40.0]))]);
    assert_eq!(out[0].to_f32_vec(), [11.0, 20.0, 30.0, 42.0]);
}

// ---------------------------------------------------------------------------
// Not a TFLite flatbuffer.

#[test]
fn empty_file() {
    let m = model_error(import_bytes(vec![]));
    assert_names(&m, &["not a TFLite model", "0 bytes"]);
}

#[test]
fn fewer_than_8_bytes() {
    let mut bytes = base().bytes();
    bytes.truncate(7);
    let m = model_error(import_bytes(bytes));
    assert_names(&m, &["not a TFLite model", "7 bytes"]);
}

#[test]
fn wrong_file_identifier() {
    let mut bytes = base().bytes();
    bytes[4..8].copy_from_slice(b"TFL2");
    let m = model_error(import_bytes(bytes));
    assert_names(&m, &["not a TFLite model", "TFL2", "TFL3"]);
}

#[test]
fn root_offset_past_the_end() {
    let mut bytes = base().bytes();
    let past = bytes.len() as u32 + 16;
    bytes[0..4].copy_from_slice(&past.to_le_bytes());
    let m = model_error(import_bytes(bytes));
    assert_names(&m, &["root table offset", "outside the file"]);
}

#[test]
fn schema_version_2() {
    let mut m = base();
    m.version = 2;
    let message = model_error(import(&m));
    assert_names(&message, &["schema version 2", "not supported", "version 3"]);
}

/// The case a sweep is on, on stderr (the child's log shows the last one
/// if the process aborts).
fn case(what: String) {
    eprintln!("case: {what}");
}

#[test]
fn every_truncation_is_an_error() {
    if ran_in_child("every_truncation_is_an_error", Duration::from_secs(300)) {
        return;
    }
    let mut failures = Vec::new();
    for (name, m) in valid_models() {
        let bytes = m.bytes();
        import_bytes(bytes.clone()).unwrap_or_else(|e| panic!("{name}: the whole model does not import: {e}"));
        for len in 0..bytes.len() {
            case(format!("{name} cut to {len} of {} bytes", bytes.len()));
            let cut = bytes[..len].to_vec();
            match catch_unwind(AssertUnwindSafe(|| import_bytes(cut))) {
                Err(_) => failures.push(format!("{name} cut to {len} bytes: panicked")),
                Ok(Ok(_)) => failures.push(format!("{name} cut to {len} bytes: imported")),
                Ok(Err(e)) => {
                    let message = e.to_string();
                    let want = if len < 8 { "not a TFLite model" } else { "lies outside the file" };
                    if !message.contains(want) {
                        failures.push(format!("{name} cut to {len} bytes: {message:?} does not say `{want}`"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} truncations fail:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn single_byte_and_word_corruptions_never_panic() {
    if ran_in_child("single_byte_and_word_corruptions_never_panic", Duration::from_secs(300)) {
        return;
    }
    let mut failures = Vec::new();
    let (mut ok, mut err) = (0, 0);
    for (name, m) in valid_models() {
        let bytes = m.bytes();
        // Every byte set to a few values, then every aligned 32-bit word
        // (offsets, lengths, indices) to a few more.
        let mut corruptions: Vec<(usize, Vec<u8>)> = Vec::new();
        for at in 0..bytes.len() {
            for value in [0x00u8, 0x01, 0x7F, 0x80, 0xFF] {
                corruptions.push((at, vec![value]));
            }
        }
        for at in (0..bytes.len() - 3).step_by(4) {
            for value in [0u32, 1, 2, 0x7FFF_FFFF, 0x8000_0000, u32::MAX, bytes.len() as u32] {
                corruptions.push((at, value.to_le_bytes().to_vec()));
            }
        }
        for (at, value) in corruptions {
            if bytes[at..at + value.len()] == value[..] {
                continue;
            }
            let what = format!("{name}: bytes {at}.. set to {value:02x?} (were {:02x?})", &bytes[at..at + value.len()]);
            case(what.clone());
            let mut bad = bytes.clone();
            bad[at..at + value.len()].copy_from_slice(&value);
            match catch_unwind(AssertUnwindSafe(|| import_bytes(bad))) {
                Err(_) => failures.push(format!("{what}: panicked")),
                Ok(Ok(_)) => ok += 1,
                Ok(Err(e)) if e.to_string().trim().is_empty() => {
                    failures.push(format!("{what}: an error without a message: {e:?}"))
                }
                Ok(Err(_)) => err += 1,
            }
        }
    }
    eprintln!("{ok} corruptions imported, {err} were errors");
    assert!(err > 0, "no corruption was an error: the sweep does not reach the importer");
    assert!(failures.is_empty(), "{} corruptions fail:\n{}", failures.len(), failures.join("\n"));
}

// ---------------------------------------------------------------------------
// Flatbuffer structure.

#[test]
fn vector_length_0xffffffff() {
    // A scalar vector: tensor 0's shape.
    let mut t = base().table();
    let sub = &mut t.get(2).tables()[0];
    let x = &mut sub.get(0).tables()[0];
    *x.get(0) = V::Vector { len: u32::MAX, elem_size: 4, bytes: le_i32(&[1, 4]) };
    let m = model_error(import_bytes(finish(&t)));
    assert_names(&m, &["Tensor.shape", "4294967295 elements", "outside the file"]);

    // A vector of tables: the subgraph's tensors (the 4 real offsets, then
    // whatever follows them read as offsets until one leaves the file).
    let mut t = base().table();
    let sub = &mut t.get(2).tables()[0];
    let tensors = sub.get(0).tables().clone();
    *sub.get(0) = V::TablesWithLen(u32::MAX, tensors);
    let message = model_error(import_bytes(finish(&t)));
    assert_names(&message, &["Tensor", "outside the file"]);

    // A buffer's data.
    let mut t = base().table();
    let buffers = t.get(4).tables();
    *buffers[1].get(0) = V::Vector { len: u32::MAX, elem_size: 1, bytes: le_f32(&C) };
    let (index, op_type, message) = operator_error(import_bytes(finish(&t)));
    assert_eq!((index, op_type.as_str()), (0, "ADD"));
    assert_names(&message, &["Buffer.data", "4294967295 elements", "outside the file"]);
}

#[test]
fn zero_subgraphs() {
    let mut m = base();
    m.has_subgraph = false;
    let message = model_error(import(&m));
    assert_names(&message, &["no subgraph"]);
}

#[test]
fn buffer_index_out_of_range() {
    let mut m = base();
    m.tensors[1].buffer = 9;
    let message = model_error(import(&m));
    assert_names(&message, &["tensor 1", "`c`", "buffer 9", "has 2"]);
}

#[test]
fn buffer_offset_past_the_end() {
    // Buffer 1 stored outside the flatbuffer (offset and size, as files
    // over 2 GB do) at an offset past the end of the file.
    let mut t = base().table();
    let buffers = t.get(4).tables();
    buffers[1] = T::default().with(1, V::U64(1 << 20)).with(2, V::U64(16));
    let mut bytes = finish(&t);
    bytes.extend(le_f32(&C)); // buffer data at the end, not where the offset says
    let (_, _, message) = operator_error(import_bytes(bytes));
    assert_names(&message, &["buffer 1", "16 bytes", "offset 1048576", "outside the file"]);
}

// ---------------------------------------------------------------------------
// Graph structure.

#[test]
fn tensor_index_out_of_range() {
    let mut m = base();
    m.operators[0].inputs = vec![0, 9];
    let (index, op_type, message) = operator_error(import(&m));
    assert_eq!((index, op_type.as_str()), (0, "ADD"));
    assert_names(&message, &["input 1", "tensor index 9", "out of range", "4 tensors"]);

    let mut m = base();
    m.operators[1].outputs = vec![9];
    let (index, _, message) = operator_error(import(&m));
    assert_eq!(index, 1);
    assert_names(&message, &["output 0", "tensor index 9", "out of range"]);

    let mut m = base();
    m.inputs = vec![9];
    assert_names(&model_error(import(&m)), &["subgraph input", "tensor index 9", "out of range"]);

    let mut m = base();
    m.outputs = vec![-1];
    assert_names(&model_error(import(&m)), &["subgraph output", "tensor index -1", "out of range"]);
}

#[test]
fn negative_tensor_index_on_a_required_input() {
    // -1 marks an omitted optional input; -2 is no tensor at all.
    let mut m = base();
    m.operators[0].inputs = vec![0, -2];
    let (index, _, message) = operator_error(import(&m));
    assert_eq!(index, 0);
    assert_names(&message, &["input 1", "-2"]);
}

#[test]
fn negative_tensor_index_on_an_optional_input() {
    // As CONV_2D's optional bias, -2 must not be taken as "no bias".
    let mut m = conv(1, 1);
    m.operators[0].inputs[2] = -2;
    let (index, op_type, message) = operator_error(import(&m));
    assert_eq!((index, op_type.as_str()), (0, "CONV_2D"));
    assert_names(&message, &["input 2", "-2"]);
}

#[test]
fn opcode_index_out_of_range() {
    let mut m = base();
    m.operators[1].opcode = 7;
    let message = model_error(import(&m));
    assert_names(&message, &["operator #1", "operator code 7", "has 2"]);
}

#[test]
fn cycle_reads_a_tensor_before_it_is_written() {
    // ADD reads RELU's output y, RELU reads ADD's output.
    let mut m = base();
    m.operators[0].inputs = vec![0, 3];
    let (index, op_type, message) = operator_error(import(&m));
    assert_eq!((index, op_type.as_str()), (0, "ADD"));
    assert_names(&message, &["input 1", "tensor 3", "`y`", "before any operator writes it", "cyclic"]);
}

#[test]
fn two_operators_write_one_tensor() {
    let mut m = base();
    m.operators[1].inputs = vec![0];
    m.operators[1].outputs = vec![2]; // sum, ADD's output
    let (index, op_type, message) = operator_error(import(&m));
    assert_eq!((index, op_type.as_str()), (1, "RELU"));
    assert_names(&message, &["output 0", "tensor 2", "`sum`", "another operator's output"]);
}

#[test]
fn one_operator_writes_one_tensor_twice() {
    // SPLIT into two halves, both written to the same tensor.
    let mut m = Model::default();
    let x = m.tensor(tensor("x", &[1, 4], FLOAT32));
    let axis = m.constant(tensor("axis", &[1], INT32), le_i32(&[1]));
    let half = m.tensor(tensor("half", &[1, 2], FLOAT32));
    m.op(SPLIT, &[axis, x], &[half, half], Some((SPLIT_OPTIONS, T::default().with(0, V::I32(2)))));
    m.inputs = vec![x];
    m.outputs = vec![half];
    let (index, op_type, message) = operator_error(import(&m));
    assert_eq!((index, op_type.as_str()), (0, "SPLIT"));
    assert_names(&message, &["tensor 2", "`half`"]);
}

#[test]
fn operator_writes_a_constant_or_a_graph_input() {
    // A constant no operator has read yet (c, read by ADD, is an operand
    // already, caught as written).
    let mut m = base();
    let d = m.constant(tensor("d", &[1, 4], FLOAT32), le_f32(&C));
    m.operators[1].outputs = vec![d];
    m.outputs = vec![d];
    let (index, _, message) = operator_error(import(&m));
    assert_eq!(index, 1);
    assert_names(&message, &["output 0", "tensor 4", "`d`", "constant"]);

    let mut m = base();
    m.operators[1].outputs = vec![1]; // c
    let (index, _, message) = operator_error(import(&m));
    assert_eq!(index, 1);
    assert_names(&message, &["output 0", "tensor 1", "`c`", "constant"]);

    let mut m = base();
    m.operators[1].outputs = vec![0]; // x
    let (index, _, message) = operator_error(import(&m));
    assert_eq!(index, 1);
    assert_names(&message, &["output 0", "tensor 0", "`x`", "graph input"]);
}

#[test]
fn output_not_written() {
    let mut m = base();
    m.operators.pop(); // RELU, which wrote y
    let message = model_error(import(&m));
    assert_names(&message, &["output `y`", "tensor 3", "not written by any operator"]);
}

// ---------------------------------------------------------------------------
// Tensors and constants.

#[test]
fn constant_buffer_size_mismatch() {
    let mut m = base();
    m.buffers[1].truncate(12);
    let (index, op_type, message) = operator_error(import(&m));
    assert_eq!((index, op_type.as_str()), (0, "ADD"));
    assert_names(&message, &["`c`", "12 bytes", "needs 16"]);
}

#[test]
fn quantization_scale_and_zero_point_counts_differ() {
    let mut m = quantized();
    m.tensors[0].quant = Some(Quant { scale: vec![0.5, 0.5], zero_point: vec![0, 0, 0], axis: 1 });
    let (index, _, message) = operator_error(import(&m));
    assert_eq!(index, 0);
    assert_names(&message, &["`x`", "2 scales", "3 zero points"]);
}

#[test]
fn per_channel_scale_count_mismatch() {
    let mut m = quantized();
    m.tensors[1].quant = Some(Quant { scale: vec![0.5, 1.0, 2.0], zero_point: vec![0, 0, 0], axis: 1 });
    let (_, _, message) = operator_error(import(&m));
    assert_names(&message, &["`w`", "3 scales", "dimension 1", "one per element"]);

    // An axis the tensor has not.
    let mut m = quantized();
    m.tensors[1].quant.as_mut().unwrap().axis = 5;
    let (_, _, message) = operator_error(import(&m));
    assert_names(&message, &["`w`", "4 scales", "dimension 5"]);
}

#[test]
fn zero_negative_or_nan_scale() {
    for (scale, shown) in [(0.0, "scale 0"), (-0.5, "scale -0.5"), (f32::NAN, "scale NaN"), (f32::INFINITY, "scale inf")] {
        let mut m = quantized();
        m.tensors[0].quant.as_mut().unwrap().scale = vec![scale];
        let (_, _, message) = operator_error(import(&m));
        assert_names(&message, &["`x`", shown, "positive and finite"]);
    }
    // On a quantized output.
    let mut m = quantized();
    m.tensors[2].quant.as_mut().unwrap().scale = vec![0.0];
    let (_, _, message) = operator_error(import(&m));
    assert_names(&message, &["`y`", "scale 0", "positive and finite"]);
}

#[test]
fn unsupported_operators_are_all_listed() {
    let mut m = Model::default();
    let x = m.tensor(tensor("x", &[1, 4], FLOAT32));
    let a = m.tensor(tensor("a", &[1, 4], FLOAT32));
    let b = m.tensor(tensor("b", &[1, 4], FLOAT32));
    let d = m.tensor(tensor("d", &[1, 4], FLOAT32));
    let y = m.tensor(tensor("y", &[1, 4], FLOAT32));
    let r = m.tensor(tensor("r", &[1, 4], FLOAT32));
    m.op(300, &[x], &[a], None); // no such builtin
    let custom = m.custom_code("FooBar");
    m.op_with(custom, &[x], &[b], None);
    m.op(LSTM, &[x], &[d], None); // a builtin kiln does not map
    m.op(ADD, &[a, b], &[y], add_options(0)); // reads unsupported outputs: skipped, not listed
    m.op(RELU, &[x], &[r], None); // supported
    m.inputs = vec![x];
    m.outputs = vec![y, d, r];
    let (ops, message) = unsupported_error(import(&m));
    let listed: Vec<(usize, &str, &str)> = ops.iter().map(|u| (u.index, u.op_type.as_str(), u.output.as_str())).collect();
    assert_eq!(listed, [(0, "BUILTIN_300", "a"), (1, "FooBar", "b"), (2, "LSTM", "d")]);
    for u in &ops {
        assert_names(&u.reason, &["no mapping"]);
    }
    assert_names(&ops[1].reason, &["custom operator `FooBar`"]);
    assert_names(&message, &["3 operators cannot be imported", "BUILTIN_300", "FooBar", "LSTM"]);
}

#[test]
fn unsupported_tensor_types() {
    // A STRING constant read by ADD.
    let mut m = base();
    m.tensors[1].ty = STRING;
    let (ops, _) = unsupported_error(import(&m));
    assert_eq!(ops.len(), 1);
    assert_eq!((ops[0].index, ops[0].op_type.as_str()), (0, "ADD"));
    assert_names(&ops[0].reason, &["`c`", "STRING"]);

    // An INT16 tensor written by RELU.
    let mut m = base();
    m.tensors[3].ty = INT16;
    let (ops, _) = unsupported_error(import(&m));
    assert_eq!(ops.len(), 1);
    assert_eq!((ops[0].index, ops[0].op_type.as_str()), (1, "RELU"));
    assert_names(&ops[0].reason, &["`y`", "INT16"]);

    // A type code the schema has not.
    let mut m = base();
    m.tensors[3].ty = 99;
    let (ops, _) = unsupported_error(import(&m));
    assert_names(&ops[0].reason, &["`y`", "unknown tensor type"]);

    // A STRING graph input (any variant, but named).
    let mut m = base();
    m.tensors[0].ty = STRING;
    let message = import(&m).expect_err("a STRING input").to_string();
    assert_names(&message, &["`x`", "STRING"]);
}

#[test]
fn dynamic_or_zero_dimensions() {
    for (shape, shown) in [(vec![-1, 4], "[-1, 4]"), (vec![1, 0], "[1, 0]")] {
        let mut m = base();
        m.tensors[0].shape = shape;
        let message = model_error(import(&m));
        assert_names(&message, &["input `x`", shown, "static shapes"]);
    }
    // On an operator's output.
    let mut m = base();
    m.tensors[2].shape = vec![1, -1];
    let (ops, _) = unsupported_error(import(&m));
    assert_eq!((ops.len(), ops[0].index, ops[0].op_type.as_str()), (1, 0, "ADD"));
    assert_names(&ops[0].reason, &["`sum`", "[1, -1]", "static shapes"]);
}

#[test]
fn input_over_the_tensor_limit() {
    // 2^39 float32 elements: 2 TiB, over kiln's 64 GiB tensor limit.
    let mut m = base();
    m.tensors[0].shape = vec![1 << 20, 1 << 19];
    let message = model_error(import(&m));
    assert_names(&message, &["input `x`", "[1048576, 524288]", "tensor limit"]);
}

// ---------------------------------------------------------------------------
// Operator options and values.

#[test]
fn conv_stride_zero() {
    assert!(import(&conv(1, 1)).is_ok());
    let (index, op_type, message) = operator_error(import(&conv(0, 1)));
    assert_eq!((index, op_type.as_str()), (0, "CONV_2D"));
    assert_names(&message, &["stride_w is 0", "at least 1"]);
    let (_, _, message) = operator_error(import(&conv(1, 0)));
    assert_names(&message, &["stride_h is 0", "at least 1"]);
    let (_, _, message) = operator_error(import(&conv(1, -3)));
    assert_names(&message, &["stride_h is -3"]);
}

#[test]
fn reshape_to_wrong_element_count() {
    // The new shape as a constant input.
    let (index, op_type, message) = operator_error(import(&reshape(&[3, 2], &[3, 2])));
    assert_eq!((index, op_type.as_str()), (0, "RESHAPE"));
    assert_names(&message, &["new shape", "3, 2", "does not hold", "4 elements"]);

    // The new shape in ReshapeOptions.
    let mut m = reshape(&[2, 2], &[3, 2]);
    m.operators[0].inputs.pop();
    m.operators[0].options = Some((RESHAPE_OPTIONS, T::default().with(0, i32s(&[3, 2]))));
    let (_, _, message) = operator_error(import(&m));
    assert_names(&message, &["new shape", "3, 2", "does not hold", "4 elements"]);

    // Two -1s.
    let (_, _, message) = operator_error(import(&reshape(&[-1, -1], &[2, 2])));
    assert_names(&message, &["new shape", "-1, -1", "not valid"]);
}

#[test]
fn sparse_segments_and_indices_out_of_range() {
    // Row 1's segment ends at 5, past the 2 indices.
    let (index, op_type, message) = operator_error(import(&sparse([2, 2], &[0, 1, 5], &[0, 1], &[1.0, 2.0])));
    assert_eq!((index, op_type.as_str()), (0, "DENSIFY"));
    assert_names(&message, &["sparse tensor `w`", "array_segments", "position 1"]);

    // Too few segments for the 2 rows.
    let (_, _, message) = operator_error(import(&sparse([2, 2], &[0, 1], &[0, 1], &[1.0, 2.0])));
    assert_names(&message, &["sparse tensor `w`", "array_segments", "position 1"]);

    // A column index past the 2 columns.
    let (_, _, message) = operator_error(import(&sparse([2, 2], &[0, 1, 2], &[0, 7], &[1.0, 2.0])));
    assert_names(&message, &["sparse tensor `w`", "index 7", "outside size 2"]);

    // A negative segment.
    let (_, _, message) = operator_error(import(&sparse([2, 2], &[0, -1, 2], &[0, 1], &[1.0, 2.0])));
    assert_names(&message, &["sparse tensor `w`", "array_segments"]);

    // More values than the structure names.
    let (_, _, message) = operator_error(import(&sparse([2, 2], &[0, 1, 2], &[0, 1], &[1.0, 2.0, 3.0])));
    assert_names(&message, &["sparse tensor `w`", "3 values", "names 2"]);
}

#[test]
fn sparse_scalar_constant() {
    // A rank-0 sparse constant: no traversal order, no dimension metadata
    // (the sweep of corruptions finds it by zeroing the shape's length).
    let mut m = Model::default();
    let mut w = tensor("w", &[], FLOAT32);
    w.sparsity = Some(T::default().with(0, i32s(&[])).with(2, V::Tables(vec![])));
    let w = m.constant(w, le_f32(&[1.0]));
    let wd = m.tensor(tensor("wd", &[], FLOAT32));
    m.op(DENSIFY, &[w], &[wd], None);
    m.outputs = vec![wd];
    let (index, op_type, message) = operator_error(import(&m));
    assert_eq!((index, op_type.as_str()), (0, "DENSIFY"));
    assert_names(&message, &["sparse tensor `w`", "scalar"]);
}

#[test]
fn sparse_constant_with_a_huge_dense_shape_is_refused_without_allocating() {
    if ran_in_child("sparse_constant_with_a_huge_dense_shape_is_refused_without_allocating", Duration::from_secs(120)) {
        return;
    }
    // 2^39 float32 elements (2 TiB dense) described by one stored value:
    // its array_segments cover row 0 only.
    // DENSIFY's output is the graph's output (no input x of that size:
    // kiln refuses inputs over its 64 GiB tensor limit).
    let mut m = sparse([1 << 20, 1 << 19], &[0, 1], &[0], &[1.0]);
    m.operators.pop();
    m.inputs = vec![];
    m.outputs = vec![2];
    // A valid model, too large to expand at load time: unsupported, by size.
    let (ops, message) = unsupported_error(import(&m));
    assert_eq!((ops[0].index, ops[0].op_type.as_str()), (0, "DENSIFY"));
    assert_names(&message, &["sparse tensor `w`", "549755813888 elements", "limit"]);
}
