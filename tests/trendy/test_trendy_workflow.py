"""The trendy rules end to end: one job per file, bad files fail alone, the report lists them all."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, SCRIPTS, SLURM_QUICK, run_workflow
from trendy.inventory import find_sources
from trendy.synthetic import bad_cases, quirk_cases, with_size, write_case

GOOD = [
    "cable_months_since",
    "clm_yr_integer_pools",
    "isam_month_as_ymd_lon360",
    "visit_decimal_years_missing_value_only",
]


def read_table(path: Path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.fixture(scope="module")
def trendy_root(tmp_path_factory):
    """A small TRENDY tree: four good files (S0 and S3 of CABLE-POP) and the three bad ones."""
    root = tmp_path_factory.mktemp("trendy_root") / "TRENDYv13"
    by_name = {case.name: case for case in quirk_cases()}
    for name in GOOD:
        write_case(by_name[name], root)
    write_case(with_size(by_name["cable_months_since"], 10.0, 2, simulation="S0"), root)
    for case, writer in bad_cases().values():
        writer(case, root)
    return root


# conftest.run_workflow puts targets right after `--configfile FILE`, which takes several values:
# an option must come between them, or the targets are read as config files.
CORES = ["--cores", "2"]


def workflow_config(root: Path) -> dict:
    """The repository's trendy section (variables, prefixes), pointed at ``root``.

    A --configfile replaces whole top-level sections, so the section is copied, not patched.
    """
    section = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["trendy"]
    section.update(
        root=str(root),
        models=["CABLE-POP", "CLM5.0", "ISAM", "VISIT-UT", "LPX", "JULES", "OCN"],
        simulations=["S0", "S1", "S3"],
    )
    section["ilamb"] = {**section["ilamb"], "config": ""}  # ILAMB runs in test_trendy_ilamb.py
    return {"trendy": section}


def test_inventory_lists_only_configured_directories(trendy_root):
    sources = find_sources(
        trendy_root, ["CABLE-POP", "CLM5.0"], ["S0", "S3"], ["gpp", "cVeg", "lai"], {"CLM5.0": "CLM6.0"}
    )
    assert sorted(sources) == [
        ("CABLE-POP", "S0", "gpp"),
        ("CABLE-POP", "S3", "gpp"),
        ("CLM5.0", "S3", "cVeg"),
    ]


def test_bad_files_fail_alone_and_the_report_lists_every_file(trendy_root, tmp_path):
    proc = run_workflow(tmp_path, workflow_config(trendy_root), ["trendy_all"], extra=CORES, check=False)
    assert proc.returncode != 0, "a failed file must make the run fail"
    models = tmp_path / "results" / "trendy" / "MODELS"
    for expected in [
        "CABLE-POP_S0/gpp.nc",
        "CABLE-POP_S3/gpp.nc",
        "CLM5.0_S3/cVeg.nc",
        "ISAM_S3/gpp.nc",
        "VISIT-UT_S3/gpp.nc",
    ]:
        assert (models / expected).is_file(), expected
    assert (
        not (models / "LPX_S1").exists()
        and not (models / "OCN_S1").exists()
        and not (models / "JULES_S1").exists()
    )
    table = read_table(tmp_path / "results/trendy/conversions.tsv")
    rows = {(r["model"], r["simulation"], r["variable"]): r for r in table if r["status"] in ("ok", "failed")}
    assert len(rows) == 8
    # every model run without a land fraction or cell area file has a row saying so
    runs = {(r["model"], r["simulation"]): r for r in read_table(tmp_path / "results/trendy/model_runs.tsv")}
    assert (
        runs[("CABLE-POP", "S3")]["sftlf"] == "missing"
        and "no land fraction" in runs[("CABLE-POP", "S3")]["note"]
    )
    assert runs[("ISAM", "S3")]["areacella"] == "missing"
    failed = {key: row["error"] for key, row in rows.items() if row["status"] == "failed"}
    assert set(failed) == {("LPX", "S1", "gpp"), ("JULES", "S1", "gpp"), ("OCN", "S1", "gpp")}
    assert (
        "LPX-Bern_S1_gpp.nc" in failed[("LPX", "S1", "gpp")] and "truncated" in failed[("LPX", "S1", "gpp")]
    )
    assert "no time axis" in failed[("JULES", "S1", "gpp")]
    assert "m^2gridcell" in failed[("OCN", "S1", "gpp")]
    ok = rows[("CLM5.0", "S3", "cVeg")]
    assert (ok["time_step"], ok["time_start"], ok["time_end"], ok["units_to"]) == (
        "annual",
        "1700",
        "1702",
        "kg m-2",
    )
    # the failing job is the publish step, and its log names the file
    log = (tmp_path / "logs/trendy/publish/OCN_S1_gpp.log").read_text()
    assert "OCN_S1_gpp.nc" in log and "not understood" in log
    summary = (tmp_path / "results/trendy/SUMMARY.txt").read_text()
    assert "files converted: 5 of 8" in summary
    # the final check names every failed file in one message
    check = (tmp_path / "logs/trendy/check.log").read_text()
    assert all(name in check for name in ["LPX-Bern_S1_gpp.nc", "JULES", "OCN_S1_gpp.nc"])
    assert not (tmp_path / "results/trendy/check.txt").exists()

    # A second run redoes nothing that succeeded: only the failed publish jobs are retried.
    again = run_workflow(
        tmp_path, workflow_config(trendy_root), ["trendy_all"], extra=[*CORES, "-n"], check=False
    )
    assert "trendy_convert" not in again.stdout.split("Job stats:")[-1].split("total")[0]


def test_hostile_model_name_is_rejected(trendy_root, tmp_path):
    config = workflow_config(trendy_root)
    config["trendy"]["models"] = ["../../etc"]
    proc = run_workflow(tmp_path, config, ["trendy_all"], extra=[*CORES, "-n"], check=False)
    assert proc.returncode != 0
    assert "trendy key 'models.0'" in proc.stdout


def peak_rss_mb(source: Path, out: Path, slab_mb: float) -> float:
    """Peak RSS (MB) of a fresh process converting ``source``, as that process reports it."""
    code = (
        "import resource, sys; sys.path.insert(0, sys.argv[1]);"
        "from trendy.convert import VariableSpec, convert_file;"
        "convert_file(sys.argv[2], sys.argv[3], VariableSpec('gpp', 'gpp', 'kg m-2 s-1'), 'M', 'S3',"
        " slab_mb=float(sys.argv[4]), ilamb_check=False);"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(SCRIPTS), str(source), str(out), str(slab_mb)],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(proc.stdout.split()[-1]) / 1024.0


def test_peak_memory_does_not_grow_with_file_length(tmp_path):
    """A 40-year file needs no more memory than a 2-year one (slabs of 4 MB along time)."""
    base = next(c for c in quirk_cases() if c.name == "cable_months_since")
    short = write_case(with_size(base, 2.0, 2, simulation="S0"), tmp_path / "short")
    long_ = write_case(with_size(base, 2.0, 40, simulation="S0"), tmp_path / "long")
    assert long_.stat().st_size > 10 * short.stat().st_size
    rss_short = peak_rss_mb(short, tmp_path / "short.nc", 4)
    rss_long = peak_rss_mb(long_, tmp_path / "long.nc", 4)
    whole_file_mb = 40 * 12 * 90 * 180 * 8 / 1e6  # what reading it whole in float64 would take
    assert rss_long - rss_short < whole_file_mb / 2, (rss_short, rss_long, whole_file_mb)


@pytest.mark.slurm
def test_slurm_runs_grouped_conversions(slurm_cluster, trendy_root, tmp_path):
    """Three files through the real SLURM: convert jobs share an sbatch, publish runs locally."""
    config = workflow_config(trendy_root)
    config["trendy"]["models"] = ["CLM5.0", "ISAM", "VISIT-UT"]
    config["trendy"]["simulations"] = ["S3"]
    proc = run_workflow(
        tmp_path,
        config,
        ["trendy_all"],
        profile="slurm",
        extra=SLURM_QUICK,
    )
    assert "trendy_batch" in proc.stdout, "the convert jobs were not submitted as one group"
    # one sbatch for the three conversions; publish, report and check ran in the head
    assert proc.stdout.count("has been submitted with SLURM jobid") == 1, proc.stdout
    assert proc.stdout.count("localrule trendy_publish:") == 3
    rows = read_table(tmp_path / "results/trendy/conversions.tsv")
    assert [r["status"] for r in rows if r["status"] != "no_files"] == ["ok", "ok", "ok"]
    assert os.path.isdir(tmp_path / "results/trendy/MODELS/VISIT-UT_S3")


def test_a_rerun_after_a_kill_cleans_the_stage(tmp_path):
    """A killed attempt leaves temporary files in the staging dir; the next attempt removes them."""
    from trendy.convert import VariableSpec, convert_to_stage

    case = next(c for c in quirk_cases() if c.name == "cable_months_since")
    source = write_case(case, tmp_path / "root")
    stage = tmp_path / "stage"
    stage.mkdir()
    (stage / ".tmp-gpp.nc.abc123.nc").write_bytes(b"half a file")
    (stage / ".inflate-xyz.nc").write_bytes(b"half inflated")
    status = convert_to_stage(
        source, stage, VariableSpec("gpp", "gpp", "kg m-2 s-1"), "M", "S3", ilamb_check=False
    )
    assert status["status"] == "ok"
    assert sorted(p.name for p in stage.iterdir()) == ["gpp.nc", "status.json"]


def test_gzipped_source_and_a_replaced_source_are_followed(tmp_path):
    """A .nc.gz input converts; replacing it (with an older mtime, as rsync -t does) reconverts it."""
    from dataclasses import replace

    import netCDF4

    base = with_size(next(c for c in quirk_cases() if c.name == "cable_months_since"), 10.0, 1)
    case = replace(base, gzip=True)
    root = tmp_path / "TRENDYv13"
    source = write_case(case, root)
    config = workflow_config(root)
    config["trendy"].update(models=["CABLE-POP"], simulations=["S3"], ilamb_check=False)
    work = tmp_path / "work"
    work.mkdir()
    run_workflow(work, config, ["trendy_all"], extra=CORES)
    output = work / "results/trendy/MODELS/CABLE-POP_S3/gpp.nc"
    with netCDF4.Dataset(output) as ds:
        first = ds["gpp"][:]
    row = next(r for r in read_table(work / "results/trendy/conversions.tsv") if r["variable"] == "gpp")
    assert row["status"] == "ok" and row["source"].endswith("CABLE-POP_S3_gpp.nc.gz")

    # the modelling group re-uploads the file: twice the values, and an mtime older than our output
    newer = write_case(replace(case, to_source=lambda x, s: 2.0 * x), tmp_path / "upload")
    old = source.stat().st_mtime - 86400
    os.utime(newer, (old, old))
    os.replace(newer, source)
    run_workflow(work, config, ["trendy_all"], extra=CORES)
    with netCDF4.Dataset(output) as ds:
        second = ds["gpp"][:]
    assert np.ma.allclose(second, 2.0 * first, rtol=1e-6)
    again = next(r for r in read_table(work / "results/trendy/conversions.tsv") if r["variable"] == "gpp")
    assert again["source_sha256"] != row["source_sha256"]
