//! Fast GEMM for [`Kernel::Gemm`]: blocking, packing and loops in Cranelift
//! IR around a register-blocked micro-kernel (see [`super::microkernel`]).
//!
//! # When
//! [`plan`] accepts a Gemm kernel when `a`, `b` and `out` are unguarded f32
//! accesses whose offsets are affine in the domain (true of every unguarded
//! access), `a` does not vary with `n` nor `b` with `m`, no dimension is
//! zero, and `out` shares no memory with `a`, `b` or an epilogue input.
//! Any row and column strides work, so transposes are free. Everything
//! else goes to the scalar reference loop (`Emitter::gemm`).
//!
//! If `out` is contiguous along `m` rather than `n`, the product is computed
//! transposed (`outᵀ = bᵀ aᵀ`) so that the micro-kernel still stores rows.
//!
//! # Loops (one task)
//! ```text
//! for (batch, column chunk) groups, row tiles [m0, m1) of this task
//!   for jc in chunk step NC                     B block: KC x NC floats <= 512 KiB (L2)
//!     for pc in 0..K step KC                    KC <= 256 (shallower so NC covers N)
//!       B block = packed constant, or pack B[pc.., jc..] into scratch,
//!                 or (few rows of A, AVX-512) B itself, read in place
//!       for ir in m0..m1 step MR
//!         A panel = packed constant, or pack A[ir.., pc..] (MR x KC, L1)
//!         for jr in 0..nc step NR
//!           micro-kernel: C[ir.., jc+jr..] (+)= A panel x B panel
//!           on the last k block: the epilogue on the tile
//! ```
//! Tasks take equal contiguous shares of the `batch x column chunk x row
//! tile` units. Columns are one chunk unless there are fewer than 16 row
//! tiles in all (small M: matrix-vector products), in which case they are
//! split into chunks of at least 128 so that tasks still share the work.
//!
//! Full tiles with `out` contiguous along `n` are computed in place in
//! `out`; edge tiles (and every tile when `out` has no unit stride) go
//! through a temporary MR x NR tile in scratch and are copied back.
//! Partial sums between k blocks live in `out`; the epilogue runs once per
//! tile, after the last k block, while the tile is in L1: F32X4 when every
//! epilogue input is an unguarded f32 access with n-stride 0 or 1
//! (bias, residual), else scalar through `Emitter::read`.
//!
//! # Packed layouts
//! * A panel: `kc` groups of `MR` floats (row `r` of step `k` at `k*MR + r`),
//!   rows past `M` zero.
//! * B panel: `kc` rows of `NR` floats, columns past `N` zero. A packed B
//!   block is its panels one after another (`kc*NR` floats each).
//! * Constant operands are packed at compile time, for every k block and
//!   every panel of the whole matrix: k block `pc` starts at `pc * Npad`
//!   floats (`Npad` = N rounded up to NR), and its panel `q` at
//!   `pc*Npad + q*kc*NR`; likewise for A with `Mpad`. One copy per batch
//!   index if the operand varies with the batch, else one. The packed
//!   floats live in a 64-byte aligned buffer the JIT-compiled program owns
//!   ([`PackedData`]), whose address the code loads from an 8-byte data
//!   object of the module (listings pack nothing and show that load), or,
//!   in an object file, in a 64-byte aligned read-only data object whose
//!   address the code takes PC-relative ([`PackInto`]).
//!
//! # Scratch
//! The packing buffers are the calling task's part of the per-task scratch
//! (see the `cpu` module: the entry after the buffers in the buffer table,
//! one region of `task_scratch_bytes` per task), laid out as
//! [`Plan::scratch_layout`] says; concurrent tasks never share it and
//! dispatching allocates nothing.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, Block, ConstantData, ExtFuncData, ExternalName, FuncRef, Function, GlobalValue, GlobalValueData, InstBuilder,
    Type, UserExternalName, Value,
};
use cranelift_frontend::FunctionBuilder;
use cranelift_module::{DataDescription, DataId, FuncId, Linkage, Module};
use kiln_ir::kernel::{Access, BufferId, BufferKind, Expr, ExprNode, Kernel, Program};
use kiln_ir::DataType;

use super::emit::{flags, for_step, Emitter};
use super::bias_clamp::{bias_clamp, BiasClamp};
use super::microkernel::{self, Bias, Kind, Registers, Spec};
use super::zmm_epilogue;
use super::overlap::may_overlap;
use super::{cranelift, CodegenError};

/// Depth of a k block: a 12x256 A panel is 12 KiB (L1).
pub const KC: usize = 256;
/// The shallowest k block chosen to fit all of N in one B block.
pub const KC_MIN: usize = 128;
/// Bytes of a packed B block (L2 is 1 MiB per core).
pub const B_BLOCK_BYTES: usize = 512 * 1024;

/// A matrix operand as strides over the domain: element `(i, j)` of batch
/// index `idx` is at `off + Σ idx*batch + i*rows + j*cols` (elements).
#[derive(Clone, Debug, PartialEq)]
struct Strided {
    off: i64,
    batch: Vec<i64>,
    rows: i64,
    cols: i64,
}

/// A constant operand to pack at compile time: where it comes from and
/// the layout of its packed copy.
pub struct Packed {
    source: BufferId,
    /// B (`k x n` panels of NR columns), else A (`m x k`, panels of MR rows).
    is_b: bool,
    /// One copy per flat batch index (else one copy for all).
    batched: bool,
    /// Floats per copy.
    slab: usize,
}

/// 64 bytes, 64-byte aligned: the unit of packed-weight storage, so that
/// every panel the micro-kernels read is cache-line aligned.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// Packed weights owned by the compiled program; its code reaches them
/// through a pointer stored in an 8-byte data object.
pub struct PackedData(Vec<Line>);

impl Packed {
    /// The constant buffer packed.
    pub fn source(&self) -> BufferId {
        self.source
    }
}

impl PackedData {
    fn zeroed(floats: usize) -> Self {
        PackedData(vec![Line([0.0; 16]); floats.div_ceil(16)])
    }

    fn floats_mut(&mut self) -> &mut [f32] {
        let len = self.0.len() * 16;
        // SAFETY: `Line` is 16 f32s with no padding (repr(C), size 64).
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<f32>(), len) }
    }

    fn address(&self) -> u64 {
        self.0.as_ptr() as u64
    }

    /// The packed floats as little-endian bytes.
    fn bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|line| line.0).flat_map(f32::to_le_bytes).collect()
    }
}

/// How one Gemm kernel is generated on the fast path.
pub struct Plan {
    pub spec: Spec,
    /// The epilogue input a register epilogue (`spec.epilogue`) reads as
    /// its bias.
    bias_input: Option<usize>,
    /// The column-edge micro-kernel for the last `n % nr` columns (when the
    /// family has one), run in place in `out` when `out` is contiguous along
    /// n and into the temporary tile when B is read in place; else edge
    /// tiles go through the temporary tile with the full kernel.
    pub edge: Option<Spec>,
    batch: Vec<usize>,
    m: usize,
    n: usize,
    k: usize,
    /// Computing `outᵀ = bᵀ aᵀ`: `m`/`n` here are the kernel's `n`/`m`.
    swapped: bool,
    a: Strided,
    b: Strided,
    out: Strided,
    a_buf: BufferId,
    b_buf: BufferId,
    out_buf: BufferId,
    kc: usize,
    nc: usize,
    /// Columns are split into `n_chunks` chunks of `chunk` (a multiple of
    /// NR) so that small-M products still split across tasks.
    n_chunks: usize,
    chunk: usize,
    pub packed_a: Option<Packed>,
    pub packed_b: Option<Packed>,
    epilogue_inputs: Vec<Access>,
    epilogue: Expr,
    /// The epilogue inputs as strides (`rows` = m, `cols` = n stride, 0 or
    /// 1) when the epilogue runs on F32X4 vectors.
    vector_inputs: Option<Vec<Strided>>,
    /// The inputs of an AVX-512 epilogue function ([`zmm_epilogue`]) that
    /// replaces the F32X4 loop over each tile row.
    zmm_epilogue: Option<Vec<zmm_epilogue::Input>>,
    identity: bool,
}

impl Plan {
    /// The per-task scratch this kernel uses, in bytes, each part a
    /// multiple of 64: the B block being packed, the A panel being packed
    /// (0 where the operand is packed at compile time) and the edge tile.
    pub fn scratch_layout(&self) -> (usize, usize, usize) {
        let round = |x: usize| x.div_ceil(64) * 64;
        let (mr, nr) = (self.spec.mr, self.spec.nr);
        let bpack = if self.packed_b.is_some() || !self.spec.packed_b() { 0 } else { round(self.kc * self.nc * 4) };
        let apack = if self.packed_a.is_some() { 0 } else { round(self.kc * mr * 4) };
        (bpack, apack, round(mr * nr * 4))
    }

    /// The sum of [`Plan::scratch_layout`].
    pub fn scratch_bytes(&self) -> usize {
        let (b, a, t) = self.scratch_layout();
        b + a + t
    }
}

fn i64s(v: &[isize]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

/// The fast-path plan for `kernel`, or `None` for the scalar loop.
pub fn plan(program: &Program, kernel: &Kernel, spec: Spec) -> Option<Plan> {
    let Kernel::Gemm { domain, a, b, epilogue_inputs, epilogue, out } = kernel else {
        return None;
    };
    let rank = domain.len();
    let nb = rank.checked_sub(3)?;
    if domain.contains(&0) {
        return None;
    }
    let plain_f32 = |x: &Access| x.guard.is_none() && program.buffer(x.buffer).data_type == DataType::Float32;
    if !(plain_f32(a) && plain_f32(b) && plain_f32(out)) {
        return None;
    }
    let (ao, asd) = a.linear(rank);
    let (bo, bsd) = b.linear(rank);
    let (oo, osd) = out.linear(rank - 1);
    if asd[nb + 1] != 0 || bsd[nb] != 0 {
        return None;
    }
    let outer = &domain[..rank - 1];
    let mut reads = [(a, &domain[..]), (b, &domain[..])].into_iter().chain(epilogue_inputs.iter().map(|e| (e, outer)));
    if reads.any(|(x, d)| may_overlap(program, x, d, out, outer)) {
        return None;
    }
    let mut sa = Strided { off: ao as i64, batch: i64s(&asd[..nb]), rows: asd[nb] as i64, cols: asd[nb + 2] as i64 };
    let mut sb = Strided { off: bo as i64, batch: i64s(&bsd[..nb]), rows: bsd[nb + 2] as i64, cols: bsd[nb + 1] as i64 };
    let mut so = Strided { off: oo as i64, batch: i64s(&osd[..nb]), rows: osd[nb] as i64, cols: osd[nb + 1] as i64 };
    let (mut m, mut n, k) = (domain[nb], domain[nb + 1], domain[nb + 2]);
    let (mut a_buf, mut b_buf) = (a.buffer, b.buffer);
    // The stride of an axis of extent 1 is never used: call it unit.
    if n == 1 {
        so.cols = 1;
    }
    if m == 1 {
        so.rows = 1;
    }
    // Tiles are stored as rows, so `out` wants a unit n-stride; when both
    // orientations have one, put the longer dimension along the tile's
    // wide side (a matrix-vector product then fills whole rows of tiles).
    let swapped = so.rows == 1 && (so.cols != 1 || n < m);
    if swapped {
        let new_a = Strided { off: sb.off, batch: sb.batch.clone(), rows: sb.cols, cols: sb.rows };
        let new_b = Strided { off: sa.off, batch: sa.batch.clone(), rows: sa.cols, cols: sa.rows };
        (sa, sb) = (new_a, new_b);
        std::mem::swap(&mut so.rows, &mut so.cols);
        std::mem::swap(&mut m, &mut n);
        std::mem::swap(&mut a_buf, &mut b_buf);
    }
    // A product of fewer rows than the micro-kernel has gets a kernel of
    // exactly that many rows (a matrix-vector product: one row, no
    // zero rows multiplied and no edge tiles).
    let spec = Spec { mr: spec.mr.min(m), ..spec };
    let (mr, nr) = (spec.mr, spec.nr);
    let (kc, nc) = blocking(k, n, nr);
    let (n_chunks, chunk) = column_chunks(domain[..nb].iter().product::<usize>() * m.div_ceil(mr), n, nr);
    let batch = domain[..nb].to_vec();
    let packed = |source: BufferId, s: &Strided, len: usize, width: usize, is_b: bool| {
        matches!(&program.buffer(source).kind, BufferKind::Constant(t) if t.data_type() == DataType::Float32).then(|| {
            let batched = s.batch.iter().zip(&batch).any(|(&st, &d)| st != 0 && d > 1);
            Packed { source, is_b, batched, slab: k * len.next_multiple_of(width) }
        })
    };
    let packed_b = packed(b_buf, &sb, n, nr, true);
    let packed_a = packed(a_buf, &sa, m, mr, false);
    // Few rows of A: each packed B panel would serve few micro-kernel
    // calls, so B is read in place (rows contiguous, not overlapping).
    let b_in_place = packed_b.is_none() && m <= B_IN_PLACE_MAX_M && n >= nr && sb.cols == 1 && sb.rows >= n as i64;
    let spec = match b_in_place.then(|| spec.b_in_place(sb.rows as usize * 4)).flatten() {
        Some(in_place) => in_place,
        None => spec,
    };
    let identity = matches!(epilogue.nodes.as_slice(), [ExprNode::Acc]);
    let vector_inputs = if so.cols == 1 {
        epilogue_inputs
            .iter()
            .map(|e| {
                if !plain_f32(e) {
                    return None;
                }
                let (off, s) = e.linear(rank - 1);
                let (rows, cols) = if swapped { (s[nb + 1], s[nb]) } else { (s[nb], s[nb + 1]) };
                (cols == 0 || cols == 1).then(|| Strided {
                    off: off as i64,
                    batch: i64s(&s[..nb]),
                    rows: rows as i64,
                    cols: cols as i64,
                })
            })
            .collect::<Option<Vec<_>>>()
    } else {
        None
    };
    // A bias-and-clamp epilogue runs in the micro-kernel's registers on
    // tiles computed in place.
    let registers = vector_inputs.as_deref().and_then(|inputs| register_epilogue(epilogue, inputs));
    let (spec, bias_input) = match registers.and_then(|(r, input)| Some((spec.with_epilogue(r)?, input))) {
        Some((with, input)) => (with, input),
        None => (spec, None),
    };
    // Any other epilogue of vector inputs: an AVX-512 function per tile row
    // where the expression compiles.
    let zmm_epilogue = vector_inputs.as_deref().filter(|_| spec.kind == Kind::Avx512 && spec.epilogue.is_none() && !identity).and_then(|inputs| {
        let kinds: Vec<_> = inputs
            .iter()
            .map(|s| if s.cols == 0 { zmm_epilogue::Input::Broadcast } else { zmm_epilogue::Input::Vector })
            .collect();
        zmm_epilogue::supported(epilogue, &kinds).then_some(kinds)
    });
    // Blocks and chunks are whole tiles, so only the last tile of a row can
    // be partial, and it is `n % nr` wide.
    debug_assert!(nc % nr == 0 && chunk % nr == 0);
    // In place in `out`, or into the temporary tile when B is read in place
    // (the full kernel would read past B's columns).
    let edge = if so.cols == 1 || !spec.packed_b() { spec.column_edge(n % nr) } else { None };
    Some(Plan {
        spec,
        bias_input,
        edge,
        batch,
        m,
        n,
        k,
        swapped,
        a: sa,
        b: sb,
        out: so,
        a_buf,
        b_buf,
        out_buf: out.buffer,
        kc,
        nc,
        n_chunks,
        chunk,
        packed_a,
        packed_b,
        epilogue_inputs: epilogue_inputs.clone(),
        epilogue: epilogue.clone(),
        vector_inputs,
        zmm_epilogue,
        identity,
    })
}

/// The k block and n block: the B block (`kc x nc` floats) fits
/// [`B_BLOCK_BYTES`]. Prefer one n block (so each A panel is packed once
/// per k block) with `KC_MIN <= kc <= KC`; else `kc = KC` and split N.
fn blocking(k: usize, n: usize, nr: usize) -> (usize, usize) {
    let npad = n.next_multiple_of(nr);
    let budget = B_BLOCK_BYTES / 4;
    let kc_max = KC;
    let kc_fit = budget / npad;
    if kc_fit >= k.min(kc_max) {
        (k.min(kc_max), npad)
    } else if kc_fit >= KC_MIN {
        // Equal-ish k blocks no deeper than fit.
        let blocks = k.div_ceil(kc_fit);
        (k.div_ceil(blocks), npad)
    } else {
        let kc = k.min(kc_max);
        (kc, (budget / kc / nr).max(1) * nr)
    }
}

/// The register form of `epilogue` (see [`bias_clamp`]) given its inputs'
/// strides, and the input read as the bias: a bias must be one value per
/// row (column stride 0) or per column (contiguous, row stride 0).
fn register_epilogue(epilogue: &Expr, inputs: &[Strided]) -> Option<(Registers, Option<usize>)> {
    let BiasClamp { bias, lo, hi, activation } = bias_clamp(epilogue)?;
    let kind = match bias {
        Some(n) => match inputs[n] {
            Strided { cols: 0, rows, .. } => Some(Bias::Row { step: rows }),
            Strided { rows: 0, cols: 1, .. } => Some(Bias::Column),
            _ => return None,
        },
        None => None,
    };
    if kind.is_none() && lo.is_none() && hi.is_none() && activation.is_none() {
        return None;
    }
    Some((Registers { bias: kind, lo: lo.map(f32::to_bits), hi: hi.map(f32::to_bits), activation }, bias))
}

/// The most rows of A (after orientation) for which B is read in place
/// instead of packed (AVX-512). Measured (gemm_bench, N = 3136, one
/// thread, K = 32 / 144): in place wins clearly up to 16 rows (8 rows: 78
/// -> 150 and 70 -> 121 GFLOP/s), is even around 32 and loses from 48
/// (96 rows: 154 -> 132 and 154 -> 116).
const B_IN_PLACE_MAX_M: usize = 32;

/// Parallel work units wanted per Gemm: tasks split `batch x row tiles x
/// column chunks`; columns are chunked only when there are fewer row tiles
/// than this.
const PARALLEL_UNITS: usize = 16;
/// The narrowest column chunk worth its own A packing.
const MIN_CHUNK: usize = 128;

/// `(n_chunks, chunk)` for `row_tiles` row tiles (over all batches).
fn column_chunks(row_tiles: usize, n: usize, nr: usize) -> (usize, usize) {
    let npad = n.next_multiple_of(nr);
    if row_tiles >= PARALLEL_UNITS {
        return (1, npad);
    }
    let want = PARALLEL_UNITS.div_ceil(row_tiles).min(npad.div_ceil(MIN_CHUNK)).max(1);
    let chunk = npad.div_ceil(want).next_multiple_of(nr);
    (npad.div_ceil(chunk), chunk)
}

/// Per-axis indices of flat batch index `flat`.
fn batch_index(batch: &[usize], mut flat: usize) -> Vec<usize> {
    let mut idx = vec![0; batch.len()];
    for j in (0..batch.len()).rev() {
        idx[j] = flat % batch[j];
        flat /= batch[j];
    }
    idx
}

/// Packs constant operand `p` of `plan` into the panel layout (see the
/// module docs). For B, the strides map (k, n) and panels hold NR columns;
/// for A, they map (m, k) and panels hold MR rows. The source is read
/// straight from its little-endian bytes; a memory-mapped source gives its
/// pages back as soon as they are consumed (k-block by k-block when its k
/// rows are contiguous, else at the end), so loading a model never holds a
/// second resident copy of its weights.
fn pack_const(program: &Program, plan: &Plan, p: &Packed) -> PackedData {
    let BufferKind::Constant(t) = &program.buffer(p.source).kind else {
        unreachable!("planned from a constant buffer")
    };
    let (s, len, width) = if p.is_b { (&plan.b, plan.n, plan.spec.nr) } else { (&plan.a, plan.m, plan.spec.mr) };
    let (k, kc_block) = (plan.k, plan.kc);
    let bytes = t.shared_bytes();
    let src = bytes.as_slice();
    let read = |at: i64| {
        let i = at as usize * 4;
        f32::from_le_bytes([src[i], src[i + 1], src[i + 2], src[i + 3]])
    };
    let nbatch: usize = plan.batch.iter().product();
    let copies = if p.batched { nbatch } else { 1 };
    let padded = len.next_multiple_of(width);
    let mut out = PackedData::zeroed(copies * p.slab);
    let dst_all = out.floats_mut();
    // The k stride, and whether a k-block's rows are one contiguous run.
    let k_stride = if p.is_b { s.rows } else { s.cols };
    let rows_contiguous = copies == 1 && k_stride == len as i64 && (if p.is_b { s.cols } else { s.rows }) == 1;
    for copy in 0..copies {
        let idx = batch_index(&plan.batch, copy);
        let base = s.off + idx.iter().zip(&s.batch).map(|(&i, &st)| i as i64 * st).sum::<i64>();
        let dst = &mut dst_all[copy * p.slab..(copy + 1) * p.slab];
        for pc in (0..k).step_by(kc_block) {
            let kc = kc_block.min(k - pc);
            for q in 0..padded / width {
                for kk in 0..kc {
                    for w in 0..width {
                        let j = q * width + w;
                        if j >= len {
                            continue;
                        }
                        let kk_abs = (pc + kk) as i64;
                        let at = if p.is_b { base + kk_abs * s.rows + j as i64 * s.cols } else { base + j as i64 * s.rows + kk_abs * s.cols };
                        dst[pc * padded + q * kc * width + kk * width + w] = read(at);
                    }
                }
            }
            if rows_contiguous {
                let start = (base + pc as i64 * k_stride) as usize * 4;
                bytes.release_pages(start..start + kc * len * 4);
            }
        }
    }
    bytes.release_pages(0..bytes.len());
    out
}

/// Where the packed constants of the kernels being generated go.
pub enum PackInto<'a> {
    /// Into buffers the compiled program owns (the JIT): the code loads
    /// each one's address from an 8-byte data object.
    Memory(&'a mut Vec<PackedData>),
    /// Into the module as read-only data objects (an object file): the
    /// code takes their addresses directly.
    Module,
    /// Nowhere (listings): the code loads an address of 0, as for `Memory`.
    Nowhere,
}

/// Module-level objects one fast Gemm kernel uses.
pub struct Declared {
    micro: FuncId,
    edge: Option<FuncId>,
    /// The AVX-512 epilogue function and its code (for listings).
    pub epilogue: Option<(FuncId, Vec<u8>)>,
    packed_a: Option<DataId>,
    packed_b: Option<DataId>,
    /// The data objects hold the addresses of the packed floats (else the
    /// floats themselves).
    indirect: bool,
    /// References are PC-relative (one object file) rather than absolute:
    /// the JIT may place data and code far apart.
    colocated: bool,
}

/// The same, imported into the kernel's function.
pub struct Refs {
    micro: FuncRef,
    edge: Option<FuncRef>,
    epilogue: Option<FuncRef>,
    packed_a: Option<GlobalValue>,
    packed_b: Option<GlobalValue>,
    indirect: bool,
}

/// Defines what kernel `index`'s plan needs in `module`: the micro-kernel
/// (once per module and shape, cached in `micro`) and its packed constants
/// (see [`PackInto`]).
pub fn declare<M: Module>(
    module: &mut M,
    program: &Program,
    index: usize,
    plan: &Plan,
    micro: &mut Vec<(Spec, FuncId)>,
    into: &mut PackInto,
) -> Result<Declared, CodegenError> {
    let mut micro_for = |module: &mut M, spec: Spec| -> Result<FuncId, CodegenError> {
        match micro.iter().find(|(s, _)| *s == spec) {
            Some(&(_, id)) => Ok(id),
            None => {
                let id = microkernel::define(module, spec)?;
                micro.push((spec, id));
                Ok(id)
            }
        }
    };
    let micro_id = micro_for(module, plan.spec)?;
    let edge_id = plan.edge.map(|spec| micro_for(module, spec)).transpose()?;
    let indirect = !matches!(into, PackInto::Module);
    let mut data = |name: &str, p: &Option<Packed>| -> Result<Option<DataId>, CodegenError> {
        let Some(p) = p else { return Ok(None) };
        let mut desc = DataDescription::new();
        match into {
            PackInto::Memory(keep) => {
                let packed = pack_const(program, plan, p);
                desc.define(Box::new(packed.address().to_le_bytes()));
                desc.set_align(8);
                keep.push(packed);
            }
            PackInto::Nowhere => {
                desc.define(Box::new(0u64.to_le_bytes()));
                desc.set_align(8);
            }
            PackInto::Module => {
                desc.define(pack_const(program, plan, p).bytes().into());
                desc.set_align(64);
            }
        }
        let id = module.declare_data(&format!("k{index}_packed_{name}"), Linkage::Local, false, false).map_err(cranelift)?;
        module.define_data(id, &desc).map_err(cranelift)?;
        Ok(Some(id))
    };
    let packed_a = data("a", &plan.packed_a)?;
    let packed_b = data("b", &plan.packed_b)?;
    let epilogue = match &plan.zmm_epilogue {
        Some(inputs) => {
            let code = zmm_epilogue::generate(&plan.epilogue, inputs).map_err(cranelift)?;
            let sig = microkernel::signature(module, 2 + inputs.len());
            let id = module.declare_function(&format!("k{index}_avx512_epilogue"), Linkage::Local, &sig).map_err(cranelift)?;
            module.define_function_bytes(id, 64, &code, &[]).map_err(cranelift)?;
            Some((id, code))
        }
        None => None,
    };
    Ok(Declared { micro: micro_id, edge: edge_id, epilogue, packed_a, packed_b, indirect, colocated: !indirect })
}

impl Declared {
    /// Imports into `func`.
    pub fn import<M: Module>(&self, module: &M, func: &mut Function) -> Refs {
        let mut function = |id: FuncId| {
            let decl = module.declarations().get_function_decl(id);
            let signature = func.import_signature(decl.signature.clone());
            let name = func.declare_imported_user_function(UserExternalName { namespace: 0, index: id.as_u32() });
            func.import_function(ExtFuncData {
                name: ExternalName::user(name),
                signature,
                colocated: self.colocated,
                patchable: false,
            })
        };
        let micro = function(self.micro);
        let edge = self.edge.map(&mut function);
        let epilogue = self.epilogue.as_ref().map(|(id, _)| function(*id));
        let mut data = |id: Option<DataId>| {
            id.map(|id| {
                let name = func.declare_imported_user_function(UserExternalName { namespace: 1, index: id.as_u32() });
                func.create_global_value(GlobalValueData::Symbol {
                    name: ExternalName::user(name),
                    offset: 0.into(),
                    colocated: self.colocated,
                    tls: false,
                })
            })
        };
        let packed_a = data(self.packed_a);
        let packed_b = data(self.packed_b);
        Refs { micro, edge, epilogue, packed_a, packed_b, indirect: self.indirect }
    }
}

fn iconst(fb: &mut FunctionBuilder, v: i64) -> Value {
    fb.ins().iconst(types::I64, v)
}

/// `count >= 1` trips; pointer `p` starts at `ptrs[p].0` and advances by
/// `ptrs[p].1` bytes per trip.
fn ptr_loop(fb: &mut FunctionBuilder, count: Value, ptrs: &[(Value, i64)], body: &mut dyn FnMut(&mut FunctionBuilder, &[Value])) {
    let n = fb.declare_var(types::I64);
    fb.def_var(n, count);
    let vars: Vec<_> = ptrs
        .iter()
        .map(|&(p, _)| {
            let v = fb.declare_var(types::I64);
            fb.def_var(v, p);
            v
        })
        .collect();
    let block = fb.create_block();
    let exit = fb.create_block();
    fb.ins().jump(block, &[]);
    fb.switch_to_block(block);
    let cur: Vec<Value> = vars.iter().map(|&v| fb.use_var(v)).collect();
    body(fb, &cur);
    for ((&v, &(_, step)), &p) in vars.iter().zip(ptrs).zip(&cur) {
        let next = fb.ins().iadd_imm_s(p, step);
        fb.def_var(v, next);
    }
    let left = fb.use_var(n);
    let left = fb.ins().iadd_imm_s(left, -1);
    fb.def_var(n, left);
    fb.ins().brif(left, block, &[], exit, &[]);
    fb.switch_to_block(exit);
}

/// A byte shuffle of two I8X16 values.
fn shuffle(fb: &mut FunctionBuilder, a: Value, b: Value, lanes: [u8; 16]) -> Value {
    let mask = fb.func.dfg.immediates.push(ConstantData::from(lanes.to_vec()));
    fb.ins().shuffle(a, b, mask)
}

/// 32-bit lanes `[a.i, b.i, a.i+1, b.i+1]` for `i = 2 * half`.
fn interleave32(fb: &mut FunctionBuilder, a: Value, b: Value, half: u8) -> Value {
    let mut lanes = [0u8; 16];
    for j in 0..4u8 {
        let src = (half * 2 + j / 2) * 4 + if j % 2 == 1 { 16 } else { 0 };
        for byte in 0..4 {
            lanes[(j * 4 + byte) as usize] = src + byte;
        }
    }
    shuffle(fb, a, b, lanes)
}

/// 64-bit lanes `[a.half, b.half]`.
fn interleave64(fb: &mut FunctionBuilder, a: Value, b: Value, half: u8) -> Value {
    let mut lanes = [0u8; 16];
    for byte in 0..8u8 {
        lanes[byte as usize] = half * 8 + byte;
        lanes[8 + byte as usize] = 16 + half * 8 + byte;
    }
    shuffle(fb, a, b, lanes)
}

/// A full panel whose source is contiguous along k: `dst[k*width + w] =
/// src[w*w_stride + k]` (elements) for `k < kc`, `w < width` (a multiple
/// of 4). Four k steps at a time by 4x4 transposes of 16-byte loads, the
/// rest one at a time.
fn transpose_panel(fb: &mut FunctionBuilder, src: Value, dst: Value, kc: Value, width: i64, w_stride: i64) {
    let quads = fb.ins().ushr_imm_u(kc, 2);
    let after_quads = fb.create_block();
    let quad_loop = fb.create_block();
    fb.ins().brif(quads, quad_loop, &[], after_quads, &[]);
    fb.switch_to_block(quad_loop);
    ptr_loop(fb, quads, &[(src, 16), (dst, 16 * width)], &mut |fb, p| {
        for g in 0..width / 4 {
            let rows: Vec<Value> = (0..4).map(|r| load(fb, types::I8X16, p[0], (4 * g + r) * w_stride * 4)).collect();
            let lo01 = interleave32(fb, rows[0], rows[1], 0);
            let lo23 = interleave32(fb, rows[2], rows[3], 0);
            let hi01 = interleave32(fb, rows[0], rows[1], 1);
            let hi23 = interleave32(fb, rows[2], rows[3], 1);
            let columns = [
                interleave64(fb, lo01, lo23, 0),
                interleave64(fb, lo01, lo23, 1),
                interleave64(fb, hi01, hi23, 0),
                interleave64(fb, hi01, hi23, 1),
            ];
            for (k, c) in columns.into_iter().enumerate() {
                store(fb, c, p[1], (k as i64 * width + 4 * g) * 4);
            }
        }
    });
    fb.ins().jump(after_quads, &[]);
    fb.switch_to_block(after_quads);
    let rest = fb.ins().band_imm_u(kc, 3);
    let done = fb.create_block();
    let rest_loop = fb.create_block();
    fb.ins().brif(rest, rest_loop, &[], done, &[]);
    fb.switch_to_block(rest_loop);
    let k0 = fb.ins().band_imm_s(kc, !3);
    let s_off = fb.ins().ishl_imm_u(k0, 2);
    let s0 = fb.ins().iadd(src, s_off);
    let d_off = fb.ins().imul_imm_s(k0, width * 4);
    let d0 = fb.ins().iadd(dst, d_off);
    ptr_loop(fb, rest, &[(s0, 4), (d0, width * 4)], &mut |fb, p| {
        for w in 0..width {
            let v = load(fb, types::F32, p[0], w * w_stride * 4);
            store(fb, v, p[1], 4 * w);
        }
    });
    fb.ins().jump(done, &[]);
    fb.switch_to_block(done);
}

/// Adds a byte offset, as an immediate where it fits.
fn at(fb: &mut FunctionBuilder, base: Value, off: i64) -> (Value, i32) {
    match i32::try_from(off) {
        Ok(o) => (base, o),
        Err(_) => (fb.ins().iadd_imm_s(base, off), 0),
    }
}

fn load(fb: &mut FunctionBuilder, ty: Type, base: Value, off: i64) -> Value {
    let (b, o) = at(fb, base, off);
    fb.ins().load(ty, flags(), b, o)
}

fn store(fb: &mut FunctionBuilder, v: Value, base: Value, off: i64) {
    let (b, o) = at(fb, base, off);
    fb.ins().store(flags(), v, b, o);
}

/// `base + (Σ idx[j] * strides[j] + extra) * 4` bytes.
fn element_ptr(fb: &mut FunctionBuilder, base: Value, idx: &[Value], strides: &[i64], extra: i64) -> Value {
    let mut off = iconst(fb, extra);
    for (&i, &s) in idx.iter().zip(strides) {
        if s != 0 {
            let t = fb.ins().imul_imm_s(i, s);
            off = fb.ins().iadd(off, t);
        }
    }
    let bytes = fb.ins().ishl_imm_u(off, 2);
    fb.ins().iadd(base, bytes)
}

/// `base + (i * stride_i + j * stride_j) * 4` bytes.
fn ptr2(fb: &mut FunctionBuilder, base: Value, i: Value, si: i64, j: Value, sj: i64) -> Value {
    let a = fb.ins().imul_imm_s(i, si * 4);
    let b = fb.ins().imul_imm_s(j, sj * 4);
    let o = fb.ins().iadd(a, b);
    fb.ins().iadd(base, o)
}

/// Per-tile values shared by the tile code.
struct Tile {
    /// Batch-adjusted base of `out` (bytes).
    out_ptr: Value,
    /// Flat batch indices (for epilogue inputs).
    batch_idx: Vec<Value>,
    ir: Value,
    col: Value,
    mr: Value,
    nr: Value,
    last: Value,
}

impl Emitter<'_> {
    /// The fast Gemm (see the module documentation).
    pub(super) fn fast_gemm(&mut self, fb: &mut FunctionBuilder, plan: &Plan, refs: &Refs) {
        let Spec { mr, nr, .. } = plan.spec;
        let (mr, nr) = (mr as i64, nr as i64);
        let (m, n, k) = (plan.m as i64, plan.n as i64, plan.k as i64);
        let (kc_max, nc_max) = (plan.kc as i64, plan.nc as i64);
        let (bpack_bytes, apack_bytes, _) = plan.scratch_layout();
        let scratch = self.task_scratch(fb);
        let bpack = scratch;
        let apack = fb.ins().iadd_imm_s(scratch, bpack_bytes as i64);
        let tile = fb.ins().iadd_imm_s(apack, apack_bytes as i64);

        let nbatch: i64 = plan.batch.iter().product::<usize>() as i64;
        let mt = (m + mr - 1) / mr;
        let (chunks, chunk) = (plan.n_chunks as i64, plan.chunk as i64);
        let units = nbatch * chunks * mt;
        let units_v = iconst(fb, units);
        let lo = fb.ins().imul(self.task, units_v);
        let u_lo = fb.ins().udiv(lo, self.tasks);
        let t1 = fb.ins().iadd_imm_s(self.task, 1);
        let hi = fb.ins().imul(t1, units_v);
        let u_hi = fb.ins().udiv(hi, self.tasks);
        // Groups: (batch index, column chunk); each has `mt` row tiles.
        let g_lo = fb.ins().udiv_imm_u(u_lo, mt);
        let g_hi = fb.ins().iadd_imm_s(u_hi, mt - 1);
        let g_hi = fb.ins().udiv_imm_u(g_hi, mt);

        let a_base = self.bases[&plan.a_buf];
        let b_base = self.bases[&plan.b_buf];
        let o_base = self.bases[&plan.out_buf];
        let packed_ptr = |fb: &mut FunctionBuilder, gv| {
            let symbol = fb.ins().symbol_value(types::I64, gv);
            if refs.indirect { fb.ins().load(types::I64, super::emit::flags(), symbol, 0) } else { symbol }
        };
        let packed_a = refs.packed_a.map(|gv| packed_ptr(fb, gv));
        let packed_b = refs.packed_b.map(|gv| packed_ptr(fb, gv));
        let mpad = (m + mr - 1) / mr * mr;
        let npad = (n + nr - 1) / nr * nr;

        for_step(fb, g_lo, g_hi, 1, &mut |fb, g| {
            let base_u = fb.ins().imul_imm_s(g, mt);
            let (bi, chunk_index) = if chunks == 1 {
                (g, iconst(fb, 0))
            } else {
                (fb.ins().udiv_imm_u(g, chunks), fb.ins().urem_imm_u(g, chunks))
            };
            let zero = iconst(fb, 0);
            let t0 = fb.ins().isub(u_lo, base_u);
            let t0 = fb.ins().smax(t0, zero);
            let t1 = fb.ins().isub(u_hi, base_u);
            let mt_v = iconst(fb, mt);
            let t1 = fb.ins().smin(t1, mt_v);
            let m0 = fb.ins().imul_imm_s(t0, mr);
            let m1 = fb.ins().imul_imm_s(t1, mr);
            let m_v = iconst(fb, m);
            let m1 = fb.ins().smin(m1, m_v);
            // Batch indices of the flat batch index.
            let mut batch_idx = vec![bi; plan.batch.len()];
            let mut inner = 1i64;
            for j in (0..plan.batch.len()).rev() {
                let d = plan.batch[j] as i64;
                let q = if inner == 1 { bi } else { fb.ins().udiv_imm_u(bi, inner) };
                batch_idx[j] = if j == 0 { q } else { fb.ins().urem_imm_u(q, d) };
                inner *= d;
            }
            let a_ptr = element_ptr(fb, a_base, &batch_idx, &plan.a.batch, plan.a.off);
            let b_ptr = element_ptr(fb, b_base, &batch_idx, &plan.b.batch, plan.b.off);
            let out_ptr = element_ptr(fb, o_base, &batch_idx, &plan.out.batch, plan.out.off);
            let pre = |fb: &mut FunctionBuilder, base: Option<Value>, p: &Option<Packed>| {
                base.zip(p.as_ref()).map(|(base, p)| {
                    if p.batched {
                        let o = fb.ins().imul_imm_s(bi, (p.slab * 4) as i64);
                        fb.ins().iadd(base, o)
                    } else {
                        base
                    }
                })
            };
            let pre_a = pre(fb, packed_a, &plan.packed_a);
            let pre_b = pre(fb, packed_b, &plan.packed_b);

            let col_lo = fb.ins().imul_imm_s(chunk_index, chunk);
            let col_hi = fb.ins().iadd_imm_s(col_lo, chunk);
            let n_v = iconst(fb, n);
            let col_hi = fb.ins().smin(col_hi, n_v);
            for_step(fb, col_lo, col_hi, nc_max, &mut |fb, jc| {
                let left = fb.ins().isub(col_hi, jc);
                let nc_c = iconst(fb, nc_max);
                let nc = fb.ins().smin(left, nc_c);
                let k_v = iconst(fb, k);
                let zero = iconst(fb, 0);
                for_step(fb, zero, k_v, kc_max, &mut |fb, pc| {
                    let left = fb.ins().isub(k_v, pc);
                    let kc_c = iconst(fb, kc_max);
                    let kc = fb.ins().smin(left, kc_c);
                    let not_first = fb.ins().icmp_imm_s(IntCC::NotEqual, pc, 0);
                    let accumulate = fb.ins().uextend(types::I64, not_first);
                    let end = fb.ins().iadd_imm_s(pc, kc_max);
                    let last = fb.ins().icmp(IntCC::SignedGreaterThanOrEqual, end, k_v);
                    let bblk = match pre_b {
                        // B in place: the block starts at B[pc, jc].
                        None if !plan.spec.packed_b() => ptr2(fb, b_ptr, pc, plan.b.rows, jc, 1),
                        Some(p) => {
                            // p + (pc*npad + jc*kc) * 4
                            let x = fb.ins().imul_imm_s(pc, npad * 4);
                            let y = fb.ins().imul(jc, kc);
                            let y = fb.ins().ishl_imm_u(y, 2);
                            let o = fb.ins().iadd(x, y);
                            fb.ins().iadd(p, o)
                        }
                        None => {
                            self.pack_b(fb, plan, b_ptr, jc, pc, nc, kc, bpack);
                            bpack
                        }
                    };
                    for_step(fb, m0, m1, mr, &mut |fb, ir| {
                        let left = fb.ins().isub(m1, ir);
                        let mr_c = iconst(fb, mr);
                        let mrr = fb.ins().smin(left, mr_c);
                        let apan = match pre_a {
                            Some(p) => {
                                let x = fb.ins().imul_imm_s(pc, mpad * 4);
                                let y = fb.ins().imul(ir, kc);
                                let y = fb.ins().ishl_imm_u(y, 2);
                                let o = fb.ins().iadd(x, y);
                                fb.ins().iadd(p, o)
                            }
                            None => {
                                self.pack_a(fb, plan, a_ptr, ir, mrr, pc, kc, apack);
                                apack
                            }
                        };
                        let zero = iconst(fb, 0);
                        for_step(fb, zero, nc, nr, &mut |fb, jr| {
                            let left = fb.ins().isub(nc, jr);
                            let nr_c = iconst(fb, nr);
                            let nrr = fb.ins().smin(left, nr_c);
                            let off = if plan.spec.packed_b() {
                                let off = fb.ins().imul(jr, kc);
                                fb.ins().ishl_imm_u(off, 2)
                            } else {
                                fb.ins().ishl_imm_u(jr, 2)
                            };
                            let bpan = fb.ins().iadd(bblk, off);
                            let col = fb.ins().iadd(jc, jr);
                            let t = Tile { out_ptr, batch_idx: batch_idx.clone(), ir, col, mr: mrr, nr: nrr, last };
                            self.tile(fb, plan, refs, &t, apan, bpan, kc, accumulate, tile);
                        });
                    });
                });
            });
        });
    }

    /// One micro-tile: the micro-kernel, in place or through `tmp`, and the
    /// epilogue on the last k block.
    #[allow(clippy::too_many_arguments)]
    fn tile(&self, fb: &mut FunctionBuilder, plan: &Plan, refs: &Refs, t: &Tile, apan: Value, bpan: Value, kc: Value, accumulate: Value, tmp: Value) {
        let Spec { mr, nr, .. } = plan.spec;
        let (mr, nr) = (mr as i64, nr as i64);
        let done = fb.create_block();
        let edge = fb.create_block();
        if plan.out.cols == 1 {
            let direct = fb.create_block();
            let full_m = fb.ins().icmp_imm_s(IntCC::Equal, t.mr, mr);
            let full_n = fb.ins().icmp_imm_s(IntCC::Equal, t.nr, nr);
            let full = fb.ins().band(full_m, full_n);
            match (plan.edge, refs.edge) {
                (Some(spec), Some(micro)) => {
                    // A full-height tile of the last `spec.cols` columns
                    // runs in place too, through the column-edge kernel.
                    let column_edge = fb.create_block();
                    let not_full = fb.create_block();
                    fb.ins().brif(full, direct, &[], not_full, &[]);
                    fb.switch_to_block(not_full);
                    let edge_n = fb.ins().icmp_imm_s(IntCC::Equal, t.nr, spec.cols as i64);
                    let in_place = fb.ins().band(full_m, edge_n);
                    fb.ins().brif(in_place, column_edge, &[], edge, &[]);
                    fb.switch_to_block(column_edge);
                    let cptr = ptr2(fb, t.out_ptr, t.ir, plan.out.rows, t.col, 1);
                    let ldc = iconst(fb, plan.out.rows * 4);
                    let args = self.micro_args(fb, plan, t, [apan, bpan, cptr, ldc, kc, accumulate], true);
                    fb.ins().call(micro, &args);
                    self.epilogue_in_place(fb, plan, refs, t, cptr, spec.cols, done);
                }
                _ => {
                    fb.ins().brif(full, direct, &[], edge, &[]);
                }
            }
            fb.switch_to_block(direct);
            let cptr = ptr2(fb, t.out_ptr, t.ir, plan.out.rows, t.col, 1);
            let ldc = iconst(fb, plan.out.rows * 4);
            let args = self.micro_args(fb, plan, t, [apan, bpan, cptr, ldc, kc, accumulate], true);
            fb.ins().call(refs.micro, &args);
            self.epilogue_in_place(fb, plan, refs, t, cptr, nr as usize, done);
        } else {
            fb.ins().jump(edge, &[]);
        }
        fb.switch_to_block(edge);
        // Partial sums of earlier k blocks come in from `out`.
        let copy_in = fb.create_block();
        let compute = fb.create_block();
        fb.ins().brif(accumulate, copy_in, &[], compute, &[]);
        fb.switch_to_block(copy_in);
        let zero = iconst(fb, 0);
        for_step(fb, zero, t.mr, 1, &mut |fb, r| {
            let row = fb.ins().iadd(t.ir, r);
            let src_row = ptr2(fb, t.out_ptr, row, plan.out.rows, t.col, plan.out.cols);
            let dst_row = fb.ins().imul_imm_s(r, nr * 4);
            let dst_row = fb.ins().iadd(tmp, dst_row);
            let zero = iconst(fb, 0);
            for_step(fb, zero, t.nr, 1, &mut |fb, c| {
                let s = fb.ins().imul_imm_s(c, plan.out.cols * 4);
                let s = fb.ins().iadd(src_row, s);
                let v = fb.ins().load(types::F32, flags(), s, 0);
                let d = fb.ins().ishl_imm_u(c, 2);
                let d = fb.ins().iadd(dst_row, d);
                fb.ins().store(flags(), v, d, 0);
            });
        });
        fb.ins().jump(compute, &[]);
        fb.switch_to_block(compute);
        let ldt = iconst(fb, nr * 4);
        match refs.edge.filter(|_| !plan.spec.packed_b()) {
            // B read in place: a partial tile takes the column-edge kernel,
            // which reads no column of B past the last.
            Some(edge_micro) => {
                let (full_n, part_n, merge) = (fb.create_block(), fb.create_block(), fb.create_block());
                let is_full = fb.ins().icmp_imm_s(IntCC::Equal, t.nr, nr);
                fb.ins().brif(is_full, full_n, &[], part_n, &[]);
                fb.switch_to_block(full_n);
                let args = self.micro_args(fb, plan, t, [apan, bpan, tmp, ldt, kc, accumulate], false);
                fb.ins().call(refs.micro, &args);
                fb.ins().jump(merge, &[]);
                fb.switch_to_block(part_n);
                let args = self.micro_args(fb, plan, t, [apan, bpan, tmp, ldt, kc, accumulate], false);
                fb.ins().call(edge_micro, &args);
                fb.ins().jump(merge, &[]);
                fb.switch_to_block(merge);
            }
            None => {
                let args = self.micro_args(fb, plan, t, [apan, bpan, tmp, ldt, kc, accumulate], false);
                fb.ins().call(refs.micro, &args);
            }
        }
        if plan.identity {
            self.copy_out(fb, plan, t, tmp, nr * 4, false);
            fb.ins().jump(done, &[]);
        } else {
            let with = fb.create_block();
            let without = fb.create_block();
            fb.ins().brif(t.last, with, &[], without, &[]);
            fb.switch_to_block(with);
            self.copy_out(fb, plan, t, tmp, nr * 4, true);
            fb.ins().jump(done, &[]);
            fb.switch_to_block(without);
            self.copy_out(fb, plan, t, tmp, nr * 4, false);
            fb.ins().jump(done, &[]);
        }
        fb.switch_to_block(done);
    }

    /// The micro-kernel's arguments: `base` (a, b, c, ldc, kc, accumulate),
    /// and for a kernel with a register epilogue the flags in place of
    /// `accumulate` (the epilogue bit on the last k block when `in_place`)
    /// and the bias at the tile's first row or column (0 without a bias or
    /// when the epilogue is not applied).
    fn micro_args(&self, fb: &mut FunctionBuilder, plan: &Plan, t: &Tile, base: [Value; 6], in_place: bool) -> Vec<Value> {
        let Some(registers) = plan.spec.epilogue else { return base.to_vec() };
        let mut args = base.to_vec();
        if !in_place {
            args.push(iconst(fb, 0));
            return args;
        }
        let last = fb.ins().uextend(types::I64, t.last);
        let bit = fb.ins().ishl_imm_u(last, 1);
        args[5] = fb.ins().bor(base[5], bit);
        let bias = match (registers.bias, plan.bias_input, &plan.vector_inputs) {
            (Some(_), Some(n), Some(inputs)) => {
                let s = &inputs[n];
                let p = element_ptr(fb, self.bases[&plan.epilogue_inputs[n].buffer], &t.batch_idx, &s.batch, s.off);
                ptr2(fb, p, t.ir, s.rows, t.col, s.cols)
            }
            _ => iconst(fb, 0),
        };
        args.push(bias);
        args
    }

    /// After a tile of `mr` rows and `cols` columns was computed in place at
    /// `cptr`: on the last k block the epilogue on it (unless the
    /// micro-kernel applied it in registers), then a jump to `done`.
    #[allow(clippy::too_many_arguments)]
    fn epilogue_in_place(&self, fb: &mut FunctionBuilder, plan: &Plan, refs: &Refs, t: &Tile, cptr: Value, cols: usize, done: Block) {
        if plan.identity || plan.spec.epilogue.is_some() {
            fb.ins().jump(done, &[]);
            return;
        }
        let epi = fb.create_block();
        fb.ins().brif(t.last, epi, &[], done, &[]);
        fb.switch_to_block(epi);
        let mr_c = iconst(fb, plan.spec.mr as i64);
        // Columns [0, vector) on F32X4 vectors, the rest one by one.
        let vector = if plan.vector_inputs.is_some() { cols / 4 * 4 } else { 0 };
        if let Some(inputs) = &plan.vector_inputs {
            self.vector_epilogue(fb, plan, refs, inputs, t, cptr, vector);
        }
        if vector < cols {
            let col = if vector == 0 { t.col } else { fb.ins().iadd_imm_s(t.col, vector as i64) };
            let nr_c = iconst(fb, (cols - vector) as i64);
            let rest = Tile { mr: mr_c, nr: nr_c, col, batch_idx: t.batch_idx.clone(), ..*t };
            let src = if vector == 0 { cptr } else { fb.ins().iadd_imm_s(cptr, 4 * vector as i64) };
            self.copy_out(fb, plan, &rest, src, plan.out.rows * 4, true);
        }
        fb.ins().jump(done, &[]);
    }

    /// The kernel-order index `[batch.., m, n]` of tile element (row, col).
    fn epilogue_index(plan: &Plan, t: &Tile, row: Value, col: Value) -> Vec<Value> {
        let mut index = t.batch_idx.clone();
        if plan.swapped {
            index.extend([col, row]);
        } else {
            index.extend([row, col]);
        }
        index
    }

    /// Copies the `t.mr x t.nr` tile at `src` (rows `ld` bytes apart) to
    /// `out`, through the epilogue if `epilogue`. `src` may be `out` itself.
    fn copy_out(&self, fb: &mut FunctionBuilder, plan: &Plan, t: &Tile, src: Value, ld: i64, epilogue: bool) {
        let zero = iconst(fb, 0);
        for_step(fb, zero, t.mr, 1, &mut |fb, r| {
            let row = fb.ins().iadd(t.ir, r);
            let dst_row = ptr2(fb, t.out_ptr, row, plan.out.rows, t.col, plan.out.cols);
            let src_row = fb.ins().imul_imm_s(r, ld);
            let src_row = fb.ins().iadd(src, src_row);
            let zero = iconst(fb, 0);
            for_step(fb, zero, t.nr, 1, &mut |fb, c| {
                let s = fb.ins().ishl_imm_u(c, 2);
                let s = fb.ins().iadd(src_row, s);
                let mut v = fb.ins().load(types::F32, flags(), s, 0);
                if epilogue {
                    let colv = fb.ins().iadd(t.col, c);
                    let index = Self::epilogue_index(plan, t, row, colv);
                    v = self.expr(
                        fb,
                        &plan.epilogue,
                        &mut |fb, i| self.read(fb, &plan.epilogue_inputs[i as usize], &index),
                        Some(v),
                        None,
                    );
                }
                let d = fb.ins().imul_imm_s(c, plan.out.cols * 4);
                let d = fb.ins().iadd(dst_row, d);
                fb.ins().store(flags(), v, d, 0);
            });
        });
    }

    /// The epilogue on the first `cols` columns (a multiple of 4) of a
    /// full-height tile in place in `out` (contiguous rows), on F32X4
    /// vectors or by the AVX-512 epilogue function, a call per row.
    #[allow(clippy::too_many_arguments)]
    fn vector_epilogue(&self, fb: &mut FunctionBuilder, plan: &Plan, refs: &Refs, inputs: &[Strided], t: &Tile, cptr: Value, cols: usize) {
        let mr = plan.spec.mr;
        let zero = iconst(fb, 0);
        let mr_c = iconst(fb, mr as i64);
        for_step(fb, zero, mr_c, 1, &mut |fb, r| {
            let row = fb.ins().iadd(t.ir, r);
            let c_row = fb.ins().imul_imm_s(r, plan.out.rows * 4);
            let c_row = fb.ins().iadd(cptr, c_row);
            // Row pointers of the inputs; broadcast (n-stride 0) ones load once.
            let rows: Vec<(Value, Option<Value>)> = inputs
                .iter()
                .zip(&plan.epilogue_inputs)
                .map(|(s, a)| {
                    let base = self.bases[&a.buffer];
                    let p = element_ptr(fb, base, &t.batch_idx, &s.batch, s.off);
                    let p = ptr2(fb, p, row, s.rows, t.col, s.cols);
                    let splat = (s.cols == 0 && refs.epilogue.is_none()).then(|| {
                        let x = fb.ins().load(types::F32, flags(), p, 0);
                        fb.ins().splat(types::F32X4, x)
                    });
                    (p, splat)
                })
                .collect();
            if let Some(function) = refs.epilogue {
                let count = iconst(fb, cols as i64);
                let args: Vec<Value> = [c_row, count].into_iter().chain(rows.iter().map(|&(p, _)| p)).collect();
                fb.ins().call(function, &args);
                return;
            }
            for l in 0..(cols / 4) as i64 {
                let acc = load(fb, types::F32X4, c_row, 16 * l);
                let loads: Vec<Value> = rows
                    .iter()
                    .map(|&(p, splat)| splat.unwrap_or_else(|| load(fb, types::F32X4, p, 16 * l)))
                    .collect();
                let v = self.expr_lanes(fb, types::F32X4, &plan.epilogue, &mut |_, n| loads[n as usize], Some(acc), None);
                store(fb, v, c_row, 16 * l);
            }
        });
    }

    /// Packs B[pc..pc+kc, jc..jc+nc] into panels at `dst`.
    #[allow(clippy::too_many_arguments)]
    fn pack_b(&self, fb: &mut FunctionBuilder, plan: &Plan, b_ptr: Value, jc: Value, pc: Value, nc: Value, kc: Value, dst: Value) {
        let nr = plan.spec.nr as i64;
        let (rows, cols) = (plan.b.rows, plan.b.cols);
        let zero = iconst(fb, 0);
        for_step(fb, zero, nc, nr, &mut |fb, jr| {
            let left = fb.ins().isub(nc, jr);
            let nr_c = iconst(fb, nr);
            let nrr = fb.ins().smin(left, nr_c);
            let col = fb.ins().iadd(jc, jr);
            let src = ptr2(fb, b_ptr, pc, rows, col, cols);
            let d = fb.ins().imul(jr, kc);
            let d = fb.ins().ishl_imm_u(d, 2);
            let d = fb.ins().iadd(dst, d);
            let full = fb.create_block();
            let part = fb.create_block();
            let merge = fb.create_block();
            let is_full = fb.ins().icmp_imm_s(IntCC::Equal, nrr, nr);
            fb.ins().brif(is_full, full, &[], part, &[]);
            fb.switch_to_block(full);
            let mut copy = |fb: &mut FunctionBuilder, p: &[Value]| {
                if cols == 1 {
                    for l in 0..nr / 4 {
                        let v = load(fb, types::F32X4, p[0], 16 * l);
                        store(fb, v, p[1], 16 * l);
                    }
                } else {
                    for c in 0..nr {
                        let v = load(fb, types::F32, p[0], c * cols * 4);
                        store(fb, v, p[1], 4 * c);
                    }
                }
            };
            if cols != 1 && rows == 1 {
                transpose_panel(fb, src, d, kc, nr, cols);
            } else {
                ptr_loop(fb, kc, &[(src, rows * 4), (d, nr * 4)], &mut copy);
            }
            fb.ins().jump(merge, &[]);
            fb.switch_to_block(part);
            self.pack_partial(fb, src, d, kc, nrr, nr, cols, rows, nr);
            fb.ins().jump(merge, &[]);
            fb.switch_to_block(merge);
        });
    }

    /// Packs the A panel of rows [ir, ir+mrr) and k block [pc, pc+kc) at `dst`.
    #[allow(clippy::too_many_arguments)]
    fn pack_a(&self, fb: &mut FunctionBuilder, plan: &Plan, a_ptr: Value, ir: Value, mrr: Value, pc: Value, kc: Value, dst: Value) {
        let mr = plan.spec.mr as i64;
        let (rows, cols) = (plan.a.rows, plan.a.cols);
        let src = ptr2(fb, a_ptr, ir, rows, pc, cols);
        let full = fb.create_block();
        let part = fb.create_block();
        let merge = fb.create_block();
        let is_full = fb.ins().icmp_imm_s(IntCC::Equal, mrr, mr);
        fb.ins().brif(is_full, full, &[], part, &[]);
        fb.switch_to_block(full);
        if rows != 1 && cols == 1 && mr % 4 == 0 {
            transpose_panel(fb, src, dst, kc, mr, rows);
        } else {
            ptr_loop(fb, kc, &[(src, cols * 4), (dst, mr * 4)], &mut |fb, p| {
                if rows == 1 && mr % 4 == 0 {
                    for l in 0..mr / 4 {
                        let v = load(fb, types::F32X4, p[0], 16 * l);
                        store(fb, v, p[1], 16 * l);
                    }
                } else {
                    for r in 0..mr {
                        let v = load(fb, types::F32, p[0], r * rows * 4);
                        store(fb, v, p[1], 4 * r);
                    }
                }
            });
        }
        fb.ins().jump(merge, &[]);
        fb.switch_to_block(part);
        self.pack_partial(fb, src, dst, kc, mrr, mr, rows, cols, mr);
        fb.ins().jump(merge, &[]);
        fb.switch_to_block(merge);
    }

    /// A partial panel: `kc` steps of `width` floats, of which the first
    /// `valid` come from `src + w*w_stride` (elements), the rest are zero.
    /// Invalid lanes read the last valid element (in bounds) and select 0.
    #[allow(clippy::too_many_arguments)]
    fn pack_partial(&self, fb: &mut FunctionBuilder, src: Value, dst: Value, kc: Value, valid: Value, width: i64, w_stride: i64, k_stride: i64, dst_step: i64) {
        let last = fb.ins().iadd_imm_s(valid, -1);
        let lanes: Vec<(Value, Value)> = (0..width)
            .map(|w| {
                let wv = iconst(fb, w);
                let clamped = fb.ins().smin(wv, last);
                let off = fb.ins().imul_imm_s(clamped, w_stride * 4);
                let ok = fb.ins().icmp(IntCC::SignedLessThan, wv, valid);
                (off, ok)
            })
            .collect();
        let zero = fb.ins().f32const(0.0);
        ptr_loop(fb, kc, &[(src, k_stride * 4), (dst, dst_step * 4)], &mut |fb, p| {
            for (w, &(off, ok)) in lanes.iter().enumerate() {
                let a = fb.ins().iadd(p[0], off);
                let v = fb.ins().load(types::F32, flags(), a, 0);
                let v = fb.ins().select(ok, v, zero);
                fb.ins().store(flags(), v, p[1], (4 * w) as i32);
            }
        });
    }
}
