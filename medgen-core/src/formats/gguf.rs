//! GGUF reader (versions 2 and 3): header, metadata, tensor infos, memory-mapped data.
//!
//! Layout (little-endian): magic "GGUF", u32 version, u64 tensor count, u64 metadata count,
//! the metadata key/values, the tensor infos, padding to `general.alignment` (default 32),
//! then the tensor data. Every count and offset read from the file is checked against the
//! file's length before it is used, so a corrupt header is an error, never a huge allocation.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::quants::{self, GgmlType};
use crate::error::{MedgenError, Result};

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Array),
}

/// A metadata array, stored by its element type, so that it takes about as much memory as
/// its bytes in the file (an array of `Value`s would take 32 bytes an element).
#[derive(Debug, Clone, PartialEq)]
pub enum Array {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Nested(Vec<Array>),
}

impl Array {
    pub fn len(&self) -> usize {
        match self {
            Array::U8(a) => a.len(),
            Array::I8(a) => a.len(),
            Array::U16(a) => a.len(),
            Array::I16(a) => a.len(),
            Array::U32(a) => a.len(),
            Array::I32(a) => a.len(),
            Array::U64(a) => a.len(),
            Array::I64(a) => a.len(),
            Array::F32(a) => a.len(),
            Array::F64(a) => a.len(),
            Array::Bool(a) => a.len(),
            Array::String(a) => a.len(),
            Array::Nested(a) => a.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements, if this is an array of strings.
    pub fn strings(&self) -> Option<&[String]> {
        match self {
            Array::String(a) => Some(a),
            _ => None,
        }
    }

    /// Every element as an f64, if this is an array of numbers.
    pub fn numbers(&self) -> Option<Vec<f64>> {
        fn all<T: Copy + Into<f64>>(a: &[T]) -> Option<Vec<f64>> {
            Some(a.iter().map(|&x| x.into()).collect())
        }
        match self {
            Array::U8(a) => all(a),
            Array::I8(a) => all(a),
            Array::U16(a) => all(a),
            Array::I16(a) => all(a),
            Array::U32(a) => all(a),
            Array::I32(a) => all(a),
            Array::F32(a) => all(a),
            Array::F64(a) => all(a),
            Array::U64(a) => Some(a.iter().map(|&x| x as f64).collect()),
            Array::I64(a) => Some(a.iter().map(|&x| x as f64).collect()),
            Array::Bool(_) | Array::String(_) | Array::Nested(_) => None,
        }
    }
}

impl Value {
    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// Where one tensor lies in the file.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions in GGML order: `dims[0]` is the fastest-varying (a row's length).
    pub dims: Vec<usize>,
    pub ggml_type: GgmlType,
    /// Byte offset of the data from the start of the data section.
    pub offset: usize,
    /// Byte length of the data.
    pub n_bytes: usize,
}

impl TensorInfo {
    pub fn n_elements(&self) -> usize {
        self.dims.iter().product()
    }

    /// The shape in PyTorch order (slowest first): GGML's dimensions reversed.
    pub fn torch_shape(&self) -> Vec<i64> {
        self.dims.iter().rev().map(|&d| d as i64).collect()
    }
}

/// An open GGUF file.
#[derive(Debug)]
pub struct GgufFile {
    pub path: PathBuf,
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    index: HashMap<String, usize>,
    data_start: usize,
    mmap: Mmap,
    /// Whether `mmap` maps a file (not memory of its own, as in tests): see [`GgufFile::release`].
    file_backed: bool,
}

const GGML_MAX_DIMS: usize = 4;

impl GgufFile {
    /// Opens and validates a GGUF file; the tensor data stays memory-mapped.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| MedgenError::io(&path, e))?;
        // SAFETY: the map is read-only; medgen never writes model files, and a file changed
        // under us by another process can give wrong numbers but not undefined reads here,
        // since every access is bounds-checked against the length taken at open time.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| MedgenError::io(&path, e))?;
        Ok(GgufFile { file_backed: true, ..Self::parse(path, mmap)? })
    }

    /// Validates a GGUF image already mapped into memory; `path` names it in errors.
    pub(crate) fn parse(path: PathBuf, mmap: Mmap) -> Result<Self> {
        let ctx = |e: String| MedgenError::format(format!("{}: {e}", path.display()));
        let mut r = Reader { buf: &mmap, pos: 0 };

        if r.bytes(4).map_err(ctx)? != b"GGUF" {
            return Err(ctx("not a GGUF file (bad magic)".into()));
        }
        let version = r.u32().map_err(ctx)?;
        match version {
            2 | 3 => {}
            v if v.swap_bytes() <= 3 => {
                return Err(MedgenError::Unsupported(format!(
                    "{}: big-endian GGUF files",
                    path.display()
                )))
            }
            v => {
                return Err(MedgenError::Unsupported(format!(
                    "{}: GGUF version {v} (medgen reads versions 2 and 3)",
                    path.display()
                )))
            }
        }
        let n_tensors = r.count(8 + 4 + 8 + 4 + 8, "tensor count").map_err(ctx)?;
        let n_kv = r.count(8 + 4 + 4, "metadata count").map_err(ctx)?;

        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = r.string().map_err(ctx)?;
            let ty = r.u32().map_err(ctx)?;
            let value = r.value(ty, 0).map_err(|e| ctx(format!("metadata `{key}`: {e}")))?;
            metadata.insert(key, value);
        }

        let alignment = match metadata.get("general.alignment") {
            None => 32,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 20 => a as usize,
                _ => return Err(ctx(format!("general.alignment {v:?} is not a power of two"))),
            },
        };

        let mut tensors = Vec::with_capacity(n_tensors);
        let mut index = HashMap::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let name = r.string().map_err(ctx)?;
            let info = r
                .tensor_info(name.clone())
                .map_err(|e| ctx(format!("tensor `{name}`: {e}")))?;
            if index.insert(name.clone(), tensors.len()).is_some() {
                return Err(ctx(format!("tensor `{name}` appears twice")));
            }
            tensors.push(info);
        }

        let data_start = r.pos.div_ceil(alignment) * alignment;
        let file_len = mmap.len();
        for t in &tensors {
            let end = data_start
                .checked_add(t.offset)
                .and_then(|s| s.checked_add(t.n_bytes));
            match end {
                Some(end) if end <= file_len => {}
                _ => {
                    return Err(ctx(format!(
                        "tensor `{}` data (offset {}, {} bytes) lies past the end of the file ({} bytes)",
                        t.name, t.offset, t.n_bytes, file_len
                    )))
                }
            }
        }

        Ok(GgufFile {
            path,
            version,
            metadata,
            tensors,
            index,
            data_start,
            mmap,
            file_backed: false,
        })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// The raw bytes of a tensor (validated to lie inside the file at open time).
    pub fn tensor_bytes(&self, info: &TensorInfo) -> &[u8] {
        let start = self.data_start + info.offset;
        &self.mmap[start..start + info.n_bytes]
    }

    /// A tensor dequantized to f32, in GGML element order.
    pub fn dequantize(&self, name: &str) -> Result<(Vec<f32>, &TensorInfo)> {
        let info = self
            .tensor_info(name)
            .ok_or_else(|| MedgenError::format(format!("tensor `{name}` is missing")))?;
        let values = quants::dequantize(info.ggml_type, self.tensor_bytes(info), info.n_elements())
            .map_err(|e| match e {
                MedgenError::Unsupported(m) => MedgenError::Unsupported(format!("{m} in {name}")),
                other => other,
            })?;
        self.release(info, 0..info.n_bytes);
        Ok((values, info))
    }

    /// `info`'s bytes appended to `out`, a piece at a time, each piece's pages released
    /// ([`GgufFile::release`]) once copied: the map and the copy never both hold the tensor.
    pub fn copy_into(&self, info: &TensorInfo, out: &mut Vec<u8>) {
        const PIECE: usize = 8 << 20;
        let bytes = self.tensor_bytes(info);
        out.reserve(bytes.len());
        for (i, piece) in bytes.chunks(PIECE).enumerate() {
            out.extend_from_slice(piece);
            self.release(info, i * PIECE..i * PIECE + piece.len());
        }
    }

    /// Drops the pages of bytes `range` of `info`'s data from this process's memory once
    /// copied or converted: they stay in the page cache, and come back from the file if read
    /// again. Without this, a model's load would hold each weight twice, the mapped pages
    /// beside the copy, until the file is closed.
    pub fn release(&self, info: &TensorInfo, range: std::ops::Range<usize>) {
        if self.file_backed {
            // SAFETY: a read-only map of a file: a dropped page is read from the file again
            // when touched, so no data is lost (memmap2 rounds the range to whole pages).
            let advice = memmap2::UncheckedAdvice::DontNeed;
            let _ = unsafe { self.mmap.unchecked_advise_range(advice, self.data_start + info.offset + range.start, range.len()) };
        }
    }
}

fn bool_byte(b: u8) -> ReadResult<bool> {
    match b {
        0 => Ok(false),
        1 => Ok(true),
        b => Err(format!("bool byte {b} is neither 0 nor 1")),
    }
}

/// A bounds-checked little-endian cursor; errors are plain strings that the caller
/// prefixes with the file and the item being read.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

type ReadResult<T> = std::result::Result<T, String>;

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn bytes(&mut self, n: usize) -> ReadResult<&'a [u8]> {
        if n > self.remaining() {
            return Err(format!(
                "truncated file: needed {n} bytes at offset {}, {} left",
                self.pos,
                self.remaining()
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> ReadResult<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    fn u32(&mut self) -> ReadResult<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> ReadResult<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A u64 count of items that each need at least `min_item_bytes` bytes: a count the
    /// rest of the file cannot hold is rejected before anything is allocated for it.
    fn count(&mut self, min_item_bytes: usize, what: &str) -> ReadResult<usize> {
        let n = self.u64()?;
        let fits = n
            .checked_mul(min_item_bytes as u64)
            .is_some_and(|need| need <= self.remaining() as u64);
        if !fits {
            return Err(format!(
                "{what} {n} is impossible: only {} bytes remain",
                self.remaining()
            ));
        }
        Ok(n as usize)
    }

    fn string(&mut self) -> ReadResult<String> {
        let n = self.count(1, "string length")?;
        let bytes = self.bytes(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "string is not valid UTF-8".to_string())
    }

    fn value(&mut self, ty: u32, depth: usize) -> ReadResult<Value> {
        Ok(match ty {
            0 => Value::U8(self.array::<1>()?[0]),
            1 => Value::I8(self.array::<1>()?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.array()?)),
            3 => Value::I16(i16::from_le_bytes(self.array()?)),
            4 => Value::U32(self.u32()?),
            5 => Value::I32(i32::from_le_bytes(self.array()?)),
            6 => Value::F32(f32::from_le_bytes(self.array()?)),
            7 => Value::Bool(bool_byte(self.array::<1>()?[0])?),
            8 => Value::String(self.string()?),
            9 => Value::Array(self.array_value(depth)?),
            10 => Value::U64(self.u64()?),
            11 => Value::I64(i64::from_le_bytes(self.array()?)),
            12 => Value::F64(f64::from_le_bytes(self.array()?)),
            t => return Err(format!("unknown metadata type {t}")),
        })
    }

    /// An array: its element type, its length, and the elements.
    fn array_value(&mut self, depth: usize) -> ReadResult<Array> {
        if depth > 4 {
            return Err("arrays nested too deeply".into());
        }
        let ty = self.u32()?;
        let min = match ty {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            8..=12 => 8,
            t => return Err(format!("unknown metadata type {t}")),
        };
        let n = self.count(min, "array length")?;
        Ok(match ty {
            0 => Array::U8(self.bytes(n)?.to_vec()),
            1 => Array::I8(self.fixed(n, i8::from_le_bytes)?),
            2 => Array::U16(self.fixed(n, u16::from_le_bytes)?),
            3 => Array::I16(self.fixed(n, i16::from_le_bytes)?),
            4 => Array::U32(self.fixed(n, u32::from_le_bytes)?),
            5 => Array::I32(self.fixed(n, i32::from_le_bytes)?),
            6 => Array::F32(self.fixed(n, f32::from_le_bytes)?),
            7 => Array::Bool(self.bytes(n)?.iter().map(|&b| bool_byte(b)).collect::<ReadResult<_>>()?),
            8 => Array::String((0..n).map(|_| self.string()).collect::<ReadResult<_>>()?),
            9 => Array::Nested((0..n).map(|_| self.array_value(depth + 1)).collect::<ReadResult<_>>()?),
            10 => Array::U64(self.fixed(n, u64::from_le_bytes)?),
            11 => Array::I64(self.fixed(n, i64::from_le_bytes)?),
            _ => Array::F64(self.fixed(n, f64::from_le_bytes)?),
        })
    }

    /// `n` fixed-size little-endian items.
    fn fixed<const N: usize, T>(&mut self, n: usize, from: fn([u8; N]) -> T) -> ReadResult<Vec<T>> {
        // `count` has checked that n items of at least N bytes fit.
        let bytes = self.bytes(n * N)?;
        Ok(bytes.chunks_exact(N).map(|c| from(c.try_into().unwrap_or([0; N]))).collect())
    }

    fn tensor_info(&mut self, name: String) -> ReadResult<TensorInfo> {
        let n_dims = self.u32()? as usize;
        if n_dims == 0 || n_dims > GGML_MAX_DIMS {
            return Err(format!("{n_dims} dimensions (1 to {GGML_MAX_DIMS} allowed)"));
        }
        let mut dims = Vec::with_capacity(n_dims);
        for _ in 0..n_dims {
            dims.push(self.u64()?);
        }
        let type_id = self.u32()?;
        let ggml_type = GgmlType::from_id(type_id).ok_or(format!("unknown GGML type id {type_id}"))?;
        let offset = self.u64()?;
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= 1 << 40)
            .ok_or_else(|| format!("absurd dimensions {dims:?}"))?;
        let (block, block_bytes) = ggml_type.block();
        if dims[0] % block as u64 != 0 {
            return Err(format!(
                "row length {} is not a multiple of the {:?} block size {block}",
                dims[0], ggml_type
            ));
        }
        let n_bytes = n_elements / block as u64 * block_bytes as u64;
        let to_usize = |v: u64| usize::try_from(v).map_err(|_| format!("absurd size {v}"));
        Ok(TensorInfo {
            name,
            dims: dims.into_iter().map(to_usize).collect::<ReadResult<_>>()?,
            ggml_type,
            offset: to_usize(offset)?,
            n_bytes: to_usize(n_bytes)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GGUF of no tensors and one metadata array of `n` elements of type `ty`, each `item`.
    fn with_array(ty: u32, n: u64, item: &[u8]) -> GgufFile {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.push(b'a');
        b.extend(9u32.to_le_bytes());
        b.extend(ty.to_le_bytes());
        b.extend(n.to_le_bytes());
        (0..n).for_each(|_| b.extend(item));
        let mut map = memmap2::MmapMut::map_anon(b.len()).unwrap();
        map.copy_from_slice(&b);
        GgufFile::parse(PathBuf::from("t.gguf"), map.make_read_only().unwrap()).unwrap()
    }

    #[test]
    fn arrays_take_about_their_size_in_the_file() {
        let n = 100_000;
        let g = with_array(0, n, &[7]);
        match g.get("a").and_then(Value::as_array) {
            Some(Array::U8(v)) => assert!(v.len() == n as usize && v.capacity() == n as usize && v.iter().all(|&x| x == 7)),
            other => panic!("{other:?}"),
        }
        let g = with_array(6, 3, &1.5f32.to_le_bytes());
        assert_eq!(g.get("a").and_then(Value::as_array).and_then(Array::numbers), Some(vec![1.5; 3]));
        let g = with_array(8, 2, &[1, 0, 0, 0, 0, 0, 0, 0, b'x']);
        assert_eq!(g.get("a").and_then(Value::as_array).and_then(Array::strings), Some(&["x".to_string(), "x".to_string()][..]));
    }

    #[test]
    fn a_bad_bool_in_an_array_is_refused() {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.push(b'a');
        b.extend(9u32.to_le_bytes());
        b.extend(7u32.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        b.extend([1, 2]);
        let mut map = memmap2::MmapMut::map_anon(b.len()).unwrap();
        map.copy_from_slice(&b);
        let e = GgufFile::parse(PathBuf::from("t.gguf"), map.make_read_only().unwrap()).unwrap_err().to_string();
        assert!(e.contains("neither 0 nor 1"), "{e}");
    }
}
