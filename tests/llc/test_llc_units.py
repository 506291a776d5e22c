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


# --------------------------------------------------------------------------- issue 17 units


def test_numbers_are_canonical_and_names_stay_out_of_jobs():
    from llc.sweep import job_spec

    plain = expand_sweep(base_section())
    spelt = base_section()
    spelt["samplers"][0].update({"gamma": 1, "step_size": 0.0004, "chains": 4.0})  # == the defaults
    spelt["targets"][0]["noise"] = 1
    respelt = expand_sweep(spelt)
    assert list(respelt[0]) == list(plain[0]) and list(respelt[1]) == list(plain[1])
    renamed = base_section()
    renamed["targets"][0]["name"] = "other"
    renamed["samplers"][1]["name"] = "renamed"
    for run_id, run in expand_sweep(renamed)[1].items():
        spec = job_spec(run)
        assert spec == job_spec(plain[1][run_id])
        assert "other" not in json.dumps(spec) and "renamed" not in json.dumps(spec)
    assert all(t["config"] == plain[0][tid]["config"] for tid, t in expand_sweep(renamed)[0].items())


def test_minibatch_nbeta_is_batch_size_over_its_log():
    from llc.run_sampler import resolved_nbeta

    assert resolved_nbeta({"nbeta": None, "batch_size": None}, 1000) == (
        pytest.approx(1000 / np.log(1000)),
        "n/log n",
    )
    nbeta, source = resolved_nbeta({"nbeta": None, "batch_size": 64}, 1000)
    assert nbeta == pytest.approx(64 / np.log(64)) and source == "batch_size/log(batch_size)"
    assert resolved_nbeta({"nbeta": 12.5, "batch_size": 64}, 1000) == (12.5, "config")


def test_multiplicity_of_rrr_and_dln_agree_and_match_the_notes():
    from llc.truth import dln_lambda_multiplicity, rrr_lambda_multiplicity, theoretical_lambda_multiplicity

    for m in range(1, 7):
        for h in range(1, 7):
            for n in range(1, 7):
                for r in range(0, min(m, h, n) + 1):
                    assert rrr_lambda_multiplicity(m, h, n, r)[1] == dln_lambda_multiplicity([m, h, n], r)[1]
    # the reference notes' table (section 3.5)
    assert rrr_lambda_multiplicity(5, 3, 5, 0) == (6.5, 2)
    assert rrr_lambda_multiplicity(4, 2, 4, 1) == (5, 2)
    assert dln_lambda_multiplicity([3, 3, 3, 3], 1) == (4, 3)
    assert dln_lambda_multiplicity([5, 5, 5, 5, 5], 2) == (11, 4)
    assert theoretical_lambda_multiplicity("linear", [8, 1], 0) == (4.0, 1)


def flag_input(per_chain, **extra):
    record = {
        "llc_per_chain": per_chain,
        "llc_trace_std": 1.0,
        "ess": 800.0,
        "llc_q25": 2.0,
        "llc_q75": 3.5,
        "llc_max_per_chain": [9.0] * len(per_chain),
        "r_hat": 1.01,
        "n": 1000,
        "num_params": 22,
    }
    return {**record, **extra}


def test_flags_fire_on_the_issue_examples_and_not_on_healthy_runs():
    from llc.flags import run_flags

    assert run_flags(flag_input([2.80, 2.91, 2.86, 2.83])) == {}
    # issue 17: per-chain 2.87, 2.91, 2.70, 4.82 with R-hat 1.037 and nothing said so
    flags = run_flags(flag_input([2.87, 2.91, 2.70, 4.82], r_hat=1.037))
    assert "chain 3: 4.82" in flags["chain_disagreement"]
    # one chain spiked to nβ(L - L0) of about 140
    assert "loss_excursion" in run_flags(flag_input([2.8, 2.9, 2.8, 2.8], llc_max_per_chain=[9, 8, 140, 9]))
    assert "loss_excursion" in run_flags(flag_input([2.8, 2.9, -0.4, 2.8]))
    # R-hat 1.348 with ESS 5; 1,098 divergences; n below the parameter count
    flags = run_flags(
        flag_input([2.8, 2.9], r_hat=1.348, ess=5.0, divergences=1098, acceptance_rate=0.3, n=12)
    )
    assert {"high_r_hat", "low_ess", "divergences", "low_acceptance", "n_below_params"} <= set(flags)
    assert run_flags(flag_input([2.8, 2.9], r_hat=1.348), {"max_r_hat": 1.5}) == {}  # thresholds are config


def test_minibatch_sgld_records_full_batch_losses_and_mala_acceptance():
    import jax

    jax.config.update("jax_enable_x64", True)
    from llc.samplers import run_sgld

    rng = np.random.default_rng(0)
    x = jax.numpy.asarray(rng.normal(size=(100, 3)))
    y = x @ jax.numpy.asarray([[1.0], [0.5], [0.0]]) + jax.numpy.asarray(rng.normal(size=(100, 1)))
    w_star = jax.numpy.linalg.lstsq(x, y)[0][:, 0]

    def loss(w, xs, ys):
        return jax.numpy.mean((xs @ w[:, None] - ys) ** 2)

    traces = run_sgld(
        jax.random.key(0), loss, w_star, (x, y), nbeta=10.0, gamma=1.0, step_size=1e-3, chains=2, draws=60,
        batch_size=10, eval_every=5,
    )  # fmt: skip
    assert traces["loss"].shape == traces["mala_acceptance"].shape == (2, 12)
    full = np.array([[float(loss(w_star, x, y))]])
    assert np.all(traces["loss"] >= full - 1e-12)  # full-batch losses: never below the minimum
    assert np.all((traces["mala_acceptance"] > 0.5) & (traces["mala_acceptance"] <= 1))
    assert traces["grad_evals"] == 2 * 60 + 2 * 2 * 12


def test_calibration_picks_the_largest_passing_step():
    from llc.calibrate import choose

    pilots = [
        {"step_size": 1e-4, "passed": True},
        {"step_size": 1e-3, "passed": True},
        {"step_size": 1e-2, "passed": False},
    ]
    assert choose(pilots) == {"step_size": 1e-3, "passed": True}
    assert choose([{**p, "passed": False} for p in pilots]) == {"step_size": 1e-4, "passed": False}


def test_calibration_moves_nbeta_and_gamma_only_when_the_runs_own_fail():
    from llc.calibrate import choose
    from llc.sweep import calibrated_sampler, resolve_sampler

    def pilot(step, nbeta, gamma, passed=True):
        return {"step_size": step, "nbeta": nbeta, "gamma": gamma, "passed": passed}

    own = {"nbeta": 10.0, "gamma": 1.0}
    pilots = [
        pilot(1e-3, 10.0, 1.0),
        pilot(1e-2, 10.0, 1.0, passed=False),
        pilot(1e-2, 10.0, 100.0),  # a larger step passes only with a stronger pull
        pilot(1e-2, 50.0, 10.0),
    ]
    # the run's own nβ and γ pass at some step: kept, with their largest passing step
    assert choose(pilots, **own) == {"step_size": 1e-3, **own, "passed": True}
    # they never pass: the smallest γ that passes, then the nβ nearest the run's, then the largest step
    pilots[0]["passed"] = False
    pilots += [pilot(1e-3, 10.0, 10.0), pilot(1e-4, 11.0, 10.0)]
    assert choose(pilots, **own) == {"step_size": 1e-3, "nbeta": 10.0, "gamma": 10.0, "passed": True}
    # nothing passes: the smallest step at the run's own values, marked as failed
    failed = [{**p, "passed": False} for p in pilots]
    assert choose(failed, **own) == {"step_size": 1e-3, **own, "passed": False}

    # the run follows the chosen values only where a grid searched them (so ids stay put otherwise)
    _, searched = resolve_sampler({"kind": "sgld", "calibrate": {"step_sizes": [1e-3], "gammas": [1, 10]}}, 0)
    _, plain = resolve_sampler({"kind": "sgld", "calibrate": {"step_sizes": [1e-3]}}, 0)
    chosen = {"step_size": 1e-3, "nbeta": 12.5, "gamma": 10.0, "passed": True}
    assert calibrated_sampler(searched, chosen)["gamma"] == 10.0
    assert calibrated_sampler(searched, chosen)["nbeta"] is None  # nβ was not searched: its default
    assert (
        calibrated_sampler(plain, chosen)["gamma"] == 1.0
        and calibrated_sampler(plain, chosen)["step_size"] == 1e-3
    )


def test_custom_dataset_and_given_parameters(tmp_path):
    import logging
    import shutil

    import jax
    import pandas as pd

    jax.config.update("jax_enable_x64", True)
    from llc.build_target import build_target
    from llc.custom import load_dataset

    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 2))
    y = np.tanh(x[:, :1]) + 0.1 * rng.normal(size=(40, 1))
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "out": y[:, 0]}).to_parquet(tmp_path / "d.parquet")
    got_x, got_y = load_dataset(
        {"data": str(tmp_path / "d.parquet"), "inputs": ["a", "b"], "outputs": ["out"]}
    )
    assert np.allclose(got_x, x) and got_y.shape == (40, 1)
    shutil.copy(REPO / "tests/llc/tiny_models.py", tmp_path / "tiny_models.py")
    section = {
        "targets": [
            {
                "family": "custom",
                "data": str(tmp_path / "d.parquet"),
                "inputs": ["a", "b"],
                "outputs": ["out"],
                "model": "tiny_models:two_layer",
                "model_dir": str(tmp_path),
                "training": {"steps": 300},
            }
        ],
        "samplers": [{"kind": "sgld"}],
    }
    ((target_id, target),) = expand_sweep(section)[0].items()
    log = logging.getLogger("test")
    trained = build_target(
        target_id, target["config"], *[tmp_path / f"a.{s}" for s in ("npz", "p.npz", "json")], log
    )
    assert trained["dims"] == {"n": 40, "input_dim": 2, "num_params": 17}
    given = {**target["config"], "params": str(tmp_path / "a.p.npz")}  # w* written by the first build
    again = build_target("given", given, *[tmp_path / f"b.{s}" for s in ("npz", "p.npz", "json")], log)
    assert again["L0"] == pytest.approx(trained["L0"], rel=1e-12) and again["training_final_losses"] == []
    with pytest.raises(SweepError, match="inputs"):
        expand_sweep({"targets": [{**section["targets"][0], "inputs": None}], "samplers": []})


def test_bench_help_is_whole(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, str(REPO / "bench/llc.py"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--rounds" in out and "--min-seconds" in out
    assert "not by the data)." in out  # the description's last sentence: not cut off mid-sentence


def test_a_target_that_cannot_be_built_gives_failed_rows_not_a_crash(tmp_path):
    import logging

    import jax

    jax.config.update("jax_enable_x64", True)
    from llc.build_target import TargetError, build_target, write_failed_target
    from llc.run_sampler import run_one
    from llc.sweep import job_spec

    np.savez(tmp_path / "d.npz", x=np.zeros((5, 2)), y=np.zeros(5))
    section = {
        "targets": [{"family": "custom", "data": str(tmp_path / "d.npz"), "model": "no_such_module:build"}],
        "samplers": [{"kind": "sgld"}],
    }
    targets, runs, _ = expand_sweep(section)
    ((target_id, target),) = targets.items()
    files = [tmp_path / name for name in ("data.npz", "params.npz", "meta.json")]
    with pytest.raises(TargetError, match=f"target {target_id}: .*no_such_module") as err:
        build_target(target_id, target["config"], *files, logging.getLogger("test"))
    write_failed_target(target_id, target["config"], str(err.value), *files)
    ((run_id, run),) = runs.items()
    paths = dict(zip(["data", "params", "meta"], files, strict=True))
    out = [tmp_path / "traces.npz", tmp_path / "analysis.json"]
    analysis = run_one(run_id, job_spec(run), paths, *out, logging.getLogger("test"))
    assert analysis["status"] == "failed" and "no_such_module" in analysis["error"]
    assert json.loads(out[1].read_text())["status"] == "failed"
