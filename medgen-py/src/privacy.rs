//! `medgen.privacy`: the DP-SGD accountant (medgen-core's `privacy`), with Opacus's keyword names.

use medgen::{privacy, MedgenError};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt};

use crate::err;

/// A step count: a Python int; a negative one, or one past 64 bits, is refused naming the
/// keyword as the core refuses one past its bound; True and False are not counts.
fn count(name: &'static str, n: &Bound<'_, PyAny>) -> PyResult<u64> {
    // An int, or what stands for one (numpy's integers, through `__index__`).
    let whole = if n.is_instance_of::<PyBool>() { None } else { n.call_method0("__index__").ok() };
    let Some(n) = whole.filter(|i| i.is_instance_of::<PyInt>()) else {
        return Err(PyTypeError::new_err(format!("{name}: expected a whole number, got {}", n.get_type().name()?)));
    };
    match n.extract::<u64>() {
        Ok(v) => Ok(v),
        Err(_) if n.lt(0)? => Err(err(MedgenError::InvalidArgument { name, reason: format!("must be at least 0, not {n}") })),
        Err(_) => Err(err(MedgenError::InvalidArgument { name, reason: format!("{n} is more than {} steps", privacy::MAX_STEPS) })),
    }
}

/// The ε that `steps` steps of DP-SGD at `sample_rate` and `noise_multiplier` spend at `delta`
/// (Opacus's RDPAccountant).
#[pyfunction]
#[pyo3(signature = (*, sample_rate, noise_multiplier, steps, delta))]
fn epsilon(sample_rate: f64, noise_multiplier: f64, steps: &Bound<'_, PyAny>, delta: f64) -> PyResult<f64> {
    privacy::epsilon(sample_rate, noise_multiplier, count("steps", steps)?, delta).map_err(err)
}

/// The noise multiplier that keeps a run of `epochs` epochs (or `steps` steps) at
/// `sample_rate` within (`target_epsilon`, `delta`), as Opacus's get_noise_multiplier finds it.
#[pyfunction]
#[pyo3(signature = (*, target_epsilon, delta, sample_rate, epochs=None, steps=None))]
fn noise_multiplier(target_epsilon: f64, delta: f64, sample_rate: f64, epochs: Option<f64>, steps: Option<&Bound<'_, PyAny>>) -> PyResult<f64> {
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
