//! LoRA adapters as PEFT defines them: a linear layer's output plus
//! `scaling · B(A(dropout(x)))`, with `A` `[r, in]`, `B` `[out, r]` and `scaling` `alpha / r`
//! (or `alpha / √r` with rsLoRA). Dropout acts on the adapter's branch only, and only while
//! training (see [`training`]).

use std::cell::Cell;

use tch::Tensor;

use super::Weight;
use crate::error::Result;

thread_local! {
    static TRAINING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with training-time behaviour (dropout) switched on for this thread.
pub(crate) fn train_mode<R>(f: impl FnOnce() -> R) -> R {
    let before = TRAINING.with(|t| t.replace(true));
    let out = f();
    TRAINING.with(|t| t.set(before));
    out
}

/// Whether this thread runs a training forward pass.
pub(crate) fn training() -> bool {
    TRAINING.with(Cell::get)
}

/// `x` with elements dropped with probability `p` (and the rest scaled by `1 / (1 - p)`)
/// while training; `x` itself otherwise.
pub(crate) fn dropout(x: Tensor, p: f64) -> Result<Tensor> {
    if p > 0.0 && training() {
        Ok(x.f_dropout(p, true)?)
    } else {
        Ok(x)
    }
}

/// One adapter on one linear layer.
pub(crate) struct Lora {
    /// `[r, in]`.
    pub a: Weight,
    /// `[out, r]`.
    pub b: Weight,
    pub scaling: f64,
    pub dropout: f64,
}

impl Lora {
    /// `scaling · B A`, `[out, in]`: what merging adds to the layer's weight.
    pub fn delta(&self) -> Result<Tensor> {
        Ok(self.b.f_matmul(&self.a)?.f_mul_scalar(self.scaling)?)
    }

    /// The adapter's contribution to the layer's output for input `x` (`[..., in]`).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = if self.dropout > 0.0 && training() { x.f_dropout(self.dropout, true)? } else { x.shallow_clone() };
        let a = self.a.f_to_kind(x.kind())?;
        let b = self.b.f_to_kind(x.kind())?;
        Ok(x.f_linear::<&Tensor>(&a, None)?.f_linear::<&Tensor>(&b, None)?.f_mul_scalar(self.scaling)?)
    }
}
