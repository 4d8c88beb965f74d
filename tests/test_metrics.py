"""edgebuild.metrics' agreement rule: what a per-sample cosine may and may not say.

Found on real detectors: an int8 probability map that came out all zero used to count as agreeing
(cosine 1.0), and a photo without text, where the fp32 map peaks at 1e-7, gave cosine noise that
failed even the fp32 artifact. Both are judged here on small arrays."""

from __future__ import annotations

import numpy as np

from edgebuild.metrics import compare, compare_outputs


def _maps(rng, n=6, quiet=()):
    ref = rng.uniform(0, 1, size=(n, 1, 8, 8))
    for i in quiet:
        ref[i] *= 1e-7  # no text in this sample: the map is all but zero
    return ref


def test_an_all_zero_output_against_a_real_signal_never_agrees():
    rng = np.random.default_rng(0)
    ref = _maps(rng)
    out = ref.copy()
    out[2] = 0.0
    per_output = compare_outputs([([ref], [out], len(ref))], ["map"])["map"]
    assert per_output["cosine_min"] == 0.0 and per_output["cosine_mean"] < 0.9
    assert compare(ref, out)["cosine_min"] == 0.0
    both_zero = compare(np.zeros((2, 4)), np.zeros((2, 4)))
    assert both_zero["cosine_min"] == 1.0 and both_zero["max_abs_error"] == 0.0


def test_quiet_samples_are_judged_by_error_not_cosine():
    rng = np.random.default_rng(1)
    ref = _maps(rng, quiet=(1, 4))
    out = ref + rng.normal(0, 1e-3, size=ref.shape)  # small noise: swamps only the quiet maps
    per_output = compare_outputs([([ref], [out], len(ref))], ["map"])["map"]
    assert per_output["quiet_samples"] == 2 and per_output["samples"] == 6
    assert per_output["cosine_min"] > 0.999 and per_output["rel_error"] < 0.01
    whole = compare(ref, out)
    assert whole["quiet_samples"] == 2 and whole["cosine_min"] > 0.999
    # a quiet sample's noise is still in the set-wide error: a loud error there fails that gate
    out[1] += 0.5
    assert compare_outputs([([ref], [out], len(ref))], ["map"])["map"]["rel_error"] > 0.1


def test_non_finite_samples_are_never_quiet_and_never_agree():
    rng = np.random.default_rng(2)
    ref = _maps(rng, quiet=(0,))
    out = ref.copy()
    out[0, 0, 0, 0] = np.nan
    per_output = compare_outputs([([ref], [out], len(ref))], ["map"])["map"]
    assert per_output["non_finite_samples"] == 1 and per_output["cosine_min"] == 0.0


def test_every_sample_quiet_is_judged_as_it_is():
    ref = np.full((3, 4), 1e-9)
    out = -ref
    assert compare(ref, out)["cosine_min"] == -1.0
    assert "quiet_samples" not in compare_outputs([([ref], [out], 3)], ["y"])["y"]
