"""The DP-SGD accountant against Opacus 1.6's RDPAccountant and get_noise_multiplier, and Google's
dp-accounting RdpAccountant: from Rust (through the command), Python and C (ctypes on
libmedgen.so)."""

import ctypes
import itertools
import math
import warnings

import numpy as np
import pytest

import medgen
from conftest import ROOT, medgen_json, run_medgen

# Sample rates from full batches to 1 in 10,000, noise from weak to strong, and run lengths.
GRID = list(itertools.product([1.0, 0.3, 0.05, 0.01, 0.004, 1e-4], [0.6, 1.1, 3.0], [1, 250, 10_000], [1e-5, 1e-3]))


def opacus_epsilon(q, sigma, steps, delta):
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(sigma, q, steps)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "optimal order is the largest alpha"
        return accountant.get_epsilon(delta=delta)


def test_epsilon_equals_opacus_over_a_grid():
    worst = max((abs(medgen.privacy.epsilon(sample_rate=q, noise_multiplier=s, steps=t, delta=d)
                     - opacus_epsilon(q, s, t, d)) / opacus_epsilon(q, s, t, d), (q, s, t, d)) for q, s, t, d in GRID)
    assert worst[0] < 1e-6, f"relative difference {worst[0]:.3g} at (q, sigma, steps, delta) = {worst[1]}"


def test_the_issues_figures():
    assert round(medgen.privacy.epsilon(sample_rate=0.01, noise_multiplier=1.1, steps=10_000, delta=1e-5), 3) == 5.632
    assert round(medgen.privacy.epsilon(sample_rate=1, noise_multiplier=5, steps=10, delta=1e-5), 3) == 2.814


@pytest.mark.parametrize("q,sigma,steps,delta", [(0.01, 1.1, 10_000, 1e-5), (0.004, 0.8, 2000, 1e-6),
                                                 (1e-3, 2.0, 100_000, 1e-5), (1.0, 5.0, 10, 1e-5)])
def test_epsilon_agrees_with_dp_accounting(q, sigma, steps, delta):
    """dp-accounting's own series stops after 1,000 terms (it drops an order that needs more, as
    at sample rates near 1/2), so the cases are those where it converges; its conversion is the
    same bound, its tolerance about 1e-5 relative."""
    import dp_accounting
    from dp_accounting import rdp
    from opacus.accountants import RDPAccountant

    accountant = rdp.RdpAccountant(orders=RDPAccountant.DEFAULT_ALPHAS)
    accountant.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
    ours = medgen.privacy.epsilon(sample_rate=q, noise_multiplier=sigma, steps=steps, delta=delta)
    assert math.isclose(ours, accountant.get_epsilon(delta), rel_tol=1e-4), (ours, accountant.get_epsilon(delta))


@pytest.mark.parametrize("q,sigma,steps,delta", [(0.01, 1.1, 0, 1e-5), (0.0, 1.1, 100, 1e-5), (0.01, 1.0, 10, 0.9999999999)])
def test_no_sampled_step_spends_nothing_and_epsilon_is_never_negative_as_in_dp_accounting(q, sigma, steps, delta):
    import dp_accounting
    from dp_accounting import rdp
    from opacus.accountants import RDPAccountant

    accountant = rdp.RdpAccountant(orders=RDPAccountant.DEFAULT_ALPHAS)
    if steps:  # dp-accounting takes no count of 0: its accountant with nothing composed
        accountant.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
    assert medgen.privacy.epsilon(sample_rate=q, noise_multiplier=sigma, steps=steps, delta=delta) == accountant.get_epsilon(delta) == 0


@pytest.mark.parametrize("eps,delta,q,epochs", [(3.0, 1e-5, 0.01, 5), (8.0, 1e-5, 0.004, 20), (1.0, 1e-6, 0.05, 1),
                                                (0.5, 1e-5, 1.0, 3),
                                                # targets within the tolerance of 0, where the bound goes negative
                                                (0.01, 0.5, 1e-6, 1e-6), (0.01, 0.1, 0.01, 100)])
def test_noise_multiplier_equals_opacus(eps, delta, q, epochs):
    from opacus.accountants.utils import get_noise_multiplier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = get_noise_multiplier(target_epsilon=eps, target_delta=delta, sample_rate=q, epochs=epochs)
    ours = medgen.privacy.noise_multiplier(target_epsilon=eps, delta=delta, sample_rate=q, epochs=epochs)
    assert ours == pytest.approx(ref, rel=1e-9)
    cli = medgen_json("privacy", "noise", "--epsilon", str(eps), "--delta", str(delta), "--sample-rate", str(q),
                      "--epochs", str(epochs), "--json")
    assert cli["noise_multiplier"] == pytest.approx(ref, rel=1e-9)
    assert cli["steps"] == int(epochs / q) and eps - 0.01 <= cli["epsilon"] <= eps


def test_the_command_reports_epsilon_with_its_settings():
    out = medgen_json("privacy", "epsilon", "--sample-rate", "0.01", "--noise-multiplier", "1.1", "--steps", "10000",
                      "--delta", "1e-5", "--json")
    assert out["epsilon"] == pytest.approx(opacus_epsilon(0.01, 1.1, 10_000, 1e-5), rel=1e-9)
    assert (out["sample_rate"], out["noise_multiplier"], out["steps"], out["delta"]) == (0.01, 1.1, 10_000, 1e-5)
    assert "rdp" in out["accountant"].lower()


def c_library():
    import torch  # noqa: F401  (libtorch first, as for every medgen binding)

    lib = ctypes.CDLL(str(ROOT / "target" / "release" / "libmedgen.so"))
    lib.medgen_privacy_epsilon.argtypes = [ctypes.c_double, ctypes.c_double, ctypes.c_uint64, ctypes.c_double,
                                           ctypes.POINTER(ctypes.c_double)]
    lib.medgen_privacy_noise_multiplier.argtypes = [ctypes.c_double, ctypes.c_double, ctypes.c_double,
                                                    ctypes.c_uint64, ctypes.POINTER(ctypes.c_double)]
    return lib


def test_the_c_functions_equal_opacus():
    from opacus.accountants.utils import get_noise_multiplier

    lib, out = c_library(), ctypes.c_double()
    assert lib.medgen_privacy_epsilon(0.004, 0.8, 2000, 1e-6, ctypes.byref(out)) == 0
    assert out.value == pytest.approx(opacus_epsilon(0.004, 0.8, 2000, 1e-6), rel=1e-9)
    assert lib.medgen_privacy_noise_multiplier(3.0, 1e-5, 0.01, 500, ctypes.byref(out)) == 0
    assert out.value == pytest.approx(get_noise_multiplier(target_epsilon=3.0, target_delta=1e-5, sample_rate=0.01,
                                                           steps=500), rel=1e-9)
    invalid, null = 3, 1
    assert lib.medgen_privacy_epsilon(0.01, 1.1, 10, 1.0, ctypes.byref(out)) == invalid
    assert lib.medgen_privacy_epsilon(0.01, -1.0, 10, 1e-5, ctypes.byref(out)) == invalid
    assert lib.medgen_privacy_noise_multiplier(1e-9, 1e-5, 1.0, 10**6, ctypes.byref(out)) == invalid
    assert lib.medgen_privacy_epsilon(0.01, 1.1, 10, 1e-5, None) == null


@pytest.mark.parametrize("kw,field", [
    (dict(sample_rate=1.5, noise_multiplier=1.0, steps=10, delta=1e-5), "sample_rate"),
    (dict(sample_rate=-0.1, noise_multiplier=1.0, steps=10, delta=1e-5), "sample_rate"),
    (dict(sample_rate=0.1, noise_multiplier=-1.0, steps=10, delta=1e-5), "noise_multiplier"),
    (dict(sample_rate=0.1, noise_multiplier=float("nan"), steps=10, delta=1e-5), "noise_multiplier"),
    (dict(sample_rate=0.1, noise_multiplier=1.0, steps=10, delta=0.0), "delta"),
    (dict(sample_rate=0.1, noise_multiplier=1.0, steps=10, delta=1.0), "delta"),
    (dict(sample_rate=0.1, noise_multiplier=1.0, steps=-1, delta=1e-5), "steps"),
    # Over 2^32 - 1 steps: refused (at 2^53 steps the low orders' one-step RDP is below its
    # rounding error, and Opacus returns a negative epsilon).
    (dict(sample_rate=0.01, noise_multiplier=1e5, steps=2**53, delta=1e-5), "steps"),
    # Past 64 bits: the same refusal, not a bare OverflowError.
    (dict(sample_rate=0.01, noise_multiplier=1.0, steps=2**64, delta=1e-5), "steps"),
    (dict(sample_rate=0.01, noise_multiplier=1.0, steps=-10**30, delta=1e-5), "steps"),
])
def test_bad_accountant_arguments_are_typed_errors(kw, field):
    with pytest.raises(medgen.InvalidArgumentError, match=field):
        medgen.privacy.epsilon(**kw)


def test_the_command_refuses_negative_numbers_and_huge_step_counts_by_name():
    proc = run_medgen("privacy", "epsilon", "--sample-rate", "-0.5", "--noise-multiplier", "1", "--steps", "10",
                      "--delta", "1e-5", check=False)
    assert proc.returncode == 1 and "sample_rate" in proc.stderr, proc.stderr
    proc = run_medgen("privacy", "noise", "--epsilon", "3", "--delta", "1e-5", "--sample-rate", "0.01",
                      "--steps", str(2**64 - 1), check=False)
    assert proc.returncode == 1 and "steps" in proc.stderr, proc.stderr
    with pytest.raises(medgen.InvalidArgumentError, match="steps"):
        medgen.privacy.noise_multiplier(target_epsilon=3.0, delta=1e-5, sample_rate=0.01, steps=2**52)


@pytest.mark.parametrize("eps", [0.0, -1.0, float("nan"), float("inf")])
def test_a_target_epsilon_that_is_not_positive_is_refused(eps):
    with pytest.raises(medgen.InvalidArgumentError, match="target_epsilon"):
        medgen.privacy.noise_multiplier(target_epsilon=eps, delta=1e-5, sample_rate=0.01, epochs=1)


def test_an_unreachable_target_epsilon_says_so():
    with pytest.raises(medgen.InvalidArgumentError, match="cannot be reached"):
        medgen.privacy.noise_multiplier(target_epsilon=1e-9, delta=1e-5, sample_rate=1.0, steps=10**6)
    proc = run_medgen("privacy", "noise", "--epsilon", "1e-9", "--delta", "1e-5", "--sample-rate", "1",
                      "--steps", "1000000", check=False)
    assert proc.returncode == 1 and "cannot be reached" in proc.stderr, proc.stderr


def test_no_noise_spends_an_infinite_epsilon():
    assert medgen.privacy.epsilon(sample_rate=0.01, noise_multiplier=0.0, steps=10, delta=1e-5) == math.inf
    with pytest.raises(TypeError, match="steps"):
        medgen.privacy.epsilon(sample_rate=0.01, noise_multiplier=1.0, steps=True, delta=1e-5)
    # numpy's integers count, as Python's do.
    assert medgen.privacy.epsilon(sample_rate=0.01, noise_multiplier=1.1, steps=np.int64(10_000), delta=1e-5) == \
        medgen.privacy.epsilon(sample_rate=0.01, noise_multiplier=1.1, steps=10_000, delta=1e-5)
    # No order gives a finite epsilon, so the record names none.
    out = medgen_json("privacy", "epsilon", "--sample-rate", "0.01", "--noise-multiplier", "0", "--steps", "10",
                      "--delta", "1e-5", "--json")
    assert out["epsilon"] is None and out["order"] is None


def test_less_noise_never_spends_less_epsilon_down_to_the_smallest_floats():
    """Past sigma 1e-154, sigma squared underflows; the bound must not fall back to a small
    epsilon (or NaN, or -inf) there. Opacus itself divides by zero at those sigmas."""
    for q in [0.01, 0.5, 1.0]:
        last = 0.0
        for sigma in [1e-3, 1e-50, 1e-150, 1e-154, 1e-155, 1e-160, 1e-200, 5e-324]:
            eps = medgen.privacy.epsilon(sample_rate=q, noise_multiplier=sigma, steps=10, delta=1e-5)
            assert eps >= last and not math.isnan(eps), (q, sigma, eps)
            last = eps
        assert last == math.inf


def test_a_target_epsilon_past_the_floats_spacing_still_gets_a_noise_multiplier():
    """At a target of 1e14, epsilon's float spacing exceeds the search's tolerance (0.01):
    the search ends at the least sigma it can tell apart, which keeps within the target."""
    for target in [1e13, 1e14, 1e300]:
        sigma = medgen.privacy.noise_multiplier(target_epsilon=target, delta=1e-5, sample_rate=0.01, steps=1000)
        assert medgen.privacy.epsilon(sample_rate=0.01, noise_multiplier=sigma, steps=1000, delta=1e-5) <= target


@pytest.mark.parametrize("args", [["--sample-rate", "0.01", "--steps", "0"], ["--sample-rate", "0", "--steps", "10"],
                                  ["--sample-rate", "0.01", "--epochs", "0.001"]])
def test_a_noise_search_with_no_sampled_step_is_refused_not_endless(args):
    proc = run_medgen("privacy", "noise", "--epsilon", "5", "--delta", "1e-5", *args, check=False)
    assert proc.returncode == 1 and "no noise multiplier changes epsilon" in proc.stderr, proc.stderr
    with pytest.raises(medgen.InvalidArgumentError, match="steps"):
        medgen.privacy.noise_multiplier(target_epsilon=5, delta=1e-5, sample_rate=0.01, steps=0)
