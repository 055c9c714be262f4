//! The optimiser and schedule of transformers' Trainer: AdamW as `torch.optim.AdamW`, a
//! linear warm-up then linear decay (`get_linear_schedule_with_warmup`), and clipping by
//! the global L2 norm (`clip_grad_norm_`). The moments are medgen's own tensors, so that a
//! checkpoint holds them.

use tch::{COptimizer, Tensor};

use crate::error::Result;

/// A trainable tensor and how the optimiser treats it.
pub struct Param {
    /// transformers' parameter name, or PEFT's key for an adapter.
    pub name: String,
    pub tensor: Tensor,
    /// Whether weight decay applies (not to biases and norm weights, as
    /// `Trainer.get_decay_parameter_names`).
    pub decay: bool,
}

/// AdamW's state: first and second moments per parameter, and the steps taken.
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
    pub steps: u64,
    clear: GradDropper,
}

/// Drops the gradients of a set of tensors (sets them to none, as `torch.optim`'s
/// `zero_grad` does by default), so that the next backward writes fresh gradients instead
/// of adding into zeroed ones. It is libtorch's own optimiser over the tensors, never
/// stepped: tch offers no other way to drop a gradient.
pub struct GradDropper(COptimizer);

impl GradDropper {
    pub fn new(params: &[Param]) -> Result<Self> {
        let mut opt = COptimizer::sgd(0.0, 0.0, 0.0, 0.0, false)?;
        for p in params {
            opt.add_parameters(&p.tensor, 0)?;
        }
        Ok(GradDropper(opt))
    }

    pub fn drop_all(&mut self) -> Result<()> {
        Ok(self.0.zero_grad()?)
    }
}

impl AdamW {
    pub fn new(params: &[Param], weight_decay: f64) -> Result<Self> {
        let zeros = |p: &Param| Tensor::f_zeros_like(&p.tensor).map_err(Into::into);
        Ok(AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            m: params.iter().map(zeros).collect::<Result<_>>()?,
            v: params.iter().map(zeros).collect::<Result<_>>()?,
            steps: 0,
            clear: GradDropper::new(params)?,
        })
    }

    /// One step at learning rate `lr` over the parameters' gradients, which it then drops.
    pub fn step(&mut self, params: &[Param], lr: f64) -> Result<()> {
        self.steps += 1;
        let t = self.steps as i32;
        let (bc1, bc2) = (1.0 - self.beta1.powi(t), 1.0 - self.beta2.powi(t));
        tch::no_grad(|| -> Result<()> {
            for ((p, m), v) in params.iter().zip(&mut self.m).zip(&mut self.v) {
                let g = p.tensor.grad();
                if !g.defined() {
                    continue;
                }
                let mut w = p.tensor.shallow_clone();
                if p.decay && self.weight_decay != 0.0 {
                    let _ = w.f_mul_(&Tensor::from(1.0 - lr * self.weight_decay))?;
                }
                // As torch's single-tensor AdamW: m ← lerp(m, g, 1 - β₁), v ← β₂ v + (1 - β₂) g²,
                // w ← w - (lr / bc₁) · m / (√v / √bc₂ + eps); in place where libtorch allows.
                let _ = m.f_lerp_(&g, 1.0 - self.beta1)?;
                let _ = v.f_mul_(&Tensor::from(self.beta2))?.f_addcmul_(&g.f_mul_scalar(1.0 - self.beta2)?, &g)?;
                let mut denom = v.f_sqrt()?;
                let _ = denom.f_div_(&Tensor::from(bc2.sqrt()))?.f_add_(&Tensor::from(self.eps))?;
                let _ = w.f_addcdiv_(&m.f_mul_scalar(-lr / bc1)?, &denom)?;
            }
            self.clear.drop_all()
        })
    }
}

/// The global L2 norm of the gradients, after scaling them to at most `max_norm` (when
/// `max_norm` > 0) as `clip_grad_norm_` does: by `max_norm / (norm + 1e-6)` when below 1.
pub fn clip_grad_norm(params: &[Param], max_norm: f64) -> Result<f64> {
    tch::no_grad(|| {
        let mut total = 0.0;
        for p in params {
            let g = p.tensor.grad();
            if g.defined() {
                // Each tensor's norm in its own kind, as `clip_grad_norm_`'s per-tensor norms.
                total += g.f_norm()?.f_double_value(&[])?.powi(2);
            }
        }
        let norm = total.sqrt();
        let coef = max_norm / (norm + 1e-6);
        if max_norm > 0.0 && coef < 1.0 {
            for p in params {
                let mut g = p.tensor.grad();
                if g.defined() {
                    let _ = g.f_mul_(&Tensor::from(coef))?;
                }
            }
        }
        Ok(norm)
    })
}

/// The learning rate of optimiser step `step` (from 0) of `total`: linear warm-up over
/// `warmup` steps from 0, then linear decay to 0 at `total`.
pub fn linear_schedule(lr: f64, step: u64, warmup: u64, total: u64) -> f64 {
    let factor = if step < warmup {
        step as f64 / warmup.max(1) as f64
    } else {
        ((total.saturating_sub(step)) as f64 / (total.saturating_sub(warmup)).max(1) as f64).max(0.0)
    };
    lr * factor
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn the_schedule_warms_up_from_zero_then_decays_to_zero() {
        let lrs: Vec<f64> = (0..6).map(|s| linear_schedule(1.0, s, 2, 6)).collect();
        assert_eq!(lrs, [0.0, 0.5, 1.0, 0.75, 0.5, 0.25]);
        assert_eq!(linear_schedule(1.0, 0, 0, 4), 1.0);
    }

    #[test]
    fn adamw_first_step_moves_each_weight_by_the_learning_rate_against_its_gradient() {
        // After one step, m̂ = g and v̂ = g², so the update is lr · g / (|g| + eps).
        let w = Tensor::from_slice(&[1.0f32, -2.0]).set_requires_grad(true);
        (&w * Tensor::from_slice(&[3.0f32, -0.5])).sum(Kind::Float).backward();
        let params = [Param { name: "w".into(), tensor: w.shallow_clone(), decay: true }];
        let mut opt = AdamW::new(&params, 0.1).unwrap();
        opt.step(&params, 0.01).unwrap();
        assert!(!w.grad().defined(), "the step drops the gradient, as torch's zero_grad(set_to_none)");
        let got = Vec::<f32>::try_from(w.detach()).unwrap();
        let want = [1.0 * (1.0 - 0.001) - 0.01, -2.0 * (1.0 - 0.001) + 0.01];
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }
}
