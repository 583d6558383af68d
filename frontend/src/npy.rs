//! NumPy `.npy` files (format versions 1.0 to 3.0): the tensors `kiln run`
//! reads and writes. Only little-endian, C-order arrays of the eight WebNN
//! data types are accepted; anything else is a clear error.
//!
//! Written here rather than taken from a crate: the format is a magic, a
//! length, a one-line Python dict literal and the raw bytes, and the three
//! keys kiln needs are found without parsing Python; the maintained reader
//! (npyz) parses the header with a general Python-literal parser (py_literal
//! on pest and its derive macros), more to build on a 2-core machine than
//! this whole file.

use kiln_ir::{DataType, OperandDescriptor, Shape, Tensor};

const MAGIC: &[u8] = b"\x93NUMPY";

/// A malformed or unsupported `.npy` file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("npy: {0}")]
pub struct NpyError(String);

fn fail<T>(message: impl Into<String>) -> Result<T, NpyError> {
    Err(NpyError(message.into()))
}

fn descr(t: DataType) -> &'static str {
    match t {
        DataType::Float32 => "<f4",
        DataType::Float16 => "<f2",
        DataType::Int32 => "<i4",
        DataType::Uint32 => "<u4",
        DataType::Int64 => "<i8",
        DataType::Uint64 => "<u8",
        DataType::Int8 => "|i1",
        DataType::Uint8 => "|u1",
    }
}

fn data_type_of(descr: &str) -> Option<DataType> {
    let normalized = match descr {
        "i1" | "<i1" | "=i1" => "|i1",
        "u1" | "<u1" | "=u1" | "|b1" | "b1" => "|u1",
        other => other,
    };
    DataType::ALL.into_iter().find(|&t| self::descr(t) == normalized)
}

/// Parses a `.npy` file's bytes into a tensor.
pub fn parse(bytes: &[u8]) -> Result<Tensor, NpyError> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return fail("not a .npy file (missing the \\x93NUMPY magic)");
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize, 12),
        v => return fail(format!("unsupported format version {v}")),
    };
    let Some(header_end) = header_start.checked_add(header_len).filter(|&e| e <= bytes.len()) else {
        return fail("the header runs past the end of the file");
    };
    let header = std::str::from_utf8(&bytes[header_start..header_end]).map_err(|_| NpyError("the header is not text".into()))?;
    let descr = dict_value(header, "descr")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let Some(data_type) = data_type_of(descr) else {
        return fail(format!("unsupported dtype '{descr}' (kiln reads <f4 <f2 <i4 <u4 <i8 <u8 |i1 |u1)"));
    };
    if dict_value(header, "fortran_order")? != "False" {
        return fail("Fortran-order arrays are not supported; save with np.ascontiguousarray");
    }
    let shape = parse_shape(&dict_value(header, "shape")?)?;
    if shape.dims().contains(&0) {
        return fail(format!("shape {shape} has a zero dimension; WebNN tensors are never empty"));
    }
    let desc = OperandDescriptor::new(data_type, shape);
    let data = bytes[header_end..].to_vec();
    Tensor::from_bytes(desc, data).map_err(|e| NpyError(format!("the data does not match the header: {e}")))
}

/// The text of `key`'s value in the header's Python dict literal.
fn dict_value(header: &str, key: &str) -> Result<String, NpyError> {
    // numpy writes 'key'; accept "key" from other writers too.
    let found = [format!("'{key}'"), format!("\"{key}\"")]
        .into_iter()
        .find_map(|quoted| header.find(&quoted).map(|at| at + quoted.len()));
    let Some(after) = found.and_then(|at| header[at..].trim_start().strip_prefix(':')) else {
        return fail(format!("the header has no '{key}'"));
    };
    let rest = after.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')').map(|i| i + 1)
    } else {
        rest.find([',', '}'])
    };
    match end {
        Some(end) => Ok(rest[..end].trim().to_string()),
        None => fail(format!("the header's '{key}' is not terminated")),
    }
}

fn parse_shape(text: &str) -> Result<Shape, NpyError> {
    let inner = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| NpyError(format!("bad shape {text}")))?;
    let dims = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|d| d.parse::<u32>().map_err(|_| NpyError(format!("bad dimension '{d}' in shape {text}"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Shape(dims))
}

/// Encodes a tensor as a version 1.0 `.npy` file.
pub fn to_bytes(tensor: &Tensor) -> Vec<u8> {
    let dims: Vec<String> = tensor.shape().dims().iter().map(u32::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}", descr(tensor.data_type()));
    // Pad with spaces so that the data starts on a 64-byte boundary.
    let total = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + tensor.bytes().len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(tensor.bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_data_type() {
        for t in DataType::ALL {
            let desc = OperandDescriptor::new(t, [2, 3]);
            let bytes: Vec<u8> = (0..desc.byte_length() as u8).collect();
            let tensor = Tensor::from_bytes(desc, bytes).unwrap();
            let back = parse(&to_bytes(&tensor)).unwrap();
            assert_eq!(back.desc(), tensor.desc());
            assert_eq!(back.bytes(), tensor.bytes());
        }
    }

    #[test]
    fn data_starts_aligned() {
        let t = Tensor::from_f32([1], &[1.0]).unwrap();
        let bytes = to_bytes(&t);
        assert_eq!((bytes.len() - 4) % 64, 0);
    }

    #[test]
    fn scalar_and_vector_shapes() {
        assert_eq!(parse_shape("()").unwrap(), Shape(vec![]));
        assert_eq!(parse_shape("(3,)").unwrap(), Shape(vec![3]));
        assert_eq!(parse_shape("(1, 2, 3)").unwrap(), Shape(vec![1, 2, 3]));
    }

    #[test]
    fn rejects_malformed_files() {
        let good = to_bytes(&Tensor::from_f32([2], &[1.0, 2.0]).unwrap());
        assert!(parse(b"").unwrap_err().0.contains("magic"));
        assert!(parse(&good[..good.len() - 1]).unwrap_err().0.contains("does not match"));
        let mut bad_version = good.clone();
        bad_version[6] = 9;
        assert!(parse(&bad_version).unwrap_err().0.contains("version"));
        let big_endian = replace_bytes(&good, b"<f4", b">f4");
        assert!(parse(&big_endian).unwrap_err().0.contains("unsupported dtype"));
        let mut long_header = good.clone();
        long_header[8] = 0xff;
        long_header[9] = 0xff;
        assert!(parse(&long_header).unwrap_err().0.contains("past the end"));
        let fortran = replace_bytes(&good, b"False", b"True ");
        assert!(parse(&fortran).unwrap_err().0.contains("Fortran"));
        let empty = replace_bytes(&good, b"(2,)", b"(0,)");
        assert!(parse(&empty).unwrap_err().0.contains("zero dimension"));
    }

    #[test]
    fn double_quoted_keys_are_read() {
        let good = to_bytes(&Tensor::from_f32([2], &[1.0, 2.0]).unwrap());
        let quoted = replace_bytes(&replace_bytes(&good, b"'descr'", b"\"descr\""), b"'shape'", b"\"shape\"");
        let t = parse(&quoted).unwrap();
        assert_eq!(t.shape().dims(), &[2]);
    }

    fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let at = haystack.windows(from.len()).position(|w| w == from).expect("pattern present");
        let mut out = haystack.to_vec();
        out[at..at + from.len()].copy_from_slice(to);
        out
    }
}
