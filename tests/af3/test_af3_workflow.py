"""End-to-end runs of the af3 workflow on a generated AF3 output tree, with a real rclone remote.

The remote is `rclone serve sftp` on 127.0.0.1 (a free port, started and stopped here), reached
through a named remote in a throw-away rclone config, exactly as a user's own config would be.
"""

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from af3 import discover, example_inputs, seeds, upload
from af3.restore import restore_tree
from conftest import BIN, REPO, SLURM_QUICK, run_workflow, snakemake_env

N_JOBS = 14
SFTP_PASSWORD = "af3-loopback-secret"


def tree_digest(root: Path, with_meta: bool = True) -> dict[str, str]:
    """Path -> sha256 of content (plus mode and mtime for the source tree) of everything under root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            content = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
            out[rel] = f"{content} {st.st_mode} {st.st_mtime_ns}" if with_meta else content
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sftp_remote(tmp_path_factory):
    """A real rclone remote named `af3test` served on loopback; yields (remote dir, remote name)."""
    base = tmp_path_factory.mktemp("sftp")
    served = base / "served"
    served.mkdir()
    port = free_port()
    env = dict(os.environ, XDG_CACHE_HOME=str(base / "cache"))
    server = subprocess.Popen(
        [
            "rclone",
            "serve",
            "sftp",
            str(served),
            "--addr",
            f"127.0.0.1:{port}",
            "--user",
            "af3",
            "--pass",
            SFTP_PASSWORD,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    obscured = subprocess.run(
        ["rclone", "obscure", SFTP_PASSWORD], capture_output=True, text=True, check=True
    )
    config = base / "rclone.conf"
    config.write_text(
        f"[af3test]\ntype = sftp\nhost = 127.0.0.1\nport = {port}\nuser = af3\npass = {obscured.stdout.strip()}\n"
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RCLONE_CONFIG", str(config))
        mp.setenv("XDG_CACHE_HOME", str(base / "cache"))
        yield served, "af3test"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    outdir = tmp_path_factory.mktemp("af3examples")
    example_inputs.make(outdir, n_jobs=N_JOBS)
    return outdir / "af3_output"


def af3_config(source: Path, **af3) -> dict:
    cfg = {"af3": {"enabled": True, "source_root": str(source), "n_chunks": 4, **af3}}
    cfg.update({w: {"enabled": False} for w in ("rnaseq", "trendy", "llc", "dali")})
    return cfg


@pytest.fixture(scope="module")
def done(tmp_path_factory, source, sftp_remote):
    """One complete run, upload included; returns (workdir, source digest before, after)."""
    workdir = tmp_path_factory.mktemp("af3run")
    before = tree_digest(source)
    config = af3_config(source, upload={"remote": f"{sftp_remote[1]}:organized", "resume_after_hours": 0})
    proc = run_workflow(workdir, config, ["af3_all"], extra=["--cores", "2"])
    return workdir, before, tree_digest(source), proc.stdout


def complete_jobs(workdir: Path) -> pd.DataFrame:
    manifest = pd.read_csv(
        workdir / "results/af3/manifest/jobs.tsv", sep="\t", dtype=str, keep_default_na=False
    )
    return manifest[manifest["status"] == "complete"]


def test_source_tree_is_byte_identical_after_the_run(done):
    _, before, after, _ = done
    assert before == after


def test_organized_tree_holds_every_complete_job_and_nothing_else(done, source):
    workdir, *_ = done
    organized = workdir / "results/af3/organized"
    jobs = complete_jobs(workdir)
    assert len(jobs) == N_JOBS + 1  # plus the timestamped sibling
    for job in jobs.itertuples():
        dest = organized / job.group / job.job
        names = {p.name for p in dest.iterdir()}
        top = {p.name for p in (source / job.job).iterdir() if p.is_file()}
        assert names == top | {"seeds.tar.zst"}, job.job
        for name in top - {f"{job.prefix}_data.json"}:
            assert (dest / name).read_bytes() == (source / job.job / name).read_bytes()
    groups = {p.name for p in organized.iterdir()} - {"_msa_store", "_index"}
    assert groups == set(jobs["group"])
    bad = {
        "SETD6 spaced name",
        "SETD6..H3_dots",
        "_H3_no_group",
        "SETD6_H3_missing_model",
        "PRDM9_H3_msa_only",
    }
    assert not any((organized / g / b).exists() for g in groups for b in bad)


def test_every_data_json_restores_exactly(done, source, tmp_path):
    workdir, *_ = done
    written = restore_tree(workdir / "results/af3/organized", tmp_path)
    assert len(written) == len(complete_jobs(workdir))
    for path in written:
        job = path.parent.name
        assert path.read_bytes() == (source / job / path.name).read_bytes(), job
    # The command-line entry point, on one job.
    one = written[0].relative_to(tmp_path)
    out = tmp_path / "cli.json"
    subprocess.run(
        [
            str(BIN / "python"),
            str(REPO / "scripts/af3/restore.py"),
            str(workdir / "results/af3/organized" / one),
            "-o",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    assert out.read_bytes() == (source / one.parent.name / one.name).read_bytes()


def test_seed_archives_list_the_right_files(done, source):
    workdir, *_ = done
    for job in complete_jobs(workdir).itertuples():
        archive = workdir / "results/af3/organized" / job.group / job.job / "seeds.tar.zst"
        listed = seeds.list_archive(archive, source / job.job)
        expected = {
            str(p.relative_to(source / job.job)) for p in (source / job.job).glob("seed-*_sample-*/*")
        }
        assert {k for k, (kind, _) in listed.items() if kind == "file"} == expected


def test_table_rows_match_the_jobs(done, source):
    workdir, *_ = done
    table = pd.read_parquet(workdir / "results/af3/tables/confidences.parquet")
    tsv = pd.read_csv(workdir / "results/af3/tables/confidences.tsv", sep="\t")
    jobs = complete_jobs(workdir)
    assert sorted(table["job"]) == sorted(jobs["job"]) == sorted(tsv["job"])
    for row in table.itertuples():
        prefix = jobs.loc[jobs["job"] == row.job, "prefix"].item()
        summary = json.loads((source / row.job / f"{prefix}_summary_confidences.json").read_text())
        assert row.ranking_score == summary["ranking_score"]
        assert row.iptm == summary["iptm"]
        assert json.loads(row.chain_pair_iptm) == summary["chain_pair_iptm"]
    groups = pd.read_csv(workdir / "results/af3/tables/groups.tsv", sep="\t")
    assert groups.set_index("group").loc["overall", "jobs"] == len(jobs)
    assert groups.set_index("group").loc["PRDM9", "jobs"] == 0  # the empty group is listed
    assert (workdir / "results/af3/plots/ranking_scores.png").stat().st_size > 1000
    stats = json.loads((workdir / "results/af3/tables/archive_stats.json").read_text())
    assert stats["msa_distinct"] < stats["msa_values"]
    assert stats["msa_stored_bytes"] < stats["msa_raw_bytes"]


def test_each_bad_job_dir_gets_a_report_line(done):
    workdir, *_ = done
    problems = pd.read_csv(workdir / "results/af3/manifest/problems.tsv", sep="\t", dtype=str)
    reasons = dict(zip(problems["item"], problems["reason"], strict=True))
    assert "missing model file" in reasons["SETD6_H3_missing_model"]
    assert "truncated JSON" in reasons["RPL29_H4_truncated_summary"]
    assert "truncated JSON" in reasons["SMYD2_H3_truncated_data"]
    assert "unsafe job directory name" in reasons["SETD6 spaced name"]
    assert "unsafe job directory name" in reasons["SETD6..H3_dots"]
    assert "empty group" in reasons["_H3_no_group"]
    assert "no complete job" in reasons["group PRDM9"]
    summary = (workdir / "results/af3/SUMMARY.txt").read_text()
    assert "problems.tsv" in summary and "upload to af3test:organized" in summary


def test_upload_is_checked_clean_and_a_second_upload_sends_nothing(done, sftp_remote):
    workdir, *_ = done
    state = json.loads((workdir / "results/af3/upload/upload.json").read_text())
    organized = workdir / "results/af3/organized"
    n_files = sum(1 for p in organized.rglob("*") if p.is_file())
    assert state["files_transferred"] == n_files == state["files_checked"]
    check = subprocess.run(
        ["rclone", "check", str(organized), f"{sftp_remote[1]}:organized"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    again = upload.upload_tree(organized, f"{sftp_remote[1]}:organized", workdir / "up2", workdir / "logs2")
    assert again["files_transferred"] == 0 and again["check"] == "clean"
    logs = "".join(p.read_text() for p in (workdir / "logs/af3").rglob("*.log"))
    assert SFTP_PASSWORD not in logs


def test_quota_stop_is_a_state_and_a_rerun_resumes_without_resending(done, sftp_remote, tmp_path):
    workdir, *_ = done
    organized = workdir / "results/af3/organized"
    remote = f"{sftp_remote[1]}:quota-test"
    with pytest.raises(upload.QuotaReached, match="quota reached, resume after") as stop:
        upload.upload_tree(
            organized, remote, tmp_path / "state", tmp_path / "logs", max_transfer="1M", resume_after_hours=0
        )
    first = json.loads((tmp_path / "state/QUOTA_REACHED.json").read_text())
    assert first["reason"] == "max transfer limit reached" and first["files_transferred"] > 0
    assert str(first["files_transferred"]) in str(stop.value)
    rest = upload.upload_tree(organized, remote, tmp_path / "state", tmp_path / "logs", resume_after_hours=0)
    n_files = sum(1 for p in organized.rglob("*") if p.is_file())
    assert first["files_transferred"] + rest["files_transferred"] == n_files
    assert not (tmp_path / "state/QUOTA_REACHED.json").exists()


def test_quota_stop_fails_the_workflow_with_a_clear_message(done, source, sftp_remote):
    workdir, *_ = done
    config = af3_config(
        source,
        upload={"remote": f"{sftp_remote[1]}:quota-workflow", "max_transfer": "1M", "resume_after_hours": 24},
    )
    proc = run_workflow(workdir, config, ["af3_all"], extra=["--cores", "2"], check=False)
    assert proc.returncode != 0
    assert "quota reached, resume after" in proc.stdout
    # Before the resume time a rerun stops at once, without calling rclone.
    copy_log = workdir / "logs/af3/rclone/rclone-copy.log"
    sent = copy_log.stat().st_mtime_ns
    again = run_workflow(workdir, config, ["af3_all"], extra=["--cores", "2"], check=False)
    assert again.returncode != 0 and "quota reached, resume after" in again.stdout
    assert "delete results/af3/upload/QUOTA_REACHED.json to try earlier" in again.stdout
    assert copy_log.stat().st_mtime_ns == sent


def test_new_jobs_redo_only_their_chunks(tmp_path, source):
    src = tmp_path / "src"
    shutil.copytree(source, src, symlinks=True)
    workdir = tmp_path / "run"
    config = af3_config(src)
    run_workflow(workdir, config, ["af3_all"], extra=["--cores", "2"])
    states = {p.name: p.stat().st_mtime_ns for p in (workdir / "results/af3/state/chunks").iterdir()}
    new = example_inputs.job_specs(2, start=500)
    for spec in new:
        example_inputs.write_job(src, spec, msa_depth=100)
    touched = {f"chunk-{discover.chunk_of(s.dirname, 4)}.json" for s in new}
    assert touched < set(states)  # the test needs at least one untouched chunk
    proc = run_workflow(workdir, config, ["af3_all"], extra=["--cores", "2"])
    after = {p.name: p.stat().st_mtime_ns for p in (workdir / "results/af3/state/chunks").iterdir()}
    assert {name for name in states if after[name] != states[name]} == touched
    assert proc.stdout.count("rule af3_organize_chunk:") == len(touched)
    table = pd.read_csv(workdir / "results/af3/tables/confidences.tsv", sep="\t")
    assert {s.dirname for s in new} <= set(table["job"])
    dry = run_workflow(workdir, config, ["af3_all"], extra=["--cores", "2", "-n"])
    assert "Nothing to be done" in dry.stdout or "af3_organize_chunk" not in dry.stdout


def test_killed_organize_then_rerun_incomplete_equals_an_uninterrupted_run(tmp_path, source, done):
    workdir = tmp_path / "killed"
    workdir.mkdir()
    config = af3_config(source)
    (workdir / "test-config.yaml").write_text(json.dumps(config))
    cmd = [
        str(BIN / "snakemake"),
        "af3_all",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--profile",
        str(REPO / "profiles/local"),
        "--configfile",
        "test-config.yaml",
        "--cores",
        "1",
        "--set-threads",
        "af3_organize_chunk=1",
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=workdir,
        env=snakemake_env(),
        stdout=open(workdir / "killed-run.log", "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    markers = workdir / "results/af3/state/jobs"
    deadline = time.time() + 120
    while time.time() < deadline and not any(markers.glob("*/*.json")):
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    chunk_states = list((workdir / "results/af3/state/chunks").glob("*.json"))
    assert any(markers.glob("*/*.json")), (
        "the run never reached organize:\n" + (workdir / "killed-run.log").read_text()[-3000:]
    )
    assert len(chunk_states) < 4, "the run finished before it could be killed"
    assert not (workdir / "results/af3/SUMMARY.txt").exists()
    run_workflow(workdir, config, ["af3_all"], extra=["--cores", "2", "--unlock"])
    run_workflow(workdir, config, ["af3_all"], extra=["--cores", "2", "--rerun-incomplete"])
    reference = done[0] / "results/af3/organized"
    assert tree_digest(workdir / "results/af3/organized", with_meta=False) == tree_digest(
        reference, with_meta=False
    )
    for table in ("tables/confidences.tsv", "tables/groups.tsv", "manifest/problems.tsv"):
        assert (workdir / "results/af3" / table).read_bytes() == (
            done[0] / "results/af3" / table
        ).read_bytes()


@pytest.mark.slurm
def test_af3_runs_through_slurm(slurm_cluster, tmp_path):
    """Discovery and two chunks as real sbatch jobs; the table, plot and summary in the head."""
    src = tmp_path / "src"
    example_inputs.make_tree(src, n_jobs=3, msa_depth=100, broken=False)
    config = af3_config(src, n_chunks=2)
    proc = run_workflow(
        tmp_path / "run",
        config,
        ["af3_all"],
        profile="slurm",
        extra=SLURM_QUICK,
    )
    table = pd.read_csv(tmp_path / "run/results/af3/tables/confidences.tsv", sep="\t")
    assert sorted(table["job"]) == sorted(s.dirname for s in example_inputs.job_specs(3))
    # discover and 2 chunks go to SLURM; tabulate, plot and summary are local rules of the head.
    assert proc.stdout.count("has been submitted with SLURM jobid") == 3
