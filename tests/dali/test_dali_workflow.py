"""End-to-end runs of the dali workflow: local profile, SLURM profile, and bad inputs."""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import SLURM_QUICK, run_workflow, snakemake_command, snakemake_env
from dali import example_inputs

FAKE_DALI = Path(__file__).parent / "fake_dalilite" / "dali.pl"
OTHERS_OFF = {name: {"enabled": False} for name in ("af3", "rnaseq", "trendy", "llc")}


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    root = tmp_path_factory.mktemp("dali-wf-examples")
    example_inputs.make(root)
    return root


def dali_config(examples, proteins, aligner="dali", **extra):
    listing = examples / f"list-{'-'.join(proteins)}.txt"
    listing.write_text("\n".join(proteins) + "\n")
    section = {
        "enabled": True,
        "input_dir": str(examples / "inputs"),
        "protein_list": str(listing),
        "template_dir": str(examples / "ECOD70"),
        "aligner": aligner,
        "dali_pl": str(FAKE_DALI),
        **extra,
    }
    return {"dali": section, **OTHERS_OFF}


def aligner_dirs(log: Path) -> list[str]:
    return [line.split(" ", 1)[0] for line in log.read_text().splitlines()]


def test_local_run_keeps_every_temporary_file_on_scratch(examples, tmp_path, monkeypatch):
    work, scratch = tmp_path / "work", tmp_path / "node-scratch"
    calls = tmp_path / "dali-calls.log"
    monkeypatch.setenv("FAKE_DALI_LOG", str(calls))
    proteins = list(example_inputs.QUERIES)
    run_workflow(work, dali_config(examples, proteins), ["dali_all"], extra=["--shadow-prefix", str(scratch)])
    for protein in proteins:
        hits = (work / "results/dali" / f"{protein}_iterativdDali_hits").read_text()
        assert hits.startswith(">") and "\nrotation\t" in hits
        done = json.loads((work / "results/dali" / f"{protein}.iterativeDali.done").read_text())
        assert done["aligner"] == "dali" and done["hits"] >= 2
        assert done["candidate_dir"].startswith(str(scratch / "shadow"))
    # DaliLite ran only in per-candidate directories under the scratch prefix, never in the work tree
    dirs = aligner_dirs(calls)
    assert dirs and all(d.startswith(str(scratch / "shadow") + "/") and d.endswith("/run") for d in dirs)
    assert not any(str(work) in d for d in dirs)
    assert list((scratch / "shadow").iterdir()) == []  # Snakemake removed the shadow dirs
    assert not list(work.rglob("run")) and not list(work.rglob("*.dccp"))
    assert len(list((scratch / "dali-template-cache").glob("*/*.pdb"))) == len(example_inputs.TEMPLATES) - 1
    summary = (work / "results/dali/SUMMARY.txt").read_text()
    assert "dali_summary.tsv" in summary and "proteins: 4" in summary


def test_one_bad_protein_fails_alone(examples, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    good, bad = "AF-EXCYT2-F1", "AF-NOCHAIN-F1"
    for suffix in (".pdb", "_hits4Dali"):
        (inputs / f"{good}{suffix}").write_bytes((examples / "inputs" / f"{good}{suffix}").read_bytes())
    lines = (examples / "inputs" / f"{good}.pdb").read_text().splitlines()
    (inputs / f"{bad}.pdb").write_text(
        "\n".join(x[:21] + " " + x[22:] if x.startswith("ATOM") else x for x in lines)
    )
    (inputs / f"{bad}_hits4Dali").write_bytes((examples / "inputs" / f"{good}_hits4Dali").read_bytes())
    config = dali_config(examples, [good, bad])
    config["dali"]["input_dir"], config["dali"]["protein_list"] = str(inputs), ""
    proc = run_workflow(
        tmp_path / "work", config, ["dali_all"], extra=["--shadow-prefix", str(tmp_path / "s")], check=False
    )
    assert proc.returncode != 0
    assert (tmp_path / "work/results/dali" / f"{good}_iterativdDali_hits").exists()
    assert not (tmp_path / "work/results/dali" / f"{bad}_iterativdDali_hits").exists()
    log = (tmp_path / "work/logs/dali/batch-000.log").read_text()
    assert f"protein {bad} failed" in log and "no chain identifier" in log and f"{bad}.pdb" in log
    # the failure reaches the terminal, the table and the marker say why, and the next run will
    # run the batch again (its state is removed)
    assert f"protein {bad} failed" in proc.stdout and "no chain identifier" in proc.stdout
    table = (tmp_path / "work/results/dali/dali_summary.tsv").read_text()
    assert f"{bad}\tfailed\t" in table and f"{good}\tok\t" in table
    marker = json.loads((tmp_path / "work/results/dali" / f"{bad}.iterativeDali.done").read_text())
    assert marker["status"] == "failed" and "no chain identifier" in marker["error"]
    assert not (tmp_path / "work/results/dali/batches/batch-000.json").exists()
    # fixed input: the rerun redoes only the bad protein and the run ends clean
    (inputs / f"{bad}.pdb").write_bytes((examples / "inputs" / f"{good}.pdb").read_bytes())
    good_hits = tmp_path / "work/results/dali" / f"{good}_iterativdDali_hits"
    before = good_hits.stat().st_mtime_ns
    run_workflow(tmp_path / "work", config, ["dali_all"], extra=["--shadow-prefix", str(tmp_path / "s")])
    assert (tmp_path / "work/results/dali" / f"{bad}_iterativdDali_hits").exists()
    assert good_hits.stat().st_mtime_ns == before
    assert "1 done before (skipped), 1 to run" in (tmp_path / "work/logs/dali/batch-000.log").read_text()
    assert (tmp_path / "work/results/dali/dali_check.txt").exists()


def test_hostile_protein_name_is_rejected_before_any_job(examples, tmp_path):
    config = dali_config(examples, ["AF-EXCYT2-F1"])
    Path(config["dali"]["protein_list"]).write_text("AF-EXCYT2-F1\n../../etc/evil\n")
    proc = run_workflow(tmp_path, config, ["dali_all"], extra=["-n"], check=False)
    assert proc.returncode != 0
    assert "protein names must match" in proc.stdout and "../../etc/evil" in proc.stdout
    assert not (tmp_path / "results").exists()


def test_dali_aligner_without_dali_pl_names_the_key(examples, tmp_path):
    config = dali_config(examples, ["AF-EXCYT2-F1"], dali_pl="")
    proc = run_workflow(tmp_path, config, ["dali_all"], extra=["-n"], check=False)
    assert proc.returncode != 0 and "dali.dali_pl" in proc.stdout


@pytest.mark.slurm
def test_slurm_and_local_give_the_same_bytes_with_scratch_on_the_node(
    examples, tmp_path, monkeypatch, slurm_cluster
):
    proteins = ["AF-EXCYT2-F1", "AF-EXCYT1-F1"]
    calls = tmp_path / "dali-calls.log"
    monkeypatch.setenv("FAKE_DALI_LOG", str(calls))
    scratch = tmp_path / "node-scratch"
    config = dali_config(examples, proteins)
    run_workflow(tmp_path / "local", config, ["dali_all"], extra=["--shadow-prefix", str(scratch)])
    local_dirs = aligner_dirs(calls)
    calls.unlink()
    proc = run_workflow(
        tmp_path / "slurm",
        config,
        ["dali_all"],
        profile="slurm",
        extra=[*SLURM_QUICK, "--shadow-prefix", str(scratch)],
    )
    for protein in proteins:
        name = f"{protein}_iterativdDali_hits"
        assert (tmp_path / "slurm/results/dali" / name).read_bytes() == (
            tmp_path / "local/results/dali" / name
        ).read_bytes()
    # the jobs went through sbatch: the head process names the SLURM job, the job saw its id
    job_ids = set(re.findall(r"SLURM jobid (\d+)", proc.stdout))
    assert job_ids, proc.stdout[-3000:]
    for protein in proteins:
        done = json.loads((tmp_path / "slurm/results/dali" / f"{protein}.iterativeDali.done").read_text())
        assert done["slurm_job_id"] in job_ids
    # both proteins shared one submission (one batch)
    assert len(job_ids) == 1
    show = subprocess.run(["scontrol", "show", "job", job_ids.pop()], capture_output=True, text=True).stdout
    assert "hpcpipe" in show and str(tmp_path / "slurm") in show
    slurm_dirs = aligner_dirs(calls)
    for dirs in (local_dirs, slurm_dirs):
        assert dirs and all(d.startswith(str(scratch / "shadow") + "/") for d in dirs)
    assert list((scratch / "shadow").iterdir()) == []
    assert not list((tmp_path / "slurm").rglob("*.dccp"))


def test_the_default_aligner_tmalign_runs_through_snakemake(examples, tmp_path):
    """aligner: tmalign (the default) end to end: TM-scores in DPAM's format, one hit per domain at least."""
    proteins = list(example_inputs.QUERIES)
    config = dali_config(examples, proteins, aligner="tmalign", dali_pl="")
    run_workflow(tmp_path / "work", config, ["dali_all"], extra=["--shadow-prefix", str(tmp_path / "s")])
    out = tmp_path / "work/results/dali"
    for protein in proteins:
        headers = [
            line.split("\t") for line in (out / f"{protein}_iterativdDali_hits").read_text().splitlines()
        ]
        headers = [h for h in headers if h[0].startswith(">")]
        assert len(headers) >= 2, protein
        assert all(h[1].startswith("TM=") and float(h[1][3:]) >= 0.5 for h in headers)
        done = json.loads((out / f"{protein}.iterativeDali.done").read_text())
        assert done["aligner"] == "tmalign" and done["status"] == "ok" and done["hits"] == len(headers)
    assert (out / "dali_check.txt").read_text().startswith(f"{len(proteins)} proteins")


def test_a_killed_batch_resumes_and_redoes_only_the_proteins_in_flight(examples, tmp_path, monkeypatch):
    """SIGKILL to the whole run (head, job, protein processes) once a protein is done; the rerun
    skips the proteins whose markers were written and aligns only the others."""
    proteins = list(example_inputs.QUERIES)
    work, scratch, results = tmp_path / "work", tmp_path / "scratch", tmp_path / "work/results/dali"
    monkeypatch.setenv("FAKE_DALI_DELAY", "0.5")
    monkeypatch.setenv("FAKE_DALI_LOG", str(tmp_path / "calls-killed.log"))
    config = dali_config(examples, proteins)
    one_at_a_time = ["--shadow-prefix", str(scratch), "--set-resources", "dali_batch:dali_workers=1"]
    cmd = snakemake_command(work, config, ["dali_all"], extra=one_at_a_time)
    head = subprocess.Popen(
        cmd,
        cwd=work,
        env=snakemake_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not list(results.glob("*.iterativeDali.done")):  # the state: one protein finished
        assert head.poll() is None, "the run ended before a protein finished"
        assert time.monotonic() < deadline, "no protein finished within 300 s"
        time.sleep(0.1)
    os.killpg(head.pid, signal.SIGKILL)
    head.wait()
    finished = {p.name.removesuffix(".iterativeDali.done") for p in results.glob("*.iterativeDali.done")}
    assert 1 <= len(finished) < len(proteins)
    mtimes = {p: (results / f"{p}_iterativdDali_hits").stat().st_mtime_ns for p in finished}
    assert list((scratch / "shadow").iterdir()), "the killed job left its shadow directory"

    monkeypatch.setenv("FAKE_DALI_LOG", str(tmp_path / "calls-rerun.log"))
    run_workflow(work, config, ["dali_all"], extra=["--unlock"])
    run_workflow(work, config, ["dali_all"], extra=one_at_a_time)
    rerun_dirs = aligner_dirs(tmp_path / "calls-rerun.log")
    aligned = {Path(d).parts[-3] for d in rerun_dirs}  # <shadow>/c/<protein>/<uid>/run
    assert aligned == set(proteins) - finished
    assert all((results / f"{p}_iterativdDali_hits").stat().st_mtime_ns == mtimes[p] for p in finished)
    log = (work / "logs/dali/batch-000.log").read_text()
    assert f"{len(proteins)} proteins, {len(finished)} done before (skipped)" in log
    assert list((scratch / "shadow").iterdir()) == []  # the dead job's directory was cleaned
    assert (results / "dali_check.txt").exists()
