//! A tiny FlatBuffers writer and a TFLite model builder, test-only.
//!
//! The writer lays out a tree of tables ([`T`]) front to back: the root
//! offset, the `TFL3` identifier, then each table as its vtable, the table
//! (an `i32` back to the vtable, then its inline fields) and, after it, the
//! objects its reference fields point to (depth first, in the order the
//! fields are listed), so every `u32` offset points forward as the format
//! requires. Everything is little-endian. The last bytes of a file are the
//! data of its last buffer, which the importer always reads: every
//! truncation of a model built here cuts something the importer needs.

/// A field value.
#[derive(Clone, Debug)]
pub enum V {
    I8(i8),
    U8(u8),
    I32(i32),
    U32(u32),
    U64(u64),
    Table(T),
    Tables(Vec<T>),
    /// A vector of tables whose length word says `len` (which may lie).
    TablesWithLen(u32, Vec<T>),
    Str(String),
    /// A vector of scalars: `len` (which may lie) then the element bytes.
    Vector { len: u32, elem_size: usize, bytes: Vec<u8> },
}

/// A table: `(field id, value)` pairs.
#[derive(Clone, Debug, Default)]
pub struct T(pub Vec<(usize, V)>);

impl T {
    pub fn with(mut self, id: usize, v: V) -> T {
        self.0.push((id, v));
        self
    }

    /// Field `id`, to edit a built tree.
    pub fn get(&mut self, id: usize) -> &mut V {
        &mut self.0.iter_mut().find(|(i, _)| *i == id).unwrap_or_else(|| panic!("no field {id}")).1
    }
}

impl V {
    pub fn tables(&mut self) -> &mut Vec<T> {
        match self {
            V::Tables(t) => t,
            v => panic!("not a vector of tables: {v:?}"),
        }
    }

    /// Bytes inline in the table (0: not inline).
    fn inline_size(&self) -> usize {
        match self {
            V::I8(_) | V::U8(_) => 1,
            V::I32(_) | V::U32(_) => 4,
            V::U64(_) => 8,
            _ => 4, // a u32 offset
        }
    }
}

macro_rules! vector_of {
    ($name:ident, $t:ty) => {
        pub fn $name(values: &[$t]) -> V {
            V::Vector {
                len: values.len() as u32,
                elem_size: size_of::<$t>(),
                bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            }
        }
    };
}
vector_of!(i32s, i32);
vector_of!(i64s, i64);
vector_of!(f32s, f32);
vector_of!(u16s, u16);
vector_of!(bytes, u8);

pub fn str(s: &str) -> V {
    V::Str(s.to_string())
}

#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn align(&mut self, n: usize) {
        while !self.buf.len().is_multiple_of(n) {
            self.buf.push(0);
        }
    }

    fn u32(&mut self, v: u32) {
        self.buf.extend(v.to_le_bytes());
    }

    /// Points the `u32` offset at `at` to `target` (after it).
    fn patch(&mut self, at: usize, target: usize) {
        let offset = u32::try_from(target - at).expect("forward offset");
        self.buf[at..at + 4].copy_from_slice(&offset.to_le_bytes());
    }

    /// Writes `t` and what it points to; returns the table's position.
    fn table(&mut self, t: &T) -> usize {
        // Inline layout: each field aligned to its size from the table start.
        let mut offsets = Vec::new();
        let mut size = 4usize;
        for (_, v) in &t.0 {
            let s = v.inline_size();
            size = size.next_multiple_of(s);
            offsets.push(size);
            size += s;
        }
        let slots = t.0.iter().map(|(id, _)| id + 1).max().unwrap_or(0);
        self.align(4);
        let vtable = self.buf.len();
        self.buf.extend(((4 + 2 * slots) as u16).to_le_bytes());
        self.buf.extend((size as u16).to_le_bytes());
        let mut slot = vec![0u16; slots];
        for ((id, _), &o) in t.0.iter().zip(&offsets) {
            slot[*id] = o as u16;
        }
        for s in slot {
            self.buf.extend(s.to_le_bytes());
        }
        self.align(8);
        let pos = self.buf.len();
        self.buf.extend(((pos - vtable) as i32).to_le_bytes());
        self.buf.resize(pos + size, 0);
        for ((_, v), &o) in t.0.iter().zip(&offsets) {
            let at = pos + o;
            let mut put = |b: &[u8]| self.buf[at..at + b.len()].copy_from_slice(b);
            match v {
                V::I8(x) => put(&x.to_le_bytes()),
                V::U8(x) => put(&x.to_le_bytes()),
                V::I32(x) => put(&x.to_le_bytes()),
                V::U32(x) => put(&x.to_le_bytes()),
                V::U64(x) => put(&x.to_le_bytes()),
                _ => {}
            }
        }
        for ((_, v), &o) in t.0.iter().zip(&offsets) {
            let at = pos + o;
            match v {
                V::Table(child) => {
                    let c = self.table(child);
                    self.patch(at, c);
                }
                V::Str(s) => {
                    self.align(4);
                    let c = self.buf.len();
                    self.u32(s.len() as u32);
                    self.buf.extend(s.as_bytes());
                    self.buf.push(0);
                    self.patch(at, c);
                }
                V::Vector { len, elem_size, bytes } => {
                    // Elements aligned to their size (the length word before them).
                    self.align(4);
                    while !(self.buf.len() + 4).is_multiple_of((*elem_size).max(4)) {
                        self.buf.push(0);
                    }
                    let c = self.buf.len();
                    self.u32(*len);
                    self.buf.extend(bytes);
                    self.patch(at, c);
                }
                V::Tables(ts) | V::TablesWithLen(_, ts) => {
                    self.align(4);
                    let c = self.buf.len();
                    self.u32(if let V::TablesWithLen(len, _) = v { *len } else { ts.len() as u32 });
                    self.buf.resize(c + 4 + 4 * ts.len(), 0);
                    self.patch(at, c);
                    for (i, child) in ts.iter().enumerate() {
                        let p = self.table(child);
                        self.patch(c + 4 + 4 * i, p);
                    }
                }
                _ => {}
            }
        }
        pos
    }
}

/// A flatbuffer with `root` as its root table and `TFL3` as its identifier.
pub fn finish(root: &T) -> Vec<u8> {
    let mut w = Writer::default();
    w.u32(0);
    w.buf.extend(b"TFL3");
    let pos = w.table(root);
    w.patch(0, pos);
    w.buf
}

// TensorType codes.
pub const FLOAT32: i8 = 0;
pub const INT32: i8 = 2;
pub const STRING: i8 = 5;
pub const INT16: i8 = 7;
pub const INT8: i8 = 9;

// BuiltinOperator codes.
pub const ADD: i32 = 0;
pub const CONV_2D: i32 = 3;
pub const LSTM: i32 = 16;
pub const RELU: i32 = 19;
pub const RESHAPE: i32 = 22;
pub const CUSTOM: i32 = 32;
pub const SPLIT: i32 = 49;
pub const DENSIFY: i32 = 124;

// BuiltinOptions union types.
pub const CONV_2D_OPTIONS: u8 = 1;
pub const ADD_OPTIONS: u8 = 11;
pub const RESHAPE_OPTIONS: u8 = 17;
pub const SPLIT_OPTIONS: u8 = 35;

#[derive(Clone, Debug)]
pub struct Quant {
    pub scale: Vec<f32>,
    pub zero_point: Vec<i64>,
    pub axis: i32,
}

#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<i32>,
    pub ty: i8,
    pub buffer: u32,
    pub quant: Option<Quant>,
    /// A `SparsityParameters` table.
    pub sparsity: Option<T>,
}

pub fn tensor(name: &str, shape: &[i32], ty: i8) -> Tensor {
    Tensor { name: name.into(), shape: shape.to_vec(), ty, buffer: 0, quant: None, sparsity: None }
}

impl Tensor {
    pub fn quant(mut self, scale: &[f32], zero_point: &[i64], axis: i32) -> Tensor {
        self.quant = Some(Quant { scale: scale.to_vec(), zero_point: zero_point.to_vec(), axis });
        self
    }

    fn table(&self) -> T {
        let mut t = T::default()
            .with(0, i32s(&self.shape))
            .with(1, V::I8(self.ty))
            .with(2, V::U32(self.buffer))
            .with(3, str(&self.name));
        if let Some(q) = &self.quant {
            let q = T::default().with(2, f32s(&q.scale)).with(3, i64s(&q.zero_point)).with(6, V::I32(q.axis));
            t = t.with(4, V::Table(q));
        }
        if let Some(s) = &self.sparsity {
            t = t.with(6, V::Table(s.clone()));
        }
        t
    }
}

#[derive(Clone, Debug)]
pub struct Operator {
    pub opcode: u32,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    /// The `BuiltinOptions` union type and table.
    pub options: Option<(u8, T)>,
    pub custom_options: Vec<u8>,
}

/// One `OperatorCode`: a builtin code, or `CUSTOM` and a name.
#[derive(Clone, Debug)]
pub struct Code {
    pub builtin: i32,
    pub custom: String,
}

/// A one-subgraph TFLite model.
#[derive(Clone, Debug)]
pub struct Model {
    pub version: u32,
    pub codes: Vec<Code>,
    pub tensors: Vec<Tensor>,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    pub operators: Vec<Operator>,
    /// Buffer 0 is the empty sentinel.
    pub buffers: Vec<Vec<u8>>,
    /// `false`: a model without subgraphs.
    pub has_subgraph: bool,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            version: 3,
            codes: vec![],
            tensors: vec![],
            inputs: vec![],
            outputs: vec![],
            operators: vec![],
            buffers: vec![vec![]],
            has_subgraph: true,
        }
    }
}

pub fn le_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn le_i32(values: &[i32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl Model {
    /// The index of builtin operator `code`'s OperatorCode (added if new).
    pub fn code(&mut self, builtin: i32) -> u32 {
        self.code_named(builtin, "")
    }

    pub fn custom_code(&mut self, name: &str) -> u32 {
        self.code_named(CUSTOM, name)
    }

    fn code_named(&mut self, builtin: i32, custom: &str) -> u32 {
        if let Some(i) = self.codes.iter().position(|c| c.builtin == builtin && c.custom == custom) {
            return i as u32;
        }
        self.codes.push(Code { builtin, custom: custom.into() });
        (self.codes.len() - 1) as u32
    }

    pub fn tensor(&mut self, t: Tensor) -> i32 {
        self.tensors.push(t);
        (self.tensors.len() - 1) as i32
    }

    /// A constant tensor holding `data`.
    pub fn constant(&mut self, mut t: Tensor, data: Vec<u8>) -> i32 {
        self.buffers.push(data);
        t.buffer = (self.buffers.len() - 1) as u32;
        self.tensor(t)
    }

    /// Adds an operator running builtin `code`; returns its index.
    pub fn op(&mut self, code: i32, inputs: &[i32], outputs: &[i32], options: Option<(u8, T)>) -> usize {
        let opcode = self.code(code);
        self.op_with(opcode, inputs, outputs, options)
    }

    pub fn op_with(&mut self, opcode: u32, inputs: &[i32], outputs: &[i32], options: Option<(u8, T)>) -> usize {
        self.operators.push(Operator {
            opcode,
            inputs: inputs.to_vec(),
            outputs: outputs.to_vec(),
            options,
            custom_options: vec![],
        });
        self.operators.len() - 1
    }

    /// The `Model` table tree (to edit before [`finish`]).
    pub fn table(&self) -> T {
        let codes = self
            .codes
            .iter()
            .map(|c| {
                let mut t = T::default().with(0, V::I8(c.builtin.min(127) as i8));
                if !c.custom.is_empty() {
                    t = t.with(1, str(&c.custom));
                }
                t.with(2, V::I32(1)).with(3, V::I32(c.builtin))
            })
            .collect();
        let operators = self
            .operators
            .iter()
            .map(|op| {
                let mut t = T::default().with(0, V::U32(op.opcode)).with(1, i32s(&op.inputs)).with(2, i32s(&op.outputs));
                if let Some((kind, options)) = &op.options {
                    t = t.with(3, V::U8(*kind)).with(4, V::Table(options.clone()));
                }
                if !op.custom_options.is_empty() {
                    t = t.with(5, bytes(&op.custom_options));
                }
                t
            })
            .collect();
        let subgraph = T::default()
            .with(0, V::Tables(self.tensors.iter().map(Tensor::table).collect()))
            .with(1, i32s(&self.inputs))
            .with(2, i32s(&self.outputs))
            .with(3, V::Tables(operators))
            .with(4, str("main"));
        let buffers = self
            .buffers
            .iter()
            .map(|b| if b.is_empty() { T::default() } else { T::default().with(0, bytes(b)) })
            .collect();
        T::default()
            .with(0, V::U32(self.version))
            .with(1, V::Tables(codes))
            .with(2, V::Tables(if self.has_subgraph { vec![subgraph] } else { vec![] }))
            .with(3, str("kiln test writer"))
            .with(4, V::Tables(buffers))
    }

    pub fn bytes(&self) -> Vec<u8> {
        finish(&self.table())
    }
}
