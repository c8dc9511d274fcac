"""Spec keys are checked against the documented ones: the shared helper and the elliptic generator."""

import pytest

from datagen.spec_keys import check_keys, close_match


def test_unknown_key_names_the_key_a_suggestion_and_the_allowed_keys():
    with pytest.raises(ValueError) as err:
        check_keys({"viscosty": 1e-4, "resolution": 64}, ("viscosity", "resolution", "dt"), "navier-stokes spec")
    msg = str(err.value)
    assert msg.startswith("navier-stokes spec: unknown key 'viscosty' (did you mean 'viscosity'?)")
    assert msg.endswith("allowed: dt, resolution, viscosity")
    assert "\n" not in msg


def test_several_unknown_keys_are_all_listed_and_far_ones_get_no_suggestion():
    with pytest.raises(ValueError) as err:
        check_keys(["alpah", "zzzzzz"], ["alpha", "tau"], "darcy family")
    msg = str(err.value)
    assert "unknown keys 'alpah' (did you mean 'alpha'?), 'zzzzzz';" in msg
    assert "did you mean" not in msg.split("'zzzzzz'")[1]


def test_known_keys_pass_and_matching_is_case_insensitive_for_hints():
    check_keys({"alpha": 1, "tau": 2}, ("alpha", "tau", "forcing"), "x")
    check_keys({}, (), "x")
    assert close_match("Wavenumbr", ["wavenumber", "contrast"]) == "wavenumber"
    assert close_match("q", ["wavenumber"]) is None
