//! ONNX tensors to kiln tensors: element types, the typed and raw storage
//! forms, and external data files, memory-mapped.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use kiln_ir::{Bytes, DataType, OperandDescriptor, Shape, Tensor};

use super::proto::{TensorProto, elem_type};

/// The kiln type an ONNX element type is imported as. `BOOL` becomes
/// `uint8` (0 or 1), as WebNN's logical operators produce.
pub fn data_type(onnx_type: i32) -> Result<DataType, String> {
    Ok(match onnx_type {
        elem_type::FLOAT => DataType::Float32,
        elem_type::FLOAT16 => DataType::Float16,
        elem_type::INT32 => DataType::Int32,
        elem_type::UINT32 => DataType::Uint32,
        elem_type::INT64 => DataType::Int64,
        elem_type::UINT64 => DataType::Uint64,
        elem_type::INT8 => DataType::Int8,
        elem_type::UINT8 | elem_type::BOOL => DataType::Uint8,
        other => {
            return Err(format!(
                "element type {} is not supported (kiln has float32, float16, int32, uint32, int64, uint64, int8, uint8 and bool)",
                elem_type::name(other)
            ));
        }
    })
}

/// ONNX dims (signed 64-bit) as a kiln shape; zero dims are kept (empty
/// tensors may be constants the importer reads, never graph operands).
pub fn shape(dims: &[i64]) -> Result<Shape, String> {
    let dims = dims
        .iter()
        .map(|&d| u32::try_from(d).map_err(|_| format!("dimension {d} is negative or exceeds 2^32 - 1")))
        .collect::<Result<Vec<_>, _>>()?;
    let shape = Shape::new(dims);
    shape
        .checked_element_count()
        .filter(|&n| n <= (1u64 << 40))
        .ok_or_else(|| format!("shape {shape} has too many elements"))?;
    Ok(shape)
}

/// Where tensor bytes come from: the model file's bytes (memory-mapped or
/// not) and memory maps of external data files, opened once per load.
pub struct ExternalFiles {
    base: PathBuf,
    maps: HashMap<PathBuf, Arc<memmap2::Mmap>>,
    /// The addresses of the model file's mapping, if it is mapped.
    model_map: Option<Range<usize>>,
}

impl ExternalFiles {
    /// External data locations are relative to `base`, the model's folder;
    /// `model_map` is the address range of the model file's read-only
    /// mapping, when it is one (inline `raw_data` inside it can give its
    /// pages back after packing).
    pub fn new(base: &Path, model_map: Option<Range<usize>>) -> Self {
        ExternalFiles { base: base.to_path_buf(), maps: HashMap::new(), model_map }
    }

    fn map(&mut self, location: &str) -> Result<Arc<memmap2::Mmap>, String> {
        let relative = Path::new(location);
        if location.is_empty()
            || !relative.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(format!(
                "external data location `{location}` must be a relative path inside the model's folder"
            ));
        }
        let path = self.base.join(relative);
        if let Some(map) = self.maps.get(&path) {
            return Ok(map.clone());
        }
        let file = std::fs::File::open(&path)
            .map_err(|e| format!("cannot open external data file {}: {e}", path.display()))?;
        // SAFETY: the map is read-only; like every memory-mapped loader, kiln
        // assumes the file is not truncated while the model is in use.
        let map = Arc::new(
            unsafe { memmap2::Mmap::map(&file) }
                .map_err(|e| format!("cannot map external data file {}: {e}", path.display()))?,
        );
        self.maps.insert(path, map.clone());
        Ok(map)
    }
}

/// A tensor's bytes when it is stored outside the model file.
fn external_bytes(t: &TensorProto, files: &mut ExternalFiles, byte_len: usize) -> Result<Bytes, String> {
    let entry = |key: &str| t.external_data.iter().find(|e| e.key == key).map(|e| e.value.as_str());
    let location = entry("location").ok_or("external data has no `location`")?;
    let number = |key: &str| -> Result<Option<usize>, String> {
        entry(key)
            .map(|v| v.parse::<usize>().map_err(|_| format!("external data `{key}` is not a byte count: `{v}`")))
            .transpose()
    };
    let offset = number("offset")?.unwrap_or(0);
    let map = files.map(location)?;
    let length = number("length")?.unwrap_or(map.len().saturating_sub(offset));
    if length != byte_len {
        return Err(format!("external data holds {length} bytes, the shape needs {byte_len}"));
    }
    let end = offset.checked_add(length).ok_or("external data range overflows")?;
    // SAFETY: `map` is a read-only mapping of the external data file; like
    // every memory-mapped loader, kiln assumes the file is not modified
    // while in use.
    unsafe { Bytes::from_mapped(map, offset..end) }
        .ok_or_else(|| format!("external data range {offset}..{end} lies outside `{location}`"))
}

/// Converts a tensor. Raw and external data are shared, not copied.
pub fn convert(t: &TensorProto, files: &mut ExternalFiles) -> Result<Tensor, String> {
    let data_type = data_type(t.data_type)?;
    let desc = OperandDescriptor::new(data_type, shape(&t.dims)?);
    let count = desc.shape.element_count();
    let byte_len = desc.byte_length();
    let bytes = if t.data_location == 1 {
        external_bytes(t, files, byte_len)?
    } else if !t.raw_data.is_empty() || count == 0 {
        if t.raw_data.len() != byte_len {
            return Err(format!("raw_data holds {} bytes, the shape needs {byte_len}", t.raw_data.len()));
        }
        let raw = t.raw_data.as_ptr() as usize..t.raw_data.as_ptr() as usize + t.raw_data.len();
        let in_model_map = files.model_map.as_ref().is_some_and(|m| m.start <= raw.start && raw.end <= m.end);
        let owner = Arc::new(t.raw_data.clone());
        let shared = if in_model_map {
            // SAFETY: the bytes lie inside the model file's read-only
            // mapping (checked just above), which `raw_data` keeps alive.
            unsafe { Bytes::from_mapped(owner, 0..byte_len) }
        } else {
            Bytes::from_shared(owner, 0..byte_len)
        };
        shared.expect("the range is the whole buffer")
    } else {
        Bytes::from_vec(typed_bytes(t, data_type, count)?)
    };
    Tensor::new(desc, bytes).map_err(|e| e.to_string())
}

/// Little-endian bytes from the typed `*_data` fields.
fn typed_bytes(t: &TensorProto, data_type: DataType, count: usize) -> Result<Vec<u8>, String> {
    let field_len = |name: &str, len: usize| {
        if len == count { Ok(()) } else { Err(format!("{name} holds {len} values, the shape needs {count}")) }
    };
    // Reserve only after a field's length matched the shape (a tiny file
    // can declare a huge shape).
    let mut out = Vec::new();
    match data_type {
        DataType::Float32 => {
            field_len("float_data", t.float_data.len())?;
            t.float_data.iter().for_each(|v| out.extend(v.to_le_bytes()));
        }
        DataType::Int64 => {
            field_len("int64_data", t.int64_data.len())?;
            t.int64_data.iter().for_each(|v| out.extend(v.to_le_bytes()));
        }
        DataType::Uint64 | DataType::Uint32 => {
            field_len("uint64_data", t.uint64_data.len())?;
            for &v in &t.uint64_data {
                if data_type == DataType::Uint32 {
                    out.extend(u32::try_from(v).map_err(|_| format!("uint64_data value {v} exceeds uint32"))?.to_le_bytes());
                } else {
                    out.extend(v.to_le_bytes());
                }
            }
        }
        // int32_data carries int32, the 8-bit types and bool one per value,
        // and float16 as its bit pattern.
        DataType::Int32 | DataType::Int8 | DataType::Uint8 | DataType::Float16 => {
            field_len("int32_data", t.int32_data.len())?;
            let size = data_type.byte_size();
            for &v in &t.int32_data {
                out.extend_from_slice(&v.to_le_bytes()[..size]);
            }
        }
    }
    Ok(out)
}
