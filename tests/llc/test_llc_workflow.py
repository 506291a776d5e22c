"""End-to-end runs of the llc workflow: the accuracy check against theory (the issue's real
check, with a held-out deep linear network), the promotion gallery, idempotence, a diverging
run that fails alone while the table of the others is written, and SLURM."""

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
    """Linear regression, three reduced-rank regressions and a deep linear network, each with
    SGLD and HMC (about 80 s on 2 cores)."""
    workdir = tmp_path_factory.mktemp("llc_accuracy")
    config = {**OTHERS_OFF, "llc": accuracy_sweep(seed=0), "llc_promote": True}
    proc = run_workflow(workdir, config, ["llc_all"], extra=CORES)
    return workdir, config, proc


def test_llc_matches_theory_for_sgld_and_hmc(accuracy_run):
    workdir, _, _ = accuracy_run
    table = pd.read_parquet(workdir / "results/llc/llc_runs.parquet")
    assert len(table) == 10 and set(table["kind"]) == {"sgld", "hmc"}
    assert set(table["family"]) == {"linear", "rrr", "dln"} and (table["status"] == "ok").all()
    failures = accuracy_failures(table.to_dict("records"))
    shown = table[
        [
            "target_name",
            "kind",
            "llc_mean",
            "llc_truth",
            "llc_truth_finite_n",
            "relative_error",
            "r_hat",
            "flags",
        ]
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
        "status",
        "flags",
        "llc_truth_multiplicity",
        "llc_per_chain",
    ]:
        assert column in table.columns, column
    # multiplicity beside the truth: Aoyagi's m for rrr 4x2x4 rank 1 is 2, for the dln 1
    multiplicity = dict(zip(table["target_name"], table["llc_truth_multiplicity"], strict=False))
    assert multiplicity["rrr_4x2x4_r1"] == 2 and multiplicity["dln_held_out"] == 1
    assert table.loc[table["kind"] == "hmc", "divergences"].notna().all()
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
    assert len(traces) == 5
    for png in [*traces, gallery / "llc_by_sampler.png"]:
        assert png.name in index and png.read_bytes()[:4] == b"\x89PNG"
    assert "flags" in index and "llc_truth_multiplicity" in index


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
    assert counts.get("llc_run_sampler") == "5" and "llc_build_target" not in counts


def test_diverging_run_is_a_row_and_the_check_names_it(tmp_path):
    """A step size far beyond stability: the table and SUMMARY still cover both runs, the failed
    one as a row with its error; the final check fails the workflow naming the run id, the target
    and the sampler; the next run redoes only that run."""
    section = {
        "enabled": True,
        "targets": [{"name": "small", "family": "linear", "widths": [3, 1], "n": 200, "seed": 3}],
        "samplers": [
            {"kind": "sgld", "name": "fine", "step_size": 1e-3, "draws": 300, "burnin": 100, "chains": 2},
            {"kind": "sgld", "name": "blowup", "step_size": 1.0, "draws": 300, "burnin": 100, "chains": 2},
        ],
    }
    config = {**OTHERS_OFF, "llc": section}
    proc = run_workflow(tmp_path, config, ["llc_all"], extra=CORES, check=False)
    assert proc.returncode != 0
    table = pd.read_parquet(tmp_path / "results/llc/llc_runs.parquet").set_index("sampler_name")
    assert table.loc["fine", "status"] == "ok" and np.isfinite(table.loc["fine", "llc_mean"])
    assert table.loc["blowup", "status"] == "failed" and "diverged" in table.loc["blowup", "error"]
    bad_id, target_id = table.loc["blowup", "run_id"], table.loc["blowup", "target_id"]
    summary = (tmp_path / "results/llc/SUMMARY.txt").read_text()
    assert f"small blowup (run {bad_id}" in summary and "FAILED" in summary
    assert "1 failed" in summary
    # the check's message names all three: run id, target (name and id), sampler
    assert f"run {bad_id} (target 'small' {target_id}, sampler 'blowup') failed: " in proc.stdout
    assert not (tmp_path / "results/llc/llc_check.txt").exists()
    assert not (tmp_path / f"results/llc/runs/{bad_id}/analysis.json").exists()  # removed: redone next
    again = run_workflow(tmp_path, config, ["llc_all"], extra=[*CORES, "-n"])
    jobs = {line.split()[0]: line.split()[1] for line in again.stdout.splitlines() if line.startswith("llc_")}
    assert jobs.get("llc_run_sampler") == "1" and "llc_build_target" not in jobs
    assert f"runs/{bad_id}/analysis.json" in again.stdout


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
