//! The `.webnn` text format: parse, print, graph conversion, sidecars,
//! save and load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use kiln_frontend::builder::GraphBuilder;
use kiln_frontend::op_table;
use kiln_frontend::webnn_text::{
    from_graph, load, parse, print, safetensors_bytes, to_graph, Annotation, Document, Expr, Pos, SafeTensorsFile,
    Sidecar, TextError, Value, WeightError, WeightSource, WeightsFile, MAX_NESTING,
    MAX_SAFETENSORS_HEADER,
};
use kiln_ir::{DataType, Graph, Number, OperandDescriptor, Splits, Tensor, Values};

// ---------------------------------------------------------------------------
// Fixtures

/// The example of `docs/webnn-text-format.md`, verbatim.
const SPEC_EXAMPLE: &str = r#"webnn_graph "resnet_head" v1 {
  inputs {
    x: f32[1, 2048];
  }
  consts {
    W: f32[2048, 1000] @weights("W");
    b: f32[1000]       @weights("b");
    eps: f32[]         @scalar(0.00001);
  }
  nodes {
    logits0 = matmul(x, W);
    logits  = add(logits0, b);
    probs   = softmax(logits, axis=1);
    [s0, s1] = split(probs, splits=2, axis=1);
  }
  outputs { probs; s0; }
}
"#;

/// The same example in canonical form.
const SPEC_CANONICAL: &str = r#"webnn_graph "resnet_head" v1 {
  inputs {
    x: f32[1, 2048];
  }
  consts {
    W: f32[2048, 1000] @weights("W");
    b: f32[1000] @weights("b");
    eps: f32[] @scalar(1e-5);
  }
  nodes {
    logits0 = matmul(x, W);
    logits = add(logits0, b);
    probs = softmax(logits, axis=1);
    [s0, s1] = split(probs, splits=2, axis=1);
  }
  outputs { probs; s0; }
}
"#;

/// Every operator of kiln's `Op` enum and every kind of option value, written
/// exactly as `from_graph` prints the graph it builds.
const EVERY_OP: &str = r#"webnn_graph "every_op" v1 {
  inputs {
    x: f32[1, 3, 8, 8];
    a: f32[2, 3];
    b: f32[2, 3];
    m: f32[3, 4];
    p: u8[2, 3];
    q: u8[2, 3];
    idx: i32[2];
    xh: f32[1, 8, 8, 3];
    h: f16[2, 3];
    gi: i32[2, 3];
    nd: i64[2, 1];
    rs: f32[2, 2, 3];
    hs: f32[1, 2, 2];
    hc: f32[2, 2];
  }
  consts {
    w: f32[4, 3, 3, 3] @weights("w");
    bias: f32[4] @weights("bias");
    wg: f32[3, 1, 3, 3] @weights("wg");
    wt: f32[3, 2, 3, 3] @weights("wt");
    bt: f32[2] @weights("bt");
    mean: f32[3] @weights("mean");
    var: f32[3] @weights("var");
    gamma: f32[3] @weights("gamma");
    beta: f32[3] @weights("beta");
    slope: f32[4] @weights("slope");
    cvec: f32[4] @weights("cvec");
    two: f32[] @scalar(2.0);
    one: i32[1] @scalar(1);
    half: f16[] @scalar(0.5);
    lowest: i64[] @scalar(-9223372036854775808);
    highest: u64[1, 1] @scalar(18446744073709551615);
    tiny: f32[] @scalar(1.401298464324817e-45);
    ninf: f32[] @scalar(-Infinity);
    negzero: f32[] @scalar(-0.0);
    qs: f32[1, 1] @scalar(0.5);
    qz: u8[1, 1] @scalar(128);
    gw: f32[1, 6, 3] @weights("gw");
    gr: f32[1, 6, 2] @weights("gr");
    gb: f32[1, 6] @weights("gb");
    lw: f32[1, 8, 3] @weights("lw");
    lr: f32[1, 8, 2] @weights("lr");
    lb: f32[1, 8] @weights("lb");
    lp: f32[1, 6] @weights("lp");
    cgw: f32[6, 3] @weights("cgw");
    cgr: f32[6, 2] @weights("cgr");
    clw: f32[8, 3] @weights("clw");
    clr: f32[8, 2] @weights("clr");
  }
  nodes {
    add0 = add(a, b);
    sub0 = sub(a, b);
    mul0 = mul(a, two);
    div0 = div(a, b);
    max0 = max(a, b);
    min0 = min(a, b);
    pow0 = pow(a, two);
    eq0 = equal(a, b);
    ne0 = notEqual(a, b);
    gt0 = greater(a, b);
    ge0 = greaterOrEqual(a, b);
    lt0 = lesser(a, b);
    le0 = lesserOrEqual(a, b);
    and0 = logicalAnd(p, q);
    or0 = logicalOr(p, q);
    xor0 = logicalXor(p, q);
    abs0 = abs(a);
    ceil0 = ceil(a);
    floor0 = floor(a);
    round0 = roundEven(a);
    silu0 = silu(a);
    mish0 = mish(a);
    gelut0 = geluTanh(a);
    exp0 = exp(a);
    log0 = log(a);
    neg0 = neg(a);
    sqrt0 = sqrt(a);
    erf0 = erf(a);
    recip0 = reciprocal(a);
    sin0 = sin(a);
    cos0 = cos(a);
    tan0 = tan(a);
    tanh0 = tanh(a);
    sigmoid0 = sigmoid(a);
    relu0 = relu(a);
    hswish0 = hardSwish(a);
    gelu0 = gelu(a);
    softplus0 = softplus(a);
    softsign0 = softsign(a);
    id0 = identity(a);
    not0 = logicalNot(p);
    clamp0 = clamp(a, minValue=0, maxValue=6.0);
    clamp1 = clamp(a);
    elu0 = elu(a, alpha=0.5);
    lrelu0 = leakyRelu(a, alpha=0.2);
    hsig0 = hardSigmoid(a, alpha=0.1, beta=0.25);
    lin0 = linear(h, alpha=2.0, beta=-1.0);
    prelu0 = prelu(m, slope);
    cast0 = cast(a, "int32");
    conv0 = conv2d(x, w, padding=[1, 1, 1, 1], strides=[2, 2], bias=bias, label="stem \"conv\"");
    conv1 = conv2d(xh, w, inputLayout="nhwc", filterLayout="ohwi");
    conv2 = conv2d(x, wg, dilations=[2, 2], groups=3);
    convt0 = convTranspose2d(x, wt, strides=[2, 2], outputPadding=[1, 1], bias=bt);
    convt1 = convTranspose2d(x, wt, strides=[2, 2], outputSizes=[18, 18]);
    avg0 = averagePool2d(x, windowDimensions=[2, 2], strides=[2, 2]);
    maxp0 = maxPool2d(x, windowDimensions=[3, 3], padding=[1, 1, 1, 1], strides=[2, 2], outputShapeRounding="ceil");
    maxp1 = maxPool2d(x, windowDimensions=[2, 2], strides=[2, 2], outputSizes=[4, 4]);
    l2p0 = l2Pool2d(xh, layout="nhwc");
    gemm0 = gemm(a, m, c=cvec, alpha=0.5, beta=2.0);
    gemm1 = gemm(m, a, aTranspose=true, bTranspose=true);
    mm0 = matmul(a, m);
    bn0 = batchNormalization(x, mean, var, scale=gamma, bias=beta, epsilon=0.001);
    bn1 = batchNormalization(xh, mean, var, axis=3);
    ln0 = layerNormalization(a, scale=gamma, axes=[1]);
    in0 = instanceNormalization(xh, scale=gamma, bias=beta, epsilon=0.0001, layout="nhwc");
    sm0 = softmax(a, 1);
    r0 = reduceL1(a, axes=[1]);
    r1 = reduceL2(a, keepDimensions=true);
    r2 = reduceLogSum(a);
    r3 = reduceLogSumExp(a, axes=[0, 1], keepDimensions=true);
    r4 = reduceMax(a);
    r5 = reduceMean(a);
    r6 = reduceMin(a);
    r7 = reduceProduct(a);
    r8 = reduceSum(a, axes=[0]);
    r9 = reduceSumSquare(a);
    rs0 = reshape(a, [3, 2]);
    tr0 = transpose(a);
    tr1 = transpose(x, permutation=[0, 2, 3, 1]);
    cat0 = concat([a, b, sub0], 0);
    [s0, s1, s2] = split(a, 3, axis=1);
    [t0, t1] = split(a, [1, 2], axis=1);
    u0 = split(a, 1);
    sl0 = slice(x, [0, 0, 1, 1], [1, 3, 6, 6]);
    sl1 = slice(a, [0, 0], [2, 3], strides=[2, 2]);
    ex0 = expand(two, [2, 3]);
    ga0 = gather(m, idx);
    ga1 = gather(m, idx, axis=1);
    pad0 = pad(a, [1, 1], [0, 2]);
    pad1 = pad(a, [1, 1], [1, 1], mode="reflection");
    pad2 = pad(a, [0, 1], [0, 1], value=-Infinity);
    pad3 = pad(a, [0, 1], [0, 1], mode="edge", value=3);
    rsz0 = resample2d(x, mode="linear", scales=[2.0, 2.0]);
    rsz1 = resample2d(xh, sizes=[4, 4], axes=[1, 2]);
    rsz2 = resample2d(x, scales=[0.5, 0.30000001192092896]);
    wh0 = where(p, a, b);
    isnan0 = isNaN(a);
    isinf0 = isInfinite(h);
    sign0 = sign(a);
    amax0 = argMax(a, 1);
    amin0 = argMin(m, 0, keepDimensions=true, outputDataType="int64");
    cs0 = cumulativeSum(a, 1);
    cs1 = cumulativeSum(a, 0, exclusive=true, reversed=true);
    q0 = quantizeLinear(a, qs, qz);
    dq0 = dequantizeLinear(q0, qs, qz);
    gel0 = gatherElements(a, gi);
    gel1 = gatherElements(a, gi, axis=1);
    gn0 = gatherND(m, nd);
    se0 = scatterElements(a, gi, b, axis=1);
    sn0 = scatterND(m, nd, gn0);
    rev0 = reverse(a);
    rev1 = reverse(x, axes=[2, 3]);
    tile0 = tile(a, [2, 1]);
    tri0 = triangular(m);
    tri1 = triangular(m, upper=false, diagonal=-1);
    att0 = attention(a, b, a);
    att1 = attention(a, b, b, mask=two, scale=0.5);
    gru0 = gru(rs, gw, gr, 2, 2);
    [gru1, gru2] = gru(rs, gw, gr, 2, 2, bias=gb, recurrentBias=gb, resetAfter=false, layout="rzn", activations=["relu", "tanh"], initialHiddenState=hs, returnSequence=true, direction="backward");
    gc0 = gruCell(a, cgw, cgr, hc, 2);
    [lstm0, lstm1] = lstm(rs, lw, lr, 2, 2);
    [lstm2, lstm3, lstm4] = lstm(rs, lw, lr, 2, 2, bias=lb, recurrentBias=lb, peepholeWeight=lp, layout="ifgo", activations=["sigmoid", "relu", "tanh"], initialHiddenState=hs, initialCellState=hs, returnSequence=true, direction="backward");
    [lc0, lc1] = lstmCell(a, clw, clr, hc, hc, 2);
    sum_again = add0;
  }
  outputs { add0; conv0; s0; s2; t1; u0; cat0; wh0; sum_again; }
}
"#;

/// Literals of every kind, bound to names, plus a call that uses them.
const LITERALS: &str = r#"webnn_graph "literals \"quoted\" \\ and\nnewline" v7 @quantized {
  inputs {
    x: f32[2, 3];
  }
  nodes {
    i = 42;
    n = -7;
    zero = 0;
    imax = 170141183460469231731687303715884105727;
    imin = -170141183460469231731687303715884105728;
    f = 1.5;
    neg = -2.5;
    e = 1e-5;
    big = 1e300;
    huge = -2.5e300;
    small = 5e-324;
    nz = -0.0;
    pinf = Infinity;
    minf = -Infinity;
    nan = NaN;
    s = "and \"quotes\" \\ back\nslash é";
    empty = "";
    yes = true;
    no = false;
    nothing = null;
    arr = [1, [2.0, "x"], [], [[true, null]], i];
    shape = [3, 2];
    y = reshape(x, shape);
    [z] = split(y, 1, axis=0);
    w = y;
  }
  outputs { y; z; w; }
}
"#;

/// A small graph for the sidecar tests.
const SMALL: &str = r#"webnn_graph "small" v1 {
  inputs {
    x: f32[2, 3];
  }
  consts {
    W: f32[3, 2] @weights("W");
    b: f16[2] @weights("b");
    k: i64[2] @weights("k.with:odd/chars");
  }
  nodes {
    b32 = cast(b, "float32");
    y = matmul(x, W);
    z = add(y, b32);
  }
  outputs { z; }
}
"#;

/// Deterministic pseudo-random bytes (an LCG), `n` of them.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A tensor of `desc` filled with small deterministic values.
fn sample_tensor(desc: &OperandDescriptor, seed: u64) -> Tensor {
    let n = desc.shape.element_count();
    let mut rng = Lcg(seed);
    let values = if desc.data_type.is_float() {
        Values::Float((0..n).map(|_| rng.below(200) as f64 / 100.0 - 1.0).collect())
    } else {
        Values::Int((0..n).map(|_| rng.below(100) as i128).collect())
    };
    Tensor::from_values(desc.clone(), &values).unwrap()
}

/// In-memory weights for every `@weights` constant of `doc`, by key.
fn weights_for(doc: &Document) -> BTreeMap<String, Tensor> {
    let mut out = BTreeMap::new();
    for (i, c) in doc.consts.iter().enumerate() {
        for a in &c.annotations {
            if let Annotation::Weights(key) = a {
                let Some(t) = c.ty.dtype.data_type() else { continue };
                let desc = OperandDescriptor::new(t, c.ty.shape.clone());
                if desc.checked_byte_length().is_some_and(|n| n <= 1 << 24) {
                    out.insert(key.clone(), sample_tensor(&desc, i as u64 + 1));
                }
            }
        }
    }
    out
}

/// A fresh, empty directory under the system temp dir, unique to this test.
fn temp_dir(test: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("kiln-webnn-text-{}-{test}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn graph_text(graph: &Graph, name: &str) -> String {
    print(&from_graph(graph, name))
}

/// Every operand of every operator (`EVERY_OP` has them all) is named in
/// the operator's limits table, so the validator checks its type and rank.
#[test]
fn every_operand_of_every_operator_has_limits() {
    let doc = parse(EVERY_OP).unwrap();
    let graph = to_graph(&doc, &weights_for(&doc)).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for node in graph.nodes() {
        let limits = kiln_ir::limits::operand_limits(node.op.name()).unwrap();
        for (name, _) in node.op.inputs() {
            assert!(limits.iter().any(|l| l.operand == name), "{}: operand `{name}` has no limits", node.op.name());
        }
        seen.insert(node.op.name());
    }
    let missing: Vec<_> = kiln_ir::operator_names().into_iter().filter(|n| !seen.contains(n)).collect();
    assert!(missing.is_empty(), "EVERY_OP lacks {missing:?}");
}

fn parse_err(text: &str) -> (u32, u32, String) {
    match parse(text) {
        Ok(doc) => panic!("expected a parse error, got {doc:?}"),
        Err(e) => (e.pos.line, e.pos.col, e.message),
    }
}

fn graph_err(text: &str) -> TextError {
    let doc = parse(text).unwrap();
    match to_graph(&doc, &weights_for(&doc)) {
        Ok(_) => panic!("expected a graph error for\n{text}"),
        Err(e) => e,
    }
}

/// `SMALL`'s graph with its body replaced.
fn with_nodes(inputs: &str, nodes: &str, outputs: &str) -> String {
    format!("webnn_graph \"t\" v1 {{\n  inputs {{\n{inputs}  }}\n  nodes {{\n{nodes}  }}\n  outputs {{ {outputs} }}\n}}\n")
}

// ---------------------------------------------------------------------------
// Parse and print

#[test]
fn canonical_files_print_back_byte_for_byte() {
    for text in [SPEC_CANONICAL, EVERY_OP, LITERALS, SMALL] {
        let doc = parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(print(&doc), text);
    }
}

#[test]
fn spec_example_prints_in_canonical_form() {
    let doc = parse(SPEC_EXAMPLE).unwrap();
    assert_eq!(print(&doc), SPEC_CANONICAL);
    assert_eq!(doc, parse(SPEC_CANONICAL).unwrap());
    assert_eq!(doc.name, "resnet_head");
    assert_eq!(doc.consts[2].annotations, vec![Annotation::Scalar(Number::Float(1e-5))]);
    assert_eq!(doc.nodes[3].targets.len(), 2);
    assert!(doc.nodes[3].multi);
}

#[test]
fn the_spec_example_in_the_format_document_is_the_one_tested() {
    // docs/webnn-text-format.md is the repository's copy of the format document.
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/webnn-text-format.md")).unwrap();
    let example = doc.split("```").nth(1).unwrap().trim_start_matches('\n');
    assert_eq!(example, SPEC_EXAMPLE);
}

#[test]
fn literals_parse_to_their_exact_values() {
    let doc = parse(LITERALS).unwrap();
    assert_eq!(doc.name, "literals \"quoted\" \\ and\nnewline");
    assert_eq!(doc.version, 7);
    assert!(doc.quantized);
    let value = |name: &str| -> Value {
        let s = doc.nodes.iter().find(|s| s.targets[0].name == name).unwrap();
        match &s.expr {
            Expr::Value(v) => v.clone(),
            Expr::Call(_) => panic!("{name} is a call"),
        }
    };
    assert_eq!(value("imax"), Value::Int(i128::MAX));
    assert_eq!(value("imin"), Value::Int(i128::MIN));
    assert_eq!(value("n"), Value::Int(-7));
    assert_eq!(value("e"), Value::Float(1e-5));
    assert_eq!(value("huge"), Value::Float(-2.5e300));
    assert_eq!(value("small"), Value::Float(5e-324));
    let Value::Float(nz) = value("nz") else { panic!() };
    assert!(nz == 0.0 && nz.is_sign_negative());
    assert_eq!(value("pinf"), Value::Float(f64::INFINITY));
    assert_eq!(value("minf"), Value::Float(f64::NEG_INFINITY));
    assert!(matches!(value("nan"), Value::Float(x) if x.is_nan()));
    assert_eq!(value("s"), Value::Str("and \"quotes\" \\ back\nslash é".into()));
    assert_eq!(value("yes"), Value::Bool(true));
    assert_eq!(value("nothing"), Value::Null);
    let Value::Array(arr) = value("arr") else { panic!() };
    assert_eq!(arr.len(), 5);
    assert_eq!(arr[2], Value::Array(vec![]));
}

#[test]
fn literal_bindings_are_substituted_and_aliases_share_the_operand() {
    let doc = parse(LITERALS).unwrap();
    let g = to_graph(&doc, &BTreeMap::new()).unwrap();
    let outs = g.outputs();
    assert_eq!(outs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["y", "z", "w"]);
    assert_eq!(g.desc(outs[0].1).shape.dims(), &[3, 2]);
    assert_eq!(outs[0].1, outs[2].1, "`w = y` names the same operand");
}

#[test]
fn other_spellings_print_in_canonical_form() {
    let text = "# a comment\n// another\nwebnn_graph   \"g\"  v 1{inputs{x:f32[ 2 ,3 ] ;}// trailing\n\
        outputs{y,z ; w}nodes{y=relu( x ) ;[ z ]=split(y,1);w=y;}\
        consts{c:f32[]@scalar(1E3)@weights(\"c\");d:f32[1]@scalar(00012);e:f32[]@scalar(0.000001);}}";
    let expected = r#"webnn_graph "g" v1 {
  inputs {
    x: f32[2, 3];
  }
  consts {
    c: f32[] @scalar(1000.0) @weights("c");
    d: f32[1] @scalar(12);
    e: f32[] @scalar(1e-6);
  }
  nodes {
    y = relu(x);
    [z] = split(y, 1);
    w = y;
  }
  outputs { y; z; w; }
}
"#;
    assert_eq!(print(&parse(text).unwrap()), expected);
}

#[test]
fn positions_are_one_based_lines_and_character_columns() {
    let doc = parse("webnn_graph \"é\" v1 {\n  inputs {\n\tx: f32[1];\n  }\n  nodes {\n    yé = relu(x);\n  }\n}\n");
    // `é` is not an identifier character: the error is at its column, counted in characters.
    let e = doc.unwrap_err();
    assert_eq!((e.pos.line, e.pos.col), (6, 6));
    let doc = parse("webnn_graph \"é\" v1 {\n  inputs {\n\tx: f32[1];\n  }\n}\n").unwrap();
    assert_eq!(doc.inputs[0].name.pos, Pos::new(3, 2));
}

#[test]
fn parse_errors_name_line_column_and_what_was_expected() {
    let head = "webnn_graph \"g\" v1 {\n";
    let cases: Vec<(String, (u32, u32), &str)> = vec![
        ("inputs { x: f32[1]; }".into(), (1, 1), "expected the header `webnn_graph \"name\" v1 {`, found `inputs`"),
        ("webnn_graph \"abc v1 {\n}\n".into(), (1, 13), "unterminated string"),
        (format!("{head}  inputs {{\n    x: f32[1]\n  }}\n}}\n"), (4, 3), "expected `;` after input declaration, found `}`"),
        (format!("{head}  inputs {{\n    x: f64[1];\n  }}\n}}\n"), (3, 8), "unknown data type `f64`"),
        (format!("{head}  inputs {{\n    x: f32[1, -2];\n  }}\n}}\n"), (3, 15), "dimension -2 is negative"),
        (format!("{head}  inputs {{\n    x: f32[1.5];\n  }}\n}}\n"), (3, 12), "expected a dimension (a non-negative integer), found `1.5`"),
        (format!("{head}  inputs {{\n    x: f32[1 2];\n  }}\n}}\n"), (3, 14), "expected `,` or `]` in the shape, found `2`"),
        (format!("{head}  inputs {{\n    x: f32[4294967296];\n  }}\n}}\n"), (3, 12), "dimension 4294967296 does not fit in 32 bits"),
        (format!("{head}}}\n}}\n"), (3, 1), "expected end of file after the graph's closing `}`, found `}`"),
        (format!("{head}  nodes {{\n    y = f(x, 999999999999999999999999999999999999999999);\n  }}\n}}\n"), (3, 14), "does not fit in 128 bits"),
        (format!("{head}  inputs {{\n  }}\n  inputs {{\n  }}\n}}\n"), (4, 3), "duplicate `inputs` block (the first one is at 2:3)"),
        (format!("{head}  nodes {{\n    y = f(\"a\\tb\");\n  }}\n}}\n"), (3, 13), "unknown escape `\\t`"),
        (format!("{head}  inputs {{\n    null: f32[1];\n  }}\n}}\n"), (3, 5), "`null` is a reserved word"),
        (format!("{head}  inputs {{\n    x % f32[1];\n  }}\n}}\n"), (3, 7), "unexpected character `%`"),
        (format!("{head}  inputs {{\n  }}\n"), (4, 1), "expected `}` to close the graph, found end of file"),
        (format!("{head}  consts {{\n    c: f32[1] @bytes([1]);\n  }}\n}}\n"), (3, 15), "unknown annotation `@bytes`"),
        ("webnn_graph \"g\" v1 @quantised {\n}\n".into(), (1, 20), "unknown header annotation `@quantised`"),
        ("webnn_graph \"g\" {\n}\n".into(), (1, 17), "expected the version `v1` after the graph name, found `{`"),
        (format!("{head}  nodes {{\n    y = clamp(x, minValue=-x);\n  }}\n}}\n"), (3, 27), "expected a number after `-`, found `x`"),
        (format!("{head}  nodes {{\n    y = f(1.);\n  }}\n}}\n"), (3, 11), "expected a digit after `1.`"),
        (format!("{head}  nodes {{\n    y relu(x);\n  }}\n}}\n"), (3, 7), "expected `=` after `y`, found `relu`"),
        (format!("{head}  nodes {{\n    y = add(a b);\n  }}\n}}\n"), (3, 15), "expected `,` or `)` in the arguments of `add`, found `b`"),
        (format!("{head}  nodes {{\n    y = add(a, );\n  }}\n}}\n"), (3, 16), "expected a value (a name, number, string, array, true, false or null), found `)`"),
        (format!("{head}  nodes {{\n    y = relu(x)\n  }}\n}}\n"), (4, 3), "expected `;` after statement, found `}`"),
        (format!("{head}  consts {{\n    c: f32[] @scalar(\"1\");\n  }}\n}}\n"), (3, 22), "expected a number in `@scalar(...)`, found a string"),
        (format!("{head}  bogus {{\n  }}\n}}\n"), (2, 3), "expected a block (`inputs`, `consts`, `nodes` or `outputs`) or `}`, found `bogus`"),
        (format!("{head}  nodes {{\n    y = 12abc;\n  }}\n}}\n"), (3, 9), "invalid number: `12` is followed by `a`"),
        (format!("{head}  nodes {{\n    y = 1e+;\n  }}\n}}\n"), (3, 9), "expected exponent digits after `1e+`"),
        (format!("{head}  outputs {{ y; 3; }}\n}}\n"), (2, 16), "expected an output name or `}`, found `3`"),
    ];
    for (text, (line, col), message) in cases {
        let (l, c, m) = parse_err(&text);
        assert!(m.contains(message), "{text}\nmessage {m:?} lacks {message:?}");
        assert_eq!((l, c), (line, col), "{text}\n{m}");
    }
}

#[test]
fn parse_error_display_is_line_colon_column_then_message() {
    let e = parse("webnn_graph \"g\" v1 {\n  inputs {\n    x: f32[1]\n  }\n}\n").unwrap_err();
    assert_eq!(e.to_string(), "4:3: expected `;` after input declaration, found `}`");
}

// ---------------------------------------------------------------------------
// Hostile input

#[test]
fn random_bytes_never_panic() {
    let mut rng = Lcg(7);
    for len in 0..400 {
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse(&text);
        // The same bytes behind a valid header reach the block parser.
        let _ = parse(&format!("webnn_graph \"g\" v1 {{ nodes {{ y = f({text}); }} }}"));
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = "[".repeat(100_000);
    let text = format!("webnn_graph \"g\" v1 {{\n  nodes {{\n    y = {deep}\n  }}\n}}\n");
    let (line, col, message) = parse_err(&text);
    assert_eq!((line, col), (3, 9 + MAX_NESTING as u32));
    assert!(message.contains("nest deeper than 64"), "{message}");
    // At the limit, it parses and prints.
    let ok = format!("[{}1{}]", "[".repeat(MAX_NESTING - 1), "]".repeat(MAX_NESTING - 1));
    let text = format!("webnn_graph \"g\" v1 {{\n  nodes {{\n    y = {ok};\n  }}\n}}\n");
    assert_eq!(print(&parse(&text).unwrap()), text);
}

#[test]
fn huge_dimensions_are_graph_errors() {
    let text = with_nodes("    x: f32[4294967295, 4294967295, 4294967295];\n", "    y = relu(x);\n", "y;");
    let e = graph_err(&text);
    assert!(matches!(&e, TextError::Invalid { pos, .. } if *pos == Pos::new(3, 5)), "{e}");
    assert!(e.to_string().contains("exceeds"), "{e}");
    let text = with_nodes("    x: f32[65536, 65536];\n", "    y = reshape(x, [4294967295, 4294967295, 4294967295]);\n", "y;");
    assert!(graph_err(&text).to_string().starts_with("6:5: reshape: operand `newShape`"));
    let text = "webnn_graph \"g\" v1 {\n  consts {\n    c: f32[65536, 65536, 65536] @scalar(1.0);\n  }\n}\n";
    let e = graph_err(text);
    assert!(matches!(&e, TextError::Constant { name, .. } if name == "c"), "{e}");
}

#[test]
fn fuzzed_mutations_of_a_valid_file_never_panic() {
    let seed_doc = parse(EVERY_OP).unwrap();
    let weights = weights_for(&seed_doc);
    let original = EVERY_OP.as_bytes();
    let tokens: [&[u8]; 16] = [
        b"[", b"]", b"(", b")", b"-", b"1e999", b"99999999999999999999999999999999999999999", b"4294967295",
        b"\"", b"@scalar(", b"split(", b";", b"NaN", b"[[[[", b"0", b",",
    ];
    let spicy = b"{}[]();:=,@\"\\-.0123456789eE aZ_\n#/";
    let mut rng = Lcg(0x5eed);
    let mut parsed = 0;
    let mut built = 0;
    for _ in 0..10_000 {
        let mut bytes = original.to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len());
            match rng.below(4) {
                0 => bytes[at] = spicy[rng.below(spicy.len())],
                1 => {
                    let end = (at + 1 + rng.below(8)).min(bytes.len());
                    bytes.drain(at..end);
                }
                2 => {
                    let end = (at + 1 + rng.below(16)).min(bytes.len());
                    let copy = bytes[at..end].to_vec();
                    let to = rng.below(bytes.len());
                    bytes.splice(to..to, copy);
                }
                _ => {
                    let t = tokens[rng.below(tokens.len())];
                    bytes.splice(at..at, t.iter().copied());
                }
            }
            if bytes.is_empty() {
                break;
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let Ok(doc) = parse(&text) else { continue };
        parsed += 1;
        // Printing is idempotent on whatever parsed.
        let printed = print(&doc);
        let reparsed = parse(&printed).unwrap_or_else(|e| panic!("{e}\n{printed}"));
        assert_eq!(print(&reparsed), printed);
        if let Ok(g) = to_graph(&doc, &weights) {
            built += 1;
            let again = graph_text(&g, "fuzz");
            parse(&again).unwrap_or_else(|e| panic!("{e}\n{again}"));
        }
    }
    // The loop exercised the later stages too, not only the lexer.
    assert!(parsed > 500 && built > 100, "parsed {parsed}, built {built}");
}

// ---------------------------------------------------------------------------
// Graph conversion

#[test]
fn spec_example_builds_its_graph() {
    let doc = parse(SPEC_EXAMPLE).unwrap();
    let g = to_graph(&doc, &weights_for(&doc)).unwrap();
    let outs: Vec<(&str, Vec<u32>)> =
        g.outputs().iter().map(|(n, id)| (n.as_str(), g.desc(*id).shape.dims().to_vec())).collect();
    assert_eq!(outs, [("probs", vec![1, 1000]), ("s0", vec![1, 500])]);
    // `eps` is unused but still a constant of the graph.
    assert!(g.operands().iter().any(|o| o.name.as_deref() == Some("eps")));
}

#[test]
fn every_op_graph_prints_back_to_the_same_text() {
    let doc = parse(EVERY_OP).unwrap();
    let g = to_graph(&doc, &weights_for(&doc)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(graph_text(&g, "every_op"), EVERY_OP);
    // Every operator of the table is exercised.
    let mut used: Vec<&str> = g.nodes().iter().map(|n| n.op.name()).collect();
    used.sort_unstable();
    used.dedup();
    assert_eq!(used, op_table::operator_names());
    // And the label reached the node.
    assert!(g.nodes().iter().any(|n| n.label == "stem \"conv\""));
}

#[test]
fn scalar_constants_fill_every_element() {
    let text = "webnn_graph \"g\" v1 {\n  consts {\n    a: f32[2, 2] @scalar(1.5);\n    b: i8[3] @scalar(-128);\n    \
        c: f16[] @scalar(0.1);\n    d: u32[2] @scalar(7.0);\n    e: f32[2] @scalar(3);\n  }\n}\n";
    let doc = parse(text).unwrap();
    // No outputs: convert the constants through a graph that has one.
    let mut doc2 = doc.clone();
    doc2.inputs = parse("webnn_graph \"g\" v1 { inputs { x: f32[1]; } }").unwrap().inputs;
    doc2.nodes = parse("webnn_graph \"g\" v1 { nodes { y = relu(x); } }").unwrap().nodes;
    doc2.outputs = parse("webnn_graph \"g\" v1 { outputs { y; } }").unwrap().outputs;
    let g = to_graph(&doc2, &BTreeMap::new()).unwrap();
    let value = |name: &str| -> Values {
        let o = g.operands().iter().find(|o| o.name.as_deref() == Some(name)).unwrap();
        match &o.kind {
            kiln_ir::OperandKind::Constant(t) => t.values(),
            _ => panic!(),
        }
    };
    assert_eq!(value("a"), Values::Float(vec![1.5; 4]));
    assert_eq!(value("b"), Values::Int(vec![-128; 3]));
    assert_eq!(value("c"), Values::Float(vec![half::f16::from_f64(0.1).to_f64()]));
    assert_eq!(value("d"), Values::Int(vec![7, 7]));
    assert_eq!(value("e"), Values::Float(vec![3.0, 3.0]));
    // The document without outputs is a graph error, not a panic.
    assert!(to_graph(&doc, &BTreeMap::new()).unwrap_err().to_string().contains("at least one output"));
}

#[test]
fn unknown_operators_are_reported_all_at_once() {
    let text = with_nodes(
        "    x: f32[2];\n",
        "    a = relu(x);\n    b = foo(a);\n    c = undefinedName(zzz);\n    d = bar(b, c);\n    e = foo(d);\n",
        "e;",
    );
    let e = graph_err(&text);
    let TextError::UnknownOperators(list) = &e else { panic!("{e}") };
    let names: Vec<(&str, Pos, usize)> = list.iter().map(|u| (u.name.as_str(), u.pos, u.uses)).collect();
    assert_eq!(names, [("foo", Pos::new(7, 9), 2), ("undefinedName", Pos::new(8, 9), 1), ("bar", Pos::new(9, 9), 1)]);
    assert_eq!(
        e.to_string(),
        "unknown operators: foo (line 7, column 9; 2 uses), undefinedName (line 8, column 9), bar (line 9, column 9)"
    );
}

#[test]
fn graph_errors_name_the_line_column_and_the_culprit() {
    let x = "    x: f32[2, 3];\n";
    // (inputs, nodes, outputs, expected error text)
    let cases: Vec<(&str, &str, &str, &str)> = vec![
        (x, "    y = relu(q);\n", "y;", "6:14: `q` is not defined"),
        (x, "    y = relu(z);\n    z = relu(x);\n", "z;", "6:14: `z` is used before its definition at 7:5"),
        (x, "    y = relu(x);\n    y = relu(x);\n", "y;", "7:5: `y` is already defined at 6:5"),
        (x, "    x = relu(x);\n", "x;", "6:5: `x` is already defined at 3:5"),
        ("    x: f32[2];\n    x: f32[3];\n", "    y = relu(x);\n", "y;", "4:5: `x` is already defined at 3:5"),
        (x, "    [a, a] = split(x, 2, axis=0);\n", "a;", "6:9: `a` is already defined at 6:6"),
        (x, "    y = relu(x);\n", "nope;", "8:13: output `nope` names nothing"),
        (x, "    y = relu(x);\n    k = [1, 2];\n", "k;", "9:13: output `k` names a literal value, not an operand"),
        (x, "    y = relu(x);\n", "y; y;", "8:16: output `y` is listed twice (first at 8:13)"),
        (x, "    y = relu(x);\n", "x;", "8:13: output `x`: an output must be computed by an operator, not be an input"),
        (x, "    y = split(x, 2, axis=0);\n", "y;", "6:5: split produces 2 outputs; bind them all with `[x0, x1] = split(...)`"),
        (x, "    [a, b, c] = split(x, 2, axis=0);\n", "a;", "6:5: split produces 2 outputs, but 3 names are bound"),
        (x, "    [a, b] = x;\n", "a;", "6:5: only an operator call can bind a list of names"),
        (x, "    y = softmax(x, axis=1, axis=0);\n", "y;", "6:28: `axis` is given twice"),
        (x, "    y = reshape(x, \"3x2\");\n", "y;", "6:5: reshape: argument `newShape`: expected a list of unsigned integers"),
        (x, "    y = add(x, 1.0);\n", "y;", "6:5: add: argument `b`: expected an operand"),
        (x, "    y = relu(x, x);\n", "y;", "6:5: relu: argument `(positional)`: too many positional arguments"),
        (x, "    y = softmax(x);\n", "y;", "6:5: softmax: argument `axis`: missing positional argument 2"),
        (x, "    y = conv2d(x, x, strides=[1]);\n", "y;", "6:5: conv2d: argument `strides`: expected 2 values, got 1"),
        (x, "    y = relu(x, alpha=1.0);\n", "y;", "6:5: relu: argument `alpha`: unknown option"),
        (x, "    y = matmul(x, x);\n", "y;", "6:5: matmul: operand `b`: dimension 2 (rows) does not match a's 3 (columns)"),
        (x, "    y = cast(x, \"float64\");\n", "y;", "6:5: cast: argument `type`: unknown data type \"float64\""),
        ("    x: i4[2];\n", "    y = relu(x);\n", "y;", "3:5: input `x`: data type i4 is not supported by kiln"),
        ("    x: f32[2, 0];\n", "    y = relu(x);\n", "y;", "3:5: input `x`: shape [2, 0] has a zero dimension"),
        (x, "", "", "1:1: build: at least one output is required"),
    ];
    for (inputs, nodes, outputs, expected) in cases {
        let text = with_nodes(inputs, nodes, outputs);
        let e = graph_err(&text).to_string();
        assert!(e.starts_with(expected), "{text}\ngot      {e}\nexpected {expected}");
    }
}

#[test]
fn constant_errors_name_the_constant() {
    let cases: Vec<(&str, &str)> = vec![
        ("    c: f32[2];\n", "3:5: constant `c`: no value annotation: add @weights(\"key\") or @scalar(value)"),
        ("    c: f32[2] @scalar(1.0) @scalar(2.0);\n", "3:5: constant `c`: 2 value annotations; expected exactly one"),
        ("    c: u8[2] @scalar(256);\n", "3:5: constant `c`: @scalar(256) is not an integer in the range of u8 (0..=255)"),
        ("    c: i32[] @scalar(1.5);\n", "3:5: constant `c`: @scalar(1.5) is not an integer in the range of i32"),
        ("    c: i32[] @scalar(NaN);\n", "3:5: constant `c`: @scalar(NaN) is not an integer"),
        ("    c: u4[2] @scalar(1);\n", "3:5: constant `c`: data type u4 is not supported by kiln"),
        ("    c: f32[2] @weights(\"missing\");\n", "3:5: constant `c`: no tensor \"missing\" in the in-memory weights"),
    ];
    for (decl, expected) in cases {
        let text = format!("webnn_graph \"g\" v1 {{\n  consts {{\n{decl}  }}\n}}\n");
        let doc = parse(&text).unwrap();
        let e = to_graph(&doc, &BTreeMap::new()).unwrap_err();
        assert!(matches!(&e, TextError::Constant { name, .. } if name == "c"), "{e}");
        assert!(e.to_string().starts_with(expected), "got      {e}\nexpected {expected}");
    }
    // A weights entry of another type or shape.
    let text = "webnn_graph \"g\" v1 {\n  consts {\n    c: f32[2, 3] @weights(\"c\");\n  }\n}\n";
    let mut weights = BTreeMap::new();
    weights.insert("c".to_string(), sample_tensor(&OperandDescriptor::new(DataType::Float16, [2, 3]), 1));
    let e = to_graph(&parse(text).unwrap(), &weights).unwrap_err();
    assert_eq!(e.to_string(), "3:5: constant `c`: declared f32[2, 3], but the weights \"c\" hold f16[2, 3]");
}

#[test]
fn from_graph_makes_names_valid_unique_and_deterministic() {
    let b = GraphBuilder::new();
    let x = b.input("input:0", OperandDescriptor::new(DataType::Float32, [2, 2])).unwrap();
    let y = b.input("y", OperandDescriptor::new(DataType::Float32, [2, 2])).unwrap();
    let w = b.constant_f32([2, 2], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    let nan = b.constant_f32([1], &[f32::NAN]).unwrap();
    let t = b.add(x, w).unwrap();
    b.set_name(t, "9lives").unwrap();
    let u = b.mul(t, nan).unwrap();
    b.set_name(u, "null").unwrap();
    let parts = b.split(u, Splits::Count(2), 0).unwrap();
    b.set_name(parts[1], "v4").unwrap();
    let v = b.relu(y).unwrap();
    let g = b.build(&[("y", v), ("out.a", parts[0]), ("again", parts[0])]).unwrap();
    let expected = r#"webnn_graph "names" v1 {
  inputs {
    input_0: f32[2, 2];
    y: f32[2, 2];
  }
  consts {
    v2: f32[2, 2] @weights("v2");
    v3: f32[1] @weights("v3");
  }
  nodes {
    _9lives = add(input_0, v2);
    null_ = mul(_9lives, v3);
    [out_a, v4] = split(null_, 2);
    y_1 = relu(y);
    again = out_a;
  }
  outputs { y_1; out_a; again; }
}
"#;
    let text = graph_text(&g, "names");
    assert_eq!(text, expected);
    // The text builds a graph that prints the same way again.
    let doc = parse(&text).unwrap();
    let mut weights = BTreeMap::new();
    for (k, id) in [("v2", 2usize), ("v3", 3)] {
        let kiln_ir::OperandKind::Constant(t) = &g.operands()[id].kind else { panic!() };
        weights.insert(k.to_string(), t.clone());
    }
    let g2 = to_graph(&doc, &weights).unwrap();
    assert_eq!(graph_text(&g2, "names"), expected);
}

// ---------------------------------------------------------------------------
// Weights sidecars

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// The in-memory weights of `SMALL`, with the key set it declares.
fn small_weights() -> BTreeMap<String, Tensor> {
    weights_for(&parse(SMALL).unwrap())
}

/// A safetensors file from a hand-written header and data.
fn safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn check_small(g: &Graph, weights: &BTreeMap<String, Tensor>) {
    assert_eq!(g.desc(g.outputs()[0].1).shape.dims(), &[2, 2]);
    for (name, key) in [("W", "W"), ("b", "b"), ("k", "k.with:odd/chars")] {
        let o = g.operands().iter().find(|o| o.name.as_deref() == Some(name)).unwrap();
        let kiln_ir::OperandKind::Constant(t) = &o.kind else { panic!() };
        assert_eq!(t.bytes(), weights[key].bytes(), "{name}");
    }
}

#[test]
fn loads_weights_from_name_safetensors() {
    let dir = temp_dir("st");
    let weights = small_weights();
    write(&dir, "small.webnn", SMALL);
    write(&dir, "small.safetensors", safetensors_bytes(&weights).unwrap());
    let g = load(&dir.join("small.webnn")).unwrap();
    check_small(&g, &weights);
    // No copy: `W` and `b` lie side by side in the data section (sorted keys,
    // contiguous), and their bytes lie side by side in memory too.
    let bytes_of = |name: &str| {
        let o = g.operands().iter().find(|o| o.name.as_deref() == Some(name)).unwrap();
        let kiln_ir::OperandKind::Constant(t) = &o.kind else { panic!() };
        t.bytes().as_ptr() as usize
    };
    assert_eq!(bytes_of("b") - bytes_of("W"), weights["W"].bytes().len());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn loads_weights_from_model_safetensors_and_prefers_the_named_file() {
    let dir = temp_dir("model-st");
    let weights = small_weights();
    write(&dir, "small.webnn", SMALL);
    write(&dir, "model.safetensors", safetensors_bytes(&weights).unwrap());
    check_small(&load(&dir.join("small.webnn")).unwrap(), &weights);
    // A NAME.safetensors wins over model.safetensors (here: an empty one).
    write(&dir, "small.safetensors", safetensors_bytes(&BTreeMap::new()).unwrap());
    let e = load(&dir.join("small.webnn")).unwrap_err();
    assert!(e.to_string().contains("no tensor \"W\" in") && e.to_string().contains("small.safetensors"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reads_a_hand_written_safetensors_file_with_metadata_and_padding() {
    let dir = temp_dir("st-hand");
    let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let header = r#"{"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}    "#;
    write(&dir, "t.safetensors", safetensors(header, &data));
    let f = SafeTensorsFile::open(&dir.join("t.safetensors")).unwrap();
    assert_eq!(f.tensor("a").unwrap().to_f32_vec(), [1.0, 2.0]);
    assert_eq!(f.tensor("b").unwrap().to_f32_vec(), [3.0, 4.0]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn loads_weights_from_a_blob_and_manifest() {
    let dir = temp_dir("blob");
    let weights = small_weights();
    let mut blob = Vec::new();
    let mut entries = Vec::new();
    for (key, t) in &weights {
        // Leave a gap before each tensor: byteOffset is honoured.
        blob.extend_from_slice(&[0xAA; 3]);
        entries.push(format!(
            "\"{key}\": {{\"dataType\": \"{}\", \"shape\": {:?}, \"byteOffset\": {}, \"byteLength\": {}}}",
            t.data_type().name(),
            t.shape().dims(),
            blob.len(),
            t.bytes().len()
        ));
        blob.extend_from_slice(t.bytes());
    }
    let manifest =
        format!("{{\"format\": \"webnn-weights-manifest\", \"version\": 1, \"tensors\": {{{}}}}}", entries.join(", "));
    write(&dir, "small.webnn", SMALL);
    write(&dir, "small.weights", &blob);
    write(&dir, "small.manifest.json", &manifest);
    check_small(&load(&dir.join("small.webnn")).unwrap(), &weights);
    // model.weights with manifest.json works too.
    std::fs::rename(dir.join("small.weights"), dir.join("model.weights")).unwrap();
    std::fs::rename(dir.join("small.manifest.json"), dir.join("manifest.json")).unwrap();
    check_small(&load(&dir.join("small.webnn")).unwrap(), &weights);
    // A blob without any manifest is an error naming the blob.
    std::fs::remove_file(dir.join("manifest.json")).unwrap();
    let e = load(&dir.join("small.webnn")).unwrap_err();
    assert!(matches!(&e, TextError::Weights(WeightError::Malformed { message, .. }) if message.starts_with("no manifest")), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn manifest_errors() {
    let dir = temp_dir("manifest");
    write(&dir, "w.weights", [0u8; 16]);
    let open = |manifest: &str| {
        write(&dir, "m.json", manifest);
        WeightsFile::open(&dir.join("w.weights"), &dir.join("m.json"))
    };
    let entry = |e: &str| format!("{{\"format\": \"webnn-weights-manifest\", \"version\": 1, \"tensors\": {{\"W\": {e}}}}}");
    let malformed = [
        ("not json", "not valid JSON"),
        ("{\"format\": \"other\", \"version\": 1, \"tensors\": {}}", "\"format\" must be"),
        ("{\"format\": \"webnn-weights-manifest\", \"version\": 2, \"tensors\": {}}", "\"version\" must be 1"),
        ("{\"format\": \"wg-weights-manifest\", \"version\": 1, \"endianness\": \"big\", \"tensors\": {}}", "\"endianness\""),
        ("{\"format\": \"webnn-weights-manifest\", \"version\": 1}", "\"tensors\" must be an object"),
        (&entry("{\"dataType\": \"float32\", \"shape\": [2]}"), "tensor \"W\": expected"),
        (&entry("{\"dataType\": \"float32\", \"shape\": [2], \"byteOffset\": 18446744073709551615, \"byteLength\": 8}"), "overflows"),
    ];
    for (manifest, message) in malformed {
        match open(manifest) {
            Err(WeightError::Malformed { message: m, .. }) => assert!(m.contains(message), "{m}"),
            Err(e) => panic!("{manifest}: {e}"),
            Ok(_) => panic!("{manifest}: expected an error"),
        }
    }
    // Entry errors surface when the tensor is looked up.
    let lookups = [
        ("{\"dataType\": \"float32\", \"shape\": [2], \"byteOffset\": 12, \"byteLength\": 8}", "byte range 12..20 lies outside the 16 bytes"),
        ("{\"dataType\": \"float32\", \"shape\": [3], \"byteOffset\": 0, \"byteLength\": 8}", "holds 8 bytes, but f32[3] needs 12"),
        ("{\"dataType\": \"int4\", \"shape\": [2], \"byteOffset\": 0, \"byteLength\": 1}", "data type int4 is not supported"),
        ("{\"dataType\": \"float32\", \"shape\": [4294967296], \"byteOffset\": 0, \"byteLength\": 8}", "does not fit in 32 bits"),
    ];
    for (e, message) in lookups {
        let f = open(&entry(e)).unwrap();
        match f.tensor("W") {
            Err(WeightError::Entry { key, message: m, .. }) => {
                assert_eq!(key, "W");
                assert!(m.contains(message), "{m}");
            }
            other => panic!("{e}: {other:?}"),
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn malformed_safetensors_headers_are_clear_errors() {
    let dir = temp_dir("st-bad");
    let path = dir.join("x.safetensors");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![1, 2, 3], "the file is 3 bytes long, too short for the 8-byte header length"),
        (safetensors("{}", &[]).into_iter().take(8).chain(*b"{").collect(), "runs past the end"),
        ([u64::MAX.to_le_bytes().as_slice(), b"{}"].concat(), "exceeds the 100000000-byte limit"),
        // The limit is the safetensors crate's: one byte more is too large, the limit itself is not.
        ([(MAX_SAFETENSORS_HEADER + 1).to_le_bytes().as_slice(), b"{}"].concat(), "exceeds the 100000000-byte limit"),
        ([MAX_SAFETENSORS_HEADER.to_le_bytes().as_slice(), b"{}"].concat(), "the header length 100000000 runs past the end"),
        (safetensors("{\"a\": ", &[]), "the header is not valid JSON"),
        (safetensors("[1, 2]", &[]), "the header is not a JSON object"),
        (safetensors("{\"__metadata__\": {\"n\": 1}}", &[]), "`__metadata__` must be an object of strings"),
        (safetensors("{\"a\": {\"dtype\": \"F32\", \"shape\": [1]}}", &[0; 4]), "tensor \"a\": expected"),
        (safetensors("{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", &[0; 4]), "tensor \"a\": expected"),
        (safetensors("{\"a\": {\"dtype\": \"Q4\", \"shape\": [1], \"data_offsets\": [0, 4]}}", &[0; 4]), "tensor \"a\": expected"),
        (safetensors("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 0]}}", &[0; 4]), "tensor \"a\": data_offsets [4,0]: the tensors must fill"),
        (safetensors("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", &[0; 8]), "tensor \"a\": data_offsets [4,12]"),
        (safetensors("{\"a\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", &[0; 8]), "tensor \"a\": holds 8 bytes, but F32[3] needs 12"),
        (safetensors("{\"a\": {\"dtype\": \"F4\", \"shape\": [3], \"data_offsets\": [0, 2]}}", &[0; 2]), "tensor \"a\": F4[3] is 12 bits"),
        (
            safetensors("{\"a\": {\"dtype\": \"U8\", \"shape\": [4294967296, 4294967296, 4294967296, 4294967296, 4294967296], \"data_offsets\": [0, 2]}}", &[0; 2]),
            "tensor \"a\": the size of U8[4294967296, 4294967296, 4294967296, 4294967296, 4294967296] overflows",
        ),
        // Gaps and bytes after the last tensor (the format allows neither).
        (
            safetensors(
                "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, \"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]}}",
                &[0; 12],
            ),
            "tensor \"b\": data_offsets [8,12]",
        ),
        (safetensors("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", &[0; 8]), "the tensors end at byte 4 of the 8-byte data section"),
        (
            safetensors(
                "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
                &[0; 12],
            ),
            "tensor \"b\": data_offsets [4,12]",
        ),
    ];
    for (bytes, message) in cases {
        std::fs::write(&path, &bytes).unwrap();
        match SafeTensorsFile::open(&path) {
            Err(WeightError::Malformed { message: m, path: p }) => {
                assert!(m.contains(message), "{m}");
                assert_eq!(p, path);
            }
            Err(e) => panic!("{message}: {e}"),
            Ok(_) => panic!("{message}: expected an error"),
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn safetensors_entry_errors_name_the_constant() {
    let dir = temp_dir("st-entry");
    let graph = "webnn_graph \"g\" v1 {\n  inputs {\n    x: f32[2];\n  }\n  consts {\n    W: f32[2] @weights(\"wkey\");\n  }\n  \
        nodes {\n    y = add(x, W);\n  }\n  outputs { y; }\n}\n";
    write(&dir, "g.webnn", graph);
    let cases = [
        ("{\"wkey\": {\"dtype\": \"F16\", \"shape\": [4], \"data_offsets\": [0, 8]}}", "declared f32[2], but the weights \"wkey\" hold f16[4]"),
        ("{\"wkey\": {\"dtype\": \"BF16\", \"shape\": [4], \"data_offsets\": [0, 8]}}", "data type BF16 is not supported by kiln"),
        ("{\"other\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", "no tensor \"wkey\" in"),
    ];
    for (header, message) in cases {
        write(&dir, "g.safetensors", safetensors(header, &[0; 8]));
        let e = load(&dir.join("g.webnn")).unwrap_err();
        let TextError::Constant { pos, name, message: m } = &e else { panic!("{e}") };
        assert_eq!((pos.line, pos.col, name.as_str()), (6, 5, "W"));
        assert!(m.contains(message), "{e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_sidecar_lists_the_files_tried_and_is_not_needed_without_weights() {
    let dir = temp_dir("none");
    write(&dir, "small.webnn", SMALL);
    let e = load(&dir.join("small.webnn")).unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with("6:5: constant `W`: no weights file for tensor \"W\": looked for "), "{text}");
    for f in ["small.safetensors", "model.safetensors", "small.weights", "model.weights"] {
        assert!(text.contains(f), "{text}");
    }
    // A graph without @weights loads even next to a broken sidecar.
    write(&dir, "plain.webnn", with_nodes("    x: f32[2];\n", "    y = relu(x);\n", "y;"));
    write(&dir, "model.safetensors", b"garbage");
    assert!(load(&dir.join("plain.webnn")).is_ok());
    assert!(matches!(Sidecar::find(&dir.join("plain.webnn")), Err(WeightError::Malformed { .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn load_reports_missing_and_non_utf8_files() {
    let dir = temp_dir("io");
    assert!(matches!(load(&dir.join("absent.webnn")), Err(TextError::Io { .. })));
    write(&dir, "bad.webnn", [0xff, 0xfe, 0x00]);
    let e = load(&dir.join("bad.webnn")).unwrap_err();
    assert!(e.to_string().contains("not UTF-8"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------
// Save and load

#[test]
fn save_load_save_is_byte_identical() {
    let dir = temp_dir("save");
    let doc = parse(EVERY_OP).unwrap();
    let g = to_graph(&doc, &weights_for(&doc)).unwrap();
    let first = dir.join("every_op.webnn");
    kiln_frontend::webnn_text::save(&g, &first).unwrap();
    assert_eq!(std::fs::read_to_string(&first).unwrap(), EVERY_OP);
    let loaded = load(&first).unwrap();
    let second_dir = dir.join("again");
    std::fs::create_dir_all(&second_dir).unwrap();
    let second = second_dir.join("every_op.webnn");
    kiln_frontend::webnn_text::save(&loaded, &second).unwrap();
    for f in ["every_op.webnn", "every_op.safetensors"] {
        assert_eq!(std::fs::read(dir.join(f)).unwrap(), std::fs::read(second_dir.join(f)).unwrap(), "{f}");
    }
    // The loaded constants are the saved ones.
    for (a, b) in g.operands().iter().zip(loaded.operands()) {
        if let (kiln_ir::OperandKind::Constant(x), kiln_ir::OperandKind::Constant(y)) = (&a.kind, &b.kind) {
            assert_eq!(x.desc(), y.desc());
            assert_eq!(x.bytes(), y.bytes());
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn save_load_round_trips_a_built_graph_with_awkward_names() {
    let dir = temp_dir("save-built");
    let b = GraphBuilder::new();
    let x = b.input("x", OperandDescriptor::new(DataType::Float16, [2, 3])).unwrap();
    let w = b.constant(OperandDescriptor::new(DataType::Float16, [3]), vec![0, 60, 0, 188, 255, 127]).unwrap();
    let nan = b.constant(OperandDescriptor::new(DataType::Float16, []), vec![1, 126]).unwrap();
    let s = b.constant_scalar(DataType::Float16, Number::Float(0.1)).unwrap();
    let y = b.add(x, w).unwrap();
    let z = b.mul(y, nan).unwrap();
    let z = b.sub(z, s).unwrap();
    let g = b.build(&[("x", z), ("odd name", z)]).unwrap();
    let path = dir.join("built.webnn");
    kiln_frontend::webnn_text::save(&g, &path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("v2: f16[] @weights(\"v2\");"), "NaN scalars keep their bits in the sidecar:\n{text}");
    assert!(text.contains("v3: f16[] @scalar(0.0999755859375);"), "{text}");
    let loaded = load(&path).unwrap();
    assert_eq!(graph_text(&loaded, "built"), text);
    let names: Vec<&str> = loaded.outputs().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["x_1", "odd_name"]);
    for (a, b) in g.operands().iter().zip(loaded.operands()) {
        if let (kiln_ir::OperandKind::Constant(x), kiln_ir::OperandKind::Constant(y)) = (&a.kind, &b.kind) {
            assert_eq!(x.bytes(), y.bytes());
        }
    }
    let again = dir.join("again");
    std::fs::create_dir_all(&again).unwrap();
    kiln_frontend::webnn_text::save(&loaded, &again.join("built.webnn")).unwrap();
    for f in ["built.webnn", "built.safetensors"] {
        assert_eq!(std::fs::read(dir.join(f)).unwrap(), std::fs::read(again.join(f)).unwrap(), "{f}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn safetensors_bytes_are_sorted_by_element_size_padded_and_contiguous() {
    let mut tensors = BTreeMap::new();
    tensors.insert("b".to_string(), Tensor::from_f32([1], &[2.0]).unwrap());
    tensors.insert("a".to_string(), Tensor::from_bytes(OperandDescriptor::new(DataType::Uint8, [3]), vec![7, 8, 9]).unwrap());
    let bytes = safetensors_bytes(&tensors).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(n % 8, 0);
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    assert_eq!(
        header.trim_end(),
        r#"{"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"U8","shape":[3],"data_offsets":[4,7]}}"#
    );
    // Wider elements first: the f32 data starts at a multiple of 8 in the file.
    assert_eq!(&bytes[8 + n..], &[0, 0, 0, 64, 7, 8, 9]);
    assert_eq!(safetensors_bytes(&BTreeMap::new()).unwrap(), [8, 0, 0, 0, 0, 0, 0, 0, b'{', b'}', b' ', b' ', b' ', b' ', b' ', b' ']);
}
