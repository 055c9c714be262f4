//! Weights: tensors shared read-only between threads, and the loader that names, checks
//! and converts them.

use tch::{Device, Kind, Tensor};

use crate::error::{MedgenError, Result};
use crate::formats::quants::GgmlType;
use crate::formats::WeightSource;
use crate::kernels;

/// A weight tensor that several threads may read at once.
///
/// tch's `Tensor` is `Send` but not `Sync`, because in-place operations through a shared
/// reference would race. medgen never mutates a weight after loading: every operation on a
/// `Weight` reads it and allocates its output, which libtorch allows from many threads.
pub(crate) struct Weight(pub(crate) Tensor);

// SAFETY: see the type's documentation: weights are only ever read after construction.
unsafe impl Sync for Weight {}

impl Weight {
    /// The data of a contiguous f32 CPU tensor.
    pub fn f32_slice(&self) -> Option<&[f32]> {
        let t = &self.0;
        if t.device() != Device::Cpu || t.kind() != Kind::Float || !t.is_contiguous() {
            return None;
        }
        // SAFETY: a contiguous f32 CPU tensor of `numel` elements starts at `data_ptr`; the
        // weight is never mutated and outlives the borrow of `self`.
        Some(unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, t.numel()) })
    }
}

impl std::ops::Deref for Weight {
    type Target = Tensor;
    fn deref(&self) -> &Tensor {
        &self.0
    }
}

/// Loads weights by logical (GGUF-style) name, checks their shapes, and converts them to
/// the model's dtype and device.
pub(crate) struct Loader<'a> {
    pub source: &'a dyn WeightSource,
    /// How matrices (linear weights, embeddings) are stored.
    pub kind: Kind,
    /// What activations are computed in: `kind` on a GPU, but f32 on the CPU, where bf16
    /// and f16 arithmetic is converted operation by operation (slower and less exact);
    /// there a reduced `kind` only halves the memory the matrices take and stream.
    pub act: Kind,
    pub device: Device,
}

impl Loader<'_> {
    pub fn new(source: &dyn WeightSource, kind: Kind, device: Device) -> Loader<'_> {
        let act = if device == Device::Cpu { Kind::Float } else { kind };
        Loader { source, kind, act, device }
    }

    /// A tensor of the given shape: matrices in `kind`, vectors (norms, biases) in `act`.
    pub fn get(&self, name: &str, shape: &[i64]) -> Result<Weight> {
        let t = self.source.tensor(name)?;
        if t.size() != shape {
            return Err(MedgenError::format(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                t.size()
            )));
        }
        let kind = if shape.len() >= 2 { self.kind } else { self.act };
        Ok(Weight(t.f_to_kind(kind)?.f_to_device(self.device)?))
    }

    /// The stored blocks of a weight that the CPU kernels can multiply directly.
    pub fn blocks(&self, name: &str) -> Option<(GgmlType, Vec<u8>)> {
        if self.device != Device::Cpu {
            return None;
        }
        self.source
            .quantized(name)
            .filter(|(ty, _)| kernels::reads_blocks(*ty))
    }

    pub fn get_opt(&self, name: &str, shape: &[i64]) -> Result<Option<Weight>> {
        if self.source.contains(name) {
            self.get(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }
}
