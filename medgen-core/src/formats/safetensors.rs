//! safetensors files: an 8-byte little-endian header length, a JSON header
//! `{name: {dtype, shape, data_offsets: [begin, end]}}`, then the data. One file or a
//! sharded set listed in `model.safetensors.index.json`.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde::Deserialize;
use tch::{Kind, Tensor};

use crate::error::{MedgenError, Result};

#[derive(Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

/// A safetensors image: a file mapped into memory, or bytes compiled into the library.
pub(crate) enum Bytes {
    Mapped(Mmap),
    Static(&'static [u8]),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Static(s) => s,
        }
    }
}

impl From<Mmap> for Bytes {
    fn from(m: Mmap) -> Self {
        Bytes::Mapped(m)
    }
}

pub(crate) struct Shard {
    path: PathBuf,
    mmap: Bytes,
    data_start: usize,
    entries: HashMap<String, Entry>,
    /// The header's `__metadata__`: string keys and values.
    metadata: HashMap<String, String>,
}

impl Shard {
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| MedgenError::io(path, e))?;
        // SAFETY: read-only map; every slice taken from it is bounds-checked below.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| MedgenError::io(path, e))?;
        Self::parse(path, mmap)
    }

    /// Validates the header of a safetensors image already mapped into memory; `path`
    /// names it in errors.
    pub(crate) fn parse(path: &Path, mmap: impl Into<Bytes>) -> Result<Self> {
        let mmap = mmap.into();
        let bad = |m: String| MedgenError::format(format!("{}: {m}", path.display()));
        let header_len = mmap
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
            .ok_or_else(|| bad("truncated safetensors header".into()))?;
        if header_len > super::MAX_SAFETENSORS_HEADER {
            return Err(bad(format!("header length {header_len} is over the format's bound of {}", super::MAX_SAFETENSORS_HEADER)));
        }
        let data_start = 8usize
            .checked_add(usize::try_from(header_len).unwrap_or(usize::MAX))
            .filter(|&e| e <= mmap.len())
            .ok_or_else(|| bad(format!("header length {header_len} exceeds the file")))?;
        let mut raw: HashMap<String, serde_json::Value> = serde_json::from_slice(&mmap[8..data_start])
            .map_err(|e| bad(format!("header is not valid JSON: {e}")))?;
        let metadata = match raw.remove("__metadata__") {
            Some(m) => serde_json::from_value(m).map_err(|e| bad(format!("__metadata__ is not a map of strings: {e}")))?,
            None => HashMap::new(),
        };
        let data_len = (mmap.len() - data_start) as u64;
        let mut entries = HashMap::with_capacity(raw.len());
        for (name, v) in raw {
            let e: Entry = serde_json::from_value(v).map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
            let [begin, end] = e.data_offsets;
            let n: Option<u64> = e.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
            let elem = dtype_size(&e.dtype);
            let expected = n.zip(elem).and_then(|(n, s)| n.checked_mul(s));
            if begin > end || end > data_len || expected.is_some_and(|x| x != end - begin) {
                return Err(bad(format!(
                    "tensor `{name}` ({} {:?}) has data offsets {begin}..{end}, inconsistent with its shape or past the end of the file ({data_len} data bytes)",
                    e.dtype, e.shape
                )));
            }
            entries.insert(name, e);
        }
        // Two tensors over the same bytes are a damaged or crafted file, as the safetensors
        // library holds too.
        let mut spans: Vec<(&String, [u64; 2])> =
            entries.iter().map(|(n, e)| (n, e.data_offsets)).filter(|(_, [b, e])| b < e).collect();
        spans.sort_unstable_by_key(|&(_, offsets)| offsets);
        if let Some(w) = spans.windows(2).find(|w| w[1].1[0] < w[0].1[1]) {
            let ((a, [a0, a1]), (b, [b0, b1])) = (w[0], w[1]);
            return Err(bad(format!("tensors `{a}` ({a0}..{a1}) and `{b}` ({b0}..{b1}) overlap")));
        }
        Ok(Shard {
            path: path.to_path_buf(),
            mmap,
            data_start,
            entries,
            metadata,
        })
    }
}

fn dtype_size(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F64" | "I64" => 8,
        "F32" | "I32" => 4,
        "F16" | "BF16" | "I16" => 2,
        "I8" | "U8" | "BOOL" => 1,
        _ => return None,
    })
}

/// One or more safetensors files read as one set of named tensors.
pub struct SafetensorsSet {
    shards: Vec<Shard>,
    /// Tensor name → index into `shards`.
    index: HashMap<String, usize>,
}

impl SafetensorsSet {
    /// Opens `model.safetensors`, or the shards listed by `model.safetensors.index.json`.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let single = dir.join("model.safetensors");
        let index_path = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if single.exists() {
            vec![single]
        } else if index_path.exists() {
            let text = super::read_text(&index_path)?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| MedgenError::format(format!("{}: {e}", index_path.display())))?;
            let map = json
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| MedgenError::format(format!("{} lacks weight_map", index_path.display())))?;
            let mut names: Vec<&str> = map.values().filter_map(|v| v.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            if names.iter().any(|n| n.contains('/') || n.contains("..")) {
                return Err(MedgenError::format("weight_map names a file outside the model folder"));
            }
            names.into_iter().map(|n| dir.join(n)).collect()
        } else {
            return Err(MedgenError::io(
                &single,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no model.safetensors or model.safetensors.index.json"),
            ));
        };
        let mut shards = Vec::with_capacity(files.len());
        let mut index = HashMap::new();
        for path in files {
            let shard = Shard::open(&path)?;
            for name in shard.entries.keys() {
                index.insert(name.clone(), shards.len());
            }
            shards.push(shard);
        }
        Ok(SafetensorsSet { shards, index })
    }

    /// One safetensors file.
    pub fn open_file(path: &Path) -> Result<Self> {
        Ok(Self::from_shard(Shard::open(path)?))
    }

    /// A safetensors image compiled into the library; `name` names it in errors.
    pub(crate) fn from_static(name: &str, bytes: &'static [u8]) -> Result<Self> {
        Ok(Self::from_shard(Shard::parse(Path::new(name), Bytes::Static(bytes))?))
    }

    fn from_shard(shard: Shard) -> Self {
        let index = shard.entries.keys().map(|n| (n.clone(), 0)).collect();
        SafetensorsSet { shards: vec![shard], index }
    }

    /// A value of the first file's `__metadata__`.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.shards.first().and_then(|s| s.metadata.get(key)).map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// (name, dtype, element count) of every tensor.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str, u64)> {
        self.shards.iter().flat_map(|s| {
            s.entries
                .iter()
                .map(|(n, e)| (n.as_str(), e.dtype.as_str(), e.shape.iter().product::<u64>()))
        })
    }

    /// A tensor as a CPU tensor of its stored floating-point kind.
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        let shard = self
            .index
            .get(name)
            .map(|&i| &self.shards[i])
            .ok_or_else(|| MedgenError::format(format!("tensor `{name}` is missing")))?;
        let e = &shard.entries[name];
        let kind = match e.dtype.as_str() {
            "F32" => Kind::Float,
            "F16" => Kind::Half,
            "BF16" => Kind::BFloat16,
            other => {
                return Err(MedgenError::Unsupported(format!(
                    "safetensors dtype {other} in `{name}` ({})",
                    shard.path.display()
                )))
            }
        };
        let [begin, end] = e.data_offsets;
        let bytes = &shard.mmap[shard.data_start + begin as usize..shard.data_start + end as usize];
        let shape: Vec<i64> = e.shape.iter().map(|&d| d as i64).collect();
        Ok(Tensor::f_from_data_size(bytes, &shape, kind)?)
    }
}

/// Writes `tensors` (f32 or f16) and `metadata` as one safetensors file, as
/// [`crate::inspect::write_file`] writes: to a temporary file renamed into place, refusing an
/// existing file unless `overwrite`.
pub(crate) fn write(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: &std::collections::BTreeMap<String, String>,
    overwrite: bool,
) -> Result<()> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::to_value(metadata).unwrap_or_default());
    let mut data = Vec::new();
    for (name, t) in tensors {
        let t = t.f_detach()?.f_to_device(tch::Device::Cpu)?.f_contiguous()?;
        let dtype = match t.kind() {
            Kind::Float => "F32",
            Kind::Half => "F16",
            k => return Err(MedgenError::internal("safetensors", format!("cannot write `{name}` of kind {k:?}"))),
        };
        let bytes = Vec::<u8>::try_from(t.f_view_dtype(Kind::Uint8)?.f_flatten(0, -1)?)?;
        let entry = serde_json::json!({"dtype": dtype, "shape": t.size(), "data_offsets": [data.len(), data.len() + bytes.len()]});
        header.insert(name.clone(), entry);
        data.extend_from_slice(&bytes);
    }
    let mut json = serde_json::to_vec(&header).map_err(|e| MedgenError::internal("safetensors", e.to_string()))?;
    json.resize(json.len().div_ceil(8) * 8, b' ');
    let mut file = (json.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&json);
    file.extend_from_slice(&data);
    crate::inspect::write_file(path, &file, overwrite)
}
