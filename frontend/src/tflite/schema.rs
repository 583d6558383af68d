//! The parts of TFLite's schema (tensorflow/compiler/mlir/lite/schema/
//! schema.fbs) the importer reads, as typed views over [`flatbuf`]
//! tables. Field numbers are the schema's field order (its `id`s).

use kiln_ir::DataType;

use super::flatbuf::{FlatError, FlatResult, Table, Vector};

/// The four bytes after the root offset that mark a TFLite flatbuffer.
pub const FILE_IDENTIFIER: &[u8; 4] = b"TFL3";

/// The schema version the importer reads (every file since TF 1.x).
pub const SCHEMA_VERSION: u32 = 3;

/// `Model`.
pub struct Model<'a> {
    buf: &'a [u8],
    table: Table<'a>,
}

/// `OperatorCode`: which operator an `Operator` runs.
#[derive(Clone, Debug, PartialEq)]
pub struct OperatorCode {
    /// `max(builtin_code, deprecated_builtin_code)`: files written before
    /// the 32-bit field existed only set the deprecated 8-bit one.
    pub builtin: i32,
    /// The name of a custom operator (builtin code 32, `CUSTOM`).
    pub custom: String,
    pub version: i32,
}

/// `BuiltinOperator::CUSTOM`.
pub const CUSTOM: i32 = 32;

/// `QuantizationParameters`: `real = scale * (quantized - zero_point)`,
/// per tensor (one scale) or per channel along `axis`.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantization {
    pub scale: Vec<f32>,
    pub zero_point: Vec<i64>,
    pub axis: i32,
}

/// `Tensor`.
pub struct TensorDef<'a> {
    pub name: String,
    /// The raw `TensorType` code (see [`data_type`]).
    pub type_code: i8,
    pub shape: Vec<i32>,
    /// Index into the model's buffers; 0 is the empty sentinel buffer.
    pub buffer: u32,
    pub quantization: Option<Quantization>,
    /// `SparsityParameters`, for weights stored sparse (see `DENSIFY`).
    pub sparsity: Option<Table<'a>>,
    pub is_variable: bool,
}

/// `Operator`.
pub struct OperatorDef<'a> {
    pub opcode_index: u32,
    /// Tensor indices; -1 marks an omitted optional input.
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    /// The builtin options table (its type follows from the operator).
    pub options: Option<Table<'a>>,
    pub custom_options: &'a [u8],
}

/// `SubGraph`.
pub struct SubGraph<'a> {
    pub name: String,
    pub tensors: Vector<'a>,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    pub operators: Vector<'a>,
}

impl<'a> Model<'a> {
    /// The model at the root of `buf`, after checking the file identifier
    /// and schema version.
    pub fn parse(buf: &'a [u8]) -> Result<Self, String> {
        if buf.len() < 8 || &buf[4..8] != FILE_IDENTIFIER {
            return Err(format!(
                "not a TFLite model (a .tflite file starts with a flatbuffer marked `TFL3`; this one {})",
                if buf.len() < 8 { format!("has only {} bytes", buf.len()) } else { format!("is marked {:?}", String::from_utf8_lossy(&buf[4..8])) }
            ));
        }
        let table = Table::root(buf).map_err(|e| e.to_string())?;
        let model = Model { buf, table };
        let version = model.table.scalar::<u32>(0, 0, "Model.version").map_err(|e| e.to_string())?;
        if version != SCHEMA_VERSION {
            return Err(format!("schema version {version} is not supported; kiln reads version {SCHEMA_VERSION}"));
        }
        Ok(model)
    }

    pub fn description(&self) -> FlatResult<String> {
        self.table.string(3, "Model.description")
    }

    pub fn operator_codes(&self) -> FlatResult<Vec<OperatorCode>> {
        let v = self.table.vector(1, "Model.operator_codes")?;
        (0..v.len())
            .map(|i| {
                let t = v.table(i, "an OperatorCode")?;
                let deprecated = t.scalar::<i8>(0, 0, "OperatorCode.deprecated_builtin_code")?;
                let builtin = t.scalar::<i32>(3, 0, "OperatorCode.builtin_code")?;
                Ok(OperatorCode {
                    builtin: builtin.max(deprecated as i32),
                    custom: t.string(1, "OperatorCode.custom_code")?,
                    version: t.scalar::<i32>(2, 1, "OperatorCode.version")?,
                })
            })
            .collect()
    }

    pub fn subgraph_count(&self) -> FlatResult<usize> {
        Ok(self.table.vector(2, "Model.subgraphs")?.len())
    }

    pub fn subgraph(&self, i: usize) -> FlatResult<SubGraph<'a>> {
        let t = self.table.vector(2, "Model.subgraphs")?.table(i, "a SubGraph")?;
        Ok(SubGraph {
            tensors: t.vector(0, "SubGraph.tensors")?,
            inputs: t.vector(1, "SubGraph.inputs")?.scalars("SubGraph.inputs")?,
            outputs: t.vector(2, "SubGraph.outputs")?.scalars("SubGraph.outputs")?,
            operators: t.vector(3, "SubGraph.operators")?,
            name: t.string(4, "SubGraph.name")?,
        })
    }

    pub fn buffer_count(&self) -> FlatResult<usize> {
        Ok(self.table.vector(4, "Model.buffers")?.len())
    }

    /// The bytes of buffer `i`: inline, or (files over 2 GB) `size` bytes
    /// at `offset` from the start of the file, after the flatbuffer.
    pub fn buffer(&self, i: usize) -> FlatResult<&'a [u8]> {
        let t = self.table.vector(4, "Model.buffers")?.table(i, "a Buffer")?;
        let offset = t.scalar::<u64>(1, 0, "Buffer.offset")?;
        if offset <= 1 {
            return t.vector(0, "Buffer.data")?.bytes("Buffer.data");
        }
        let size = t.scalar::<u64>(2, 0, "Buffer.size")?;
        let range = usize::try_from(offset).ok().and_then(|o| Some(o..o.checked_add(usize::try_from(size).ok()?)?));
        match range.and_then(|r| self.buf.get(r)) {
            Some(bytes) => Ok(bytes),
            None => Err(FlatError { what: format!("buffer {i}'s {size} bytes at offset {offset}"), at: offset as usize }),
        }
    }
}

impl<'a> SubGraph<'a> {
    pub fn tensor(&self, i: usize) -> FlatResult<TensorDef<'a>> {
        let t = self.tensors.table(i, "a Tensor")?;
        let quantization = match t.table(4, "Tensor.quantization")? {
            Some(q) => {
                let scale: Vec<f32> = q.vector(2, "QuantizationParameters.scale")?.scalars("QuantizationParameters.scale")?;
                let zero_point: Vec<i64> =
                    q.vector(3, "QuantizationParameters.zero_point")?.scalars("QuantizationParameters.zero_point")?;
                let axis = q.scalar::<i32>(6, 0, "QuantizationParameters.quantized_dimension")?;
                (!scale.is_empty()).then_some(Quantization { scale, zero_point, axis })
            }
            None => None,
        };
        Ok(TensorDef {
            shape: t.vector(0, "Tensor.shape")?.scalars("Tensor.shape")?,
            type_code: t.scalar::<i8>(1, 0, "Tensor.type")?,
            buffer: t.scalar::<u32>(2, 0, "Tensor.buffer")?,
            name: t.string(3, "Tensor.name")?,
            quantization,
            is_variable: t.scalar::<bool>(5, false, "Tensor.is_variable")?,
            sparsity: t.table(6, "Tensor.sparsity")?,
        })
    }

    pub fn operator(&self, i: usize) -> FlatResult<OperatorDef<'a>> {
        let t = self.operators.table(i, "an Operator")?;
        Ok(OperatorDef {
            opcode_index: t.scalar::<u32>(0, 0, "Operator.opcode_index")?,
            inputs: t.vector(1, "Operator.inputs")?.scalars("Operator.inputs")?,
            outputs: t.vector(2, "Operator.outputs")?.scalars("Operator.outputs")?,
            options: t.table(4, "Operator.builtin_options")?,
            custom_options: t.vector(5, "Operator.custom_options")?.bytes("Operator.custom_options")?,
        })
    }
}

/// The kiln type of a TFLite `TensorType`, or the TFLite name of a type
/// kiln has not. `BOOL` becomes `uint8` (0 or 1), as WebNN's logical
/// operators produce.
pub fn data_type(code: i8) -> Result<DataType, &'static str> {
    Ok(match code {
        0 => DataType::Float32,
        1 => DataType::Float16,
        2 => DataType::Int32,
        3 => DataType::Uint8,
        4 => DataType::Int64,
        6 => DataType::Uint8,
        9 => DataType::Int8,
        12 => DataType::Uint64,
        15 => DataType::Uint32,
        5 => return Err("STRING"),
        7 => return Err("INT16"),
        8 => return Err("COMPLEX64"),
        10 => return Err("FLOAT64"),
        11 => return Err("COMPLEX128"),
        13 => return Err("RESOURCE"),
        14 => return Err("VARIANT"),
        16 => return Err("UINT16"),
        17 => return Err("INT4"),
        18 => return Err("BFLOAT16"),
        _ => return Err("an unknown tensor type"),
    })
}

/// Options of one operator: typed reads of its builtin options table with
/// the schema's defaults when the table or the field is absent.
#[derive(Clone, Copy)]
pub struct Options<'a> {
    pub table: Option<Table<'a>>,
}

impl Options<'_> {
    fn get<T: super::flatbuf::Scalar>(&self, id: usize, default: T, what: &str) -> Result<T, FlatError> {
        match &self.table {
            Some(t) => t.scalar(id, default, what),
            None => Ok(default),
        }
    }

    pub fn int(&self, id: usize, default: i32, what: &str) -> Result<i32, FlatError> {
        self.get(id, default, what)
    }

    pub fn byte(&self, id: usize, what: &str) -> Result<i8, FlatError> {
        self.get(id, 0, what)
    }

    pub fn bool(&self, id: usize, what: &str) -> Result<bool, FlatError> {
        self.get(id, false, what)
    }

    pub fn float(&self, id: usize, default: f32, what: &str) -> Result<f32, FlatError> {
        self.get(id, default, what)
    }

    pub fn ints(&self, id: usize, what: &str) -> Result<Option<Vec<i32>>, FlatError> {
        match &self.table {
            Some(t) if t.has(id) => Ok(Some(t.vector(id, what)?.scalars(what)?)),
            _ => Ok(None),
        }
    }
}
