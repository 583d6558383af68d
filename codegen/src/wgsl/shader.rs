//! One kernel to WGSL text (the module documentation of `wgsl` states the
//! memory and work contracts).

use std::collections::BTreeSet;
use std::fmt::Write;

use kiln_ir::kernel::{Access, BinaryFn, BufferId, Combine, Expr, ExprNode, Kernel, Program, UnaryFn};
use kiln_ir::DataType;

use super::library::{self, Helper};
use super::{Layout, Limits, Memory, Placement, WgslError, WORKGROUP_SIZE};

/// A kernel's shader before validation.
pub(super) struct Generated {
    pub source: String,
    /// The memories it binds, in binding order (each page by page).
    pub memories: Vec<Memory>,
    pub workgroups: [u32; 3],
}

/// The shader of kernel `k`, or `None` when its domain is empty.
pub(super) fn generate(
    program: &Program,
    layout: &Layout,
    k: usize,
    kernel: &Kernel,
    limits: &Limits,
) -> Result<Option<Generated>, WgslError> {
    let (_, written) = kernel.reads_writes();
    let out_type = program.buffer(written[0]).data_type;
    let mut w = Writer {
        program,
        layout,
        body: String::new(),
        shared: String::new(),
        indent: 1,
        helpers: BTreeSet::new(),
        atomic: out_type.byte_size() < 4,
        used: BTreeSet::from([Memory::Arena]),
        quads: BTreeSet::new(),
        fresh: 0,
    };
    // Tiled GEMMs choose their own workgroups; everything else is one
    // invocation per output element.
    if let Kernel::Gemm { domain, a, b, epilogue_inputs, epilogue, out } = kernel
        && let Some(tiles) = super::gemm::tiles(domain, limits)
    {
        w.gemm_tiled(domain, a, b, epilogue_inputs, epilogue, out);
        return Ok(Some(assemble(k, kernel, layout, w, Grid::Tiles(tiles))));
    }
    let invocations: u64 = match kernel {
        Kernel::Map { domain, inputs, expr, out } => {
            let n = count(domain);
            if n > 0 {
                w.map(domain, inputs, expr, out);
            }
            n
        }
        Kernel::Reduce { domain, reduced, inputs, element, combine, finish, finish_inputs, out } => {
            let kept = &domain[..domain.len() - reduced];
            let n = count(kept);
            if n > 0 {
                w.reduce(domain, *reduced, inputs, element, *combine, finish, finish_inputs, out);
            }
            n
        }
        Kernel::Gemm { domain, a, b, epilogue_inputs, epilogue, out } => {
            let n = count(&domain[..domain.len() - 1]);
            if n > 0 {
                w.gemm(domain, a, b, epilogue_inputs, epilogue, out);
            }
            n
        }
        &Kernel::Gather { outer, axis_len, inner, input, indices, index_count, out } => {
            let n = (outer * index_count * inner) as u64;
            if n > 0 {
                w.gather(outer, axis_len, inner, input, indices, index_count, out);
            }
            n
        }
        Kernel::Host(_) => unreachable!("compile gives host kernels no shader"),
    };
    if invocations == 0 {
        return Ok(None);
    }
    let groups = invocations.div_ceil(u64::from(WORKGROUP_SIZE));
    let max = u64::from(limits.max_compute_workgroups_per_dimension);
    let x = groups.min(max);
    let y = groups.div_ceil(x);
    if y > max || invocations > u64::from(u32::MAX) {
        return Err(WgslError::Limit(format!("kernel {k} has {invocations} invocations, more than one dispatch holds")));
    }
    let grid = Grid::Flat { invocations, x: x as u32, y: y as u32 };
    Ok(Some(assemble(k, kernel, layout, w, grid)))
}

/// How a shader's invocations cover its kernel.
enum Grid {
    /// One invocation per element: `flat` counts them, past `invocations`
    /// they return; `x` by `y` workgroups.
    Flat { invocations: u64, x: u32, y: u32 },
    /// The kernel's own workgroup grid (its body reads `wg` and `li`).
    Tiles([u32; 3]),
}

/// The whole shader: bindings, paged accessors, library functions,
/// workgroup memory and the entry point around the body.
fn assemble(k: usize, kernel: &Kernel, layout: &Layout, w: Writer, grid: Grid) -> Generated {
    let memories: Vec<Memory> = w.used.iter().copied().collect();
    let mut source = String::new();
    let _ = writeln!(source, "// kernel {k}: {}", kernel.kind());
    let mut binding = 0;
    let mut accessors = String::new();
    for &m in &memories {
        let ty = if m == Memory::Arena && w.atomic {
            "array<atomic<u32>>"
        } else if w.quads.contains(&m) {
            "array<vec4<u32>>"
        } else {
            "array<u32>"
        };
        let access = if m == Memory::Arena { "read_write" } else { "read" };
        let pages = layout.pages(m);
        for page in 0..pages {
            let name = if pages == 1 { m.name() } else { format!("{}_p{page}", m.name()) };
            let _ = writeln!(source, "@group(0) @binding({binding}) var<storage, {access}> {name}: {ty};");
            binding += 1;
        }
        if pages > 1 {
            accessors.push_str(&paged_accessors(m, pages, layout.page_bytes / 4, m == Memory::Arena, w.atomic));
        }
    }
    if !accessors.is_empty() {
        source.push('\n');
        source.push_str(&accessors);
    }
    let helpers = library::sources(&w.helpers);
    if !helpers.is_empty() {
        source.push('\n');
        source.push_str(&helpers);
    }
    if !w.shared.is_empty() {
        source.push('\n');
        source.push_str(&w.shared);
    }
    let _ = writeln!(source, "\n@compute @workgroup_size({WORKGROUP_SIZE})");
    let _ = writeln!(
        source,
        "fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {{"
    );
    let workgroups = match grid {
        Grid::Flat { invocations, x, y } => {
            let _ = writeln!(source, "    let flat = (wg.y * {x}u + wg.x) * {WORKGROUP_SIZE}u + li;");
            let _ = writeln!(source, "    if (flat >= {invocations}u) {{ return; }}");
            [x, y, 1]
        }
        Grid::Tiles(tiles) => tiles,
    };
    source.push_str(&w.body);
    source.push_str("}\n");
    Generated { source, memories, workgroups }
}

/// The functions through which a memory bound as `pages` pages of
/// `page_words` words is read (`rd_<name>`) and, for the arena, written
/// (`wr_arena`; with atomics also `and_arena`, `or_arena`), by word index.
fn paged_accessors(m: Memory, pages: u64, page_words: u64, writable: bool, atomic: bool) -> String {
    let name = m.name();
    let mut s = String::new();
    let dispatch = |s: &mut String, signature: &str, body: &dyn Fn(&str) -> String| {
        let _ = writeln!(s, "fn {signature} {{");
        for page in 0..pages {
            let local = if page == 0 { "w".to_string() } else { format!("w - {}", page * page_words) };
            let target = format!("{name}_p{page}[{local}]");
            if page + 1 < pages {
                let _ = writeln!(s, "    if (w < {}) {{ {} }}", (page + 1) * page_words, body(&target));
            } else {
                let _ = writeln!(s, "    {}", body(&target));
            }
        }
        s.push_str("}\n");
    };
    let load = |t: &str| if atomic && writable { format!("return atomicLoad(&{t});") } else { format!("return {t};") };
    dispatch(&mut s, &format!("rd_{name}(w: i32) -> u32"), &load);
    if writable {
        if atomic {
            dispatch(&mut s, &format!("wr_{name}(w: i32, v: u32)"), &|t| format!("atomicStore(&{t}, v); return;"));
            dispatch(&mut s, &format!("and_{name}(w: i32, v: u32)"), &|t| format!("atomicAnd(&{t}, v); return;"));
            dispatch(&mut s, &format!("or_{name}(w: i32, v: u32)"), &|t| format!("atomicOr(&{t}, v); return;"));
        } else {
            dispatch(&mut s, &format!("wr_{name}(w: i32, v: u32)"), &|t| format!("{t} = v; return;"));
        }
    }
    s
}

fn count(extents: &[usize]) -> u64 {
    extents.iter().map(|&d| d as u64).product()
}

/// An f32 literal that reads back as exactly `x`. Infinities and NaN are
/// not constant expressions in WGSL: they come from `f32_bits`. Subnormals,
/// and values whose shortest decimal lies beyond f32's largest finite value
/// (which some compilers reject), are bit patterns.
pub(super) fn lit(x: f32) -> String {
    let decimal = format!("{x:?}");
    let in_range = decimal.parse::<f64>().is_ok_and(|d| d.abs() <= f64::from(f32::MAX));
    if x.is_finite() && (x == 0.0 || x.is_normal()) && in_range {
        if x.is_sign_negative() { format!("({decimal}f)") } else { format!("{decimal}f") }
    } else if x.is_finite() {
        format!("bitcast<f32>({:#010x}u)", x.to_bits())
    } else {
        format!("f32_bits({:#010x}u)", x.to_bits())
    }
}

/// `c + Σ coef * name` as an i32 expression (a bare name or literal when
/// that is all it is).
pub(super) fn affine(constant: i64, terms: &[(i64, &str)]) -> String {
    let mut s = String::new();
    let mut count = 0;
    for &(c, name) in terms {
        if c == 0 || name == "0" {
            continue;
        }
        count += 1;
        let (sign, magnitude) = if c < 0 { ("-", -c) } else { ("+", c) };
        let _ = match (s.is_empty(), magnitude) {
            (true, 1) => write!(s, "{}{name}", if c < 0 { "-" } else { "" }),
            (true, m) => write!(s, "{name} * {}", if c < 0 { -m } else { m }),
            (false, 1) => write!(s, " {sign} {name}"),
            (false, m) => write!(s, " {sign} {name} * {m}"),
        };
    }
    match (s.is_empty(), constant) {
        (true, c) => c.to_string(),
        (false, 0) if count == 1 && !s.starts_with('-') && !s.contains(' ') => s,
        (false, 0) => format!("({s})"),
        (false, c) if c < 0 => format!("({s} - {})", -c),
        (false, c) => format!("({s} + {c})"),
    }
}

/// `base + elem`, without a zero base.
fn plus(base: u64, elem: &str) -> String {
    if base == 0 { elem.to_string() } else { format!("{base} + {elem}") }
}

/// Raw element bits: one word, two words (low, high), or a narrow value in
/// the low bits of a word.
enum Bits {
    Word(String),
    Pair(String, String),
    Narrow(String),
}

pub(super) struct Writer<'a> {
    program: &'a Program,
    layout: &'a Layout,
    body: String,
    /// Module-scope `var<workgroup>` declarations.
    pub(super) shared: String,
    pub(super) indent: usize,
    helpers: BTreeSet<Helper>,
    /// The arena is `array<atomic<u32>>` (the kernel writes narrow elements).
    atomic: bool,
    /// The memories the shader reads or writes (a binding it declared but
    /// never used would be left out of the pipeline's layout).
    pub(super) used: BTreeSet<Memory>,
    /// Read-only memories declared `array<vec4<u32>>` (a tiled GEMM reads
    /// its constant operand four words at a time); their single words are
    /// components.
    pub(super) quads: BTreeSet<Memory>,
    fresh: usize,
}

impl Writer<'_> {
    pub(super) fn line(&mut self, s: impl AsRef<str>) {
        if s.as_ref().contains("f32_bits(") {
            self.helpers.insert(Helper::F32Bits);
        }
        for _ in 0..self.indent {
            self.body.push_str("    ");
        }
        self.body.push_str(s.as_ref());
        self.body.push('\n');
    }

    pub(super) fn name(&mut self, prefix: &str) -> String {
        self.fresh += 1;
        format!("{prefix}{}", self.fresh)
    }

    fn use_helper(&mut self, h: Helper) {
        self.helpers.insert(h);
    }

    pub(super) fn placement(&self, b: BufferId) -> Placement {
        self.layout.buffers[b.0 as usize]
    }

    pub(super) fn data_type(&self, b: BufferId) -> DataType {
        self.program.buffer(b).data_type
    }

    /// Index variables `i{a}` for the axes `axes` of `domain` from `flat`
    /// over `domain[..outer]` (the leading axes); axes of extent 1 are "0".
    pub(super) fn decompose(&mut self, domain: &[usize]) -> Vec<String> {
        let mut names = vec!["0".to_string(); domain.len()];
        let mut stride = 1u64;
        let outermost = domain.iter().position(|&d| d > 1);
        for a in (0..domain.len()).rev() {
            let d = domain[a] as u64;
            if d > 1 {
                let q = if stride == 1 { "flat".to_string() } else { format!("(flat / {stride}u)") };
                let v = if Some(a) == outermost { q } else { format!("{q} % {d}u") };
                self.line(format!("let i{a} = i32({v});"));
                names[a] = format!("i{a}");
            }
            stride *= d;
        }
        names
    }

    /// Where `access` points at index `idx` of `domain`: the condition under
    /// which it reads memory (`None`: always) and the element offset.
    pub(super) fn locate(&mut self, a: &Access, domain: &[usize], idx: &[String]) -> (Option<String>, String) {
        let terms = |coef: &[isize]| -> Vec<(i64, &str)> {
            coef.iter().zip(idx).map(|(&c, n)| (c as i64, n.as_str())).collect()
        };
        if a.guard.is_none() {
            let (offset, per_axis) = a.linear(domain.len());
            return (None, affine(offset as i64, &terms(&per_axis)));
        }
        let strides = a.strides();
        let mut conditions = Vec::new();
        let mut offset_terms: Vec<(i64, String)> = Vec::new();
        for (j, &stride) in strides.iter().enumerate() {
            let (lo, hi) = a.coordinate_range(j, domain);
            let value = affine(a.base[j] as i64, &terms(&a.coef[j]));
            if let Ok(at) = value.parse::<i64>() {
                // A constant coordinate is decided here: outside the tensor
                // the access never reads (and naga refuses a constant
                // negative index even in a branch that never runs).
                if at < 0 || at >= a.shape[j] as i64 {
                    return (Some("false".to_string()), "0".to_string());
                }
                offset_terms.push((stride as i64, value));
                continue;
            }
            let simple = value.chars().all(|c| c.is_ascii_alphanumeric());
            let name = if simple {
                value
            } else {
                let n = self.name("co");
                self.line(format!("let {n} = {value};"));
                n
            };
            if lo < 0 {
                conditions.push(format!("{name} >= 0"));
            }
            if hi >= a.shape[j] as isize {
                conditions.push(format!("{name} < {}", a.shape[j]));
            }
            offset_terms.push((stride as i64, name));
        }
        let borrowed: Vec<(i64, &str)> = offset_terms.iter().map(|(c, n)| (*c, n.as_str())).collect();
        let constant: i64 = borrowed.iter().filter_map(|(c, n)| n.parse::<i64>().ok().map(|v| c * v)).sum();
        let variable: Vec<(i64, &str)> = borrowed.into_iter().filter(|(_, n)| n.parse::<i64>().is_err()).collect();
        let cond = (!conditions.is_empty()).then(|| conditions.join(" && "));
        (cond, affine(constant, &variable))
    }

    pub(super) fn paged(&self, memory: Memory) -> bool {
        self.layout.pages(memory) > 1
    }

    pub(super) fn read_word(&mut self, memory: Memory, word: &str) -> String {
        self.used.insert(memory);
        if self.quads.contains(&memory) {
            let w = self.name("q");
            self.line(format!("let {w} = {word};"));
            format!("{}[{w} >> 2u][{w} & 3]", memory.name())
        } else if self.paged(memory) {
            format!("rd_{}({word})", memory.name())
        } else if memory == Memory::Arena && self.atomic {
            format!("atomicLoad(&arena[{word}])")
        } else {
            format!("{}[{word}]", memory.name())
        }
    }

    /// The raw bits of element `elem` of buffer `b`.
    fn read_bits(&mut self, b: BufferId, elem: &str) -> Bits {
        let p = self.placement(b);
        let size = self.data_type(b).byte_size();
        match size {
            4 => Bits::Word(self.read_word(p.memory, &plus(p.offset / 4, elem))),
            8 => {
                let w = self.name("w");
                self.line(format!("let {w} = {};", plus(p.offset / 4, &format!("2 * {elem}"))));
                Bits::Pair(self.read_word(p.memory, &w), self.read_word(p.memory, &format!("{w} + 1")))
            }
            _ => {
                let byte = self.name("b");
                self.line(format!("let {byte} = {};", plus(p.offset, &format!("{size} * {elem}"))));
                let word = self.read_word(p.memory, &format!("{byte} >> 2u"));
                Bits::Narrow(format!("extractBits({word}, u32({byte} & 3) * 8u, {}u)", size * 8))
            }
        }
    }

    /// Element `elem` of buffer `b` converted to f32 (`load_f32`).
    fn load(&mut self, b: BufferId, elem: &str) -> String {
        let t = self.data_type(b);
        let bits = self.read_bits(b, elem);
        match (t, bits) {
            (DataType::Float32, Bits::Word(w)) => format!("bitcast<f32>({w})"),
            (DataType::Int32, Bits::Word(w)) => format!("f32(bitcast<i32>({w}))"),
            (DataType::Uint32, Bits::Word(w)) => format!("f32({w})"),
            (DataType::Int64, Bits::Pair(lo, hi)) => {
                self.use_helper(Helper::I64ToF32);
                format!("i64_to_f32({lo}, {hi})")
            }
            (DataType::Uint64, Bits::Pair(lo, hi)) => {
                self.use_helper(Helper::U64ToF32);
                format!("u64_to_f32({lo}, {hi})")
            }
            (DataType::Float16, Bits::Narrow(v)) => {
                self.use_helper(Helper::F16ToF32);
                format!("f16_to_f32({v})")
            }
            (DataType::Int8, Bits::Narrow(v)) => format!("f32(i32({v} << 24u) >> 24u)"),
            (DataType::Uint8, Bits::Narrow(v)) => format!("f32({v})"),
            _ => unreachable!("element sizes match their types"),
        }
    }

    /// Emits the load of input `a` at `idx` into a new f32 variable (its
    /// fill where the guard fails) and returns the variable and whether the
    /// guard passed (`None`: always).
    pub(super) fn load_input(&mut self, a: &Access, domain: &[usize], idx: &[String]) -> (String, Option<String>) {
        let (cond, elem) = self.locate(a, domain, idx);
        let v = self.name("x");
        match &cond {
            None => {
                let value = self.load(a.buffer, &elem);
                self.line(format!("let {v} = {value};"));
            }
            Some(c) => {
                let fill = lit(a.guard.unwrap_or(0.0));
                self.line(format!("var {v} = {fill};"));
                self.line(format!("if ({c}) {{"));
                self.indent += 1;
                let value = self.load(a.buffer, &elem);
                self.line(format!("{v} = {value};"));
                self.indent -= 1;
                self.line("}");
            }
        }
        (v, cond)
    }

    fn write_word(&mut self, word: &str, value: &str) {
        if self.paged(Memory::Arena) {
            self.line(format!("wr_arena({word}, {value});"));
        } else if self.atomic {
            self.line(format!("atomicStore(&arena[{word}], {value});"));
        } else {
            self.line(format!("arena[{word}] = {value};"));
        }
    }

    /// Stores raw bits as element `elem` of output buffer `b`.
    fn write_bits(&mut self, b: BufferId, elem: &str, bits: Bits) {
        let p = self.placement(b);
        debug_assert_eq!(p.memory, Memory::Arena, "outputs live in the arena");
        let size = self.data_type(b).byte_size();
        match bits {
            Bits::Word(v) => self.write_word(&plus(p.offset / 4, elem), &v),
            Bits::Pair(lo, hi) => {
                let w = self.name("w");
                self.line(format!("let {w} = {};", plus(p.offset / 4, &format!("2 * {elem}"))));
                self.write_word(&w, &lo);
                self.write_word(&format!("{w} + 1"), &hi);
            }
            Bits::Narrow(v) => {
                let byte = self.name("b");
                self.line(format!("let {byte} = {};", plus(p.offset, &format!("{size} * {elem}"))));
                let shift = self.name("s");
                self.line(format!("let {shift} = u32({byte} & 3) * 8u;"));
                let mask = format!("({:#x}u << {shift})", (1u64 << (size * 8)) - 1);
                if self.paged(Memory::Arena) {
                    self.line(format!("and_arena({byte} >> 2u, ~{mask});"));
                    self.line(format!("or_arena({byte} >> 2u, ({v} << {shift}) & {mask});"));
                } else {
                    self.line(format!("atomicAnd(&arena[{byte} >> 2u], ~{mask});"));
                    self.line(format!("atomicOr(&arena[{byte} >> 2u], ({v} << {shift}) & {mask});"));
                }
            }
        }
    }

    /// Stores f32 `value` as element `elem` of buffer `b` (`store_f32`).
    pub(super) fn store(&mut self, b: BufferId, elem: &str, value: &str) {
        let bits = match self.data_type(b) {
            DataType::Float32 => Bits::Word(format!("bitcast<u32>({value})")),
            DataType::Int32 => {
                self.use_helper(Helper::F32ToI32);
                Bits::Word(format!("bitcast<u32>(f32_to_i32({value}))"))
            }
            DataType::Uint32 => {
                self.use_helper(Helper::F32ToU32);
                Bits::Word(format!("f32_to_u32({value})"))
            }
            t @ (DataType::Int64 | DataType::Uint64) => {
                let (h, f) = if t == DataType::Int64 {
                    (Helper::F32ToI64, "f32_to_i64")
                } else {
                    (Helper::F32ToU64, "f32_to_u64")
                };
                self.use_helper(h);
                let pair = self.name("p");
                self.line(format!("let {pair} = {f}({value});"));
                Bits::Pair(format!("{pair}.x"), format!("{pair}.y"))
            }
            DataType::Float16 => {
                self.use_helper(Helper::F32ToF16);
                Bits::Narrow(format!("f32_to_f16({value})"))
            }
            DataType::Int8 => {
                self.use_helper(Helper::F32ToI32);
                Bits::Narrow(format!("bitcast<u32>(clamp(f32_to_i32({value}), -128, 127))"))
            }
            DataType::Uint8 => {
                self.use_helper(Helper::F32ToU32);
                Bits::Narrow(format!("min(f32_to_u32({value}), 255u)"))
            }
        };
        self.write_bits(b, elem, bits);
    }

    /// Emits `expr` (node `i` as `{prefix}{i}`) and returns the result's
    /// name; `load(self, n)` emits input `n`'s load and names its value.
    /// `prefix` followed by digits must never spell a WGSL type (`f` would
    /// give `f16` and `f32`, `i` `i32`, `u` `u32`).
    pub(super) fn expr(
        &mut self,
        e: &Expr,
        prefix: &str,
        acc: &str,
        count: &str,
        load: &mut dyn FnMut(&mut Self, u32) -> String,
    ) -> String {
        let v = |id: kiln_ir::kernel::ValueId| format!("{prefix}{}", id.0);
        for (i, node) in e.nodes.iter().enumerate() {
            let rhs = match *node {
                ExprNode::Load(n) => load(self, n),
                ExprNode::Const(c) => lit(c),
                ExprNode::Acc => acc.to_string(),
                ExprNode::Count => count.to_string(),
                ExprNode::Unary(f, a) => self.unary(f, &v(a)),
                ExprNode::Binary(f, a, b) => self.binary(f, &v(a), &v(b)),
                ExprNode::Select(c, a, b) => {
                    format!("select({}, {}, (bitcast<u32>({}) & 0x7fffffffu) != 0u)", v(b), v(a), v(c))
                }
            };
            self.line(format!("let {prefix}{i}: f32 = {rhs};"));
        }
        format!("{prefix}{}", e.nodes.len() - 1)
    }

    fn unary(&mut self, f: UnaryFn, x: &str) -> String {
        let call = |w: &mut Self, h: Helper, name: &str| {
            w.use_helper(h);
            format!("{name}({x})")
        };
        match f {
            UnaryFn::Abs => format!("abs({x})"),
            UnaryFn::Neg => format!("-{x}"),
            UnaryFn::Ceil => format!("ceil({x})"),
            UnaryFn::Floor => format!("floor({x})"),
            // WGSL's round() rounds ties to even.
            UnaryFn::RoundEven => format!("round({x})"),
            UnaryFn::Sqrt => format!("sqrt({x})"),
            UnaryFn::Trunc => format!("trunc({x})"),
            UnaryFn::Exp => call(self, Helper::Exp, "k_exp"),
            UnaryFn::Log => call(self, Helper::Log, "k_log"),
            UnaryFn::Erf => call(self, Helper::Erf, "k_erf"),
            UnaryFn::Tanh => call(self, Helper::Tanh, "k_tanh"),
            UnaryFn::Sin | UnaryFn::Cos | UnaryFn::Tan => {
                self.use_helper(Helper::Trig);
                let which = match f {
                    UnaryFn::Sin => 0,
                    UnaryFn::Cos => 1,
                    _ => 2,
                };
                format!("k_trig({x}, {which}u)")
            }
            UnaryFn::RoundF16 => {
                self.use_helper(Helper::F16ToF32);
                self.use_helper(Helper::F32ToF16);
                format!("f16_to_f32(f32_to_f16({x}))")
            }
        }
    }

    fn binary(&mut self, f: BinaryFn, a: &str, b: &str) -> String {
        let compare = |op: &str| format!("select(0.0, 1.0, {a} {op} {b})");
        match f {
            BinaryFn::Add => format!("{a} + {b}"),
            BinaryFn::Sub => format!("{a} - {b}"),
            BinaryFn::Mul => format!("{a} * {b}"),
            BinaryFn::Div => format!("{a} / {b}"),
            BinaryFn::Max => {
                self.use_helper(Helper::Maximum);
                format!("maximum({a}, {b})")
            }
            BinaryFn::Min => {
                self.use_helper(Helper::Minimum);
                format!("minimum({a}, {b})")
            }
            BinaryFn::Pow => {
                self.use_helper(Helper::Pow);
                format!("k_pow({a}, {b})")
            }
            BinaryFn::Equal => compare("=="),
            BinaryFn::Greater => compare(">"),
            BinaryFn::GreaterOrEqual => compare(">="),
            BinaryFn::Lesser => compare("<"),
            BinaryFn::LesserOrEqual => compare("<="),
        }
    }

    fn map(&mut self, domain: &[usize], inputs: &[Access], expr: &Expr, out: &Access) {
        let idx = self.decompose(domain);
        let (_, target) = self.locate(out, domain, &idx);
        let out_type = self.data_type(out.buffer);
        // A single load of the output's data type copies element bytes.
        if let [ExprNode::Load(n)] = expr.nodes.as_slice()
            && let Some(a) = inputs.get(*n as usize).filter(|a| self.data_type(a.buffer) == out_type)
        {
            let (cond, elem) = self.locate(a, domain, &idx);
            let Some(cond) = cond else {
                let bits = self.read_bits(a.buffer, &elem);
                self.write_bits(out.buffer, &target, bits);
                return;
            };
            self.line(format!("if ({cond}) {{"));
            self.indent += 1;
            let bits = self.read_bits(a.buffer, &elem);
            self.write_bits(out.buffer, &target, bits);
            self.indent -= 1;
            self.line("} else {");
            self.indent += 1;
            self.store(out.buffer, &target, &lit(a.guard.unwrap_or(0.0)));
            self.indent -= 1;
            self.line("}");
            return;
        }
        let result = self.expr(expr, "v", "0.0", "0.0", &mut |w, n| w.load_input(&inputs[n as usize], domain, &idx).0);
        self.store(out.buffer, &target, &result);
    }

    /// Opens `for` loops over `axes` of `domain` (names `i{a}`), returns the
    /// index names with the loop variables in place.
    fn open_loops(&mut self, domain: &[usize], axes: std::ops::Range<usize>, mut idx: Vec<String>) -> Vec<String> {
        for a in axes {
            // An extent of 0 is a loop too: it runs zero times.
            if domain[a] != 1 {
                self.line(format!("for (var i{a}: i32 = 0; i{a} < {}; i{a} = i{a} + 1) {{", domain[a]));
                self.indent += 1;
                idx.push(format!("i{a}"));
            } else {
                idx.push("0".into());
            }
        }
        idx
    }

    fn close_loops(&mut self, domain: &[usize], axes: std::ops::Range<usize>) {
        for a in axes {
            if domain[a] != 1 {
                self.indent -= 1;
                self.line("}");
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn reduce(
        &mut self,
        domain: &[usize],
        reduced: usize,
        inputs: &[Access],
        element: &Expr,
        combine: Combine,
        finish: &Expr,
        finish_inputs: &[Access],
        out: &Access,
    ) {
        let split = domain.len() - reduced;
        let kept = &domain[..split];
        let kept_idx = self.decompose(kept);
        self.line(format!("var acc: f32 = {};", lit(combine.identity())));
        let counts = finish.nodes.iter().any(|n| matches!(n, ExprNode::Count));
        let guarded = inputs.first().is_some_and(|a| a.guard.is_some());
        let count = if counts && guarded {
            self.line("var count: u32 = 0u;");
            "f32(count)".to_string()
        } else {
            lit(count(&domain[split..]) as f32)
        };
        let idx = self.open_loops(domain, split..domain.len(), kept_idx.clone());
        let mut first_cond: Option<Option<String>> = None;
        let value = self.expr(element, "e", "0.0", "0.0", &mut |w, n| {
            let (v, cond) = w.load_input(&inputs[n as usize], domain, &idx);
            if n == 0 {
                first_cond = Some(cond);
            }
            v
        });
        if counts && guarded {
            let cond = match first_cond {
                Some(c) => c,
                // Input 0 is not read by the element expression: locate it for the count.
                None => self.locate(&inputs[0], domain, &idx).0,
            };
            match cond {
                Some(c) => self.line(format!("if ({c}) {{ count = count + 1u; }}")),
                None => self.line("count = count + 1u;"),
            }
        }
        // A combination step is the binary function of the same meaning.
        let f = match combine {
            Combine::Sum => BinaryFn::Add,
            Combine::Product => BinaryFn::Mul,
            Combine::Max => BinaryFn::Max,
            Combine::Min => BinaryFn::Min,
        };
        let step = self.binary(f, "acc", &value);
        self.line(format!("acc = {step};"));
        self.close_loops(domain, split..domain.len());
        let result =
            self.expr(finish, "fin", "acc", &count, &mut |w, n| w.load_input(&finish_inputs[n as usize], kept, &kept_idx).0);
        let (_, target) = self.locate(out, kept, &kept_idx);
        self.store(out.buffer, &target, &result);
    }

    fn gemm(&mut self, domain: &[usize], a: &Access, b: &Access, epilogue_inputs: &[Access], epilogue: &Expr, out: &Access) {
        let split = domain.len() - 1;
        let outer = &domain[..split];
        let outer_idx = self.decompose(outer);
        self.line("var acc: f32 = 0.0;");
        let idx = self.open_loops(domain, split..domain.len(), outer_idx.clone());
        let (x, _) = self.load_input(a, domain, &idx);
        let (y, _) = self.load_input(b, domain, &idx);
        self.line(format!("acc = acc + {x} * {y};"));
        self.close_loops(domain, split..domain.len());
        let k = lit(domain[split] as f32);
        let result =
            self.expr(epilogue, "fin", "acc", &k, &mut |w, n| w.load_input(&epilogue_inputs[n as usize], outer, &outer_idx).0);
        let (_, target) = self.locate(out, outer, &outer_idx);
        self.store(out.buffer, &target, &result);
    }

    #[allow(clippy::too_many_arguments)]
    fn gather(
        &mut self,
        outer: usize,
        axis_len: usize,
        inner: usize,
        input: BufferId,
        indices: BufferId,
        index_count: usize,
        out: BufferId,
    ) {
        let idx = self.decompose(&[outer, index_count, inner]);
        let j = idx[1].clone();
        let raw = match (self.data_type(indices), self.read_bits(indices, &j)) {
            (DataType::Int32, Bits::Word(w)) => format!("bitcast<i32>({w})"),
            (DataType::Uint32, Bits::Word(w)) => {
                self.line(format!("let u = {w};"));
                "select(i32(u), 2147483647, u > 0x7fffffffu)".to_string()
            }
            (DataType::Int64, Bits::Pair(lo, hi)) => {
                self.line(format!("let lo = {lo};"));
                self.line(format!("let hi = bitcast<i32>({hi});"));
                self.line("var wide = select(2147483647, -2147483647 - 1, hi < 0);");
                self.line("if ((hi == 0 && lo < 0x80000000u) || (hi == -1 && lo >= 0x80000000u)) { wide = bitcast<i32>(lo); }");
                "wide".to_string()
            }
            (t, _) => unreachable!("the validator allows int32, uint32 and int64 indices, not {t}"),
        };
        self.line(format!("let raw = {raw};"));
        self.line(format!("let pick = clamp(select(raw, raw + {axis_len}, raw < 0), 0, {});", axis_len - 1));
        let src = affine(0, &[(axis_len as i64 * inner as i64, idx[0].as_str()), (inner as i64, "pick"), (1, idx[2].as_str())]);
        let bits = self.read_bits(input, &src);
        self.write_bits(out, "i32(flat)", bits);
    }
}
