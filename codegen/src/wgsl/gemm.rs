//! Tiled matrix products: a workgroup computes a `TILE` x `TILE` block of
//! the output, staging `STEP`-deep slices of A and B in workgroup memory so
//! that each element read from a storage buffer serves `TILE` products;
//! each invocation accumulates a `BLOCK` x `BLOCK` part in registers. Edges
//! (M, N or K not a multiple of the tile) load zeros past the domain and
//! store nothing there. The reduction runs over k in ascending order, as in
//! the reference, with fused multiply-adds. An A operand among the constants
//! (the weights of a convolution or a dense layer), contiguous in k with
//! rows on 16-byte boundaries, is read four floats at a time (its chunk
//! declared `array<vec4<u32>>` in that shader).

use kiln_ir::kernel::{Access, Expr};
use kiln_ir::DataType;

use super::shader::{affine, lit, Writer};
use super::{Limits, Memory, WORKGROUP_SIZE};

/// Output rows and columns of a workgroup.
const TILE: usize = 32;
/// The k-slice staged per step.
const STEP: usize = 16;
/// Rows and columns one invocation computes: (TILE / BLOCK)^2 invocations.
const BLOCK: usize = 4;
const _: () = assert!((TILE / BLOCK) * (TILE / BLOCK) == WORKGROUP_SIZE as usize);

/// The workgroup grid (n tiles, m tiles, batch) of a tiled GEMM over
/// `domain`, or `None` where one invocation per output serves better
/// (fewer than 16 rows or columns) or the grid exceeds the limits.
pub(super) fn tiles(domain: &[usize], limits: &Limits) -> Option<[u32; 3]> {
    let r = domain.len();
    let (m, n) = (domain[r - 3], domain[r - 2]);
    let batch: usize = domain[..r - 3].iter().product();
    if m < 16 || n < 16 || batch == 0 || domain[r - 1] == 0 {
        return None;
    }
    let max = limits.max_compute_workgroups_per_dimension as usize;
    let (x, y) = (n.div_ceil(TILE), m.div_ceil(TILE));
    (x <= max && y <= max && batch <= max).then_some([x as u32, y as u32, batch as u32])
}

impl Writer<'_> {
    pub(super) fn gemm_tiled(
        &mut self,
        domain: &[usize],
        a: &Access,
        b: &Access,
        epilogue_inputs: &[Access],
        epilogue: &Expr,
        out: &Access,
    ) {
        let r = domain.len();
        let (m_len, n_len, k_len) = (domain[r - 3], domain[r - 2], domain[r - 1]);
        let per_thread = STEP * TILE / WORKGROUP_SIZE as usize;
        let threads_per_row = TILE / BLOCK;
        self.shared = format!(
            "var<workgroup> tile_a: array<f32, {n}>;\nvar<workgroup> tile_b: array<f32, {n}>;\n",
            n = STEP * TILE
        );
        let batch_axes = &domain[..r - 3];
        if batch_axes.iter().any(|&d| d > 1) {
            self.line("let flat = wg.z;");
        }
        let batch = self.decompose(batch_axes);
        self.line(format!("let m0 = i32(wg.y) * {TILE};"));
        self.line(format!("let n0 = i32(wg.x) * {TILE};"));
        self.line(format!("let tm = i32(li / {threads_per_row}u) * {BLOCK};"));
        self.line(format!("let tn = i32(li % {threads_per_row}u) * {BLOCK};"));
        for n in 0..BLOCK * BLOCK {
            self.line(format!("var acc{n}: f32 = 0.0;"));
        }
        self.line(format!("for (var k0: i32 = 0; k0 < {k_len}; k0 = k0 + {STEP}) {{"));
        self.indent += 1;
        // A's slice: t -> (row t / STEP, k t % STEP), k fastest (A rows are
        // usually contiguous in k); stored k-major for the inner loop.
        if let Some(quad_base) = self.quad_operand(a, domain) {
            self.stage_quads(a, domain, &batch, m_len, k_len, quad_base);
        } else {
            self.stage("a", a, domain, &batch, per_thread, [("am", format!("m0 + t / {STEP}"), m_len), ("ak", format!("k0 + t % {STEP}"), k_len)], format!("(t % {STEP}) * {TILE} + t / {STEP}"));
        }
        // B's slice: t -> (k t / TILE, column t % TILE), columns fastest.
        self.stage("b", b, domain, &batch, per_thread, [("bk", format!("k0 + t / {TILE}"), k_len), ("bn", format!("n0 + t % {TILE}"), n_len)], "t".to_string());
        self.line("workgroupBarrier();");
        self.line(format!("for (var kk: i32 = 0; kk < {STEP}; kk = kk + 1) {{"));
        self.indent += 1;
        for i in 0..BLOCK {
            self.line(format!("let a{i} = tile_a[kk * {TILE} + tm + {i}];"));
        }
        for j in 0..BLOCK {
            self.line(format!("let b{j} = tile_b[kk * {TILE} + tn + {j}];"));
        }
        for i in 0..BLOCK {
            for j in 0..BLOCK {
                let n = i * BLOCK + j;
                self.line(format!("acc{n} = fma(a{i}, b{j}, acc{n});"));
            }
        }
        self.indent -= 1;
        self.line("}");
        self.line("workgroupBarrier();");
        self.indent -= 1;
        self.line("}");
        let outer = &domain[..r - 1];
        let k = lit(k_len as f32);
        for e in 0..BLOCK * BLOCK {
            self.line(format!("let em{e} = m0 + tm + {};", e / BLOCK));
            self.line(format!("let en{e} = n0 + tn + {};", e % BLOCK));
            self.line(format!("if (em{e} < {m_len} && en{e} < {n_len}) {{"));
            self.indent += 1;
            let mut idx = batch.clone();
            idx.extend([format!("em{e}"), format!("en{e}")]);
            let result = self.expr(epilogue, &format!("f{e}_"), &format!("acc{e}"), &k, &mut |w, n| {
                w.load_input(&epilogue_inputs[n as usize], outer, &idx).0
            });
            let (_, target) = self.locate(out, outer, &idx);
            self.store(out.buffer, &target, &result);
            self.indent -= 1;
            self.line("}");
        }
    }

    /// Where A can be read four floats at a time: an unguarded float32
    /// operand in a constant chunk bound as one page, contiguous in k, with
    /// every row and batch start and k's extent a multiple of four words.
    /// Declares the chunk `array<vec4<u32>>` and returns A's first word.
    fn quad_operand(&mut self, a: &Access, domain: &[usize]) -> Option<u64> {
        let r = domain.len();
        let p = self.placement(a.buffer);
        let constant = matches!(p.memory, Memory::Constants(_)) && !self.paged(p.memory);
        if a.guard.is_some() || !constant || self.data_type(a.buffer) != DataType::Float32 || !domain[r - 1].is_multiple_of(4) {
            return None;
        }
        let (offset, strides) = a.linear(r);
        let first = p.offset as i64 / 4 + offset as i64;
        let aligned = strides[r - 1] == 1
            && first % 4 == 0
            && strides[..r - 1].iter().all(|s| s % 4 == 0);
        if !aligned {
            return None;
        }
        self.quads.insert(p.memory);
        Some(first as u64)
    }

    /// A's slice from quads: t -> (row t / 4, k quad t % 4), each quad's
    /// four floats to the tile's k-major slots.
    fn stage_quads(&mut self, a: &Access, domain: &[usize], batch: &[String], m_len: usize, k_len: usize, first: u64) {
        let r = domain.len();
        let quads_per_row = STEP / 4;
        let per_thread = TILE * quads_per_row / WORKGROUP_SIZE as usize;
        let memory = self.placement(a.buffer).memory;
        self.used.insert(memory);
        let memory = memory.name();
        let (_, strides) = a.linear(r);
        let mut terms: Vec<(i64, &str)> = batch.iter().zip(&strides).map(|(n, &s)| (s as i64, n.as_str())).collect();
        terms.extend([(strides[r - 3] as i64, "am"), (1, "ak")]);
        let word = affine(first as i64, &terms);
        self.line(format!("for (var e: i32 = 0; e < {per_thread}; e = e + 1) {{"));
        self.indent += 1;
        self.line(format!("let t = i32(li) + e * {WORKGROUP_SIZE};"));
        self.line(format!("let am = m0 + t / {quads_per_row};"));
        self.line(format!("let ak = k0 + (t % {quads_per_row}) * 4;"));
        self.line("var av = vec4<f32>(0.0);");
        self.line(format!("if (am < {m_len} && ak < {k_len}) {{"));
        self.line(format!("    av = bitcast<vec4<f32>>({memory}[{word} >> 2u]);"));
        self.line("}");
        self.line(format!("let slot = (t % {quads_per_row}) * {} + t / {quads_per_row};", 4 * TILE));
        for (j, c) in ["x", "y", "z", "w"].iter().enumerate() {
            self.line(format!("tile_a[slot + {}] = av.{c};", j * TILE));
        }
        self.indent -= 1;
        self.line("}");
    }

    /// Emits the loads of one operand's slice into `tile_{name}`: each
    /// invocation loads `per_thread` elements `t = li + e * WORKGROUP_SIZE`;
    /// `coords` names the row/column and k coordinates of `t` (expression,
    /// extent), zero past the extents; `slot` is `t`'s place in the tile.
    #[allow(clippy::too_many_arguments)]
    fn stage(
        &mut self,
        name: &str,
        access: &Access,
        domain: &[usize],
        batch: &[String],
        per_thread: usize,
        coords: [(&str, String, usize); 2],
        slot: String,
    ) {
        self.line(format!("for (var e: i32 = 0; e < {per_thread}; e = e + 1) {{"));
        self.indent += 1;
        self.line(format!("let t = i32(li) + e * {WORKGROUP_SIZE};"));
        for (var, value, _) in &coords {
            self.line(format!("let {var} = {value};"));
        }
        self.line(format!("var {name}v = 0.0;"));
        let [(c0, _, e0), (c1, _, e1)] = &coords;
        self.line(format!("if ({c0} < {e0} && {c1} < {e1}) {{"));
        self.indent += 1;
        // The domain index: batch, then m, n, k (A ignores n, B ignores m).
        let mut idx = batch.to_vec();
        match name {
            "a" => idx.extend([c0.to_string(), "0".to_string(), c1.to_string()]),
            _ => idx.extend(["0".to_string(), c1.to_string(), c0.to_string()]),
        }
        let (v, _) = self.load_input(access, domain, &idx);
        self.line(format!("{name}v = {v};"));
        self.indent -= 1;
        self.line("}");
        self.line(format!("tile_{name}[{slot}] = {name}v;"));
        self.indent -= 1;
        self.line("}");
    }
}
