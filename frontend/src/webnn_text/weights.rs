//! Tensor data for `@weights("key")` constants: the [`WeightSource`] trait,
//! the two sidecar formats, and the lookup of the sidecar next to a graph.
//!
//! Both file formats are memory-mapped and every constant is a window into
//! the map ([`Bytes::from_shared`]): loading copies no tensor data.
//!
//! **Safety assumption.** Mapping a file is `unsafe` because another process
//! could change or truncate it while it is mapped, and the bytes a [`Tensor`]
//! reads would change under it (or fault). kiln assumes that weights files
//! are not modified while a graph loaded from them is alive.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_ir::{Bytes, DataType, OperandDescriptor, Tensor};
use memmap2::Mmap;
use serde_json::Value as Json;

/// The largest safetensors header kiln reads: the limit of the
/// `safetensors` crate, which reads the header.
pub const MAX_SAFETENSORS_HEADER: u64 = 100_000_000;

/// An error reading weights. Each names the file and, where there is one,
/// the tensor.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WeightError {
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    /// The file as a whole is not a valid sidecar (header, JSON, layout).
    #[error("{}: {message}", path.display())]
    Malformed { path: PathBuf, message: String },
    /// The entry for one tensor is unusable (range, data type, size).
    #[error("{}: tensor \"{key}\": {message}", path.display())]
    Entry { path: PathBuf, key: String, message: String },
    #[error("no tensor \"{key}\" in {location}")]
    Missing { key: String, location: String },
    #[error("no weights file for tensor \"{key}\": looked for {}", list_paths(.tried))]
    NoSidecar { key: String, tried: Vec<PathBuf> },
}

fn list_paths(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// Where `@weights("key")` constants get their data.
pub trait WeightSource {
    /// The tensor stored under `key`, with the data type and shape the
    /// source records for it; the caller checks those against the
    /// constant's declaration.
    fn tensor(&self, key: &str) -> Result<Tensor, WeightError>;
}

/// In-memory weights, by key.
impl WeightSource for BTreeMap<String, Tensor> {
    fn tensor(&self, key: &str) -> Result<Tensor, WeightError> {
        self.get(key)
            .cloned()
            .ok_or_else(|| WeightError::Missing { key: key.to_string(), location: "the in-memory weights".to_string() })
    }
}

fn io_error(path: &Path, e: std::io::Error) -> WeightError {
    WeightError::Io { path: path.to_path_buf(), message: e.to_string() }
}

fn map_file(path: &Path) -> Result<Arc<Mmap>, WeightError> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    // SAFETY: see the module documentation: weights files are assumed not to
    // change while mapped. memmap2 maps an empty file as an empty slice.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| io_error(path, e))?;
    Ok(Arc::new(map))
}

/// Where one tensor's bytes are, before they are checked against the file.
#[derive(Clone, Debug)]
struct Entry {
    /// The data type as the file spells it (for messages).
    type_name: String,
    /// The data type, if kiln has it.
    data_type: Option<DataType>,
    shape: Vec<u64>,
    begin: u64,
    end: u64,
}

/// Builds the tensor `key` from `entry`, whose range is relative to
/// `base` in `map`: checks the data type, that the byte length matches the
/// shape, and that the range lies inside the file.
fn entry_tensor(path: &Path, map: &Arc<Mmap>, base: usize, key: &str, entry: &Entry) -> Result<Tensor, WeightError> {
    let err = |message: String| WeightError::Entry { path: path.to_path_buf(), key: key.to_string(), message };
    let data_type =
        entry.data_type.ok_or_else(|| err(format!("data type {} is not supported by kiln", entry.type_name)))?;
    let dims = entry
        .shape
        .iter()
        .map(|&d| u32::try_from(d).map_err(|_| err(format!("dimension {d} does not fit in 32 bits"))))
        .collect::<Result<Vec<u32>, _>>()?;
    let desc = OperandDescriptor::new(data_type, dims);
    let len = entry.end - entry.begin;
    match desc.checked_byte_length() {
        Some(n) if n == len => {}
        n => {
            let needed = n.map_or("more than 2^64".to_string(), |n| n.to_string());
            return Err(err(format!("holds {len} bytes, but {desc} needs {needed}")));
        }
    }
    let available = map.len() - base;
    let range = usize::try_from(entry.begin)
        .ok()
        .zip(usize::try_from(entry.end).ok())
        .filter(|&(_, e)| e <= available)
        .map(|(b, e)| b + base..e + base)
        .ok_or_else(|| {
            err(format!("byte range {}..{} lies outside the {available} bytes of tensor data", entry.begin, entry.end))
        })?;
    let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = map.clone();
    // SAFETY: `map` is a read-only mapping of the weights file, kept alive
    // by `owner`; like every memory-mapped loader, kiln assumes the file is
    // not modified while in use.
    let bytes = unsafe { Bytes::from_mapped(owner, range.clone()) }
        .ok_or_else(|| err(format!("byte range {range:?} lies outside the file")))?;
    Tensor::new(desc, bytes).map_err(|e| err(e.to_string()))
}

fn json_shape(v: Option<&Json>) -> Option<Vec<u64>> {
    v?.as_array()?.iter().map(Json::as_u64).collect()
}

/// A safetensors file: an 8-byte little-endian header length, a JSON header
/// `{key: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
/// {...}}`, then the tensor data (offsets are relative to its start).
///
/// [`open`](Self::open) reads and checks the header with the `safetensors`
/// crate, on the mapped file: the header length (at most
/// [`MAX_SAFETENSORS_HEADER`] bytes, inside the file), UTF-8 and JSON, the
/// form of every entry and of `__metadata__` (strings), that every tensor's
/// byte length is its shape times its data type's size (every data type of
/// the format, not only kiln's, without overflow), and that the tensors
/// fill the data section in order of their offsets, without gaps or
/// overlaps, to the last byte of the file. Its errors name the file and,
/// where there is one, the tensor. A tensor's data type is checked against
/// kiln's when it is looked up.
pub struct SafeTensorsFile {
    path: PathBuf,
    map: Arc<Mmap>,
    data_start: usize,
    entries: BTreeMap<String, Entry>,
}

impl SafeTensorsFile {
    /// Maps the file at `path` and checks its header.
    pub fn open(path: &Path) -> Result<Self, WeightError> {
        let map = map_file(path)?;
        let (header_len, metadata) = safetensors::SafeTensors::read_metadata(&map)
            .map_err(|e| WeightError::Malformed { path: path.to_path_buf(), message: explain_safetensors_error(&map, e) })?;
        let entries = metadata
            .tensors()
            .into_iter()
            .map(|(key, info)| {
                let entry = Entry {
                    type_name: format!("{:?}", info.dtype), // the variant names are the format's names
                    data_type: kiln_data_type(info.dtype),
                    shape: info.shape.iter().map(|&d| d as u64).collect(),
                    begin: info.data_offsets.0 as u64,
                    end: info.data_offsets.1 as u64,
                };
                (key, entry)
            })
            .collect();
        Ok(SafeTensorsFile { path: path.to_path_buf(), map, data_start: 8 + header_len, entries })
    }
}

/// The message for a file the `safetensors` crate refused: its reason, with
/// the numbers and the tensor the crate's error does not carry looked up in
/// `file` (this runs only on the error path).
fn explain_safetensors_error(file: &[u8], e: safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as E;
    use safetensors::tensor::TensorInfo;
    let declared = file.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
    let header: Option<Json> = declared
        .and_then(|n| file.get(8..8usize.saturating_add(usize::try_from(n).ok()?)))
        .and_then(|h| serde_json::from_slice(h).ok());
    // The tensor entries of the header (when it is a JSON object).
    let entries = || -> Vec<(String, Json)> {
        let Some(Json::Object(map)) = header.clone() else { return Vec::new() };
        map.into_iter().filter(|(key, _)| key != "__metadata__").collect()
    };
    match (e, declared) {
        (E::HeaderTooSmall, _) => {
            format!("the file is {} bytes long, too short for the 8-byte header length", file.len())
        }
        (E::HeaderTooLarge, Some(n)) => format!("the header length {n} exceeds the {MAX_SAFETENSORS_HEADER}-byte limit"),
        (E::InvalidHeaderLength, Some(n)) => {
            format!("the header length {n} runs past the end of the {}-byte file", file.len())
        }
        (E::InvalidHeader(e), _) => format!("the header is not UTF-8 text: {e}"),
        (E::InvalidHeaderDeserialization(e), _) if !e.is_data() => format!("the header is not valid JSON: {e}"),
        (E::InvalidHeaderDeserialization(e), _) => {
            // Valid JSON of the wrong form: find the part serde does not name.
            let metadata = header.as_ref().and_then(|h| h.get("__metadata__")).cloned();
            let metadata = metadata.map(serde_json::from_value::<BTreeMap<String, String>>);
            let entry = entries()
                .into_iter()
                .find_map(|(key, v)| serde_json::from_value::<TensorInfo>(v).err().map(|e| (key, e)));
            match (header.as_ref().is_some_and(Json::is_object), metadata, entry) {
                (false, ..) => format!("the header is not a JSON object: {e}"),
                (true, Some(Err(e)), _) => format!("`__metadata__` must be an object of strings: {e}"),
                (true, _, Some((key, e))) => format!(
                    "tensor \"{key}\": expected {{\"dtype\": a safetensors data type, \"shape\": [integers], \"data_offsets\": [begin, end]}}: {e}"
                ),
                (true, ..) => format!("the header is not a safetensors header: {e}"),
            }
        }
        (E::InvalidOffset(key), _) => {
            let offsets = entries().into_iter().find(|(k, _)| *k == key).and_then(|(_, v)| v.get("data_offsets").cloned());
            let offsets = offsets.map_or(String::new(), |o| format!(" {o}"));
            format!(
                "tensor \"{key}\": data_offsets{offsets}: the tensors must fill the data section in order, each beginning where the one before ends and ending at or after its beginning"
            )
        }
        (E::TensorInvalidInfo | E::MisalignedSlice | E::ValidationOverflow, _) => {
            // The first tensor whose byte length is not its shape's.
            let wrong = entries().into_iter().find_map(|(key, v)| {
                let info: TensorInfo = serde_json::from_value(v).ok()?;
                let what = format!("{:?}{:?}", info.dtype, info.shape);
                let Some(bits) =
                    info.shape.iter().try_fold(info.dtype.bitsize() as u128, |n, &d| n.checked_mul(d as u128))
                else {
                    return Some(format!("tensor \"{key}\": the size of {what} overflows"));
                };
                if bits % 8 != 0 {
                    return Some(format!("tensor \"{key}\": {what} is {bits} bits, not a whole number of bytes"));
                }
                let held = info.data_offsets.1.checked_sub(info.data_offsets.0)? as u128;
                (held * 8 != bits).then(|| format!("tensor \"{key}\": holds {held} bytes, but {what} needs {}", bits / 8))
            });
            wrong.unwrap_or_else(|| "a tensor's byte length does not match its shape and data type".to_string())
        }
        (E::MetadataIncompleteBuffer, Some(n)) => {
            let end = entries().iter().filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64()).max().unwrap_or(0);
            let data = (file.len() as u64).saturating_sub(8 + n);
            format!("the tensors end at byte {end} of the {data}-byte data section: the file must end where the last tensor does")
        }
        (e, _) => e.to_string(),
    }
}

/// kiln's data type for a safetensors data type, if it has one.
fn kiln_data_type(t: safetensors::Dtype) -> Option<DataType> {
    use safetensors::Dtype;
    Some(match t {
        Dtype::F32 => DataType::Float32,
        Dtype::F16 => DataType::Float16,
        Dtype::I32 => DataType::Int32,
        Dtype::U32 => DataType::Uint32,
        Dtype::I64 => DataType::Int64,
        Dtype::U64 => DataType::Uint64,
        Dtype::I8 => DataType::Int8,
        Dtype::U8 => DataType::Uint8,
        _ => return None,
    })
}

/// The safetensors data type of a kiln data type.
fn safetensors_dtype(t: DataType) -> safetensors::Dtype {
    use safetensors::Dtype;
    match t {
        DataType::Float32 => Dtype::F32,
        DataType::Float16 => Dtype::F16,
        DataType::Int32 => Dtype::I32,
        DataType::Uint32 => Dtype::U32,
        DataType::Int64 => Dtype::I64,
        DataType::Uint64 => Dtype::U64,
        DataType::Int8 => Dtype::I8,
        DataType::Uint8 => Dtype::U8,
    }
}

impl WeightSource for SafeTensorsFile {
    fn tensor(&self, key: &str) -> Result<Tensor, WeightError> {
        let entry = self.entries.get(key).ok_or_else(|| WeightError::Missing {
            key: key.to_string(),
            location: self.path.display().to_string(),
        })?;
        entry_tensor(&self.path, &self.map, self.data_start, key, entry)
    }
}

/// The safetensors encoding of `tensors`, written by the `safetensors`
/// crate: data ordered by descending element size, then by key (so each
/// tensor's data starts at a multiple of its element size), contiguous;
/// the header padded with spaces to a multiple of 8 bytes, no
/// `__metadata__`. Same tensors, same bytes. Fails only for a header over
/// [`MAX_SAFETENSORS_HEADER`] bytes.
pub fn safetensors_bytes(tensors: &BTreeMap<String, Tensor>) -> Result<Vec<u8>, safetensors::SafeTensorError> {
    let views = tensors.iter().map(|(key, t)| {
        let shape = t.shape().dims().iter().map(|&d| d as usize).collect();
        (key.as_str(), TensorView { tensor: t, shape })
    });
    safetensors::serialize(views, None)
}

/// A [`Tensor`] as the `safetensors` crate's [`safetensors::View`].
struct TensorView<'a> {
    tensor: &'a Tensor,
    shape: Vec<usize>,
}

impl safetensors::View for TensorView<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        safetensors_dtype(self.tensor.data_type())
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(self.tensor.bytes())
    }

    fn data_len(&self) -> usize {
        self.tensor.bytes().len()
    }
}

/// A raw little-endian blob (`NAME.weights`) with a JSON manifest:
/// `{"format": "webnn-weights-manifest", "version": 1, "tensors": {key:
/// {"dataType": "float32", "shape": [...], "byteOffset": n, "byteLength":
/// n}}}`. The format name `wg-weights-manifest` (written by the
/// `webnn-graph` tool) is accepted too, and an `"endianness"` field, if
/// present, must be `"little"`.
///
/// [`open`](Self::open) checks the manifest as a whole; each tensor's data
/// type, size and range are checked when it is looked up.
pub struct WeightsFile {
    path: PathBuf,
    map: Arc<Mmap>,
    entries: BTreeMap<String, Entry>,
}

impl WeightsFile {
    /// Reads and checks the manifest, then maps the blob.
    pub fn open(blob: &Path, manifest: &Path) -> Result<Self, WeightError> {
        let bad = |message: String| WeightError::Malformed { path: manifest.to_path_buf(), message };
        let text = std::fs::read(manifest).map_err(|e| io_error(manifest, e))?;
        let json: Json = serde_json::from_slice(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        match json.get("format").and_then(Json::as_str) {
            Some("webnn-weights-manifest" | "wg-weights-manifest") => {}
            other => return Err(bad(format!("\"format\" must be \"webnn-weights-manifest\", got {other:?}"))),
        }
        if json.get("version").and_then(Json::as_u64) != Some(1) {
            return Err(bad(format!("\"version\" must be 1, got {}", json.get("version").unwrap_or(&Json::Null))));
        }
        if let Some(e) = json.get("endianness").filter(|e| e.as_str() != Some("little")) {
            return Err(bad(format!("\"endianness\" must be \"little\", got {e}")));
        }
        let tensors = json
            .get("tensors")
            .and_then(Json::as_object)
            .ok_or_else(|| bad("\"tensors\" must be an object".to_string()))?;
        let mut entries = BTreeMap::new();
        for (key, v) in tensors {
            let data_type = v.get("dataType").and_then(Json::as_str);
            let shape = json_shape(v.get("shape"));
            let offset = v.get("byteOffset").and_then(Json::as_u64);
            let length = v.get("byteLength").and_then(Json::as_u64);
            let (Some(data_type), Some(shape), Some(begin), Some(length)) = (data_type, shape, offset, length) else {
                return Err(bad(format!(
                    "tensor \"{key}\": expected {{\"dataType\": string, \"shape\": [integers], \"byteOffset\": integer, \"byteLength\": integer}}"
                )));
            };
            let end = begin
                .checked_add(length)
                .ok_or_else(|| bad(format!("tensor \"{key}\": byteOffset + byteLength overflows")))?;
            let entry = Entry { type_name: data_type.to_string(), data_type: DataType::from_name(data_type), shape, begin, end };
            entries.insert(key.clone(), entry);
        }
        Ok(WeightsFile { path: blob.to_path_buf(), map: map_file(blob)?, entries })
    }
}

impl WeightSource for WeightsFile {
    fn tensor(&self, key: &str) -> Result<Tensor, WeightError> {
        let entry = self.entries.get(key).ok_or_else(|| WeightError::Missing {
            key: key.to_string(),
            location: self.path.display().to_string(),
        })?;
        entry_tensor(&self.path, &self.map, 0, key, entry)
    }
}

/// The weights file found next to a graph file, if any.
pub enum Sidecar {
    SafeTensors(SafeTensorsFile),
    Weights(WeightsFile),
    /// No sidecar exists; every lookup fails and lists the paths tried.
    None { tried: Vec<PathBuf> },
}

impl Sidecar {
    /// Finds the sidecar of `NAME.webnn` in its folder. Tried in order, the
    /// first that exists wins: `NAME.safetensors`, `model.safetensors`,
    /// then `NAME.weights` or `model.weights` together with
    /// `NAME.manifest.json` or `manifest.json` (a blob without a manifest is
    /// an error). The graph's own name comes before `model` so that a
    /// graph saved by [`super::save`] always finds its own weights.
    pub fn find(graph_path: &Path) -> Result<Sidecar, WeightError> {
        let dir = graph_path.parent().unwrap_or(Path::new(""));
        let name = graph_path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let candidates = |ext: &str| -> Vec<PathBuf> {
            let mut v = vec![dir.join(format!("{name}.{ext}")), dir.join(format!("model.{ext}"))];
            v.dedup();
            v
        };
        let mut tried = Vec::new();
        for path in candidates("safetensors") {
            if path.is_file() {
                return SafeTensorsFile::open(&path).map(Sidecar::SafeTensors);
            }
            tried.push(path);
        }
        for blob in candidates("weights") {
            if blob.is_file() {
                let mut manifests = vec![dir.join(format!("{name}.manifest.json")), dir.join("manifest.json")];
                manifests.dedup();
                return match manifests.iter().find(|m| m.is_file()) {
                    Some(manifest) => WeightsFile::open(&blob, manifest).map(Sidecar::Weights),
                    None => Err(WeightError::Malformed {
                        path: blob,
                        message: format!("no manifest: looked for {}", list_paths(&manifests)),
                    }),
                };
            }
            tried.push(blob);
        }
        Ok(Sidecar::None { tried })
    }
}

impl WeightSource for Sidecar {
    fn tensor(&self, key: &str) -> Result<Tensor, WeightError> {
        match self {
            Sidecar::SafeTensors(f) => f.tensor(key),
            Sidecar::Weights(f) => f.tensor(key),
            Sidecar::None { tried } => Err(WeightError::NoSidecar { key: key.to_string(), tried: tried.clone() }),
        }
    }
}
