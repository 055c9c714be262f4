//! The token embedding: a tensor, or on the CPU the GGUF blocks it was stored in, whose
//! rows are dequantized as tokens look them up (no dense copy of the vocabulary at load).

use tch::{Device, Kind, Tensor};

use super::{Blocks, Loader, Weight};
use crate::error::{MedgenError, Result};

pub(crate) enum Embedding {
    Dense(Weight),
    Blocks(Blocks),
}

impl Embedding {
    /// `name`, `[vocab, hidden]`: kept in its blocks alone where the loader allows it.
    pub fn load(w: &Loader, name: &str, shape: [i64; 2]) -> Result<Self> {
        match w.blocks(name, shape).filter(|_| w.blocks_alone()) {
            Some(blocks) => Ok(Embedding::Blocks(blocks)),
            None => Ok(Embedding::Dense(w.get(name, &shape)?)),
        }
    }

    pub fn device(&self) -> Device {
        match self {
            Embedding::Dense(w) => w.device(),
            Embedding::Blocks(_) => Device::Cpu,
        }
    }

    /// The rows of `ids` (int64, any shape): `[..ids.size(), hidden]`, in the stored kind
    /// (f32 from blocks).
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let blocks = match self {
            Embedding::Dense(w) => return Ok(Tensor::f_embedding(w, ids, -1, false, false)?),
            Embedding::Blocks(b) => b,
        };
        let tokens = Vec::<i64>::try_from(ids.f_flatten(0, -1)?)?;
        let mut shape = ids.size();
        shape.push(blocks.cols as i64);
        let y = Tensor::f_empty(shape.as_slice(), (Kind::Float, Device::Cpu))?;
        // SAFETY: `y` was just allocated, contiguous, with `tokens.len() * cols` f32 elements,
        // and nothing else refers to it yet.
        let out = unsafe { std::slice::from_raw_parts_mut(y.data_ptr() as *mut f32, tokens.len() * blocks.cols) };
        for (&token, row) in tokens.iter().zip(out.chunks_exact_mut(blocks.cols)) {
            let start = usize::try_from(token).ok().filter(|&t| t < blocks.rows).ok_or_else(|| MedgenError::InvalidArgument {
                name: "token id",
                reason: format!("{token} is outside the vocabulary of {} tokens", blocks.rows),
            })?;
            blocks.dequantize_rows(start, row)?;
        }
        Ok(y)
    }

    /// Row `token` as f32, when the embedding is on the CPU.
    pub fn row(&self, token: u32) -> Option<Vec<f32>> {
        match self {
            Embedding::Dense(w) => {
                let row = w.f_narrow(0, token as i64, 1).ok()?.f_to_kind(Kind::Float).ok()?;
                if row.device() != Device::Cpu {
                    return None;
                }
                Vec::<f32>::try_from(row.f_flatten(0, -1).ok()?).ok()
            }
            Embedding::Blocks(b) => {
                let mut row = vec![0.0; b.cols];
                b.dequantize_rows(token as usize, &mut row).ok()?;
                Some(row)
            }
        }
    }
}
