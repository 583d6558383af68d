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

/// The largest safetensors header kiln reads (the limit of the reference
/// implementation).
pub const MAX_SAFETENSORS_HEADER: u64 = 100 << 20;

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
    data_type: String,
    shape: Vec<u64>,
    begin: u64,
    end: u64,
}

/// Builds the tensor `key` from `entry`, whose range is relative to
/// `base` in `map`: checks the data type, that the byte length matches the
/// shape, and that the range lies inside the file.
fn entry_tensor(
    path: &Path,
    map: &Arc<Mmap>,
    base: usize,
    key: &str,
    entry: &Entry,
    data_type: Option<DataType>,
) -> Result<Tensor, WeightError> {
    let err = |message: String| WeightError::Entry { path: path.to_path_buf(), key: key.to_string(), message };
    let data_type = data_type.ok_or_else(|| err(format!("data type {} is not supported by kiln", entry.data_type)))?;
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
/// [`open`](Self::open) checks the file as a whole: the header length, the
/// JSON, the form of every entry, and that no two tensors overlap. Each
/// tensor's data type, size and range are checked when it is looked up.
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
        let bad = |message: String| WeightError::Malformed { path: path.to_path_buf(), message };
        if map.len() < 8 {
            return Err(bad(format!("the file is {} bytes long, too short for the 8-byte header length", map.len())));
        }
        let n = u64::from_le_bytes(map[..8].try_into().unwrap_or_default());
        if n > MAX_SAFETENSORS_HEADER {
            return Err(bad(format!("the header length {n} exceeds the {MAX_SAFETENSORS_HEADER}-byte limit")));
        }
        let header_end = 8 + n as usize;
        if header_end > map.len() {
            return Err(bad(format!("the header length {n} runs past the end of the {}-byte file", map.len())));
        }
        let header: Json = serde_json::from_slice(&map[8..header_end])
            .map_err(|e| bad(format!("the header is not valid JSON: {e}")))?;
        let Json::Object(object) = header else {
            return Err(bad("the header is not a JSON object".to_string()));
        };
        let mut entries = BTreeMap::new();
        for (key, value) in object {
            if key == "__metadata__" {
                let strings = value.as_object().is_some_and(|m| m.values().all(Json::is_string));
                if !strings {
                    return Err(bad("`__metadata__` must be an object of strings".to_string()));
                }
                continue;
            }
            let data_type = value.get("dtype").and_then(Json::as_str);
            let shape = json_shape(value.get("shape"));
            let offsets = value.get("data_offsets").and_then(Json::as_array).and_then(|a| match a.as_slice() {
                [b, e] => Some((b.as_u64()?, e.as_u64()?)),
                _ => None,
            });
            let (Some(data_type), Some(shape), Some((begin, end))) = (data_type, shape, offsets) else {
                return Err(bad(format!(
                    "tensor \"{key}\": expected {{\"dtype\": string, \"shape\": [integers], \"data_offsets\": [begin, end]}}"
                )));
            };
            if begin > end {
                return Err(bad(format!("tensor \"{key}\": data_offsets [{begin}, {end}] end before they begin")));
            }
            entries.insert(key, Entry { data_type: data_type.to_string(), shape, begin, end });
        }
        let mut ranges: Vec<(&String, &Entry)> = entries.iter().filter(|(_, e)| e.begin < e.end).collect();
        ranges.sort_by_key(|(_, e)| (e.begin, e.end));
        for pair in ranges.windows(2) {
            let ((ka, a), (kb, b)) = (pair[0], pair[1]);
            if b.begin < a.end {
                return Err(bad(format!(
                    "tensors \"{ka}\" ({}..{}) and \"{kb}\" ({}..{}) overlap",
                    a.begin, a.end, b.begin, b.end
                )));
            }
        }
        Ok(SafeTensorsFile { path: path.to_path_buf(), map, data_start: header_end, entries })
    }
}

fn safetensors_dtype(name: &str) -> Option<DataType> {
    Some(match name {
        "F32" => DataType::Float32,
        "F16" => DataType::Float16,
        "I32" => DataType::Int32,
        "U32" => DataType::Uint32,
        "I64" => DataType::Int64,
        "U64" => DataType::Uint64,
        "I8" => DataType::Int8,
        "U8" => DataType::Uint8,
        _ => return None,
    })
}

fn safetensors_dtype_name(t: DataType) -> &'static str {
    match t {
        DataType::Float32 => "F32",
        DataType::Float16 => "F16",
        DataType::Int32 => "I32",
        DataType::Uint32 => "U32",
        DataType::Int64 => "I64",
        DataType::Uint64 => "U64",
        DataType::Int8 => "I8",
        DataType::Uint8 => "U8",
    }
}

impl WeightSource for SafeTensorsFile {
    fn tensor(&self, key: &str) -> Result<Tensor, WeightError> {
        let entry = self.entries.get(key).ok_or_else(|| WeightError::Missing {
            key: key.to_string(),
            location: self.path.display().to_string(),
        })?;
        entry_tensor(&self.path, &self.map, self.data_start, key, entry, safetensors_dtype(&entry.data_type))
    }
}

/// The safetensors encoding of `tensors`: keys in sorted order, data laid
/// out contiguously in the same order, the header padded with spaces to a
/// multiple of 8 bytes, no `__metadata__`. Same tensors, same bytes.
pub fn safetensors_bytes(tensors: &BTreeMap<String, Tensor>) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (key, t) in tensors {
        let len = t.bytes().len() as u64;
        // Keys inserted in alphabetical order, so the JSON is the same whether
        // or not serde_json keeps insertion order.
        let mut entry = serde_json::Map::new();
        entry.insert("data_offsets".into(), Json::from(vec![offset, offset + len]));
        entry.insert("dtype".into(), Json::from(safetensors_dtype_name(t.data_type())));
        entry.insert("shape".into(), Json::from(t.shape().dims().to_vec()));
        header.insert(key.clone(), Json::Object(entry));
        offset += len;
    }
    let mut json = Json::Object(header).to_string().into_bytes();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + offset as usize);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for t in tensors.values() {
        out.extend_from_slice(t.bytes());
    }
    out
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
            entries.insert(key.clone(), Entry { data_type: data_type.to_string(), shape, begin, end });
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
        entry_tensor(&self.path, &self.map, 0, key, entry, DataType::from_name(&entry.data_type))
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
