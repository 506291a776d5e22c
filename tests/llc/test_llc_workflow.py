"""End-to-end runs of the llc workflow: the accuracy check against theory (the issue's real
check), the promotion gallery, idempotence, a diverging run that fails alone, and SLURM."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import SLURM_QUICK, run_workflow
from llc.validation import accuracy_failures, accuracy_sweep

# `--configfile` takes several values: an option of one value must stand before the targets.
CORES = ["--cores", "2"]
OTHERS_OFF = {name: {"enabled": False} for name in ["af3", "rnaseq", "trendy", "dali"]}


@pytest.fixture(scope="module")
def accuracy_run(tmp_path_factory):
    """Linear regression and three reduced-rank regressions, each with SGLD and HMC (about 2 min)."""
    workdir = tmp_path_factory.mktemp("llc_accuracy")
    config = {**OTHERS_OFF, "llc": accuracy_sweep(seed=0), "llc_promote": True}
    proc = run_workflow(workdir, config, ["llc_all"], extra=CORES)
    return workdir, config, proc


def test_llc_matches_theory_for_sgld_and_hmc(accuracy_run):
    workdir, _, _ = accuracy_run
    table = pd.read_parquet(workdir / "results/llc/llc_runs.parquet")
    assert len(table) == 8 and set(table["kind"]) == {"sgld", "hmc"}
    failures = accuracy_failures(table.to_dict("records"))
    shown = table[
        ["target_name", "kind", "llc_mean", "llc_truth", "llc_truth_finite_n", "relative_error", "r_hat"]
    ]
    assert not failures, "\n".join(failures) + "\n" + shown.to_string()


def test_run_outputs_carry_every_metric(accuracy_run):
    workdir, _, _ = accuracy_run
    table = pd.read_parquet(workdir / "results/llc/llc_runs.parquet")
    for column in [
        "llc_mean",
        "llc_std",
        "llc_sem",
        "ess",
        "r_hat",
        "grad_evals",
        "wall_time_s",
        "relative_error",
        "target.widths",
        "sampler.step_size",
        "sampler.gamma",
        "nbeta",
    ]:
        assert column in table.columns, column
    hmc = table[table["kind"] == "hmc"]
    assert hmc["acceptance_rate"].between(0.5, 1.0).all()
    sgld = table[table["kind"] == "sgld"]
    assert sgld["mala_acceptance"].between(0.5, 1.0).all()  # full-batch SGLD step-size diagnostic
    assert (table["llc_sem"] > 0).all() and (table["ess"] > 50).all()
    run_id = table["run_id"].iloc[0]
    analysis = json.loads((workdir / f"results/llc/runs/{run_id}/analysis.json").read_text())
    with np.load(workdir / f"results/llc/runs/{run_id}/traces.npz") as traces:
        assert traces["loss"].shape == (analysis["sampler"]["chains"], analysis["sampler"]["draws"])
        # L0 recomputed in the sampler's precision
        assert traces["loss"].dtype == np.float64 and float(traces["L0"]) == analysis["L0"]
    assert (workdir / "results/llc/llc_runs.tsv").read_text().startswith("run_id\t")
    summary = (workdir / "results/llc/SUMMARY.txt").read_text()
    assert "results/llc/llc_runs.tsv" in summary


def test_promote_writes_a_gallery(accuracy_run):
    workdir, _, _ = accuracy_run
    gallery = workdir / "results/llc/gallery"
    index = (gallery / "index.html").read_text()
    traces = sorted(gallery.glob("traces_*.png"))
    assert len(traces) == 4
    for png in [*traces, gallery / "llc_by_sampler.png"]:
        assert png.name in index and png.read_bytes()[:4] == b"\x89PNG"


def test_second_run_has_nothing_to_do(accuracy_run):
    workdir, config, _ = accuracy_run
    proc = run_workflow(workdir, config, ["llc_all"], extra=[*CORES, "-n"])
    assert "Nothing to be done" in proc.stdout


def test_changed_sampler_reruns_only_its_runs(accuracy_run, tmp_path):
    workdir, config, _ = accuracy_run
    changed = json.loads(json.dumps(config))
    changed["llc"]["samplers"][0]["step_size"] = 3e-4
    proc = run_workflow(workdir, changed, ["llc_all"], extra=[*CORES, "-n"])
    counts = {
        line.split()[0]: line.split()[1] for line in proc.stdout.splitlines() if line.startswith("llc_")
    }
    assert counts.get("llc_run_sampler") == "4" and "llc_build_target" not in counts


def test_diverging_run_fails_alone_and_is_named(tmp_path):
    """A step size far beyond stability: that run fails naming itself; the good run finishes."""
    section = {
        "enabled": True,
        "targets": [{"name": "small", "family": "linear", "widths": [3, 1], "n": 200, "seed": 3}],
        "samplers": [
            {"kind": "sgld", "name": "fine", "step_size": 1e-3, "draws": 300, "burnin": 100, "chains": 2},
            {"kind": "sgld", "name": "blowup", "step_size": 1.0, "draws": 300, "burnin": 100, "chains": 2},
        ],
    }
    proc = run_workflow(tmp_path, {**OTHERS_OFF, "llc": section}, ["llc_all"], extra=CORES, check=False)
    assert proc.returncode != 0
    runs = {
        json.loads(p.read_text())["sampler_name"]: p
        for p in tmp_path.glob("results/llc/runs/*/analysis.json")
    }
    assert set(runs) == {"fine"}
    logs = "\n".join(p.read_text() for p in tmp_path.glob("logs/llc/run_sampler/*.log"))
    assert "sampler 'blowup'" in logs and "diverged" in logs
    bad_ids = [
        p.parent.name for p in tmp_path.glob("results/llc/runs/*") if not (p / "analysis.json").exists()
    ]
    assert not bad_ids  # the failed job left nothing that looks complete
    assert "diverged" in proc.stdout  # the failure reaches the user's terminal (show-failed-logs)


def test_hostile_sweep_is_rejected_at_parse_time(tmp_path):
    section = {
        "enabled": True,
        "targets": [{"name": "x;rm -rf", "family": "linear", "widths": [3, 1], "n": 50}],
        "samplers": [{"kind": "sgld"}],
    }
    proc = run_workflow(
        tmp_path, {**OTHERS_OFF, "llc": section}, ["llc_all"], extra=[*CORES, "-n"], check=False
    )
    assert proc.returncode != 0 and "llc key 'targets.0.name'" in proc.stdout
    section["targets"][0] = {"family": "rrr", "widths": [3, 1, 3], "true_rank": 2, "n": 50}
    proc = run_workflow(
        tmp_path, {**OTHERS_OFF, "llc": section}, ["llc_all"], extra=[*CORES, "-n"], check=False
    )
    assert proc.returncode != 0 and "llc.targets[0]: true_rank 2" in proc.stdout


@pytest.mark.slurm
def test_llc_runs_through_slurm(slurm_cluster, tmp_path):
    """One tiny target and one sampler as real sbatch jobs (the aggregate is a local rule)."""
    section = {
        "enabled": True,
        "targets": [{"name": "tiny", "family": "linear", "widths": [3, 1], "n": 200, "seed": 1}],
        "samplers": [{"kind": "sgld", "step_size": 1e-3, "draws": 400, "burnin": 100, "chains": 2}],
    }
    proc = run_workflow(
        tmp_path,
        {**OTHERS_OFF, "llc": section},
        ["llc_all"],
        profile="slurm",
        extra=SLURM_QUICK,
    )
    table = pd.read_parquet(tmp_path / "results/llc/llc_runs.parquet")
    assert len(table) == 1 and np.isfinite(table["llc_mean"].iloc[0])
    assert proc.stdout.count("SLURM jobid") == 2  # build and sampler were sbatch jobs
