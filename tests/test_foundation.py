"""The foundation: config validation stops bad runs early, and the helpers every script shares."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import yaml
from common import CommandError, atomic_open, config_errors, content_hash, run_command
from conftest import REPO, run_workflow


def dry_run(tmp_path, config, profile="local", targets=None):
    return run_workflow(tmp_path, config, targets or [], profile=profile, extra=["-n"], check=False)


@pytest.mark.parametrize(
    "config, expected",
    [
        # a typo inside a workflow section
        ({"dali": {"enabled": False, "enabeld": True}}, "dali key 'enabeld'"),
        # a typo at the top level
        ({"dalli": {"enabled": True}}, "config key 'dalli': unknown key; expected one of: af3, dali"),
        # a wrong type
        ({"af3": {"enabled": "yes"}}, "af3 key 'enabled': 'yes' is not of type 'boolean'"),
    ],
)
def test_bad_config_stops_before_any_job_naming_the_key(tmp_path, config, expected):
    proc = dry_run(tmp_path, config)
    assert proc.returncode != 0
    assert "invalid configuration" in proc.stdout
    assert expected in proc.stdout
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "section, bad, good, key",
    [
        ("trendy", {"models": ["CABLE-POP\n"]}, {"models": ["CABLE-POP"]}, "trendy key 'models.0'"),
        ("af3", {"n_chunks": "auto\n"}, {"n_chunks": "auto"}, "af3 key 'n_chunks'"),
    ],
)
def test_a_name_with_a_trailing_newline_is_refused(section, bad, good, key):
    # Python's `$` matches before a final newline; the schemas end their patterns with \Z.
    schema = REPO / "config" / "schemas" / f"{section}.schema.yaml"
    assert any(e.startswith(key) for e in config_errors(bad, schema, where=section))
    assert config_errors(good, schema, where=section) == []


def test_config_errors_lists_every_violation_with_its_key():
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"workers": {"type": "integer"}, "name": {"type": "string"}},
    }
    errors = config_errors({"workers": "many", "nmae": "x"}, schema, where="demo")
    assert any("demo key 'workers'" in e and "integer" in e for e in errors)
    assert any("demo key 'nmae': unknown key; expected one of: name, workers" in e for e in errors)
    assert config_errors({"workers": 3}, schema) == []


def test_atomic_open_leaves_nothing_when_the_writer_fails(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with atomic_open(target) as handle:
        handle.write("whole")
    assert target.read_text() == "whole"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_run_command_times_out_and_kills_the_process_group(tmp_path):
    marker = tmp_path / "still-running"
    start = time.monotonic()
    with pytest.raises(CommandError, match="timed out"):
        run_command(["bash", "-c", f"sleep 30 & sleep 30; touch {marker}"], timeout=1)
    assert time.monotonic() - start < 20
    assert not marker.exists()
    with pytest.raises(CommandError, match="exited 3"):
        run_command(["bash", "-c", "echo boom >&2; exit 3"])


def test_content_hash_is_stable_and_order_independent():
    assert content_hash({"a": 1, "b": [1, 2]}) == content_hash({"b": [1, 2], "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})


def test_profiles_set_greedy_scheduler_and_global_limits():
    local = yaml.safe_load((REPO / "profiles/local/config.yaml").read_text())
    slurm = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    for profile in (local, slurm):
        assert profile["scheduler"] == "greedy"
        assert profile["keep-going"] and profile["rerun-incomplete"]
        assert profile["resources"]["download_slots"] == 5
    assert slurm["executor"] == "slurm"
    assert os.path.isabs(slurm["shadow-prefix"])


def test_slurm_test_cluster_script_is_idempotent(slurm_cluster, tmp_path):
    script = REPO / "tests" / "slurm_cluster.sh"
    out = subprocess.run([str(script), "start"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "running"
    job = subprocess.run(
        ["sbatch", "--parsable", "--output", str(tmp_path / "%j.out"), "--wrap", "echo hello"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert job.isdigit()
    show = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, check=True)
    assert f"JobId={job}" in show.stdout


def test_config_switch_accepts_yaml_spelling_from_the_command_line(tmp_path):
    # `--config llc_promote=true` arrives as a string; it must read as the boolean switch
    proc = run_workflow(
        tmp_path, {"llc": {"enabled": False}}, [], extra=["-n", "--config", "llc_promote=true"]
    )
    assert "invalid configuration" not in proc.stdout
    proc = dry_run(tmp_path, {"llc": {"enabled": False}, "llc_promote": "maybe"})
    assert proc.returncode != 0
    assert "config key 'llc_promote'" in proc.stdout


def test_dry_run_on_the_slurm_profile_plans_every_workflow_and_submits_nothing(tmp_path):
    """`snakemake -n --profile profiles/slurm` on the bundled examples: jobs listed, no sbatch."""
    examples = REPO / "examples"
    if not examples.is_dir():
        subprocess.run(
            [sys.executable, str(REPO / "scripts/make_examples.py"), str(tmp_path / "examples")],
            check=True,
            capture_output=True,
        )
    else:
        (tmp_path / "examples").symlink_to(examples)
    # Every SLURM command on PATH records its call and fails instead of reaching a cluster.
    shims = tmp_path / "shims"
    shims.mkdir()
    calls = tmp_path / "slurm-calls.txt"
    for command in ("sbatch", "srun", "scancel", "squeue", "sacct", "sinfo", "scontrol"):
        shim = shims / command
        shim.write_text(f'#!/bin/sh\necho "{command} $*" >> {calls}\nexit 1\n')
        shim.chmod(0o755)
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    env_path = f"{shims}{os.pathsep}{os.environ['PATH']}"
    proc = run_workflow(tmp_path, config, [], profile="slurm", extra=["-n"], path=env_path)
    for rule in ("af3_discover", "rnaseq_quant", "trendy_convert", "llc_run_sampler", "dali_plan"):
        assert rule in proc.stdout, f"the dry run does not plan {rule}"
    # Read-only queries (the plugin reads `scontrol show config`) are fine; submissions are not.
    called = calls.read_text().splitlines() if calls.exists() else []
    submitted = [line for line in called if line.split()[0] in ("sbatch", "srun", "scancel")]
    assert submitted == [], f"a dry run reached SLURM: {submitted}"
    assert not (tmp_path / "results").exists()
