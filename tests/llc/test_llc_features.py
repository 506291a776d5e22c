"""One small llc sweep through Snakemake, run twice (a module fixture, so the tests only read):

1. an ``mlp`` target and a ``custom`` target (a dataset file and the model in tiny_models.py)
   crossed with a good SGLD, a diverging SGLD and a calibrated minibatch SGLD; the gallery on.
   The failing runs are rows of the table, the check fails naming them.
2. the same sweep with both targets and a sampler renamed, a number respelt (gamma 1 for the
   default 1.0) and the diverging sampler dropped: nothing is rebuilt or resampled.
"""

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, run_workflow
from llc.sweep import calibrated_sampler, expand_sweep, run_id_of

CORES = ["--cores", "2"]
OTHERS_OFF = {name: {"enabled": False} for name in ["af3", "rnaseq", "trendy", "dali"]}
GRID = [1e-4, 1e-3, 1e-2, 0.5]
GAMMAS = [1.0, 100.0]  # γ searched too; the run's own (1.0) is kept wherever a step passes


def sweep(renamed: bool = False) -> dict:
    fine = {
        "kind": "sgld",
        "name": "fine",
        "step_size": 1e-3,
        "draws": 300,
        "burnin": 100,
        "chains": 3,
        "seed": 1,
    }
    samplers = [
        {**fine, "name": "steady", "gamma": 1} if renamed else fine,
        {"kind": "sgld", "name": "blowup", "step_size": 1.0, "draws": 200, "burnin": 50, "chains": 2},
        {
            "kind": "sgld",
            "name": "tuned",
            "batch_size": 50,
            "draws": 400,
            "burnin": 100,
            "chains": 2,
            "calibrate": {"step_sizes": GRID, "gammas": GAMMAS, "draws": 200, "burnin": 50},
        },
    ]
    if renamed:
        samplers.pop(1)
    return {
        "enabled": True,
        "gallery": True,
        "targets": [
            {
                "name": "network" if renamed else "net",
                "family": "mlp",
                "widths": [2, 3, 1],
                "n": 200,
                "noise": 0.1,
                "training": {"steps": 800, "learning_rate": 0.02},
            },
            {
                "name": "theirs" if renamed else "mine",
                "family": "custom",
                "data": "data.npz",
                "model": "tiny_models:two_layer",
                "model_args": {"hidden": 4},
                "training": {"steps": 800},
            },
        ],
        "samplers": samplers,
    }


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("llc_features")
    shutil.copy(REPO / "tests/llc/tiny_models.py", workdir / "tiny_models.py")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 2))  # 12 points, 17 parameters: the n < #params flag must fire
    np.savez(workdir / "data.npz", x=x, y=np.sin(x[:, 0]) + 0.1 * rng.normal(size=12))
    first = run_workflow(workdir, {**OTHERS_OFF, "llc": sweep()}, ["llc_all"], extra=CORES, check=False)
    first_table = pd.read_parquet(workdir / "results/llc/llc_runs.parquet")
    second = run_workflow(workdir, {**OTHERS_OFF, "llc": sweep(renamed=True)}, ["llc_all"], extra=CORES)
    second_table = pd.read_parquet(workdir / "results/llc/llc_runs.parquet")
    return workdir, first, first_table, second, second_table


def test_failed_runs_are_rows_and_the_check_names_them(two_runs):
    workdir, first, table, _, _ = two_runs
    assert first.returncode != 0
    assert len(table) == 6
    failed = table[table["status"] == "failed"]
    assert set(failed["sampler_name"]) == {"blowup"} and len(failed) == 2
    assert failed["error"].str.contains("diverged").all()
    for row in failed.itertuples():
        assert (
            f"run {row.run_id} (target '{row.target_name}' {row.target_id}, sampler 'blowup')" in first.stdout
        )
    ok = table[table["status"] == "ok"]
    assert len(ok) == 4 and np.isfinite(ok["llc_mean"]).all()


def test_mlp_and_custom_targets_are_built_and_sampled(two_runs):
    workdir, _, table, _, _ = two_runs
    ok = table[table["status"] == "ok"].set_index(["target_name", "sampler_name"])
    assert ok.loc[("net", "fine"), "num_params"] == 2 * 3 + 3 + 3 * 1 + 1
    assert ok.loc[("mine", "fine"), "num_params"] == 2 * 4 + 4 + 4 + 1
    assert ok.loc[("mine", "fine"), "n"] == 12
    assert ok["family"].to_dict() == {key: "mlp" if key[0] == "net" else "custom" for key in ok.index}
    meta = next(
        json.loads(p.read_text())
        for p in workdir.glob("results/llc/targets/*/meta.json")
        if json.loads(p.read_text())["config"]["family"] == "custom"
    )
    assert meta["grad_norm_at_w_star"] < 0.05  # trained towards a critical point
    with np.load(next(workdir.glob(f"results/llc/targets/{meta['target_id']}/params.npz"))) as npz:
        assert set(npz.files) == {"hidden/w", "hidden/b", "out/w", "out/b"}


def test_flags_land_in_table_summary_and_gallery(two_runs):
    workdir, _, table, _, _ = two_runs
    custom = table[(table["family"] == "custom") & (table["status"] == "ok")]
    assert custom["flags"].str.contains("n_below_params").all()
    summary = (workdir / "results/llc/SUMMARY.txt").read_text()
    assert "FLAG n_below_params: n = 12 < 17 parameters" in summary
    index = (workdir / "results/llc/gallery/index.html").read_text()
    assert "n_below_params" in index


def test_minibatch_uses_devinterp_nbeta_and_full_batch_diagnostics(two_runs):
    _, _, table, _, _ = two_runs
    mini = table[(table["sampler_name"] == "tuned") & (table["family"] == "mlp")].iloc[0]
    assert mini["nbeta"] == pytest.approx(50 / math.log(50))
    assert mini["nbeta_source"] == "batch_size/log(batch_size)"
    assert mini["eval_every"] == 4  # n / batch_size: one full-batch evaluation per pass
    assert mini["recorded_draws"] == 400 // 4
    assert 0 < mini["mala_acceptance"] <= 1
    assert mini["ess"] <= 2 * 100  # ESS of 100 full-batch evaluations per chain, not of 400 batch losses


def test_calibration_picks_a_step_and_the_run_follows(two_runs):
    workdir, _, table, _, _ = two_runs
    targets, _, calibrations = expand_sweep(sweep())
    assert len(calibrations) == 2
    for cal_id, cal in calibrations.items():
        record = json.loads((workdir / f"results/llc/calibration/{cal_id}/calibration.json").read_text())
        pilots, chosen = record["pilots"], record["chosen"]
        tried = sorted((p["step_size"], p["gamma"]) for p in pilots)
        assert tried == sorted((step, gamma) for step in GRID for gamma in GAMMAS)
        assert len({p["nbeta"] for p in pilots}) == 1  # nβ not searched: the run's default only
        assert not any(p["passed"] for p in pilots if p["step_size"] == 0.5)
        passing = [p for p in pilots if p["passed"]]
        # γ moves from the run's own 1.0 only when no step passes with it; the step is the largest
        assert chosen["passed"] and chosen["gamma"] == min(p["gamma"] for p in passing), chosen
        assert chosen["step_size"] == max(p["step_size"] for p in passing if p["gamma"] == chosen["gamma"])
        run_id = run_id_of(cal["target_id"], calibrated_sampler(cal["sampler"], chosen))
        row = table.set_index("run_id").loc[run_id]
        assert row["sampler.step_size"] == chosen["step_size"] and row["calibration_id"] == cal_id
        assert row["sampler.gamma"] == chosen["gamma"]
        png = workdir / f"results/llc/calibration/{cal_id}/calibration.png"
        assert png.read_bytes()[:4] == b"\x89PNG"
    index = (workdir / "results/llc/gallery/index.html").read_text()
    assert index.count("calibration.png") == 2


def test_renaming_reruns_nothing_and_the_table_shows_new_names(two_runs):
    _, _, first_table, second, table = two_runs
    ran = {line.split()[0] for line in second.stdout.splitlines() if line.startswith("llc_")}
    assert not ran & {"llc_build_target", "llc_run_sampler", "llc_calibrate"}, second.stdout[-3000:]
    assert "llc_aggregate" in ran
    assert set(table["target_name"]) == {"network", "theirs"}
    assert set(table["sampler_name"]) == {"steady", "tuned"}
    kept = first_table[first_table["status"] == "ok"]
    assert set(table["run_id"]) == set(kept["run_id"])  # gamma: 1 is the default 1.0
