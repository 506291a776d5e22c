"""End-to-end runs of the af3 workflow on a generated AF3 output tree, with a real rclone remote.

The remote is `rclone serve sftp` on 127.0.0.1 (a free port, started and stopped here), reached
through a named remote in a throw-away rclone config, exactly as a user's own config would be.
"""

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import batches
import pandas as pd
import pytest
from af3 import example_inputs, seeds, upload
from af3.restore import organized_jobs, restore_job, restore_tree, tree_differences
from conftest import BIN, REPO, SLURM_QUICK, run_workflow, snakemake_env

N_JOBS = 14
SFTP_PASSWORD = "af3-loopback-secret"
RESERVED = {"_msa_store", "_index", "_partial", "_reports"}


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
def sftp_server(tmp_path_factory):
    """A real rclone remote named `af3test` served on loopback; yields (remote dir, remote name, env).

    ``env`` (RCLONE_CONFIG, XDG_CACHE_HOME) is applied per test by :func:`sftp_remote`, never to
    the whole module: other tests' Snakemake jobs must not see it.
    """
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
    yield served, "af3test", {"RCLONE_CONFIG": str(config), "XDG_CACHE_HOME": str(base / "cache")}
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def sftp_remote(sftp_server, monkeypatch):
    """The loopback remote, with its rclone config in this test's environment only."""
    for key, value in sftp_server[2].items():
        monkeypatch.setenv(key, value)
    return sftp_server[:2]


@contextlib.contextmanager
def with_remote_env(sftp_server):
    """The remote's rclone config in the environment for the block only (module-scoped fixtures)."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in sftp_server[2].items():
            mp.setenv(key, value)
        yield


def copy_run(done_workdir: Path, dest: Path) -> Path:
    """A copy of the shared run's workdir (results, logs, Snakemake's metadata) for a test to change."""
    shutil.copytree(done_workdir, dest, symlinks=True)
    return dest


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
def done(tmp_path_factory, source, sftp_server):
    """One complete run, upload included; returns (workdir, source digest before, after, output).

    Shared by several tests: they only read it (a test that reruns works on a copy, :func:`copy_run`).
    """
    workdir = tmp_path_factory.mktemp("af3run")
    before = tree_digest(source)
    config = af3_config(source, upload={"remote": f"{sftp_server[1]}:organized", "resume_after_hours": 0})
    with with_remote_env(sftp_server):
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
    assert len(jobs) == N_JOBS  # the timestamped sibling is the job; the unsuffixed dir its duplicate
    for job in jobs.itertuples():
        dest = organized / job.group / job.job
        names = {p.name for p in dest.iterdir()}
        top = {p.name for p in (source / job.job).iterdir() if p.is_file()}
        assert names == top | {"seeds.tar.zst"}, job.job
        for name in top - {f"{job.prefix}_data.json"}:
            assert (dest / name).read_bytes() == (source / job.job / name).read_bytes()
    groups = {p.name for p in organized.iterdir()} - RESERVED
    assert groups == set(jobs["group"])
    assert not any((organized / "_partial").rglob("*"))  # no job left half-organized
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
        assert json.loads(row.chain_ptm) == summary["chain_ptm"]
        assert json.loads(row.chain_pair_pae_min) == summary["chain_pair_pae_min"]
    samples = pd.read_csv(workdir / "results/af3/tables/samples.tsv", sep="\t")
    for job in jobs.itertuples():
        name = f"{job.prefix}_ranking_scores.csv" if job.layout == "v3.0.2" else "ranking_scores.csv"
        ranking = pd.read_csv(source / job.job / name)
        mine = samples[samples["job"] == job.job]
        assert sorted(zip(mine["seed"], mine["sample"], mine["ranking_score"], strict=True)) == sorted(
            zip(ranking["seed"], ranking["sample"], ranking["ranking_score"], strict=True)
        )
        assert mine.loc[mine["best"] == 1, "ranking_score"].max() == ranking["ranking_score"].max()
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
    assert "same job as SETD6_RPL29_K4me1_00000_20250301_101500" in reasons["SETD6_RPL29_K4me1_00000"]
    summary = (workdir / "results/af3/SUMMARY.txt").read_text()
    assert "problems.tsv" in summary and "upload to af3test:organized" in summary


def test_groups_fold_case_into_one_upper_case_group(done):
    """The examples mix v3.0.2's KMT5A_... with v3.0.1's kmt5a_...: one group each, shown in upper case."""
    workdir, *_ = done
    jobs = complete_jobs(workdir)
    assert {j.lower() for j in jobs["job"] if j.startswith("kmt5a_")}  # the examples hold both spellings
    assert {j for j in jobs["job"] if j.startswith("KMT5A_")}
    groups = pd.read_csv(workdir / "results/af3/tables/groups.tsv", sep="\t", dtype=str)
    assert "kmt5a" not in set(groups["group"]) and "smyd2" not in set(groups["group"])
    n_kmt5a = sum(j.lower().startswith("kmt5a_") for j in jobs["job"])
    assert int(groups.set_index("group").loc["KMT5A", "jobs"]) == n_kmt5a
    summary = (workdir / "results/af3/SUMMARY.txt").read_text()
    assert f"KMT5A ({n_kmt5a} jobs)" in summary


def uploadable_files(organized: Path) -> int:
    return sum(
        1 for p in organized.rglob("*") if p.is_file() and "_partial" not in p.relative_to(organized).parts
    )


def test_upload_is_checked_clean_and_a_second_upload_sends_nothing(done, sftp_remote, tmp_path):
    workdir, *_ = done
    state = json.loads((workdir / "results/af3/upload/upload.json").read_text())
    organized = workdir / "results/af3/organized"
    n_files = uploadable_files(organized)
    assert state["files_transferred"] == n_files == state["files_checked"]
    # The reports travel with the tree.
    served = sftp_remote[0] / "organized" / "_reports"
    for name in ("confidences.tsv", "samples.tsv", "groups.tsv", "problems.tsv", "failed.tsv", "SUMMARY.txt"):
        assert (served / name).is_file(), name
    assert (served / "SUMMARY.txt").read_bytes() == (workdir / "results/af3/SUMMARY.txt").read_bytes()
    check = subprocess.run(
        ["rclone", "check", str(organized), f"{sftp_remote[1]}:organized"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    again = upload.upload_tree(organized, f"{sftp_remote[1]}:organized", tmp_path / "up2", tmp_path / "logs2")
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
    n_files = uploadable_files(organized)
    assert first["files_transferred"] + rest["files_transferred_this_run"] == n_files
    assert rest["files_transferred"] == n_files  # the total across the stopped and the resumed run
    assert not (tmp_path / "state/QUOTA_REACHED.json").exists()


def test_quota_stop_fails_the_workflow_with_a_clear_message(done, source, sftp_remote, tmp_path):
    workdir = copy_run(done[0], tmp_path / "run")
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
    touched = {f"chunk-{batches.batch_of(s.dirname, 4)}.json" for s in new}
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
    reference = tree_digest(done[0] / "results/af3/organized", with_meta=False)
    reference = {k: v for k, v in reference.items() if not k.startswith("_reports")}  # sent by the upload
    assert tree_digest(workdir / "results/af3/organized", with_meta=False) == reference
    for table in ("tables/confidences.tsv", "tables/groups.tsv", "manifest/problems.tsv"):
        assert (workdir / "results/af3" / table).read_bytes() == (
            done[0] / "results/af3" / table
        ).read_bytes()


def test_every_job_restores_whole_and_byte_identical(done, source, tmp_path):
    """restore.py --job / --all rebuild each job dir flat as AF3 wrote it: same files, same bytes."""
    workdir, *_ = done
    organized = workdir / "results/af3/organized"
    jobs = organized_jobs(organized)
    assert set(jobs) == set(complete_jobs(workdir)["job"])
    for name, job_dir in jobs.items():
        restored = restore_job(job_dir, tmp_path / "all")
        assert tree_differences(source / name, restored) == [], name
        assert tree_digest(source / name, with_meta=False) == tree_digest(restored, with_meta=False)
    name = sorted(jobs)[0]
    cli = [str(BIN / "python"), str(REPO / "scripts/af3/restore.py"), "--organized", str(organized)]
    subprocess.run([*cli, "--job", name, "-o", str(tmp_path / "one")], check=True, capture_output=True)
    assert tree_differences(source / name, tmp_path / "one" / name) == []
    proc = subprocess.run(
        [*cli, "--job", "no_such_job", "-o", str(tmp_path / "x")], capture_output=True, text=True
    )
    assert proc.returncode != 0 and "not organized" in proc.stderr


def test_verify_rule_reports_every_job_identical_and_names_a_damaged_one(done, source, tmp_path):
    workdir = copy_run(done[0], tmp_path / "run")
    config = af3_config(source)
    run_workflow(workdir, config, ["af3_verify"], extra=["--cores", "2"])
    report = pd.read_csv(
        workdir / "results/af3/verify/verify.tsv", sep="\t", dtype=str, keep_default_na=False
    )
    assert set(report["job"]) == set(complete_jobs(workdir)["job"])
    assert set(report["status"]) == {"ok"}
    # A damaged organized copy is named (the verify rule reruns when the tree is tabulated again).
    job = report.iloc[0]
    model = next((workdir / "results/af3/organized" / job.group / job.job).glob("*_model.cif"))
    model.write_bytes(model.read_bytes() + b"#")
    run_workflow(workdir, config, ["af3_verify"], extra=["--cores", "2", "--forcerun", "af3_verify"])
    report = pd.read_csv(
        workdir / "results/af3/verify/verify.tsv", sep="\t", dtype=str, keep_default_na=False
    )
    bad = report[report["status"] != "ok"]
    assert list(bad["job"]) == [job.job] and model.name in bad["detail"].item()


def test_one_bad_job_fails_alone_the_rest_is_tabulated_uploaded_and_the_next_run_retries_it(
    tmp_path, source, sftp_remote
):
    """The issue's case: a _data.json with invalid UTF-8 passes discovery and fails in organize."""
    src = tmp_path / "src"
    shutil.copytree(source, src, symlinks=True)
    jobs = [s.dirname for s in example_inputs.job_specs(N_JOBS)]
    bad = jobs[3]
    data_json = next((src / bad).glob("*_data.json"))
    original = data_json.read_bytes()
    data_json.write_bytes(original[:100] + b"\xff\xfe" + original[100:])
    workdir = tmp_path / "run"
    config = af3_config(src, upload={"remote": f"{sftp_remote[1]}:isolation", "resume_after_hours": 0})
    proc = run_workflow(workdir, config, ["af3_all"], extra=["--cores", "2"], check=False)
    assert proc.returncode != 0
    assert f"{bad}: {data_json}: UnicodeDecodeError" in proc.stdout  # job, file and reason
    results = workdir / "results/af3"
    table = pd.read_csv(results / "tables/confidences.tsv", sep="\t")
    good = set(complete_jobs(workdir)["job"]) - {bad}
    assert set(table["job"]) == good
    failed = pd.read_csv(results / "manifest/failed.tsv", sep="\t", dtype=str)
    assert list(failed["item"]) == [bad] and list(failed["status"]) == ["failed"]
    assert failed["file"].item() == str(data_json)
    assert (
        f"FAILED in organize, left out of the tables and the upload (1): {bad}"
        in (results / "SUMMARY.txt").read_text()
    )
    # Nothing of the failed job looks organized or reaches the remote; every other job does.
    served = sftp_remote[0] / "isolation"
    assert not any(
        p.name == bad for p in (results / "organized").glob("*/*") if p.parent.name not in RESERVED
    )
    assert not any(bad in str(p) for p in served.rglob("*"))
    assert {p.name for p in served.glob("*/*") if p.parent.name not in RESERVED} == good
    assert json.loads((results / "upload/upload.json").read_text())["check"] == "clean"

    # Still broken: the next run retries exactly that job (the others are skipped by their markers).
    again = run_workflow(workdir, config, ["af3_all"], extra=["--cores", "2"], check=False)
    assert again.returncode != 0 and again.stdout.count("rule af3_organize_chunk:") == 1
    assert "1 failed" in again.stdout and " 0 organized" in again.stdout
    # Repaired: it is organized, tabulated and uploaded; the run succeeds.
    data_json.write_bytes(original)
    fixed = run_workflow(workdir, config, ["af3_all"], extra=["--cores", "2"])
    assert fixed.stdout.count("rule af3_organize_chunk:") == 1 and "1 organized" in fixed.stdout
    assert bad in set(pd.read_csv(results / "tables/confidences.tsv", sep="\t")["job"])
    assert any(p.name == bad for p in served.glob("*/*"))
    assert len(pd.read_csv(results / "manifest/failed.tsv", sep="\t")) == 0

    # A job removed from the source is reported as gone, out of the tables; its organized copy stays.
    gone = jobs[5]
    shutil.rmtree(src / gone)
    run_workflow(workdir, config, ["af3_all"], extra=["--cores", "2"])
    failed = pd.read_csv(results / "manifest/failed.tsv", sep="\t", dtype=str)
    assert list(zip(failed["item"], failed["status"], strict=True)) == [(gone, "gone")]
    assert gone not in set(pd.read_csv(results / "tables/confidences.tsv", sep="\t")["job"])


def test_upload_reruns_when_its_content_changes_not_when_the_root_does(done, source, sftp_remote, tmp_path):
    workdir = copy_run(done[0], tmp_path / "run")
    src = tmp_path / "src"
    shutil.copytree(source, src, symlinks=True)
    # The same tree at a new path: a config change reruns discovery, and upload, once; then settle.
    config = af3_config(src, upload={"remote": f"{sftp_remote[1]}:content", "resume_after_hours": 0})
    run_workflow(workdir, config, ["af3_all"], extra=["--cores", "2"])
    copy_log = workdir / "logs/af3/rclone/rclone-copy.log"
    sent = copy_log.stat().st_mtime_ns
    # The root's mtime changes and an unfinished job moves on: discovery runs again, and nothing that
    # would be uploaded changed (the unfinished job is still listed with the same reason).
    (src / "scratch.tmp").write_text("x")
    (src / "scratch.tmp").unlink()
    (src / "PRDM9_H3_msa_only" / "seed-1_sample-0").mkdir()
    proc = run_workflow(workdir, config, ["af3_all"], extra=["--cores", "2"])
    assert "checkpoint af3_discover:" in proc.stdout and "checkpoint af3_summary:" in proc.stdout
    assert "rule af3_upload:" not in proc.stdout and copy_log.stat().st_mtime_ns == sent
    # A job finishes: the upload sends it.
    example_inputs.write_job(src, example_inputs.job_specs(1, start=700)[0], msa_depth=50)
    proc = run_workflow(workdir, config, ["af3_all"], extra=["--cores", "2"])
    assert "rule af3_upload:" in proc.stdout and copy_log.stat().st_mtime_ns != sent
    new = example_inputs.job_specs(1, start=700)[0].dirname
    assert any(p.name == new for p in (sftp_remote[0] / "content").glob("*/*"))


def test_an_unfinished_job_is_picked_up_by_the_next_sync(tmp_path):
    src = tmp_path / "src"
    specs = example_inputs.make_tree(src, n_jobs=3, msa_depth=20, light=True, broken=False)
    later = example_inputs.job_specs(1, start=900)[0]
    (src / later.dirname).mkdir()
    (src / later.dirname / f"{later.prefix}_data.json").write_text(example_inputs.data_json_text(later, 4))
    workdir = tmp_path / "run"
    config = af3_config(src, n_chunks=2)
    run_workflow(workdir, config, ["af3_all"], extra=["--cores", "2"])
    problems = (workdir / "results/af3/manifest/problems.tsv").read_text()
    assert f"{later.dirname}\tincomplete\tonly _data.json" in problems
    example_inputs.write_job(src, later, msa_depth=20, light=True)  # AF3 finishes it, in its own dir
    proc = run_workflow(workdir, config, ["af3_all"], extra=["--cores", "2"])
    assert "af3_discover" in proc.stdout
    table = pd.read_csv(workdir / "results/af3/tables/confidences.tsv", sep="\t")
    assert set(table["job"]) == {s.dirname for s in specs} | {later.dirname}
    assert later.dirname not in (workdir / "results/af3/manifest/problems.tsv").read_text()


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
