"""The foundation: config validation stops bad runs early, and the helpers every script shares."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from common import CommandError, atomic_open, config_errors, content_hash, run_command
from conftest import REPO, SLURM_QUICK, run_workflow, start_snakemake


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


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.timeout(120)  # without the timeout, the command below would run for 10 minutes
def test_run_command_times_out_and_kills_the_process_group(tmp_path):
    # The shell and its background child each write their pid once they run: after the timeout
    # both must be gone, the grandchild too (a kill of the shell alone would leave it running).
    script = f"sleep 600 & echo $! > {tmp_path}/child.pid; echo $$ > {tmp_path}/shell.pid; wait"
    with pytest.raises(CommandError, match="timed out"):
        run_command(["bash", "-c", script], timeout=1)
    pids = [int((tmp_path / name).read_text()) for name in ("shell.pid", "child.pid")]
    assert [pid for pid in pids if alive(pid)] == []
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


def test_lint_check_fails_when_snakemake_lint_does_not_lint(tmp_path):
    """tests/lint_check.sh passes the accepted lints only, and fails on a crash of the linter."""
    accepted = (
        "Lints for snakefile rules/af3.smk:\n    * Mixed rules and functions in same snakefile.:\n"
        "      Small one-liner functions used only once should be lambdas.\n"
    )
    cases = {
        "accepted": (accepted, 1, 0),
        "clean": ("", 0, 0),
        "other lint": (
            "Lints for snakefile rules/x.smk:\n    * No log directive defined for rule x.\n",
            1,
            1,
        ),
        "crash": ("Traceback (most recent call last):\nSyntaxError in file rules/x.smk\n", 1, 1),
        "crash, nothing said": ("", 1, 1),
        "lints then a crash": (accepted + "WorkflowError: boom\n", 1, 1),
    }
    for name, (output, rc, expected) in cases.items():
        fake = tmp_path / "snakemake"
        (tmp_path / "out.txt").write_text(output)
        fake.write_text(f"#!/bin/sh\ncat {tmp_path}/out.txt\nexit {rc}\n")
        fake.chmod(0o755)
        proc = subprocess.run([str(REPO / "tests/lint_check.sh"), str(fake)], capture_output=True, text=True)
        assert proc.returncode == expected, f"{name}: {proc.stdout}{proc.stderr}"


@pytest.mark.parametrize(
    "section, key, kind",
    [
        ({"af3": {"enabled": True, "source_root": "{missing}"}}, "af3.source_root", "directory"),
        ({"rnaseq": {"enabled": True, "samples": "{missing}"}}, "rnaseq.samples", "sample sheet"),
        ({"trendy": {"enabled": True, "root": "{missing}"}}, "trendy.root", "directory"),
        (
            {"dali": {"enabled": True, "input_dir": "{missing}", "protein_list": ""}},
            "dali.input_dir",
            "directory",
        ),
    ],
)
def test_a_missing_input_path_is_named_with_its_config_key(tmp_path, section, key, kind):
    missing = str(tmp_path / "no such dir" / "input")
    workflow = next(iter(section))
    config = {name: {"enabled": False} for name in ("af3", "rnaseq", "trendy", "llc", "dali")}
    config[workflow] = {
        k: v.format(missing=missing) if isinstance(v, str) else v for k, v in section[workflow].items()
    }
    proc = dry_run(tmp_path / "work", config)
    assert proc.returncode != 0
    assert f"config key '{key}': {kind} '{missing}' does not exist" in proc.stdout, proc.stdout[-3000:]
    assert not (tmp_path / "work" / "results").exists()


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


def fresh_copy(dest: Path) -> Path:
    """The repository's files as a fresh clone has them (tracked and not ignored), the venv linked."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for rel in filter(None, listed):
        source = REPO / rel
        if source.is_file() and not source.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)
    (dest / ".venv").symlink_to(Path(sys.executable).parents[1])
    return dest


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_make_demo_runs_every_workflow_and_reports_their_results(tmp_path):
    """`make demo` in a fresh copy: every enabled workflow finishes on the examples, and
    results/report.html holds each one's reported results."""
    clone = fresh_copy(tmp_path / "clone")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNAKEMAKE", "PYTEST", "HPCPIPE"))}
    # In its own process group, killed with its Snakemake if the test times out (conftest).
    make = start_snakemake(
        ["make", "demo"], cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    proc = subprocess.CompletedProcess(make.args, 0, make.communicate()[0])
    proc.returncode = make.returncode
    assert proc.returncode == 0, proc.stdout[-6000:]
    config = yaml.safe_load((clone / "config/config.yaml").read_text())
    enabled = [name for name in ("af3", "rnaseq", "trendy", "llc", "dali") if config[name].get("enabled")]
    assert enabled, "the bundled config enables no workflow"
    report = (clone / "results/report.html").read_text()
    for name in enabled:
        assert f"{name:7s} results/{name}/" in proc.stdout  # demo_summary's line
        reported = [p for p in (clone / "results" / name).rglob("*") if p.suffix in (".tsv", ".png")]
        assert reported, f"{name} wrote no table or plot"
        # The report names each workflow's category and embeds its reported files by name.
        assert name in report
    for table in ("confidences.tsv", "conversions.tsv"):
        if any(table in str(p) for p in (clone / "results").rglob(table)):
            assert table in report, f"the report lacks {table}"


@pytest.mark.slurm
@pytest.mark.parametrize("status_command", ["sacct", "squeue"])
def test_a_slurm_run_with_each_status_command_and_the_efficiency_report(
    slurm_cluster, tmp_path, status_command
):
    """profiles/slurm reads its jobs' fate from `sacct` (clusters with accounting, the profile's
    setting) or `squeue` (clusters without): a small af3 batch finishes with either, and the
    accounting records every job. With sacct, `--slurm-efficiency-report` lists each job with
    its rule, CPU efficiency and memory use."""
    from af3 import example_inputs

    source = tmp_path / "af3_output"
    example_inputs.make_tree(source, n_jobs=2, msa_depth=20, light=True, broken=False)
    config = {name: {"enabled": False} for name in ("rnaseq", "trendy", "llc", "dali")}
    config["af3"] = {"enabled": True, "source_root": str(source), "n_chunks": 2}
    extra = [*SLURM_QUICK, "--slurm-status-command", status_command, "--set-threads", "af3_organize_chunk=2"]
    if status_command == "sacct":
        extra += ["--slurm-efficiency-report", "--slurm-efficiency-report-path", str(tmp_path / "efficiency")]
    proc = run_workflow(tmp_path / "work", config, ["af3_all"], profile="slurm", extra=extra)
    run_id = re.search(r"SLURM run ID: (\S+)", proc.stdout)[1]
    accounted = subprocess.run(
        ["sacct", "-X", "-n", "-P", f"--name={run_id}", "--format=JobID,State,ExitCode,Elapsed,Comment"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert accounted, f"sacct knows no job of run {run_id}"
    for line in accounted:
        job_id, state, exit_code, elapsed, comment = line.split("|")
        assert (state, exit_code) == ("COMPLETED", "0:0"), line
        assert re.fullmatch(r"\d\d:\d\d:\d\d", elapsed) and "af3_" in comment, line
    if status_command == "squeue":
        return
    [report] = (tmp_path / "efficiency").glob(f"efficiency_report_{run_id}.csv")
    rows = list(csv.DictReader(report.open()))
    assert {row["MainJobID"] for row in rows} == {line.split("|")[0] for line in accounted}, rows
    for row in rows:
        assert "af3_" in row["RuleName"], row
        assert 0 <= float(row["CPU Efficiency (%)"]) and float(row["MaxRSS_MB"]) > 0, row
        assert float(row["RequestedMem_MB"]) > 0 and float(row["Memory Usage (%)"]) > 0, row


def test_a_finished_run_does_not_wait_for_a_pending_timer():
    """Snakemake leaves a 1 s rate-limit Timer waiting after its last scheduling round; the workflow's
    onsuccess/onerror handlers cancel such timers, so that the process exits when the run is over."""
    import threading

    from common import end_pending_timers

    fired = threading.Event()
    timer = threading.Timer(3600, fired.set)
    timer.start()
    end_pending_timers()
    timer.join(timeout=60)  # returns at once once cancelled; a live timer would still be waiting here
    assert not timer.is_alive() and not fired.is_set()


def test_validation_fills_each_missing_key_with_its_schema_default_in_the_same_pass():
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "workers": {"type": "integer", "default": 4},
            "limits": {
                "type": "object",
                "default": {},
                "properties": {"mem_mb": {"type": "integer", "default": 1000}, "tags": {"default": []}},
            },
        },
    }
    first, second = {"workers": 2}, {}
    assert config_errors(first, schema, fill_defaults=True) == []
    assert config_errors(second, schema, fill_defaults=True) == []
    assert first == {"workers": 2, "limits": {"mem_mb": 1000, "tags": []}}  # a nested default too
    second["limits"]["tags"].append("x")  # each config gets its own copy of a default
    assert schema["properties"]["limits"]["properties"]["tags"]["default"] == []
    bad = {"workers": "many"}
    assert config_errors(bad, schema, where="af3", fill_defaults=True) == [
        "af3 key 'workers': 'many' is not of type 'integer'"
    ]
    untouched = {}
    assert config_errors(untouched, schema) == [] and untouched == {}  # without the flag: validation only
