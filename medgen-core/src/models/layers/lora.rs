//! LoRA adapters as PEFT defines them: a linear layer's output plus
//! `scaling · B(A(dropout(x)))`, with `A` `[r, in]`, `B` `[out, r]` and `scaling` `alpha / r`
//! (or `alpha / √r` with rsLoRA). Dropout acts on the adapter's branch only, and only while
//! training (see [`training`]).
//!
//! For DP-SGD, [`per_example`] runs a batched pass in which every trainable A and B acts
//! through a copy of its own per example (`[n, r, in]`, `[n, out, r]`): the copies'
//! gradients are the examples' own gradients, exact, from one forward and one backward.

use std::cell::RefCell;

use tch::Tensor;

use super::Weight;
use crate::error::Result;

thread_local! {
    static TRAINING: RefCell<bool> = const { RefCell::new(false) };
    static PER_EXAMPLE: RefCell<Option<PerExample>> = const { RefCell::new(None) };
}

/// The per-example copies of one batched pass.
struct PerExample {
    n: i64,
    /// The addresses of the tensors that train (a frozen A under FFA-LoRA gets no copy).
    trainable: Vec<usize>,
    /// (the adapter's tensor, its copy per example), in the order the pass met them.
    copies: Vec<(Tensor, Tensor)>,
    /// Whether some adapter saw an input whose first dimension was not the batch's `n`.
    unbatched: bool,
}

/// Sets a thread-local for the life of the guard and puts the old value back when it drops,
/// even if the pass unwinds.
struct Restore<T: 'static>(&'static std::thread::LocalKey<RefCell<T>>, Option<T>);

impl<T: 'static> Restore<T> {
    fn set(key: &'static std::thread::LocalKey<RefCell<T>>, value: T) -> Self {
        Restore(key, Some(key.with(|k| k.replace(value))))
    }
}

impl<T: 'static> Drop for Restore<T> {
    fn drop(&mut self) {
        if let Some(old) = self.1.take() {
            self.0.with(|k| k.replace(old));
        }
    }
}

/// Runs `f` (a training pass over a batch of `n` examples, batch-first) with a copy per example
/// of each adapter tensor in `trainable`. Returns `f`'s result and, for each of those the pass
/// used, (the tensor, its copies `[n, ...]`, leaves whose gradients after a backward are the
/// examples' own); None instead of the copies when an adapter met an input that was not
/// batch-first, so that the caller computes the gradients another way.
pub(crate) fn per_example<R>(n: i64, trainable: &[&Tensor], f: impl FnOnce() -> R) -> (R, Option<Vec<(Tensor, Tensor)>>) {
    let trainable = trainable.iter().map(|t| t.data_ptr() as usize).collect();
    let guard = Restore::set(&PER_EXAMPLE, Some(PerExample { n, trainable, copies: Vec::new(), unbatched: false }));
    let out = f();
    let state = PER_EXAMPLE.with(|p| p.borrow_mut().take());
    drop(guard);
    (out, state.filter(|s| !s.unbatched).map(|s| s.copies))
}

/// `w`'s copy per example in a [`per_example`] pass over an input whose first dimension is
/// `rows`; None outside one, for a tensor that does not train, or for an input that is not
/// batch-first.
fn copy_of(w: &Tensor, rows: i64) -> Result<Option<Tensor>> {
    PER_EXAMPLE.with(|p| {
        let mut p = p.borrow_mut();
        let Some(state) = p.as_mut().filter(|s| s.trainable.contains(&(w.data_ptr() as usize))) else { return Ok(None) };
        if rows != state.n {
            state.unbatched = true;
            return Ok(None);
        }
        if let Some((_, copy)) = state.copies.iter().find(|(t, _)| t.data_ptr() == w.data_ptr()) {
            return Ok(Some(copy.shallow_clone()));
        }
        let mut shape = vec![state.n];
        shape.extend(w.size());
        let copy = w.f_detach()?.f_unsqueeze(0)?.f_expand(&shape, false)?.f_contiguous()?.f_set_requires_grad(true)?;
        state.copies.push((w.shallow_clone(), copy.shallow_clone()));
        Ok(Some(copy))
    })
}

/// Runs `f` with training-time behaviour (dropout) switched on for this thread.
pub(crate) fn train_mode<R>(f: impl FnOnce() -> R) -> R {
    let _guard = Restore::set(&TRAINING, true);
    f()
}

/// Whether this thread runs a training forward pass.
pub(crate) fn training() -> bool {
    TRAINING.with(|t| *t.borrow())
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
        let rows = x.size().first().copied().unwrap_or(0);
        let (a_copy, b_copy) = (copy_of(&self.a, rows)?, copy_of(&self.b, rows)?);
        let out = if a_copy.is_some() || b_copy.is_some() {
            // Each example through its own copies: [rows, tokens, in] -> [rows, tokens, r] -> [rows, tokens, out].
            let mut shape = x.size();
            let flat = x.f_reshape([rows, -1, *shape.last().unwrap_or(&0)])?;
            let through = |h: Tensor, w: &Tensor, copy: Option<Tensor>| -> Result<Tensor> {
                Ok(match copy {
                    Some(c) => h.f_matmul(&c.f_to_kind(h.kind())?.f_transpose(1, 2)?)?,
                    None => h.f_linear::<&Tensor>(&w.f_to_kind(h.kind())?, None)?,
                })
            };
            let h = through(through(flat, &self.a, a_copy)?, &self.b, b_copy)?;
            if let Some(last) = shape.last_mut() {
                *last = h.size()[2];
            }
            h.f_reshape(&shape)?
        } else {
            let a = self.a.f_to_kind(x.kind())?;
            let b = self.b.f_to_kind(x.kind())?;
            x.f_linear::<&Tensor>(&a, None)?.f_linear::<&Tensor>(&b, None)?
        };
        Ok(out.f_mul_scalar(self.scaling)?)
    }
}
