//! LayerNorm (GPT-2, BART): one type for every family that normalises with a mean and a bias.

use tch::Tensor;

use super::{Loader, Weight};
use crate::error::Result;
use crate::kernels;

pub(crate) struct LayerNorm {
    weight: Weight,
    bias: Weight,
}

impl LayerNorm {
    /// `{name}.weight` and `{name}.bias`, `[d]` each.
    pub fn load(w: &Loader, name: &str, d: i64) -> Result<Self> {
        Ok(LayerNorm { weight: w.get(&format!("{name}.weight"), &[d])?, bias: w.get(&format!("{name}.bias"), &[d])? })
    }

    /// Over the last dimension of `x`.
    pub fn forward(&self, x: &Tensor, eps: f64) -> Result<Tensor> {
        let d = x.size().last().copied().unwrap_or(0);
        Ok(x.f_layer_norm([d], Some(&*self.weight), Some(&*self.bias), eps, false)?)
    }

    /// [`LayerNorm::forward`] of the rows of `x` on CPU slices, for weights that are f32 there
    /// (see [`LayerNorm::on_kernels`]).
    pub fn rows(&self, x: &[f32], eps: f64) -> Vec<f32> {
        let (w, b) = (self.weight.f32_slice().unwrap_or_default(), self.bias.f32_slice().unwrap_or_default());
        kernels::layer_norm_rows(x, w, b, eps)
    }

    pub fn on_kernels(&self) -> bool {
        self.weight.f32_slice().is_some() && self.bias.f32_slice().is_some()
    }
}
