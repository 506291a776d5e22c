"""results/<workflow>/versions.yml: every library and tool, asked at run time (scripts/versions.py)."""

from __future__ import annotations

import subprocess

import yaml
from conftest import REPO, run_workflow
from versions import collect_versions, library_version, tool_version


def test_a_tool_reports_the_version_it_prints_itself():
    printed = subprocess.run(["rsync", "--version"], capture_output=True, text=True).stdout.split()
    # "rsync  version 3.2.7  protocol version 31": the word after the first "version"
    expected = printed[printed.index("version") + 1]
    found = tool_version(["rsync", "--version"])
    assert found["version"] == expected
    assert found["path"].endswith("/rsync")


def test_a_missing_tool_is_recorded_not_left_out():
    found = collect_versions("x", ["no-such-distribution-xyz"], {"nosuch": ["no-such-tool-xyz", "--version"]})
    assert found["tools"]["nosuch"]["version"] == "not found"
    assert found["libraries"]["no-such-distribution-xyz"] == "not installed"


def test_libraries_come_from_the_installed_distributions():
    import numpy

    assert library_version("numpy") == numpy.__version__
    found = collect_versions("trendy", ["netCDF4"], {})
    import netCDF4

    assert found["libraries"]["netCDF4 (netCDF-C)"] == netCDF4.__netcdf4libversion__
    assert found["snakemake"] == library_version("snakemake")


def test_each_enabled_workflow_writes_its_versions_file(tmp_path):
    """The default target plans versions.yml for each enabled workflow; the file holds what the tools say."""
    examples = REPO / "examples" / "dali"
    off = {name: {"enabled": False} for name in ["af3", "rnaseq", "trendy", "llc", "dali"]}
    dali = {
        "enabled": True,
        "input_dir": str(examples / "inputs"),
        "protein_list": str(examples / "proteins.txt"),
        "template_dir": str(examples / "ECOD70"),
    }
    plan = run_workflow(tmp_path, {**off, "dali": dali}, [], extra=["-n"])
    assert "results/dali/versions.yml" in plan.stdout
    assert "results/af3/versions.yml" not in plan.stdout  # a disabled workflow writes none
    run_workflow(tmp_path, {**off, "dali": dali}, ["results/dali/versions.yml"])
    record = yaml.safe_load((tmp_path / "results" / "dali" / "versions.yml").read_text())
    tm = subprocess.run(["TMalign", "-v"], capture_output=True, text=True).stdout
    assert record["tools"]["TMalign"]["version"] in tm
    assert record["workflow"] == "dali"
    assert record["snakemake-executor-plugin-slurm"] == library_version("snakemake-executor-plugin-slurm")
