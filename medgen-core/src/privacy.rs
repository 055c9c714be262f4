//! The privacy accountant of DP-SGD: Rényi differential privacy of the sampled Gaussian
//! mechanism, as Opacus 1.6's `RDPAccountant` computes it (Mironov, Talwar and Zhang 2019,
//! section 3.3), converted to (ε, δ) by the bound of Balle et al. 2020 (theorem 21) that
//! `opacus.accountants.analysis.rdp.get_privacy_spent` uses, over Opacus's orders.
//!
//! ```
//! let eps = medgen::privacy::epsilon(0.01, 1.1, 10_000, 1e-5)?;
//! assert!((eps - 5.632).abs() < 1e-3);
//! let sigma = medgen::privacy::noise_multiplier(5.632, 1e-5, 0.01, 10_000)?;
//! assert!(sigma <= 1.1 + 1e-2);
//! # Ok::<(), medgen::MedgenError>(())
//! ```

use serde::Serialize;

use crate::error::{MedgenError, Result};

/// The accountant's name, as run records give it.
pub const ACCOUNTANT: &str = "rdp (Opacus RDPAccountant)";

/// The largest noise multiplier [`noise_multiplier`] tries, as Opacus's `MAX_SIGMA`.
pub const MAX_NOISE_MULTIPLIER: f64 = 1e6;

/// How close to the target ε the noise multiplier [`noise_multiplier`] returns gets (from
/// below), as Opacus's default `epsilon_tolerance`.
pub const EPSILON_TOLERANCE: f64 = 0.01;

/// The RDP orders: Opacus's `RDPAccountant.DEFAULT_ALPHAS`, 1.1 to 10.9 by tenths, then 12 to 63.
pub fn orders() -> Vec<f64> {
    (1..100).map(|x| 1.0 + x as f64 / 10.0).chain((12..64).map(f64::from)).collect()
}

/// A run of `steps` steps at one sampling rate and noise multiplier.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Mechanism {
    /// The probability of each example joining a batch (Poisson sampling): batch size / examples.
    pub sample_rate: f64,
    /// The noise's standard deviation over the clipping norm.
    pub noise_multiplier: f64,
    pub steps: u64,
}

/// The (ε, δ) a history of mechanisms spends, and the RDP order that gives it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spent {
    pub epsilon: f64,
    pub delta: f64,
    /// The order whose bound is smallest (NaN when no order gives a finite ε).
    pub order: f64,
}

/// The ε of `steps` steps of the sampled Gaussian mechanism at `delta`.
pub fn epsilon(sample_rate: f64, noise_multiplier: f64, steps: u64, delta: f64) -> Result<f64> {
    Ok(spent(&[Mechanism { sample_rate, noise_multiplier, steps }], delta)?.epsilon)
}

/// The (ε, δ) that the composition of `history` spends.
pub fn spent(history: &[Mechanism], delta: f64) -> Result<Spent> {
    let (epsilon, order) = bound(history, delta)?;
    // No step that samples an example spends nothing (the bound alone would say 0.10 or so),
    // and ε is never below 0 (the bound goes negative for δ near 1).
    if history.iter().all(|m| m.steps == 0 || m.sample_rate == 0.0) {
        return Ok(Spent { epsilon: 0.0, delta, order: f64::NAN });
    }
    Ok(Spent { epsilon: epsilon.max(0.0), delta, order })
}

/// The smallest bound on ε over the orders, and its order, as Opacus's `get_privacy_spent`
/// computes them: negative for δ near 1 (which [`spent`] reports as 0, and
/// [`noise_multiplier`]'s search, as Opacus's, reads as it is).
fn bound(history: &[Mechanism], delta: f64) -> Result<(f64, f64)> {
    check_delta(delta)?;
    let orders = orders();
    let mut rdp = vec![0.0; orders.len()];
    for m in history {
        check_rate(m.sample_rate)?;
        check_noise(m.noise_multiplier)?;
        check_steps(m.steps)?;
        for (total, &order) in rdp.iter_mut().zip(&orders) {
            // Zero steps add nothing, even where a step's RDP is infinite (no noise).
            if m.steps > 0 {
                *total += order_rdp(m.sample_rate, m.noise_multiplier, order)? * m.steps as f64;
            }
        }
    }
    // The bound at each order; NaN ones are skipped, and none left means no privacy.
    let best = orders
        .iter()
        .zip(&rdp)
        .map(|(&a, &r)| (r - (delta.ln() + a.ln()) / (a - 1.0) + ((a - 1.0) / a).ln(), a))
        .filter(|(e, _)| !e.is_nan())
        .fold(None, |best: Option<(f64, f64)>, (e, a)| match best {
            Some((b, _)) if b <= e => best,
            _ => Some((e, a)),
        });
    // No order with a finite bound (no noise): no order gives ε.
    Ok(best.filter(|(e, _)| e.is_finite()).unwrap_or((f64::INFINITY, f64::NAN)))
}

/// The noise multiplier that keeps `steps` steps at `sample_rate` within (`target_epsilon`,
/// `delta`), found as Opacus's `get_noise_multiplier` finds it: doubling from 20 until ε falls
/// below the target, then bisecting until ε is within [`EPSILON_TOLERANCE`] below it. A target
/// no multiplier up to [`MAX_NOISE_MULTIPLIER`] reaches is an error that says so.
pub fn noise_multiplier(target_epsilon: f64, delta: f64, sample_rate: f64, steps: u64) -> Result<f64> {
    if !(target_epsilon.is_finite() && target_epsilon > 0.0) {
        return Err(MedgenError::invalid("target_epsilon", format!("must be a positive number, not {target_epsilon}")));
    }
    check_delta(delta)?;
    check_rate(sample_rate)?;
    check_steps(steps)?;
    // Without a step that samples an example, ε does not depend on σ: there is nothing to
    // choose (and the bisection below would never end).
    if steps == 0 || sample_rate == 0.0 {
        return Err(MedgenError::invalid(
            "steps",
            format!("{steps} steps at sample rate {sample_rate} sample no example, so no noise multiplier changes epsilon"),
        ));
    }
    // The bound as it is, negative ones included: a target within the tolerance of 0 is
    // bisected toward the least σ as Opacus bisects it, not met by the first σ whose ε is 0.
    let eps = |noise_multiplier: f64| Ok::<_, MedgenError>(bound(&[Mechanism { sample_rate, noise_multiplier, steps }], delta)?.0);
    let (mut low, mut high, mut eps_high) = (0.0, 10.0, f64::INFINITY);
    while eps_high > target_epsilon {
        high *= 2.0;
        eps_high = eps(high)?;
        if high > MAX_NOISE_MULTIPLIER {
            return Err(MedgenError::invalid(
                "target_epsilon",
                format!(
                    "{target_epsilon} cannot be reached in {steps} steps at sample rate {sample_rate} and delta {delta} \
                     with any noise multiplier up to {MAX_NOISE_MULTIPLIER:e} (the privacy budget is too low)"
                ),
            ));
        }
    }
    // ε is continuous in σ here, so the bisection ends; halving [0, 2·10^6] down to adjacent
    // floats takes under 1,100 rounds, which bounds it should that ever fail.
    for _ in 0..2000 {
        if target_epsilon - eps_high <= EPSILON_TOLERANCE {
            return Ok(high);
        }
        let sigma = (low + high) / 2.0;
        // No float between the two: at a target this large ε's own spacing exceeds the
        // tolerance, and `high` is the least σ that keeps within it.
        if sigma <= low || sigma >= high {
            return Ok(high);
        }
        let e = eps(sigma)?;
        if e < target_epsilon {
            (high, eps_high) = (sigma, e);
        } else {
            low = sigma;
        }
    }
    Err(MedgenError::internal("privacy", format!("the search for a noise multiplier for epsilon {target_epsilon} did not converge")))
}

/// The steps of `epochs` epochs at `sample_rate`, as Opacus counts them: `int(epochs / q)`.
pub fn steps_for_epochs(epochs: f64, sample_rate: f64) -> Result<u64> {
    check_rate(sample_rate)?;
    if !(epochs.is_finite() && epochs >= 0.0) {
        return Err(MedgenError::invalid("epochs", format!("must be a number of at least 0, not {epochs}")));
    }
    if sample_rate == 0.0 {
        return Err(MedgenError::invalid("sample_rate", "must be above 0 to count steps by epochs"));
    }
    let steps = (epochs / sample_rate).floor();
    if steps > MAX_STEPS as f64 {
        return Err(MedgenError::invalid("epochs", format!("{epochs} epochs at sample rate {sample_rate} are over {MAX_STEPS} steps")));
    }
    Ok(steps as u64)
}

/// The most steps the accountant counts, far past any training run: from about 10^14 steps
/// on, the one-step RDP of low orders is below its rounding error (Opacus's too), so ε and
/// the noise search would be wrong.
pub const MAX_STEPS: u64 = u32::MAX as u64;

fn check_steps(steps: u64) -> Result<()> {
    if steps > MAX_STEPS {
        return Err(MedgenError::invalid("steps", format!("{steps} is over {MAX_STEPS}, the most the accountant counts")));
    }
    Ok(())
}

fn check_delta(delta: f64) -> Result<()> {
    if delta > 0.0 && delta < 1.0 {
        return Ok(());
    }
    Err(MedgenError::invalid("delta", format!("must lie strictly between 0 and 1, not {delta}")))
}

fn check_rate(q: f64) -> Result<()> {
    if (0.0..=1.0).contains(&q) {
        return Ok(());
    }
    Err(MedgenError::invalid("sample_rate", format!("must lie between 0 and 1, not {q}")))
}

fn check_noise(sigma: f64) -> Result<()> {
    if sigma.is_finite() && sigma >= 0.0 {
        return Ok(());
    }
    Err(MedgenError::invalid("noise_multiplier", format!("must be a number of at least 0, not {sigma}")))
}

/// The RDP of one step at `order`. Noise so small that 1 / σ² overflows counts as none, and
/// so does a bound whose terms overflowed into NaN: an accountant may overstate ε, never
/// understate it.
fn order_rdp(q: f64, sigma: f64, order: f64) -> Result<f64> {
    let rdp = order_rdp_terms(q, sigma, order)?;
    Ok(if rdp.is_nan() { f64::INFINITY } else { rdp })
}

fn order_rdp_terms(q: f64, sigma: f64, order: f64) -> Result<f64> {
    Ok(if q == 0.0 {
        0.0
    } else if !(1.0 / (2.0 * sigma * sigma)).is_finite() {
        f64::INFINITY
    } else if q == 1.0 {
        order / (2.0 * sigma * sigma)
    } else if order.fract() == 0.0 {
        log_a_integer(q, sigma, order as u64) / (order - 1.0)
    } else {
        log_a_fractional(q, sigma, order)? / (order - 1.0)
    })
}

/// log A_α for an integer α: a finite binomial sum.
fn log_a_integer(q: f64, sigma: f64, alpha: u64) -> f64 {
    (0..=alpha).fold(f64::NEG_INFINITY, |log_a, i| {
        let i_f = i as f64;
        let coef = binomial(alpha as f64, i).ln() + i_f * q.ln() + (alpha - i) as f64 * (1.0 - q).ln();
        log_add(log_a, coef + (i_f * i_f - i_f) / (2.0 * sigma * sigma))
    })
}

/// log A_α for a fractional α: the two halves of the integral split at z0, each an
/// alternating series summed until its terms fall below e^-30.
fn log_a_fractional(q: f64, sigma: f64, alpha: f64) -> Result<f64> {
    let (mut a0, mut a1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let s2 = std::f64::consts::SQRT_2 * sigma;
    // Past z0 the terms shrink only as |C(α, i)| does, like i^-(α+1): for α = 1.1 and q near
    // 1/2 that takes some 1.6 million terms, as it does in Opacus.
    let mut coef = 1.0f64; // C(α, i), updated term by term
    for i in 0..100_000_000u32 {
        let i = f64::from(i);
        let j = alpha - i;
        let log_coef = coef.abs().ln();
        let t0 = log_coef + i * q.ln() + j * (1.0 - q).ln();
        let t1 = log_coef + j * q.ln() + i * (1.0 - q).ln();
        let e0 = 0.5f64.ln() + log_erfc((i - z0) / s2);
        let e1 = 0.5f64.ln() + log_erfc((z0 - j) / s2);
        let s0 = t0 + (i * i - i) / (2.0 * sigma * sigma) + e0;
        let s1 = t1 + (j * j - j) / (2.0 * sigma * sigma) + e1;
        if coef > 0.0 {
            (a0, a1) = (log_add(a0, s0), log_add(a1, s1));
        } else {
            (a0, a1) = (log_sub(a0, s0)?, log_sub(a1, s1)?);
        }
        if s0.max(s1) < -30.0 {
            return Ok(log_add(a0, a1));
        }
        coef *= (alpha - i) / (i + 1.0);
    }
    Err(MedgenError::internal("privacy", format!("the RDP series at order {alpha} did not converge (q {q}, sigma {sigma})")))
}

/// log(e^x + e^y).
fn log_add(x: f64, y: f64) -> f64 {
    let (a, b) = (x.min(y), x.max(y));
    if a == f64::NEG_INFINITY || b == f64::INFINITY {
        return b;
    }
    (a - b).exp().ln_1p() + b
}

/// log(e^x - e^y), for x ≥ y.
fn log_sub(x: f64, y: f64) -> Result<f64> {
    if x < y {
        return Err(MedgenError::internal("privacy", "a negative term in the RDP series"));
    }
    if y == f64::NEG_INFINITY {
        return Ok(x);
    }
    if x == y {
        return Ok(f64::NEG_INFINITY);
    }
    let d = (x - y).exp_m1();
    // Where e^(x - y) overflows, y is negligible.
    Ok(if d.is_finite() { d.ln() + y } else { x })
}

/// C(n, k) for integer n ≥ k, as a product (exact to a few ulps for the orders used).
fn binomial(n: f64, k: u64) -> f64 {
    let k = k.min(n as u64 - k);
    (1..=k).fold(1.0, |acc, m| acc * (n - k as f64 + m as f64) / m as f64)
}

/// log(erfc(x)), accurate where erfc underflows: past x = 25 an asymptotic series.
fn log_erfc(x: f64) -> f64 {
    if x < 25.0 {
        return libm::erfc(x).ln();
    }
    // erfc(x) = e^(-x²) / (x √π) · (1 - 1/(2x²) + 3/(2x²)² - 15/(2x²)³ + ...)
    let u = 1.0 / (2.0 * x * x);
    let series = 1.0 - u * (1.0 - 3.0 * u * (1.0 - 5.0 * u * (1.0 - 7.0 * u)));
    -x * x - (x * std::f64::consts::PI.sqrt()).ln() + series.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_opacus_defaults() {
        let o = orders();
        assert_eq!(o.len(), 99 + 52);
        assert_eq!((o[0], o[98], o[99], o[150]), (1.1, 10.9, 12.0, 63.0));
    }

    #[test]
    fn log_erfc_is_continuous_where_the_series_takes_over() {
        let below = libm::erfc(24.999).ln();
        assert!((log_erfc(25.0) - below).abs() / below.abs() < 1e-4);
        assert!(log_erfc(40.0).is_finite() && log_erfc(40.0) < -1600.0);
    }

    #[test]
    fn binomials() {
        assert_eq!(binomial(10.0, 3), 120.0);
        assert_eq!(binomial(63.0, 0), 1.0);
    }

    #[test]
    fn without_sampling_the_rdp_is_alpha_over_two_sigma_squared() {
        assert_eq!(order_rdp(1.0, 2.0, 8.0).unwrap(), 1.0);
        assert_eq!(order_rdp(0.0, 2.0, 8.0).unwrap(), 0.0);
        assert_eq!(order_rdp(0.5, 0.0, 8.0).unwrap(), f64::INFINITY);
    }

    #[test]
    fn bad_arguments_are_typed_errors() {
        for (q, s, d) in [(-0.1, 1.0, 1e-5), (1.5, 1.0, 1e-5), (f64::NAN, 1.0, 1e-5), (0.1, -1.0, 1e-5), (0.1, f64::NAN, 1e-5), (0.1, 1.0, 0.0), (0.1, 1.0, 1.0)] {
            assert!(matches!(epsilon(q, s, 10, d), Err(MedgenError::InvalidArgument { .. })), "{q} {s} {d}");
        }
        for e in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(noise_multiplier(e, 1e-5, 0.01, 100), Err(MedgenError::InvalidArgument { name: "target_epsilon", .. })));
        }
        assert!(matches!(steps_for_epochs(1.0, 0.0), Err(MedgenError::InvalidArgument { name: "sample_rate", .. })));
    }

    #[test]
    fn step_counts_past_the_accountants_precision_are_refused() {
        for steps in [MAX_STEPS + 1, 1 << 52, u64::MAX] {
            assert!(matches!(epsilon(0.01, 1e5, steps, 1e-5), Err(MedgenError::InvalidArgument { name: "steps", .. })));
            assert!(matches!(noise_multiplier(3.0, 1e-5, 0.01, steps), Err(MedgenError::InvalidArgument { name: "steps", .. })));
        }
        assert!(epsilon(0.01, 1.0, MAX_STEPS, 1e-5).unwrap() > 0.0);
    }

    #[test]
    fn no_noise_spends_everything_and_no_steps_nothing() {
        assert_eq!(epsilon(0.01, 0.0, 10, 1e-5).unwrap(), f64::INFINITY);
        assert!(epsilon(0.01, 0.0, 0, 1e-5).unwrap().is_finite());
    }

    #[test]
    fn no_sampled_step_leaves_nothing_to_choose() {
        for (q, steps) in [(0.01, 0), (0.0, 10)] {
            assert!(matches!(noise_multiplier(5.0, 1e-5, q, steps), Err(MedgenError::InvalidArgument { name: "steps", .. })));
        }
    }

    #[test]
    fn an_unreachable_target_says_so() {
        let e = noise_multiplier(1e-9, 1e-5, 1.0, 1_000_000).unwrap_err().to_string();
        assert!(e.contains("cannot be reached"), "{e}");
    }
}
