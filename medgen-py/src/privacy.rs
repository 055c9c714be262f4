//! `medgen.privacy`: the DP-SGD accountant (medgen-core's `privacy`), with Opacus's keyword names.

use medgen::{privacy, MedgenError};
use pyo3::prelude::*;

use crate::err;

fn count(name: &'static str, n: i64) -> PyResult<u64> {
    u64::try_from(n).map_err(|_| err(MedgenError::InvalidArgument { name, reason: format!("must be at least 0, not {n}") }))
}

/// The ε that `steps` steps of DP-SGD at `sample_rate` and `noise_multiplier` spend at `delta`
/// (Opacus's RDPAccountant).
#[pyfunction]
#[pyo3(signature = (*, sample_rate, noise_multiplier, steps, delta))]
fn epsilon(sample_rate: f64, noise_multiplier: f64, steps: i64, delta: f64) -> PyResult<f64> {
    privacy::epsilon(sample_rate, noise_multiplier, count("steps", steps)?, delta).map_err(err)
}

/// The noise multiplier that keeps a run of `epochs` epochs (or `steps` steps) at
/// `sample_rate` within (`target_epsilon`, `delta`), as Opacus's get_noise_multiplier finds it.
#[pyfunction]
#[pyo3(signature = (*, target_epsilon, delta, sample_rate, epochs=None, steps=None))]
fn noise_multiplier(target_epsilon: f64, delta: f64, sample_rate: f64, epochs: Option<f64>, steps: Option<i64>) -> PyResult<f64> {
    let steps = match (epochs, steps) {
        (None, Some(s)) => count("steps", s)?,
        (Some(e), None) => privacy::steps_for_epochs(e, sample_rate).map_err(err)?,
        _ => return Err(err(MedgenError::InvalidArgument { name: "epochs", reason: "give either epochs or steps".into() })),
    };
    privacy::noise_multiplier(target_epsilon, delta, sample_rate, steps).map_err(err)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(epsilon, m)?)?;
    m.add_function(wrap_pyfunction!(noise_multiplier, m)?)?;
    Ok(())
}
