"""Unit tests of the llc scripts: theory values, sweep expansion, diagnostics, the exact
finite-n LLC of linear regression, and one in-process target build."""

import json

import numpy as np
import pytest
from common import config_errors
from conftest import REPO
from llc import diagnostics
from llc.sweep import SweepError, expand_sweep
from llc.truth import dln_lambda, num_params, rrr_lambda, theoretical_lambda

SCHEMA = REPO / "config" / "schemas" / "llc.schema.yaml"


# --------------------------------------------------------------------------- theory


@pytest.mark.parametrize(
    "shape, rank, expected",
    # Aoyagi & Watanabe (2005) worked by hand: case 1 even/odd parity, cases 2-4.
    [
        ((5, 4, 5), 0, 8.0),
        ((5, 3, 5), 0, 6.5),
        ((1, 1, 1), 0, 0.5),
        ((2, 1, 9), 1, 5.0),
        ((9, 1, 2), 1, 5.0),
        ((2, 9, 2), 0, 2.0),
    ],
)
def test_rrr_lambda_by_hand(shape, rank, expected):
    assert rrr_lambda(*shape, rank) == pytest.approx(expected)


def test_rrr_and_dln_formulas_agree_on_one_hidden_layer():
    """Two independent transcriptions (2005 RRR cases, 2024 DLN index-set form) must agree."""
    for m in range(1, 8):
        for h in range(1, 8):
            for n in range(1, 8):
                for r in range(0, min(m, h, n) + 1):
                    assert rrr_lambda(m, h, n, r) == pytest.approx(dln_lambda([m, h, n], r)), (m, h, n, r)


def test_dln_lambda_never_exceeds_half_the_parameters():
    for widths in ([3, 3, 3, 3], [4, 3, 2, 3, 4], [5, 5, 5, 5, 5], [10, 8, 6, 8, 10]):
        for r in range(min(widths) + 1):
            lam = dln_lambda(widths, r)
            assert 0 <= lam <= num_params("dln", widths) / 2


def test_theoretical_lambda_by_family():
    assert theoretical_lambda("linear", [8, 1], 0) == 4.0
    assert theoretical_lambda("linear", [3, 2], 0) == 3.0
    assert theoretical_lambda("mlp", [4, 6, 1], 0) is None
    assert num_params("mlp", [4, 6, 1]) == 4 * 6 + 6 + 6 + 1


# --------------------------------------------------------------------------- sweep


def base_section():
    return {
        "jax_enable_x64": True,
        "targets": [{"name": "a", "family": "rrr", "widths": [4, 2, 4], "n": 100}],
        "samplers": [{"kind": "sgld"}, {"kind": "hmc", "name": "long"}],
    }


def test_sweep_ids_are_content_hashes():
    targets, runs, _ = expand_sweep(base_section())
    assert len(targets) == 1 and len(runs) == 2
    again = expand_sweep(base_section())
    assert (list(targets), list(runs)) == (list(again[0]), list(again[1]))
    renamed = base_section()
    renamed["targets"][0]["name"] = "b"
    renamed["samplers"][1]["name"] = "other"
    assert set(expand_sweep(renamed)[1]) == set(runs)  # labels are not science
    changed = base_section()
    changed["samplers"][0]["step_size"] = 1e-4
    new_targets, new_runs, _ = expand_sweep(changed)
    assert set(new_targets) == set(targets)
    assert len(set(new_runs) & set(runs)) == 1  # only the unchanged sampler keeps its id
    explicit = base_section()
    explicit["targets"][0]["true_rank"] = 0  # the default, written out: same target
    assert set(expand_sweep(explicit)[0]) == set(targets)


def test_sweep_duplicates_collapse_and_precision_is_part_of_the_id():
    section = base_section()
    section["samplers"].append({"kind": "sgld", "name": "again"})
    assert len(expand_sweep(section)[1]) == 2
    float32 = base_section()
    float32["samplers"][0]["x64"] = False
    assert len(set(expand_sweep(float32)[1]) & set(expand_sweep(base_section())[1])) == 1


@pytest.mark.parametrize(
    "target, sampler, message",
    [
        ({"family": "rrr", "widths": [4, 4], "n": 10}, {"kind": "sgld"}, "widths of length 3"),
        ({"family": "rrr", "widths": [4, 2, 4], "true_rank": 3, "n": 10}, {"kind": "sgld"}, "true_rank 3"),
        (
            {"family": "linear", "widths": [4, 1], "true_rank": 1, "n": 10},
            {"kind": "sgld"},
            "rrr and dln only",
        ),
        ({"family": "linear", "widths": [4, 1], "n": 10}, {"kind": "hmc", "batch_size": 8}, "batch_size"),
        (
            {"family": "linear", "widths": [4, 1], "n": 10},
            {"kind": "sgld", "draws": 10, "burnin": 10},
            "burnin",
        ),
    ],
)
def test_sweep_rejects_inconsistent_entries(target, sampler, message):
    with pytest.raises(SweepError, match=message) as err:
        expand_sweep({"targets": [target], "samplers": [sampler]})
    assert "llc." in str(err.value)  # names the entry at fault


def test_schema_rejects_hostile_names_and_unknown_keys():
    section = base_section()
    section["targets"][0]["name"] = "../../etc"
    section["samplers"][0]["stepsize"] = 1e-3
    errors = "\n".join(config_errors(section, SCHEMA, where="llc"))
    assert "llc key 'targets.0.name'" in errors
    assert "stepsize" in errors
    assert config_errors(base_section(), SCHEMA, where="llc") == []


# --------------------------------------------------------------------------- diagnostics


def ar1(rng, phi, chains, draws):
    x = np.zeros((chains, draws))
    noise = rng.normal(size=(chains, draws))
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    return x


def test_ess_and_rhat_on_known_processes():
    rng = np.random.default_rng(0)
    iid = rng.normal(size=(4, 2000))
    assert diagnostics.ess_bulk(iid) == pytest.approx(8000, rel=0.1)
    assert diagnostics.rhat(iid) < 1.01
    # AR(1): the integrated autocorrelation time is (1 + phi) / (1 - phi) = 19 for phi = 0.9.
    correlated = ar1(rng, 0.9, 4, 5000)
    assert diagnostics.ess_bulk(correlated) == pytest.approx(20000 / 19, rel=0.25)
    assert diagnostics.ess_tail(correlated) < 20000 / 5
    stuck = correlated + np.array([0, 0, 0, 3.0])[:, None]
    assert diagnostics.rhat(stuck) > 1.1
    wider = iid * np.array([1, 1, 1, 3.0])[:, None]  # same mean, different scale: the folded part sees it
    assert diagnostics.rhat(wider) > 1.1


# --------------------------------------------------------------------------- exact linear LLC


def test_linear_exact_llc_matches_gaussian_monte_carlo():
    """E[nβ (L - L0)] under N(w*, (nβH + γI)^-1) with H the Hessian of the mean-squared loss."""
    from llc.samplers import linear_exact_llc

    rng = np.random.default_rng(1)
    n, d, outputs, nbeta, gamma = 200, 3, 2, 200 / np.log(200), 5.0
    x = rng.normal(size=(n, d)) * np.array([1.0, 0.3, 2.0])
    exact = linear_exact_llc(x, outputs, nbeta, gamma)
    hessian = np.kron(np.eye(outputs), 2 * x.T @ x / n / outputs)  # loss = mean over n * outputs entries
    cov = np.linalg.inv(nbeta * hessian + gamma * np.eye(d * outputs))
    draws = rng.multivariate_normal(np.zeros(d * outputs), cov, size=200_000)
    monte_carlo = nbeta * 0.5 * np.mean(np.einsum("ij,jk,ik->i", draws, hessian, draws))
    assert exact == pytest.approx(monte_carlo, rel=0.01)
    assert exact < d * outputs / 2  # the localization pulls it below d/2


# --------------------------------------------------------------------------- one build in process


def test_build_target_writes_a_minimum_and_its_meta(tmp_path):
    import jax

    jax.config.update("jax_enable_x64", True)
    import logging

    from llc.build_target import build_target

    targets, _, _ = expand_sweep(base_section())
    ((target_id, target),) = targets.items()
    paths = [tmp_path / "data.npz", tmp_path / "params.npz", tmp_path / "meta.json"]
    meta = build_target(target_id, target["config"], *paths, logging.getLogger("test"))
    assert json.loads(paths[2].read_text())["target_id"] == target_id
    assert meta["truth"]["lambda"] == rrr_lambda(4, 2, 4, 0)
    assert meta["grad_norm_at_w_star"] < 1e-3  # trained to a critical point
    with np.load(paths[0]) as data:
        assert data["x"].shape == (100, 4) and data["y"].shape == (100, 4)
    assert not list(tmp_path.glob(".tmp-*"))
