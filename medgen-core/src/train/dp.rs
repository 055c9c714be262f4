//! DP-SGD (Abadi et al. 2016) as Opacus's `make_private` runs it by default:
//! - Poisson sampling: every training example joins a step's batch on its own with
//!   probability q = 1 / ⌈examples / batch size⌉ (Opacus's 1 / len(data_loader)), so batches
//!   vary in size and may be empty;
//! - each example's gradient (of its own mean loss over its label tokens) is exact. When only
//!   LoRA adapters train, one batched pass gives all of them: every adapter matrix acts through
//!   a copy of its own per example, whose gradient is that example's (the per-sample gradients
//!   Opacus's hooks build from activations and output gradients, here by autograd). Otherwise
//!   (full fine-tuning, or a layer whose input is not batch-first) each example has a pass of
//!   its own, exact for every layer;
//! - each is scaled to at most C by its global L2 norm (Opacus's flat clipping:
//!   min(1, C / (norm + 1e-6))), the scaled gradients summed, Gaussian noise N(0, (σC)²)
//!   added to every element of the sum, and the sum divided by the expected batch size
//!   ⌊q·N⌋ in floating point, as Opacus computes it (so 98 examples in batches of 2 divide by 1,
//!   as Opacus's `int(98 * (1 / 49))` does).
//!
//! The noise comes from ChaCha20 seeded by the operating system (a cryptographically secure
//! generator) unless the run gives `dp_noise_seed`, which is for tests. The data order is
//! seeded by the run's seed and the step, so that resume replays it.

use rand::{Rng, SeedableRng};
use rand_chacha::{ChaCha20Rng, ChaCha8Rng};
use tch::{Kind, Tensor};

use super::network::Trainable;
use super::optim::{clip_factor, grad_norm, GradDropper, Param};
use super::{batch_of, data::Encoded, TrainingConfig};
use crate::error::{MedgenError, Result};
use crate::models::per_example;
use crate::privacy;

/// DP-SGD's settings for one run, checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dp {
    pub max_grad_norm: f64,
    pub noise_multiplier: f64,
    pub sample_rate: f64,
    pub delta: f64,
    pub noise_seed: Option<u64>,
}

impl Dp {
    /// The run's DP-SGD settings (None without `dp_max_grad_norm`), σ picked for `steps` when
    /// the run gives a target ε; `cfg` has passed [`check`].
    pub fn of(cfg: &TrainingConfig, examples: usize, steps: u64) -> Result<Option<Dp>> {
        let Some(c) = cfg.dp_max_grad_norm else { return Ok(None) };
        // Opacus's make_private: q = 1 / len(data_loader), the loader's batches per epoch.
        let sample_rate = 1.0 / examples.div_ceil(cfg.batch_size).max(1) as f64;
        let noise_multiplier = match (cfg.dp_noise_multiplier, cfg.dp_epsilon) {
            (Some(s), _) => s,
            (None, Some(e)) => privacy::noise_multiplier(e, cfg.dp_delta, sample_rate, steps)?,
            (None, None) => return Err(MedgenError::internal("dp", "no noise multiplier after the check")),
        };
        check_noise_std(noise_multiplier, c)?;
        Ok(Some(Dp { max_grad_norm: c, noise_multiplier, sample_rate, delta: cfg.dp_delta, noise_seed: cfg.dp_noise_seed }))
    }

    /// The ε spent after `steps` steps.
    pub fn epsilon(&self, steps: u64) -> Result<f64> {
        privacy::epsilon(self.sample_rate, self.noise_multiplier, steps, self.delta)
    }

    /// The examples of step `step`'s batch: each with probability q, drawn from `(seed, step)`.
    pub fn sample(&self, examples: usize, seed: u64, step: u64) -> Vec<usize> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ step.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ 0xDB);
        (0..examples).filter(|_| rng.random_bool(self.sample_rate)).collect()
    }

    /// Step `step`'s private gradient over a Poisson sample of `train`, left in the
    /// parameters' gradients for the optimiser: (mean loss of the sampled examples, their
    /// label tokens).
    pub fn gradient(&self, model: &Trainable, train: &[Encoded], step: u64, seed: u64) -> Result<(f64, i64)> {
        let batch: Vec<&Encoded> = self.sample(train.len(), seed, step).into_iter().map(|i| &train[i]).collect();
        // Opacus's expected batch size: int(N · q), at least one.
        let expected = (self.sample_rate * train.len() as f64).floor().max(1.0);
        let (sum, loss, tokens) = clipped_sum(model, &batch, self.max_grad_norm, expected.ceil() as usize, seed, step)?;
        let noisy = with_noise(&sum, self.noise_multiplier * self.max_grad_norm, self.noise_seed, step)?;
        let mean = noisy.iter().map(|t| Ok(t.f_div_scalar(expected)?)).collect::<Result<Vec<_>>>()?;
        set_grads(&model.params, &mean)?;
        Ok((loss, tokens))
    }
}

/// The noise's standard deviation σ·C must be an f32 (the gradients' type): past it every
/// step's noise is infinite and the first step fails on its loss.
fn check_noise_std(sigma: f64, c: f64) -> Result<()> {
    if sigma * c > f32::MAX as f64 {
        let reason = format!("{sigma} times dp_max_grad_norm {c} is a noise deviation past the largest f32 ({:e})", f32::MAX);
        return Err(MedgenError::invalid("dp_noise_multiplier", reason));
    }
    Ok(())
}

/// Checks the DP-SGD options on their own, before any data is read.
pub(crate) fn check(cfg: &TrainingConfig) -> Result<()> {
    let Some(c) = cfg.dp_max_grad_norm else {
        if cfg.dp_noise_multiplier.is_some() || cfg.dp_epsilon.is_some() || cfg.dp_noise_seed.is_some() {
            return Err(MedgenError::invalid("dp_max_grad_norm", "DP-SGD needs a clipping norm: give dp_max_grad_norm"));
        }
        return Ok(());
    };
    if !(c.is_finite() && c > 0.0) {
        return Err(MedgenError::invalid("dp_max_grad_norm", format!("{c} must be a finite number above 0")));
    }
    if c > f32::MAX as f64 {
        return Err(MedgenError::invalid("dp_max_grad_norm", format!("{c} is past the largest f32 ({:e}), the gradients' type", f32::MAX)));
    }
    if let Some(s) = cfg.dp_noise_multiplier {
        check_noise_std(s, c)?;
    }
    if cfg.gradient_accumulation_steps != 1 {
        return Err(MedgenError::invalid("gradient_accumulation_steps", "must be 1 with DP-SGD (each step is one Poisson-sampled batch)"));
    }
    match (cfg.dp_noise_multiplier, cfg.dp_epsilon) {
        (Some(s), None) if !(s.is_finite() && s >= 0.0) => {
            return Err(MedgenError::invalid("dp_noise_multiplier", format!("{s} must be a finite number of at least 0")));
        }
        (None, Some(e)) if !(e.is_finite() && e > 0.0) => {
            return Err(MedgenError::invalid("target_epsilon", format!("dp_epsilon must be a positive number, not {e}")));
        }
        (None, None) => return Err(MedgenError::invalid("dp_noise_multiplier", "give dp_noise_multiplier or dp_epsilon")),
        (Some(_), Some(_)) => return Err(MedgenError::invalid("dp_epsilon", "give dp_noise_multiplier or dp_epsilon, not both")),
        _ => {}
    }
    // The accountant's own check of δ.
    privacy::epsilon(1.0, 1.0, 0, cfg.dp_delta).map(|_| ())
}

/// `sum` with N(0, std²) added to every element: from ChaCha20 seeded by the operating
/// system, or by `(seed, step)` when a seed is given (tests).
pub(crate) fn with_noise(sum: &[Tensor], std: f64, seed: Option<u64>, step: u64) -> Result<Vec<Tensor>> {
    let mut rng = match seed {
        Some(s) => ChaCha20Rng::seed_from_u64(s ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        None => ChaCha20Rng::from_rng(&mut rand::rng()),
    };
    sum.iter()
        .map(|s| {
            let noise = gaussian(&mut rng, s.numel(), std);
            let noise = Tensor::f_from_slice(&noise)?.f_view(s.size().as_slice())?.f_to_device(s.device())?.f_to_kind(s.kind())?;
            Ok(s.f_add(&noise)?)
        })
        .collect()
}

/// The per-example gradients of `batch`, each clipped to `max_norm`, summed (no noise): one
/// tensor per trainable parameter, with the mean of the examples' losses and their label tokens.
/// A batched pass takes at most `rows` examples (a Poisson batch far above the expected size
/// does not hold all its activations at once).
pub(crate) fn clipped_sum(model: &Trainable, batch: &[&Encoded], max_norm: f64, rows: usize, seed: u64, step: u64) -> Result<(Vec<Tensor>, f64, i64)> {
    if model.lora.is_some() && !batch.is_empty() {
        let mut total: Option<(Vec<Tensor>, f64, i64)> = None;
        for (k, chunk) in batch.chunks(rows.max(1)).enumerate() {
            let Some((sum, loss, tokens)) = clipped_sum_batched(model, chunk, max_norm, seed ^ ((k as u64) << 40), step)? else {
                total = None;
                break;
            };
            let weighted = loss * chunk.len() as f64;
            total = Some(match total {
                None => (sum, weighted, tokens),
                Some((acc, l, t)) => (acc.iter().zip(&sum).map(|(a, s)| Ok(a.f_add(s)?)).collect::<Result<_>>()?, l + weighted, t + tokens),
            });
        }
        if let Some((sum, loss, tokens)) = total {
            return Ok((sum, loss / batch.len() as f64, tokens));
        }
    }
    let mut sum = model.params.iter().map(|p| Ok(Tensor::f_zeros_like(&p.tensor)?)).collect::<Result<Vec<_>>>()?;
    // Each example's backward writes fresh gradients once the last ones are dropped.
    let mut grads_of = GradDropper::new(&model.params)?;
    let (mut loss_sum, mut tokens) = (0.0, 0i64);
    for (k, example) in batch.iter().enumerate() {
        let b = batch_of(model, &[*example])?;
        tch::manual_seed((seed ^ (step << 16) ^ k as u64) as i64);
        let loss = model.loss_sum(&b, true)?.f_div_scalar(b.label_tokens.max(1) as f64)?;
        let value = loss.f_double_value(&[])?;
        if !value.is_finite() {
            return Err(MedgenError::invalid("loss", format!("the loss of an example became {value} at step {}", step + 1)));
        }
        loss.f_backward()?;
        let norm = grad_norm(&model.params)?;
        let grads: Vec<Tensor> = model.params.iter().map(|p| p.tensor.grad()).collect();
        let factor = clip_factor(norm, max_norm);
        tch::no_grad(|| -> Result<()> {
            for (s, g) in sum.iter_mut().zip(&grads) {
                if g.defined() {
                    let _ = s.f_add_(&g.f_mul_scalar(factor)?)?;
                }
            }
            Ok(())
        })?;
        grads_of.drop_all()?;
        loss_sum += value;
        tokens += b.label_tokens;
    }
    Ok((sum, loss_sum / batch.len().max(1) as f64, tokens))
}

/// [`clipped_sum`] from one batched pass with a copy of each adapter matrix per example; None
/// when a layer's input was not batch-first (the copies would not be per example).
fn clipped_sum_batched(model: &Trainable, batch: &[&Encoded], max_norm: f64, seed: u64, step: u64) -> Result<Option<(Vec<Tensor>, f64, i64)>> {
    let b = batch_of(model, batch)?;
    let n = batch.len() as i64;
    tch::manual_seed((seed ^ (step << 16)) as i64);
    let trainable: Vec<&Tensor> = model.params.iter().map(|p| &p.tensor).collect();
    let (losses, copies) = per_example(n, &trainable, || model.example_losses(&b));
    let (losses, tokens) = losses?;
    let Some(copies) = copies else { return Ok(None) };
    // Each example's mean loss over its label tokens.
    let means = losses.f_div(&tokens.f_clamp_min(1.0)?)?;
    let values = Vec::<f64>::try_from(&means.f_detach()?.f_to_kind(Kind::Double)?)?;
    if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
        return Err(MedgenError::invalid("loss", format!("the loss of an example became {bad} at step {}", step + 1)));
    }
    means.f_sum(Kind::Float)?.f_backward()?;
    tch::no_grad(|| {
        // The examples' gradients, [n, ...] per parameter (None: the pass did not use it).
        let grads: Vec<Option<Tensor>> = model
            .params
            .iter()
            .map(|p| copies.iter().find(|(t, _)| t.data_ptr() == p.tensor.data_ptr()).map(|(_, c)| c.grad()).filter(Tensor::defined))
            .collect();
        let mut squares = Tensor::f_zeros([n], (Kind::Double, model.device()))?;
        for g in grads.iter().flatten() {
            squares = squares.f_add(&g.f_to_kind(Kind::Double)?.f_square()?.f_reshape([n, -1])?.f_sum_dim_intlist(1, false, Kind::Double)?)?;
        }
        // Opacus's flat clipping: min(1, C / (norm + 1e-6)).
        let factors = squares.f_sqrt()?.f_add_scalar(1e-6)?.f_reciprocal()?.f_mul_scalar(max_norm)?.f_clamp_max(1.0)?;
        let sums = model
            .params
            .iter()
            .zip(&grads)
            .map(|(p, g)| match g {
                Some(g) => {
                    let mut shape = vec![n];
                    shape.extend(std::iter::repeat_n(1, g.dim() - 1));
                    Ok(g.f_mul(&factors.f_to_kind(g.kind())?.f_view(shape.as_slice())?)?.f_sum_dim_intlist(0, false, g.kind())?)
                }
                None => Ok(Tensor::f_zeros_like(&p.tensor)?),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some((sums, values.iter().sum::<f64>() / values.len() as f64, b.label_tokens)))
    })
}

/// `n` samples of N(0, std²), by the Box–Muller transform of uniform draws from `rng`.
fn gaussian(rng: &mut impl Rng, n: usize, std: f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        // 1 - u lies in (0, 1]: its logarithm is finite.
        let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
        let r = (-2.0 * u1.ln()).sqrt() * std;
        let theta = std::f64::consts::TAU * u2;
        out.push((r * theta.cos()) as f32);
        if out.len() < n {
            out.push((r * theta.sin()) as f32);
        }
    }
    out
}

/// Makes `values[i]` parameter i's gradient. tch cannot set a gradient, so a backward of
/// Σ sum(p)·0 gives every parameter one, which is then overwritten in place.
fn set_grads(params: &[Param], values: &[Tensor]) -> Result<()> {
    let mut zero = Tensor::f_zeros([], (Kind::Float, params.first().map_or(tch::Device::Cpu, |p| p.tensor.device())))?;
    for p in params {
        zero = zero.f_add(&p.tensor.f_sum(Kind::Float)?.f_mul_scalar(0.0)?)?;
    }
    zero.f_backward()?;
    tch::no_grad(|| {
        for (p, v) in params.iter().zip(values) {
            let mut g = p.tensor.grad();
            g.f_copy_(v)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_noise_has_the_asked_deviation() {
        let x = gaussian(&mut ChaCha20Rng::seed_from_u64(1), 200_001, 3.0);
        let n = x.len() as f64;
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert_eq!(x.len(), 200_001);
        assert!(mean.abs() < 0.03 && (var.sqrt() - 3.0).abs() < 0.03, "{mean} {}", var.sqrt());
    }

    #[test]
    fn poisson_batches_vary_and_average_q_n() {
        let dp = Dp { max_grad_norm: 1.0, noise_multiplier: 1.0, sample_rate: 0.1, delta: 1e-5, noise_seed: None };
        let sizes: Vec<usize> = (0..400).map(|s| dp.sample(1000, 7, s).len()).collect();
        let mean = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
        assert!((mean - 100.0).abs() < 3.0, "{mean}");
        assert!(sizes.iter().min() != sizes.iter().max());
        assert_eq!(dp.sample(1000, 7, 3), dp.sample(1000, 7, 3));
    }
}
