//! Tensors: a descriptor plus little-endian bytes, possibly borrowed from a
//! memory-mapped file.

use std::ops::Range;
use std::sync::Arc;

use half::f16;

use crate::{DataType, OperandDescriptor};

/// Shared, immutable bytes: an owned buffer or a window into a memory map.
/// Cloning is cheap and never copies the data.
#[derive(Clone)]
pub struct Bytes {
    owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    range: Range<usize>,
    /// The owner is a read-only file mapping (see [`Bytes::from_mapped`]).
    mapped: bool,
}

impl Bytes {
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        let range = 0..bytes.len();
        Bytes { owner: Arc::new(bytes), range, mapped: false }
    }

    /// A window `range` into `owner` (for example a memory map).
    /// Returns `None` if the range lies outside the owner's bytes.
    pub fn from_shared(owner: Arc<dyn AsRef<[u8]> + Send + Sync>, range: Range<usize>) -> Option<Self> {
        let len = (*owner).as_ref().len();
        (range.start <= range.end && range.end <= len).then_some(Bytes { owner, range, mapped: false })
    }

    /// A window into `owner`, whose bytes lie in a read-only memory map of
    /// a file. Such bytes can give their pages back ([`Bytes::release_pages`]).
    /// Returns `None` if the range lies outside the owner's bytes.
    ///
    /// # Safety
    ///
    /// `owner.as_ref()` must be (part of) a read-only file mapping that
    /// stays mapped while `owner` lives, of a file that is not modified
    /// meanwhile: dropping its pages must lose nothing. Heap memory is not
    /// (its pages would read back as zeros).
    pub unsafe fn from_mapped(owner: Arc<dyn AsRef<[u8]> + Send + Sync>, range: Range<usize>) -> Option<Self> {
        Self::from_shared(owner, range).map(|b| Bytes { mapped: true, ..b })
    }

    pub fn as_slice(&self) -> &[u8] {
        &(*self.owner).as_ref()[self.range.clone()]
    }

    pub fn len(&self) -> usize {
        self.range.len()
    }

    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }

    /// A hint that bytes `range` (relative to this window) will not be read
    /// soon: for a file mapping, the pages wholly inside the range leave
    /// this process's resident memory (they are read from the file again
    /// if needed; the contents never change). Without a file mapping, or
    /// off Linux, nothing happens. Used after weights are repacked at
    /// compile time, so a loaded model does not hold two resident copies.
    pub fn release_pages(&self, range: Range<usize>) {
        #[cfg(target_os = "linux")]
        if self.mapped && range.start < range.end && range.end <= self.len() {
            unsafe extern "C" {
                fn madvise(addr: *mut u8, len: usize, advice: i32) -> i32;
                fn sysconf(name: i32) -> i64;
            }
            const MADV_DONTNEED: i32 = 4;
            const SC_PAGESIZE: i32 = 30;
            // SAFETY: sysconf only reads a system constant.
            let page = usize::try_from(unsafe { sysconf(SC_PAGESIZE) }).unwrap_or(0);
            let base = self.as_slice().as_ptr() as usize;
            if page > 0 {
                let start = (base + range.start).next_multiple_of(page);
                let end = (base + range.end) / page * page;
                if start < end {
                    // SAFETY: the whole pages from `start` to `end` lie inside
                    // this window of a read-only file mapping (the contract of
                    // `from_mapped`) that this value keeps alive; DONTNEED
                    // drops them from the page tables and later reads fault
                    // in the same file contents. Failure only leaves the
                    // pages resident.
                    unsafe {
                        madvise(start as *mut u8, end - start, MADV_DONTNEED);
                    }
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = range;
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bytes({} bytes)", self.len())
    }
}

/// A dense row-major tensor. `data.len()` always equals the descriptor's byte
/// length (the constructors check it).
#[derive(Clone, Debug)]
pub struct Tensor {
    desc: OperandDescriptor,
    data: Bytes,
}

/// The byte length of the data does not match the descriptor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tensor {desc} needs {expected} bytes, got {actual}")]
pub struct TensorSizeError {
    pub desc: String,
    pub expected: u64,
    pub actual: u64,
}

impl Tensor {
    pub fn new(desc: OperandDescriptor, data: Bytes) -> Result<Self, TensorSizeError> {
        let expected = desc.checked_byte_length();
        if expected != Some(data.len() as u64) {
            return Err(TensorSizeError {
                desc: desc.to_string(),
                expected: expected.unwrap_or(u64::MAX),
                actual: data.len() as u64,
            });
        }
        Ok(Tensor { desc, data })
    }

    pub fn from_bytes(desc: OperandDescriptor, bytes: Vec<u8>) -> Result<Self, TensorSizeError> {
        Tensor::new(desc, Bytes::from_vec(bytes))
    }

    /// A float32 tensor from values.
    pub fn from_f32(shape: impl Into<crate::Shape>, values: &[f32]) -> Result<Self, TensorSizeError> {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor::from_bytes(OperandDescriptor::new(DataType::Float32, shape), bytes)
    }

    /// Encodes `values` (exact for every type: floats are rounded to nearest,
    /// integers must already be in range) into a tensor of `desc`.
    pub fn from_values(desc: OperandDescriptor, values: &Values) -> Result<Self, TensorSizeError> {
        let t = desc.data_type;
        let mut out = Vec::with_capacity(values.len() * t.byte_size());
        match values {
            Values::Float(v) => {
                for &x in v {
                    encode_float(t, x, &mut out);
                }
            }
            Values::Int(v) => {
                for &x in v {
                    encode_int(t, x, &mut out);
                }
            }
        }
        Tensor::from_bytes(desc, out)
    }

    pub fn desc(&self) -> &OperandDescriptor {
        &self.desc
    }

    pub fn data_type(&self) -> DataType {
        self.desc.data_type
    }

    pub fn shape(&self) -> &crate::Shape {
        &self.desc.shape
    }

    pub fn bytes(&self) -> &[u8] {
        self.data.as_slice()
    }

    pub fn shared_bytes(&self) -> &Bytes {
        &self.data
    }

    /// Decodes the elements: floats widened to `f64`, integers to `i128`.
    pub fn values(&self) -> Values {
        let b = self.bytes();
        match self.desc.data_type {
            DataType::Float32 => Values::Float(
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
            ),
            DataType::Float16 => Values::Float(
                b.chunks_exact(2)
                    .map(|c| f16::from_le_bytes(c.try_into().unwrap()).to_f64())
                    .collect(),
            ),
            DataType::Int32 => ints(b, |c| i32::from_le_bytes(c.try_into().unwrap()) as i128, 4),
            DataType::Uint32 => ints(b, |c| u32::from_le_bytes(c.try_into().unwrap()) as i128, 4),
            DataType::Int64 => ints(b, |c| i64::from_le_bytes(c.try_into().unwrap()) as i128, 8),
            DataType::Uint64 => ints(b, |c| u64::from_le_bytes(c.try_into().unwrap()) as i128, 8),
            DataType::Int8 => ints(b, |c| c[0] as i8 as i128, 1),
            DataType::Uint8 => ints(b, |c| c[0] as i128, 1),
        }
    }

    /// The elements as `f32` (floats exactly, integers converted).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self.values() {
            Values::Float(v) => v.into_iter().map(|x| x as f32).collect(),
            Values::Int(v) => v.into_iter().map(|x| x as f32).collect(),
        }
    }
}

fn ints(b: &[u8], f: impl Fn(&[u8]) -> i128, size: usize) -> Values {
    Values::Int(b.chunks_exact(size).map(f).collect())
}

fn encode_float(t: DataType, x: f64, out: &mut Vec<u8>) {
    match t {
        DataType::Float32 => out.extend_from_slice(&(x as f32).to_le_bytes()),
        DataType::Float16 => out.extend_from_slice(&f16::from_f64(x).to_le_bytes()),
        _ => encode_int(t, saturate_float_to_int(t, x), out),
    }
}

fn encode_int(t: DataType, x: i128, out: &mut Vec<u8>) {
    match t {
        DataType::Float32 => out.extend_from_slice(&(x as f32).to_le_bytes()),
        DataType::Float16 => out.extend_from_slice(&f16::from_f64(x as f64).to_le_bytes()),
        DataType::Int32 => out.extend_from_slice(&(x as i32).to_le_bytes()),
        DataType::Uint32 => out.extend_from_slice(&(x as u32).to_le_bytes()),
        DataType::Int64 => out.extend_from_slice(&(x as i64).to_le_bytes()),
        DataType::Uint64 => out.extend_from_slice(&(x as u64).to_le_bytes()),
        DataType::Int8 => out.push(x as i8 as u8),
        DataType::Uint8 => out.push(x as u8),
    }
}

/// Truncates toward zero and saturates to the range of integer type `t`;
/// NaN becomes 0.
pub fn saturate_float_to_int(t: DataType, x: f64) -> i128 {
    let (lo, hi) = t.int_range().expect("integer type");
    if x.is_nan() {
        return 0;
    }
    let x = x.trunc();
    if x <= lo as f64 {
        lo
    } else if x >= hi as f64 {
        hi
    } else {
        x as i128
    }
}

/// Decoded tensor elements, widened so that every data type computes exactly
/// in the reference interpreter.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    Float(Vec<f64>),
    Int(Vec<i128>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::Float(v) => v.len(),
            Values::Int(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
