"""ILAMB's own ilamb-run scores every converted model run: the proof that the files are ILAMB-ready.

A small TRENDY tree (CABLE-POP S0 and S3 with land fraction and cell area, ISAM on 0..360 with its
own time encoding, and a model whose gpp is 1000 times too large under the right unit label)
goes through the whole workflow; ILAMB scores them against a synthetic reference of the truth.
"""

import csv
import math
from dataclasses import replace

import pytest
import yaml
from conftest import REPO, run_workflow
from trendy.synthetic import quirk_cases, with_size, write_benchmarks, write_case, write_static

CORES = ["--cores", "2"]


def read_tsv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.fixture(scope="module")
def ilamb_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trendy_ilamb")
    root = tmp / "TRENDYv13"
    cases = {case.name: case for case in quirk_cases()}
    cable = with_size(cases["cable_months_since"], 10.0, 2)
    for simulation in ["S0", "S3"]:
        write_case(replace(cable, simulation=simulation), root)
        write_static(root, "CABLE-POP", "CABLE-POP", simulation, "land_fraction", 10.0, percent=True)
    write_static(root, "CABLE-POP", "CABLE-POP", "S3", "areacella", 10.0)
    write_case(with_size(cases["isam_month_as_ymd_lon360"], 10.0, 2), root)
    # 1000x: grams written under a kilogram label, the slip no converter can see
    write_case(replace(cable, model="SHIFTED", prefix="SHIFTED", to_source=lambda x, s: x * 1000.0), root)
    benchmarks = write_benchmarks(tmp / "ilamb", ["gpp"], first_year=1700, n_years=2)
    section = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["trendy"]
    # ilamb-run itself reads every file here: the per-file read-back would only repeat it
    section.update(
        root=str(root), models=["CABLE-POP", "ISAM", "SHIFTED"], simulations=["S0", "S3"], ilamb_check=False
    )
    section["ilamb"] = {**section["ilamb"], "config": str(benchmarks), "data_root": str(tmp / "ilamb")}
    workdir = tmp / "work"
    workdir.mkdir()
    proc = run_workflow(workdir, {"trendy": section}, ["trendy_all"], extra=CORES)
    return workdir / "results" / "trendy", proc


def overall(scores, model):
    values = [float(r["value"]) for r in scores if r["model"] == model]
    return sum(values) / len(values)


def test_every_model_run_is_scored_with_finite_values(ilamb_run):
    results, _ = ilamb_run
    scores = read_tsv(results / "ilamb" / "scores.tsv")
    runs = {"CABLE-POP_S0", "CABLE-POP_S3", "ISAM_S3", "SHIFTED_S3"}
    assert {r["model"] for r in scores} == runs
    for model in runs:
        values = [float(r["value"]) for r in scores if r["model"] == model]
        assert values and all(math.isfinite(v) for v in values), (model, values)
    # ILAMB's own database, not only our copy of it
    with open(results / "ilamb" / "build" / "scalar_database.csv") as handle:
        assert runs <= {row["Model"] for row in csv.DictReader(handle)}
    assert (results / "ilamb" / "build" / "index.html").is_file()
    assert {r["model"]: r["in_ilamb"] for r in read_tsv(results / "ilamb" / "models.tsv")} == dict.fromkeys(
        runs, "yes"
    )
    assert "every model run scored by ILAMB" in (results / "check.txt").read_text()


def test_a_model_off_by_1000x_scores_worse(ilamb_run):
    results, _ = ilamb_run
    scores = read_tsv(results / "ilamb" / "scores.tsv")
    assert overall(scores, "SHIFTED_S3") < overall(scores, "CABLE-POP_S3") - 0.1
    bias = {r["model"]: float(r["value"]) for r in scores if r["score"] == "Bias Score"}
    assert bias["SHIFTED_S3"] < 0.5 < bias["CABLE-POP_S3"]


def test_model_setup_lists_each_model_and_simulation_with_its_directory(ilamb_run):
    results, _ = ilamb_run
    lines = [
        line.split(", ")
        for line in (results / "ilamb" / "model_setup.txt").read_text().splitlines()
        if not line.startswith("#")
    ]
    assert {name for name, _ in lines} == {"CABLE-POP_S0", "CABLE-POP_S3", "ISAM_S3", "SHIFTED_S3"}
    assert all(path.endswith(f"results/trendy/MODELS/{name}") for name, path in lines)
    # the static fields were published beside the fluxes, where ILAMB looks for them
    assert (results / "MODELS" / "CABLE-POP_S3" / "sftlf.nc").is_file()
    assert (results / "MODELS" / "CABLE-POP_S3" / "areacella.nc").is_file()
