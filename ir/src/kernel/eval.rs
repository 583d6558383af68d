//! The reference evaluator of the kernel IR: runs a [`Program`] exactly as
//! the documentation in [`crate::kernel`] defines it, element by element.
//! It is the oracle for the native and WGSL backends, so it is written to be
//! obviously correct, not fast.
//!
//! Memory: graph inputs and constants are read in place; every output
//! buffer gets its own zeroed memory; scratch buffers live in one zeroed
//! arena of [`Program::arena_bytes`] at their planned offsets, exactly as a
//! backend lays them out, so a wrong memory plan shows up as wrong results.
//! Each kernel reads everything it needs before it writes anything, so a
//! Map planned to write over one of its inputs (see [`crate::kernel`])
//! reads that input's old values. A [`Kernel::Host`] gets copies of its
//! input buffers as tensors and its results are copied into its output
//! buffers ([`HostKernel::run`]).

use half::f16;

use super::{
    Access, BinaryFn, BufferId, BufferKind, Combine, Expr, ExprNode, HostKernel, Kernel, KernelError, Program, UnaryFn,
};
use crate::{DataType, OperandDescriptor, Tensor};

/// Runs `program` on the tensors for its input buffers (matched by name;
/// each must have the buffer's data type and element count) and returns one
/// tensor per [`BufferKind::Output`] buffer, in buffer order, with its name.
///
/// The kernel IR gives buffers a length, not a shape, so every output is a
/// 1-D tensor of the buffer's length; callers reshape it to the graph's
/// descriptor (`Tensor::new(desc, t.shared_bytes().clone())`, no copy).
///
/// The program is validated first; a feed that does not fit its buffer, a
/// scratch buffer outside the arena or a failed validation is an error
/// (its `kind` is `"feed"` or `"memory"` when no kernel is at fault).
pub fn eval(program: &Program, inputs: &[(&str, &Tensor)]) -> Result<Vec<(String, Tensor)>, KernelError> {
    program.validate()?;
    let mut memory = Memory::new(program, inputs)?;
    for (k, kernel) in program.kernels.iter().enumerate() {
        let fail = |message: String| KernelError { kernel: k, kind: kernel.kind(), message };
        if let Kernel::Host(h) = kernel {
            run_host(program, &mut memory, h).map_err(fail)?;
            continue;
        }
        let writes = run_kernel(program, &memory, kernel).map_err(fail)?;
        memory.write(program, writes).map_err(fail)?;
    }
    memory.outputs(program)
}

/// Runs a host kernel: its input buffers as tensors, its results copied
/// into its output buffers.
fn run_host(program: &Program, memory: &mut Memory, h: &HostKernel) -> Result<(), String> {
    let inputs = h
        .inputs
        .iter()
        .map(|i| {
            Tensor::from_bytes(i.desc.clone(), memory.bytes(program, i.buffer)?.to_vec()).map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let results = h.run(&inputs)?;
    for (o, t) in h.outputs.iter().zip(&results) {
        memory.write_bytes(program, o.buffer, t.bytes())?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Scalar semantics.

impl UnaryFn {
    /// The function on one f32 value. `Abs`, `Neg`, `Ceil`, `Floor`,
    /// `RoundEven`, `Trunc` and `Sqrt` are the exact IEEE operations; `Exp`, `Log`,
    /// `Erf`, `Sin`, `Cos`, `Tan` and `Tanh` are evaluated in f64 and
    /// rounded once to f32 (so they are as good as correctly rounded);
    /// `RoundF16` rounds to the nearest float16 value, ties to even.
    pub fn apply(self, x: f32) -> f32 {
        let wide = |f: fn(f64) -> f64| f(x as f64) as f32;
        match self {
            UnaryFn::Abs => x.abs(),
            UnaryFn::Neg => -x,
            UnaryFn::Ceil => x.ceil(),
            UnaryFn::Floor => x.floor(),
            UnaryFn::RoundEven => x.round_ties_even(),
            UnaryFn::Sqrt => x.sqrt(),
            UnaryFn::Exp => wide(f64::exp),
            UnaryFn::Log => wide(f64::ln),
            UnaryFn::Erf => wide(crate::interp::erf),
            UnaryFn::Sin => wide(f64::sin),
            UnaryFn::Cos => wide(f64::cos),
            UnaryFn::Tan => wide(f64::tan),
            UnaryFn::Tanh => wide(f64::tanh),
            UnaryFn::Trunc => x.trunc(),
            UnaryFn::RoundF16 => f16::from_f32(x).to_f32(),
        }
    }
}

impl BinaryFn {
    /// The function on two f32 values. `Add`, `Sub`, `Mul` and `Div` are
    /// the IEEE f32 operations; `Pow` is evaluated in f64 and rounded once.
    /// `Max`/`Min` are IEEE 754-2019 `maximum`/`minimum`: NaN if either
    /// operand is NaN, and `-0 < +0`. Comparisons give 1.0 or 0.0 and are
    /// false when an operand is NaN.
    pub fn apply(self, a: f32, b: f32) -> f32 {
        let truth = |c: bool| if c { 1.0 } else { 0.0 };
        match self {
            BinaryFn::Add => a + b,
            BinaryFn::Sub => a - b,
            BinaryFn::Mul => a * b,
            BinaryFn::Div => a / b,
            BinaryFn::Max => maximum(a, b),
            BinaryFn::Min => minimum(a, b),
            BinaryFn::Pow => (a as f64).powf(b as f64) as f32,
            BinaryFn::Equal => truth(a == b),
            BinaryFn::Greater => truth(a > b),
            BinaryFn::GreaterOrEqual => truth(a >= b),
            BinaryFn::Lesser => truth(a < b),
            BinaryFn::LesserOrEqual => truth(a <= b),
        }
    }
}

impl Combine {
    /// One combination step: `Sum` is f32 `+`, `Product` f32 `*`, `Max`
    /// and `Min` are [`BinaryFn::Max`] and [`BinaryFn::Min`].
    pub fn apply(self, acc: f32, x: f32) -> f32 {
        match self {
            Combine::Sum => acc + x,
            Combine::Product => acc * x,
            Combine::Max => maximum(acc, x),
            Combine::Min => minimum(acc, x),
        }
    }
}

fn maximum(a: f32, b: f32) -> f32 {
    if a.is_nan() {
        a
    } else if b.is_nan() {
        b
    } else if a == b {
        if a.is_sign_positive() { a } else { b }
    } else if a > b {
        a
    } else {
        b
    }
}

fn minimum(a: f32, b: f32) -> f32 {
    if a.is_nan() {
        a
    } else if b.is_nan() {
        b
    } else if a == b {
        if a.is_sign_negative() { a } else { b }
    } else if a < b {
        a
    } else {
        b
    }
}

/// Converts one element of type `t` (little-endian `bytes`) to f32:
/// floats exactly, integers rounded to nearest (exact below 2^24).
pub fn load_f32(t: DataType, bytes: &[u8]) -> f32 {
    fn le<const N: usize>(bytes: &[u8]) -> [u8; N] {
        bytes[..N].try_into().expect("one element")
    }
    match t {
        DataType::Float32 => f32::from_le_bytes(le(bytes)),
        DataType::Float16 => f16::from_le_bytes(le(bytes)).to_f32(),
        DataType::Int32 => i32::from_le_bytes(le(bytes)) as f32,
        DataType::Uint32 => u32::from_le_bytes(le(bytes)) as f32,
        DataType::Int64 => i64::from_le_bytes(le(bytes)) as f32,
        DataType::Uint64 => u64::from_le_bytes(le(bytes)) as f32,
        DataType::Int8 => bytes[0] as i8 as f32,
        DataType::Uint8 => bytes[0] as f32,
    }
}

/// Converts f32 `x` to one element of type `t` in `out` (little-endian):
/// float16 rounds to nearest, ties to even; integer types truncate toward
/// zero and saturate to their range, NaN giving 0.
pub fn store_f32(t: DataType, x: f32, out: &mut [u8]) {
    match t {
        DataType::Float32 => out[..4].copy_from_slice(&x.to_le_bytes()),
        DataType::Float16 => out[..2].copy_from_slice(&f16::from_f32(x).to_le_bytes()),
        DataType::Int32 => out[..4].copy_from_slice(&(x as i32).to_le_bytes()),
        DataType::Uint32 => out[..4].copy_from_slice(&(x as u32).to_le_bytes()),
        DataType::Int64 => out[..8].copy_from_slice(&(x as i64).to_le_bytes()),
        DataType::Uint64 => out[..8].copy_from_slice(&(x as u64).to_le_bytes()),
        DataType::Int8 => out[0] = x as i8 as u8,
        DataType::Uint8 => out[0] = x as u8,
    }
}

/// Evaluates `expr` given the values of its loads, the accumulator and the
/// count (the validator has checked which nodes may appear).
fn eval_expr(expr: &Expr, loads: &[f32], acc: f32, count: f32) -> Result<f32, String> {
    let mut v: Vec<f32> = Vec::with_capacity(expr.nodes.len());
    for node in &expr.nodes {
        let get =
            |id: super::ValueId| v.get(id.0 as usize).copied().ok_or_else(|| format!("bad value reference {}", id.0));
        let x = match *node {
            ExprNode::Load(n) => *loads.get(n as usize).ok_or_else(|| format!("no input {n}"))?,
            ExprNode::Const(c) => c,
            ExprNode::Acc => acc,
            ExprNode::Count => count,
            ExprNode::Unary(f, a) => f.apply(get(a)?),
            ExprNode::Binary(f, a, b) => f.apply(get(a)?, get(b)?),
            ExprNode::Select(c, a, b) => {
                if get(c)? != 0.0 {
                    get(a)?
                } else {
                    get(b)?
                }
            }
        };
        v.push(x);
    }
    v.last().copied().ok_or_else(|| "empty expression".to_string())
}

// ---------------------------------------------------------------------------
// Memory.

enum Storage<'a> {
    /// A graph input or a constant, read in place.
    Borrowed(&'a [u8]),
    /// An output buffer.
    Owned(Vec<u8>),
    /// A scratch buffer at this byte offset into the arena.
    Arena(usize),
}

struct Memory<'a> {
    storage: Vec<Storage<'a>>,
    arena: Vec<u8>,
}

/// One element a kernel writes: a computed value (converted on store) or
/// the raw bytes of a copied element.
#[derive(Clone, Copy)]
enum Element {
    Value(f32),
    Bits([u8; 8]),
}

/// Everything one kernel writes, to one buffer: `(element index, element)`.
struct Writes {
    buffer: BufferId,
    elements: Vec<(usize, Element)>,
}

impl<'a> Memory<'a> {
    fn new(program: &'a Program, inputs: &[(&str, &'a Tensor)]) -> Result<Self, KernelError> {
        let fail = |kind: &'static str, message: String| KernelError { kernel: 0, kind, message };
        let mut storage = Vec::with_capacity(program.buffers.len());
        for (i, b) in program.buffers.iter().enumerate() {
            let id = BufferId(i as u32);
            let s = match &b.kind {
                BufferKind::Input(name) => {
                    let (_, t) = inputs
                        .iter()
                        .find(|(n, _)| n == name)
                        .ok_or_else(|| fail("feed", format!("input `{name}` ({id}) is not fed")))?;
                    if t.data_type() != b.data_type || t.bytes().len() != b.byte_len() {
                        return Err(fail(
                            "feed",
                            format!("input `{name}`: {id} holds {} {} elements, got {}", b.len, b.data_type, t.desc()),
                        ));
                    }
                    Storage::Borrowed(t.bytes())
                }
                BufferKind::Constant(t) => {
                    if t.data_type() != b.data_type || t.bytes().len() != b.byte_len() {
                        return Err(fail(
                            "memory",
                            format!(
                                "constant {id} holds {} {} elements, its tensor is {}",
                                b.len,
                                b.data_type,
                                t.desc()
                            ),
                        ));
                    }
                    Storage::Borrowed(t.bytes())
                }
                BufferKind::Output(_) => Storage::Owned(vec![0; b.byte_len()]),
                BufferKind::Scratch { offset } => {
                    let end = offset.checked_add(b.byte_len());
                    if end.is_none_or(|e| e > program.arena_bytes) {
                        return Err(fail(
                            "memory",
                            format!(
                                "scratch {id} ({} bytes at offset {offset}) lies outside the {}-byte arena (is the program planned?)",
                                b.byte_len(),
                                program.arena_bytes
                            ),
                        ));
                    }
                    Storage::Arena(*offset)
                }
            };
            storage.push(s);
        }
        Ok(Memory { storage, arena: vec![0; program.arena_bytes] })
    }

    /// The bytes of buffer `id`.
    fn bytes(&self, program: &Program, id: BufferId) -> Result<&[u8], String> {
        let b = program.buffers.get(id.0 as usize).ok_or_else(|| format!("no buffer {id}"))?;
        Ok(match &self.storage[id.0 as usize] {
            Storage::Borrowed(s) => s,
            Storage::Owned(v) => v,
            Storage::Arena(offset) => &self.arena[*offset..*offset + b.byte_len()],
        })
    }

    /// Element `index` of buffer `id` as f32.
    fn load(&self, program: &Program, id: BufferId, index: usize) -> Result<f32, String> {
        let t = program.buffer(id).data_type;
        Ok(load_f32(t, element(self.bytes(program, id)?, t, index, id)?))
    }

    /// The raw bytes of element `index` of buffer `id`.
    fn bits(&self, program: &Program, id: BufferId, index: usize) -> Result<[u8; 8], String> {
        let t = program.buffer(id).data_type;
        let mut out = [0u8; 8];
        out[..t.byte_size()].copy_from_slice(element(self.bytes(program, id)?, t, index, id)?);
        Ok(out)
    }

    fn write(&mut self, program: &Program, writes: Writes) -> Result<(), String> {
        let b = program.buffers.get(writes.buffer.0 as usize).ok_or_else(|| format!("no buffer {}", writes.buffer))?;
        let (t, len) = (b.data_type, b.byte_len());
        let bytes: &mut [u8] = match &mut self.storage[writes.buffer.0 as usize] {
            Storage::Owned(v) => v,
            Storage::Arena(offset) => &mut self.arena[*offset..*offset + len],
            Storage::Borrowed(_) => return Err(format!("{} is read-only", writes.buffer)),
        };
        let size = t.byte_size();
        for (index, e) in writes.elements {
            let dst = index
                .checked_mul(size)
                .and_then(|s| bytes.get_mut(s..s + size))
                .ok_or_else(|| format!("element {index} is outside {}", writes.buffer))?;
            match e {
                Element::Value(x) => store_f32(t, x, dst),
                Element::Bits(raw) => dst.copy_from_slice(&raw[..size]),
            }
        }
        Ok(())
    }

    /// Overwrites all of buffer `id` with `bytes` (exactly its size).
    fn write_bytes(&mut self, program: &Program, id: BufferId, bytes: &[u8]) -> Result<(), String> {
        let len = program.buffers.get(id.0 as usize).ok_or_else(|| format!("no buffer {id}"))?.byte_len();
        let dst: &mut [u8] = match &mut self.storage[id.0 as usize] {
            Storage::Owned(v) => v,
            Storage::Arena(offset) => &mut self.arena[*offset..*offset + len],
            Storage::Borrowed(_) => return Err(format!("{id} is read-only")),
        };
        if dst.len() != bytes.len() {
            return Err(format!("{} bytes for {id}, which holds {}", bytes.len(), dst.len()));
        }
        dst.copy_from_slice(bytes);
        Ok(())
    }

    fn outputs(self, program: &Program) -> Result<Vec<(String, Tensor)>, KernelError> {
        let mut out = Vec::new();
        for ((i, b), s) in program.buffers.iter().enumerate().zip(self.storage) {
            if let (BufferKind::Output(name), Storage::Owned(bytes)) = (&b.kind, s) {
                let fail = |message: String| KernelError { kernel: 0, kind: "memory", message };
                let len = u32::try_from(b.len).map_err(|_| fail(format!("output b{i} has more than 2^32 elements")))?;
                let t = Tensor::from_bytes(OperandDescriptor::new(b.data_type, [len]), bytes)
                    .map_err(|e| fail(e.to_string()))?;
                out.push((name.clone(), t));
            }
        }
        Ok(out)
    }
}

/// The bytes of element `index` in `bytes` of element type `t`.
fn element(bytes: &[u8], t: DataType, index: usize, id: BufferId) -> Result<&[u8], String> {
    let size = t.byte_size();
    index
        .checked_mul(size)
        .and_then(|s| bytes.get(s..s + size))
        .ok_or_else(|| format!("element {index} is outside {id}"))
}

// ---------------------------------------------------------------------------
// Kernels.

/// Calls `f` with every index of the box `dims`, in row-major order (once,
/// with `[]`, for a rank-0 box; never if a dimension is 0).
fn for_each_index(dims: &[usize], mut f: impl FnMut(&[usize]) -> Result<(), String>) -> Result<(), String> {
    if dims.contains(&0) {
        return Ok(());
    }
    let mut index = vec![0usize; dims.len()];
    loop {
        f(&index)?;
        let mut axis = dims.len();
        loop {
            if axis == 0 {
                return Ok(());
            }
            axis -= 1;
            index[axis] += 1;
            if index[axis] < dims[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
}

/// The row-major element index that `a` addresses at domain index `i`, or
/// `None` when `a` is guarded and a coordinate falls outside its shape. An
/// unguarded coordinate outside the shape is an error (the validator rules
/// it out).
fn locate(a: &Access, i: &[usize]) -> Result<Option<usize>, String> {
    let mut flat = 0usize;
    for (j, &dim) in a.shape.iter().enumerate() {
        let mut c = a.base[j] as i128;
        for (&coef, &x) in a.coef[j].iter().zip(i) {
            c += coef as i128 * x as i128;
        }
        if c < 0 || c >= dim as i128 {
            if a.guard.is_some() {
                return Ok(None);
            }
            return Err(format!("coordinate {j} of {} is {c}, outside [0, {dim})", a.buffer));
        }
        flat = flat * dim + c as usize;
    }
    Ok(Some(flat))
}

/// The value `a` reads at domain index `i` and whether its guard passed.
fn read(program: &Program, memory: &Memory, a: &Access, i: &[usize]) -> Result<(f32, bool), String> {
    match locate(a, i)? {
        Some(index) => Ok((memory.load(program, a.buffer, index)?, true)),
        None => Ok((a.guard.unwrap_or(0.0), false)),
    }
}

/// The element index an (unguarded) written access addresses.
fn target(a: &Access, i: &[usize]) -> Result<usize, String> {
    locate(a, i)?.ok_or_else(|| "a written access cannot be guarded".to_string())
}

fn run_kernel(program: &Program, memory: &Memory, kernel: &Kernel) -> Result<Writes, String> {
    let mut elements = Vec::new();
    let buffer = match kernel {
        Kernel::Map { domain, inputs, expr, out } => {
            let out_type = program.buffer(out.buffer).data_type;
            // A single load of the output's data type copies element bytes.
            let copy = match expr.nodes.as_slice() {
                [ExprNode::Load(n)] => {
                    inputs.get(*n as usize).filter(|a| program.buffer(a.buffer).data_type == out_type)
                }
                _ => None,
            };
            let mut loads = vec![0.0f32; inputs.len()];
            for_each_index(domain, |i| {
                let e = match copy {
                    Some(a) => match locate(a, i)? {
                        Some(index) => Element::Bits(memory.bits(program, a.buffer, index)?),
                        None => Element::Value(a.guard.unwrap_or(0.0)),
                    },
                    None => {
                        for (slot, a) in loads.iter_mut().zip(inputs) {
                            *slot = read(program, memory, a, i)?.0;
                        }
                        Element::Value(eval_expr(expr, &loads, 0.0, 0.0)?)
                    }
                };
                elements.push((target(out, i)?, e));
                Ok(())
            })?;
            out.buffer
        }
        Kernel::Reduce { domain, reduced, inputs, element, combine, finish, finish_inputs, out } => {
            let split = domain.len() - reduced;
            let (kept, red) = domain.split_at(split);
            let mut loads = vec![0.0f32; inputs.len()];
            let mut finish_loads = vec![0.0f32; finish_inputs.len()];
            let mut index = vec![0usize; domain.len()];
            for_each_index(kept, |k| {
                index[..split].copy_from_slice(k);
                let mut acc = combine.identity();
                let mut count = 0u64;
                for_each_index(red, |r| {
                    index[split..].copy_from_slice(r);
                    let mut passed = true;
                    for (n, (slot, a)) in loads.iter_mut().zip(inputs).enumerate() {
                        let (x, ok) = read(program, memory, a, &index)?;
                        *slot = x;
                        if n == 0 {
                            passed = ok;
                        }
                    }
                    if passed {
                        count += 1;
                    }
                    acc = combine.apply(acc, eval_expr(element, &loads, 0.0, 0.0)?);
                    Ok(())
                })?;
                for (slot, a) in finish_loads.iter_mut().zip(finish_inputs) {
                    *slot = read(program, memory, a, k)?.0;
                }
                let y = eval_expr(finish, &finish_loads, acc, count as f32)?;
                elements.push((target(out, k)?, Element::Value(y)));
                Ok(())
            })?;
            out.buffer
        }
        Kernel::Gemm { domain, a, b, epilogue_inputs, epilogue, out } => {
            let split = domain.len() - 1;
            let (outer, k_len) = (&domain[..split], domain[split]);
            let mut loads = vec![0.0f32; epilogue_inputs.len()];
            let mut index = vec![0usize; domain.len()];
            for_each_index(outer, |o| {
                index[..split].copy_from_slice(o);
                let mut acc = 0.0f32;
                for k in 0..k_len {
                    index[split] = k;
                    let x = read(program, memory, a, &index)?.0;
                    let y = read(program, memory, b, &index)?.0;
                    acc += x * y;
                }
                for (slot, e) in loads.iter_mut().zip(epilogue_inputs) {
                    *slot = read(program, memory, e, o)?.0;
                }
                let y = eval_expr(epilogue, &loads, acc, k_len as f32)?;
                elements.push((target(out, o)?, Element::Value(y)));
                Ok(())
            })?;
            out.buffer
        }
        Kernel::Gather { outer, axis_len, inner, input, indices, index_count, out } => {
            let index_type = program.buffer(*indices).data_type;
            let index_bytes = memory.bytes(program, *indices)?;
            let len = *axis_len as i128;
            let mut picks = Vec::with_capacity(*index_count);
            for j in 0..*index_count {
                let raw = element(index_bytes, index_type, j, *indices)?;
                let i: i128 = match index_type {
                    DataType::Int32 => i32::from_le_bytes(raw.try_into().unwrap()) as i128,
                    DataType::Uint32 => u32::from_le_bytes(raw.try_into().unwrap()) as i128,
                    DataType::Int64 => i64::from_le_bytes(raw.try_into().unwrap()) as i128,
                    t => return Err(format!("indices of type {t}")),
                };
                let i = if i < 0 { i + len } else { i };
                picks.push(i.clamp(0, len - 1) as usize);
            }
            for o in 0..*outer {
                for (j, &p) in picks.iter().enumerate() {
                    for i in 0..*inner {
                        let src = (o * axis_len + p) * inner + i;
                        let dst = (o * index_count + j) * inner + i;
                        elements.push((dst, Element::Bits(memory.bits(program, *input, src)?)));
                    }
                }
            }
            *out
        }
        Kernel::Host(_) => return Err("a host kernel has no element-wise form (see run_host)".into()),
    };
    Ok(Writes { buffer, elements })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OperandId;
    use crate::kernel::ValueId;

    fn scratch_program() -> Program {
        Program::default()
    }

    fn f32s(t: &Tensor) -> Vec<f32> {
        t.to_f32_vec()
    }

    fn input(p: &mut Program, name: &str, t: DataType, len: usize) -> BufferId {
        p.add_buffer(BufferKind::Input(name.into()), t, len)
    }

    fn output(p: &mut Program, name: &str, t: DataType, len: usize) -> BufferId {
        p.add_buffer(BufferKind::Output(name.into()), t, len)
    }

    fn access(buffer: BufferId, shape: &[usize], base: &[isize], coef: &[&[isize]], guard: Option<f32>) -> Access {
        Access {
            buffer,
            shape: shape.to_vec(),
            base: base.to_vec(),
            coef: coef.iter().map(|r| r.to_vec()).collect(),
            guard,
        }
    }

    #[test]
    fn guarded_access_reads_the_fill_outside_the_shape() {
        // Pad [1, 2, 3] with one element each side: fill 9 on the left (guard).
        let mut p = scratch_program();
        let x = input(&mut p, "x", DataType::Float32, 3);
        let y = output(&mut p, "y", DataType::Float32, 5);
        p.kernels.push(Kernel::Map {
            domain: vec![5],
            inputs: vec![access(x, &[3], &[-1], &[&[1]], Some(9.0))],
            expr: Expr::load(0),
            out: Access::identity(y, &[5]),
        });
        let xt = Tensor::from_f32([3], &[1.0, 2.0, 3.0]).unwrap();
        let out = eval(&p, &[("x", &xt)]).unwrap();
        assert_eq!(out[0].0, "y");
        assert_eq!(f32s(&out[0].1), [9.0, 1.0, 2.0, 3.0, 9.0]);
    }

    #[test]
    fn a_single_load_of_the_same_type_copies_int64_bits() {
        // Values beyond 2^24 (not representable in f32) survive a transpose.
        let mut p = scratch_program();
        let x = input(&mut p, "x", DataType::Int64, 4);
        let y = output(&mut p, "y", DataType::Int64, 4);
        p.kernels.push(Kernel::Map {
            domain: vec![2, 2],
            inputs: vec![access(x, &[2, 2], &[0, 0], &[&[0, 1], &[1, 0]], None)],
            expr: Expr::load(0),
            out: Access::identity(y, &[2, 2]),
        });
        let vals = [i64::MAX, i64::MIN, (1 << 53) + 1, -((1 << 40) + 3)];
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let xt = Tensor::from_bytes(OperandDescriptor::new(DataType::Int64, [4]), bytes).unwrap();
        let out = eval(&p, &[("x", &xt)]).unwrap();
        let got: Vec<i64> = out[0].1.bytes().chunks(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(got, [vals[0], vals[2], vals[1], vals[3]]);
    }

    #[test]
    fn stores_round_float16_to_even_and_saturate_integers() {
        let mut p = scratch_program();
        let x = input(&mut p, "x", DataType::Float32, 4);
        let h = output(&mut p, "h", DataType::Float16, 4);
        let i = output(&mut p, "i", DataType::Int8, 4);
        let u = output(&mut p, "u", DataType::Uint32, 4);
        for out in [h, i, u] {
            p.kernels.push(Kernel::Map {
                domain: vec![4],
                inputs: vec![Access::identity(x, &[4])],
                expr: Expr::load(0),
                out: Access::identity(out, &[4]),
            });
        }
        // 1 + 2^-11 is halfway between two float16 values: ties to even (1.0);
        // 1 + 3 * 2^-11 ties up to 1 + 2^-9.
        let xt = Tensor::from_f32([4], &[1.0 + 2f32.powi(-11), 1.0 + 3.0 * 2f32.powi(-11), -300.7, f32::NAN]).unwrap();
        let out = eval(&p, &[("x", &xt)]).unwrap();
        let h: Vec<f32> = f32s(&out[0].1);
        assert_eq!(h[..3], [1.0, 1.0 + 2f32.powi(-9), -300.75]);
        assert!(h[3].is_nan());
        assert_eq!(out[1].1.bytes(), [1u8, 1, (-128i8) as u8, 0]);
        let u: Vec<u32> = out[2].1.bytes().chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(u, [1, 1, 0, 0]);
    }

    #[test]
    fn gather_clamps_and_wraps_negative_indices() {
        let mut p = scratch_program();
        let x = input(&mut p, "x", DataType::Int64, 6);
        let idx = input(&mut p, "i", DataType::Int32, 5);
        let y = output(&mut p, "y", DataType::Int64, 10);
        p.kernels.push(Kernel::Gather {
            outer: 2,
            axis_len: 3,
            inner: 1,
            input: x,
            indices: idx,
            index_count: 5,
            out: y,
        });
        let vals: Vec<i64> = vec![10, 11, 12, 20, 21, (1 << 60) + 1];
        let xt = Tensor::from_bytes(
            OperandDescriptor::new(DataType::Int64, [6]),
            vals.iter().flat_map(|v| v.to_le_bytes()).collect(),
        )
        .unwrap();
        let it = Tensor::from_bytes(
            OperandDescriptor::new(DataType::Int32, [5]),
            [0i32, -1, 7, -9, 1].iter().flat_map(|v| v.to_le_bytes()).collect(),
        )
        .unwrap();
        let out = eval(&p, &[("x", &xt), ("i", &it)]).unwrap();
        let got: Vec<i64> = out[0].1.bytes().chunks(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect();
        // -1 -> 2; 7 -> clamped to 2; -9 -> -6 -> clamped to 0.
        assert_eq!(got, [10, 12, 12, 10, 11, 20, vals[5], vals[5], 20, 21]);
    }

    #[test]
    fn reduce_counts_only_elements_whose_first_guard_passed() {
        // Average of a 3-window sliding over [2, 4, 6] with one padding each
        // side: windows [pad, 2, 4], [2, 4, 6], [4, 6, pad].
        let mut p = scratch_program();
        let x = input(&mut p, "x", DataType::Float32, 3);
        let y = output(&mut p, "y", DataType::Float32, 3);
        let mut finish = Expr::acc();
        let acc = ValueId(0);
        let count = finish.push(ExprNode::Count);
        finish.push(ExprNode::Binary(BinaryFn::Div, acc, count));
        p.kernels.push(Kernel::Reduce {
            domain: vec![3, 3],
            reduced: 1,
            inputs: vec![access(x, &[3], &[-1], &[&[1, 1]], Some(0.0))],
            element: Expr::load(0),
            combine: Combine::Sum,
            finish,
            finish_inputs: vec![],
            out: Access::identity(y, &[3]),
        });
        let xt = Tensor::from_f32([3], &[2.0, 4.0, 6.0]).unwrap();
        let out = eval(&p, &[("x", &xt)]).unwrap();
        assert_eq!(f32s(&out[0].1), [3.0, 4.0, 5.0]);
    }

    #[test]
    fn gemm_with_epilogue_and_scratch_in_the_arena() {
        // t = a @ b (2x2 @ 2x2) into scratch, then y = t + 1.
        let mut p = scratch_program();
        let a = input(&mut p, "a", DataType::Float32, 4);
        let b = p.add_buffer(
            BufferKind::Constant(Tensor::from_f32([4], &[1.0, 2.0, 3.0, 4.0]).unwrap()),
            DataType::Float32,
            4,
        );
        let t = p.add_buffer(BufferKind::Scratch { offset: 64 }, DataType::Float32, 4);
        let y = output(&mut p, "y", DataType::Float32, 4);
        p.arena_bytes = 128;
        p.kernels.push(Kernel::Gemm {
            domain: vec![2, 2, 2],
            a: access(a, &[2, 2], &[0, 0], &[&[1, 0, 0], &[0, 0, 1]], None),
            b: access(b, &[2, 2], &[0, 0], &[&[0, 0, 1], &[0, 1, 0]], None),
            epilogue_inputs: vec![],
            epilogue: Expr::acc(),
            out: Access::identity(t, &[2, 2]),
        });
        let mut e = Expr::load(0);
        let one = e.push(ExprNode::Const(1.0));
        e.push(ExprNode::Binary(BinaryFn::Add, ValueId(0), one));
        p.kernels.push(Kernel::Map {
            domain: vec![4],
            inputs: vec![Access::identity(t, &[4])],
            expr: e,
            out: Access::identity(y, &[4]),
        });
        let at = Tensor::from_f32([4], &[1.0, 0.0, 0.0, 2.0]).unwrap();
        let out = eval(&p, &[("a", &at)]).unwrap();
        assert_eq!(f32s(&out[0].1), [2.0, 3.0, 7.0, 9.0]);

        // Unplanned scratch memory is an error, not a panic.
        p.arena_bytes = 0;
        let err = eval(&p, &[("a", &at)]).unwrap_err();
        assert_eq!(err.kind, "memory");
    }

    #[test]
    fn scalar_functions_follow_the_documented_semantics() {
        assert!(BinaryFn::Max.apply(f32::NAN, 1.0).is_nan());
        assert!(BinaryFn::Min.apply(1.0, f32::NAN).is_nan());
        assert!(BinaryFn::Max.apply(-0.0, 0.0).is_sign_positive());
        assert!(BinaryFn::Max.apply(0.0, -0.0).is_sign_positive());
        assert!(BinaryFn::Min.apply(0.0, -0.0).is_sign_negative());
        assert_eq!(BinaryFn::Equal.apply(f32::NAN, f32::NAN), 0.0);
        assert_eq!(BinaryFn::Lesser.apply(1.0, 2.0), 1.0);
        assert_eq!(UnaryFn::Erf.apply(1.0), 0.842_700_8);
        assert_eq!(UnaryFn::RoundF16.apply(65520.0), f32::INFINITY);
        assert_eq!(UnaryFn::Trunc.apply(-2.7), -2.0);
        assert!(Combine::Max.apply(f32::NEG_INFINITY, f32::NAN).is_nan());
    }

    fn i64_tensor(vals: &[i64]) -> Tensor {
        let bytes = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor::from_bytes(OperandDescriptor::new(DataType::Int64, [vals.len() as u32]), bytes).unwrap()
    }

    fn i64s(t: &Tensor) -> Vec<i64> {
        t.bytes().chunks(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
    }

    /// `y = neg(x) + b` on int64: a host neg into a scratch buffer, then a
    /// host add (broadcasting `b`) into the output.
    fn host_program() -> Program {
        use crate::kernel::{HostKernel, HostOperand};
        use crate::{BinaryOp, Op, UnaryOp};
        let mut p = scratch_program();
        let x = input(&mut p, "x", DataType::Int64, 4);
        let b = input(&mut p, "b", DataType::Int64, 2);
        let t = p.add_buffer(BufferKind::Scratch { offset: 0 }, DataType::Int64, 4);
        let y = output(&mut p, "y", DataType::Int64, 4);
        p.arena_bytes = 32;
        let operand = |buffer, shape: &[u32]| HostOperand {
            buffer,
            desc: OperandDescriptor::new(DataType::Int64, shape.to_vec()),
        };
        p.kernels.push(Kernel::Host(HostKernel {
            op: Op::Unary { kind: UnaryOp::Neg, input: OperandId(0) },
            inputs: vec![operand(x, &[2, 2])],
            outputs: vec![operand(t, &[2, 2])],
        }));
        p.kernels.push(Kernel::Host(HostKernel {
            op: Op::Binary { kind: BinaryOp::Add, a: OperandId(0), b: OperandId(1) },
            inputs: vec![operand(t, &[2, 2]), operand(b, &[2])],
            outputs: vec![operand(y, &[2, 2])],
        }));
        p
    }

    #[test]
    fn host_kernels_compute_exactly_beyond_f32() {
        let p = host_program();
        p.validate().unwrap();
        let big = (1i64 << 53) + 1;
        let x = i64_tensor(&[big, -3, i64::MIN, 7]);
        let b = i64_tensor(&[1, -1]);
        let out = eval(&p, &[("x", &x), ("b", &b)]).unwrap();
        // neg(i64::MIN) wraps to itself.
        assert_eq!(i64s(&out[0].1), [-big + 1, 3 - 1, i64::MIN + 1, -7 - 1]);
        assert_eq!(
            p.to_string().lines().filter(|l| l.starts_with('k')).collect::<Vec<_>>(),
            ["k0: host neg(b0 i64[2, 2]) -> b2 i64[2, 2]", "k1: host add(b2 i64[2, 2], b1 i64[2]) -> b3 i64[2, 2]"]
        );
    }

    #[test]
    fn the_validator_rejects_host_kernels_that_do_not_fit_their_buffers() {
        use crate::kernel::HostKernel;
        use crate::{DataType::*, Op};
        fn host(p: &mut Program) -> &mut HostKernel {
            let Kernel::Host(h) = &mut p.kernels[1] else { unreachable!() };
            h
        }
        let rejected = |p: &Program, what: &str| {
            let err = p.validate().expect_err(what);
            assert_eq!((err.kernel, err.kind), (1, "host"), "{what}: {err}");
            err.message
        };
        // An input descriptor larger than its buffer (reads past its end).
        let mut p = host_program();
        host(&mut p).inputs[1].desc = OperandDescriptor::new(Int64, [2, 2]);
        assert!(rejected(&p, "input too large").contains("b1 is i64[2], not i64[2, 2]"));
        // An output buffer smaller than the result (writes past its end),
        // and one larger (left partly unwritten).
        let mut p = host_program();
        p.buffers[3].len = 3;
        assert!(rejected(&p, "output too large").contains("output 0: b3 is i64[3], not i64[2, 2]"));
        let mut p = host_program();
        p.buffers[3].len = 5;
        rejected(&p, "output buffer too large");
        // A buffer of another data type.
        let mut p = host_program();
        p.buffers[1].data_type = Int32;
        rejected(&p, "data type");
        // Outputs the shape rule does not give.
        let mut p = host_program();
        host(&mut p).outputs[0].desc = OperandDescriptor::new(Int64, [4]);
        assert!(rejected(&p, "shape rule").contains("add gives [i64[2, 2]], the kernel writes [i64[4]]"));
        // Operands not numbered as their inputs, or missing.
        let mut p = host_program();
        host(&mut p).op = Op::Binary { kind: crate::BinaryOp::Add, a: OperandId(1), b: OperandId(0) };
        rejected(&p, "numbering");
        let mut p = host_program();
        host(&mut p).inputs.pop();
        rejected(&p, "input count");
        // No buffer, a read-only output, an output that is also an input.
        let mut p = host_program();
        host(&mut p).inputs[0].buffer = BufferId(9);
        rejected(&p, "no buffer");
        let mut p = host_program();
        host(&mut p).outputs[0].buffer = BufferId(0);
        host(&mut p).outputs[0].desc = OperandDescriptor::new(Int64, [4]);
        rejected(&p, "read-only");
        let mut p = host_program();
        host(&mut p).outputs[0].buffer = BufferId(2);
        assert!(rejected(&p, "in place").contains("also another operand"));
        // The evaluator refuses to run an invalid program rather than
        // touching memory outside a buffer.
        let mut p = host_program();
        p.buffers[3].len = 3;
        let (x, b) = (i64_tensor(&[1, 2, 3, 4]), i64_tensor(&[1, 2]));
        assert_eq!(eval(&p, &[("x", &x), ("b", &b)]).unwrap_err().kind, "host");
    }

    #[test]
    fn rank_zero_domains_run_once_and_feeds_are_checked() {
        let mut p = scratch_program();
        let x = input(&mut p, "x", DataType::Float32, 1);
        let y = output(&mut p, "y", DataType::Float32, 1);
        let mut e = Expr::load(0);
        e.push(ExprNode::Unary(UnaryFn::Neg, ValueId(0)));
        p.kernels.push(Kernel::Map {
            domain: vec![],
            inputs: vec![Access::identity(x, &[])],
            expr: e,
            out: Access::identity(y, &[]),
        });
        let xt = Tensor::from_f32([], &[3.0]).unwrap();
        assert_eq!(f32s(&eval(&p, &[("x", &xt)]).unwrap()[0].1), [-3.0]);
        assert_eq!(eval(&p, &[]).unwrap_err().kind, "feed");
        let wrong = Tensor::from_f32([2], &[3.0, 4.0]).unwrap();
        assert_eq!(eval(&p, &[("x", &wrong)]).unwrap_err().kind, "feed");
    }
}
