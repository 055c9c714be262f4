//! The optimiser and schedule of transformers' Trainer: AdamW as `torch.optim.AdamW`, a
//! linear warm-up then linear decay (`get_linear_schedule_with_warmup`), and clipping by
//! the global L2 norm (`clip_grad_norm_`). The moments are medgen's own tensors, so that a
//! checkpoint holds them.

use rayon::prelude::*;
use tch::{COptimizer, Device, Kind, Tensor};

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

    /// One step at learning rate `lr` over the parameters' gradients times `grad_scale` (the
    /// clipping factor, see [`clip_factor`]; 1 leaves them as they are), which it then drops.
    /// Large CPU parameters are split across `pool`'s threads (a model's own, see
    /// [`crate::runtime::Runtime`]), the rest run on the caller's thread.
    pub fn step(&mut self, params: &[Param], lr: f64, grad_scale: f64, pool: Option<&rayon::ThreadPool>) -> Result<()> {
        self.steps += 1;
        let t = self.steps as i32;
        let (bc1, bc2) = (1.0 - self.beta1.powi(t), 1.0 - self.beta2.powi(t));
        tch::no_grad(|| -> Result<()> {
            for ((p, m), v) in params.iter().zip(&mut self.m).zip(&mut self.v) {
                let mut g = p.tensor.grad();
                if !g.defined() {
                    continue;
                }
                let decay = if p.decay { 1.0 - lr * self.weight_decay } else { 1.0 };
                let hyper = Hyper {
                    decay: decay as f32,
                    lerp_weight: (1.0 - self.beta1) as f32,
                    beta2: self.beta2 as f32,
                    one_minus_beta2: (1.0 - self.beta2) as f32,
                    bc2_sqrt: bc2.sqrt() as f32,
                    eps: self.eps as f32,
                    step_size: (-lr / bc1) as f32,
                    grad_scale: grad_scale as f32,
                };
                if let Some((data, n)) = cpu_f32([&p.tensor, &g, m, v]) {
                    // SAFETY: four contiguous f32 CPU buffers of `n` elements in disjoint memory
                    // (`cpu_f32`), which nothing else reads or writes during the step.
                    let [w, g, m, v] = data.map(|d| unsafe { std::slice::from_raw_parts_mut(d, n) });
                    match pool {
                        Some(pool) if w.len() > CHUNK => pool.install(|| {
                            let chunks = w.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).zip(m.par_chunks_mut(CHUNK)).zip(v.par_chunks_mut(CHUNK));
                            chunks.for_each(|(((w, g), m), v)| fused_step(w, g, m, v, &hyper));
                        }),
                        _ => fused_step(w, g, m, v, &hyper),
                    }
                    continue;
                }
                // Elsewhere (CUDA, half kinds), torch's single-tensor AdamW in libtorch calls.
                if grad_scale != 1.0 {
                    let _ = g.f_mul_(&Tensor::from(grad_scale))?;
                }
                let mut w = p.tensor.shallow_clone();
                if decay != 1.0 {
                    let _ = w.f_mul_(&Tensor::from(decay))?;
                }
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

/// One AdamW step's constants, in f32 as libtorch's CPU kernels use them for f32 tensors.
struct Hyper {
    /// `1 - lr · weight_decay`, or 1 without decay.
    decay: f32,
    /// `1 - β₁`: the first moment's `lerp` weight.
    lerp_weight: f32,
    beta2: f32,
    one_minus_beta2: f32,
    bc2_sqrt: f32,
    eps: f32,
    /// `-lr / (1 - β₁ᵗ)`.
    step_size: f32,
    grad_scale: f32,
}

/// Elements of a parameter per task when a step is split across threads.
const CHUNK: usize = 1 << 15;

/// The data of four tensors and their length, when each is a non-empty contiguous f32 CPU
/// tensor of one size and no two overlap. Writes through them bypass autograd's version
/// counters, which no graph reads: the step comes after the backward pass and before the next
/// forward.
fn cpu_f32(tensors: [&Tensor; 4]) -> Option<([*mut f32; 4], usize)> {
    let n = tensors[0].numel();
    let ok = |t: &Tensor| t.device() == Device::Cpu && t.kind() == Kind::Float && t.is_contiguous() && t.numel() == n;
    if n == 0 || !tensors.iter().all(|t| ok(t)) {
        return None;
    }
    let bytes = n * std::mem::size_of::<f32>();
    let starts = tensors.map(|t| t.data_ptr() as usize);
    let overlap = |a: usize, b: usize| a < b + bytes && b < a + bytes;
    if (0..4).any(|i| (0..i).any(|j| overlap(starts[i], starts[j]))) {
        return None;
    }
    Some((starts.map(|p| p as *mut f32), n))
}

/// torch's single-tensor AdamW step in one pass over the data instead of nine libtorch calls
/// (each a pass, several with a temporary), in its f32 operations and order (equal within
/// rounding: libtorch's vector kernels may fuse a multiply and an add):
/// `g ← g · scale`, `w ← w · decay`, `m ← lerp(m, g, 1 - β₁)`, `v ← v · β₂ + (1 - β₂) · g · g`,
/// `w ← w + step_size · (m / (√v / √bc₂ + eps))` (`addcdiv` takes the product first; the
/// shipped tasks adapter was trained with this order, so it stays).
fn fused_step(w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], h: &Hyper) {
    let a = h.lerp_weight;
    for (((w, g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = *g * h.grad_scale;
        *w *= h.decay;
        // libtorch's lerp: start + weight · (end - start) for a weight below ½, else
        // end - (end - start) · (1 - weight).
        *m = if a < 0.5 { *m + a * (g - *m) } else { g - (g - *m) * (1.0 - a) };
        *v = *v * h.beta2 + h.one_minus_beta2 * g * g;
        *w += h.step_size * (*m / (v.sqrt() / h.bc2_sqrt + h.eps));
    }
}

/// The global L2 norm of the gradients: each tensor's norm in its own kind, as
/// `clip_grad_norm_`'s per-tensor norms.
pub fn grad_norm(params: &[Param]) -> Result<f64> {
    tch::no_grad(|| {
        let mut total = 0.0;
        for p in params {
            let g = p.tensor.grad();
            if g.defined() {
                total += g.f_norm()?.f_double_value(&[])?.powi(2);
            }
        }
        Ok(total.sqrt())
    })
}

/// What `clip_grad_norm_` multiplies the gradients by to bring their global norm `norm` to
/// at most `max_norm`: `max_norm / (norm + 1e-6)` when that is below 1, else 1; 1 when
/// `max_norm` is 0 (no clipping). [`AdamW::step`] applies it as it reads each gradient.
pub fn clip_factor(norm: f64, max_norm: f64) -> f64 {
    let coef = max_norm / (norm + 1e-6);
    if max_norm > 0.0 && coef < 1.0 {
        coef
    } else {
        1.0
    }
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
        opt.step(&params, 0.01, 1.0, None).unwrap();
        assert!(!w.grad().defined(), "the step drops the gradient, as torch's zero_grad(set_to_none)");
        let got = Vec::<f32>::try_from(w.detach()).unwrap();
        let want = [1.0 * (1.0 - 0.001) - 0.01, -2.0 * (1.0 - 0.001) + 0.01];
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn the_one_pass_step_equals_the_libtorch_calls() {
        // f32 CPU tensors take the one-pass step; f64 ones the libtorch calls of torch's AdamW.
        let start: Vec<f32> = (0..70_001).map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0).collect();
        let grad = |i: usize, step: usize| ((i * 31 + step * 17) % 997) as f64 / 300.0 - 1.6;
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let run = |kind: Kind| {
            let w = Tensor::from_slice(&start).to_kind(kind).set_requires_grad(true);
            let params = [Param { name: "w".into(), tensor: w.shallow_clone(), decay: true }];
            let mut opt = AdamW::new(&params, 0.05).unwrap();
            for step in 0..5 {
                let g: Vec<f64> = (0..start.len()).map(|i| grad(i, step)).collect();
                (&w * Tensor::from_slice(&g).to_kind(kind)).sum(kind).backward();
                opt.step(&params, 1e-2, [1.0, 0.37][step % 2], Some(&pool)).unwrap();
            }
            Vec::<f64>::try_from(w.detach().to_kind(Kind::Double)).unwrap()
        };
        let (fused, calls) = (run(Kind::Float), run(Kind::Double));
        let worst = fused.iter().zip(&calls).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-5, "worst difference {worst}");
        assert!(fused.iter().zip(&start).any(|(a, b)| (a - *b as f64).abs() > 1e-2), "the weights moved");
    }
}
