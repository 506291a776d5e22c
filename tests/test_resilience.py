"""Preemption, a killed head process, node-local leftovers and bad inputs on a real SLURM.

Every workflow runs a small batch that holds one bad item among good ones. The reference is an
undisturbed run of the same batch with ``profiles/local``; the disturbed runs go through
``profiles/slurm`` on the test cluster (tests/slurm_cluster.sh):

- preempted: one running job is requeued (``scontrol requeue``, what SLURM does on preemption);
- killed head: ``snakemake`` gets SIGKILL mid-run, its queued jobs are cancelled by the job-name
  prefix, and ``snakemake --profile profiles/slurm --rerun-incomplete`` finishes the batch.

Each disturbance waits for a state the workflow shows while its job is at work (``Case.at_work``:
a ``.part`` in rnaseq's partial/, a marker under af3's state/jobs, a trendy conversion staged but
unfinished, an llc sampler's log line, a dali shadow dir holding its lock), then freezes the jobs
(SIGSTOP) so that the state cannot move on, checks that they are RUNNING and the state still
holds, and only then disturbs them: the test never disturbs a job that has just ended.

Both must end with the reference's bytes for the good items, a message naming the bad one, and a
non-zero exit. What legitimately differs between two runs (timings, job ids, logs) is left out of
the comparison by each workflow's ``fingerprint``, and the reason is written there.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, SLURM_QUICK, kill_live_snakemake, run_workflow
from slurm_tools import (
    ENDED,
    JOB_PREFIX,
    cancel_leftovers,
    freeze,
    job_processes,
    job_restarts,
    job_state,
    kill_head,
    requeue,
    slurm_jobs,
    start_head,
    thaw,
    tree_digest,
)

# The first test waits for every scenario (the module's `runs` fixture: ~5 min on 2 idle cores).
pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.timeout(1800)]

WORKFLOWS = ["af3", "rnaseq", "trendy", "llc", "dali"]
HEAD_TIMEOUT = 600  # after the disturbance; the shared test cluster may queue the jobs a while


@dataclass
class Case:
    """One workflow's small batch with a bad item, and how to compare two of its results."""

    workflow: str
    config: dict
    bad: str  # the bad item's name: the failure must name it
    fingerprint: Callable[[Path], dict]  # workdir -> {relative path: digest} of what must match
    failure_text: Callable[[Path, str], str]  # workdir, head output -> where the failure is told
    exit_fails: bool = True  # whether the bad item makes the run's exit code non-zero
    disturb: str = ""  # the rule (in the job's SLURM comment) whose running job is disturbed
    # workdir, scratch -> whether a job of `disturb` is in the middle of its work, read from what
    # it writes (default: AT_WORK[workflow])
    at_work: Callable[[Path, Path], bool] | None = None
    extra: list[str] = field(default_factory=list)
    server: object = None  # a loopback server the jobs download from (rnaseq)

    @property
    def target(self) -> str:
        return f"{self.workflow}_all"


def others_off(workflow: str) -> dict:
    return {name: {"enabled": False} for name in WORKFLOWS if name != workflow}


def logs_text(workdir: Path, pattern: str) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(workdir.glob(pattern)))


def results_digest(workdir: Path, workflow: str, differs: dict[str, str]) -> dict[str, str]:
    """sha256 of every file under results/<workflow>, less what legitimately differs between runs.

    ``differs`` maps what is left out to why: ``file:<glob>`` leaves out whole files (compared
    another way), ``field:<regex>`` the JSON keys and TSV columns whose name matches, everywhere.
    """
    root = workdir / "results" / workflow
    files = tuple(k[5:] for k in differs if k.startswith("file:"))
    fields = [re.compile(k[6:]) for k in differs if k.startswith("field:")]

    def volatile(name: str) -> bool:
        return any(pattern.search(name) for pattern in fields)

    def drop(value):
        if isinstance(value, dict):
            return {k: drop(v) for k, v in value.items() if not volatile(k)}
        return [drop(v) for v in value] if isinstance(value, list) else value

    digests = tree_digest(root, exclude=files)
    for rel in digests:
        path = root / rel
        if path.suffix == ".json":
            text = json.dumps(drop(json.loads(path.read_text())), sort_keys=True)
        elif path.suffix == ".tsv":
            rows = [line.split("\t") for line in path.read_text().splitlines()]
            keep = [i for i, name in enumerate(rows[0] if rows else []) if not volatile(name)]
            text = "\n".join("\t".join(row[i] for i in keep if i < len(row)) for row in rows)
        elif path.suffix == ".parquet":
            import pandas as pd

            table = pd.read_parquet(path)
            text = table[[c for c in table.columns if not volatile(c)]].to_csv(index=False)
        else:
            continue
        digests[rel] = hashlib.sha256(text.encode()).hexdigest()
    return digests


# What differs between two runs of the same batch, and why (everything else is compared).
RNASEQ_DIFFERS = {
    "field:(_start|_end|_s)$": "download/quant wall-clock times and durations (download/*.json, *_metrics.json)",
    "field:^fastq_deleted$": "when the FASTQs were deleted after quantification (*_metrics.json, runs_qc.tsv)",
    "file:qc/runs_qc.png": "the QC plot draws the download and quantification durations",
    "file:qc/multiqc_report.html": "MultiQC stamps its report with its creation time; its numbers are kallisto's, compared in run_info.json",
    "field:^start_time$": "kallisto's run_info.json: when kallisto ran",
    "field:call$": "kallisto's command line (run_info.json, *_metrics.json): its -t follows the profile's threads",
}
TRENDY_DIFFERS = {
    "file:*.nc": "the `history` attribute holds the creation time; compared read back instead",
    "field:seconds$": "conversion and ILAMB-check durations (status.json, conversions.tsv)",
}
LLC_DIFFERS = {
    "field:(wall_time_s|_per_s)$": "sampler and training timings (analysis.json, meta.json, llc_runs.parquet)",
}


def af3_at_work(workdir: Path, scratch: Path) -> bool:
    """An organize job has begun writing (a file under organized/, or a job's marker under
    state/jobs) and a chunk is not done. (A marker alone comes too late: a small chunk's last
    marker and its state file are a few ms apart.)"""
    out = workdir / "results/af3"
    started = any(out.glob("state/jobs/*/*.json")) or any(p.is_file() for p in out.glob("organized/**/*"))
    return started and len(list(out.glob("state/chunks/*.json"))) < 2


# For the builders that name no at_work of their own.
AT_WORK = {"af3": af3_at_work}


# --- af3: four finished jobs and the broken ones of the examples ------------------------------


def af3_case(root: Path) -> Case:
    from af3 import example_inputs

    src = root / "af3_output"
    example_inputs.make_tree(src, n_jobs=4, msa_depth=100, broken=True)

    def fingerprint(workdir: Path) -> dict:
        out = workdir / "results/af3"
        digests = {f"organized/{k}": v for k, v in tree_digest(out / "organized").items()}
        for table in ("tables/confidences.tsv", "tables/groups.tsv", "manifest/problems.tsv"):
            digests[table] = hashlib.sha256((out / table).read_bytes()).hexdigest()
        return digests

    def failure_text(workdir: Path, head_log: str) -> str:
        return (workdir / "results/af3/manifest/problems.tsv").read_text()

    config = {"af3": {"enabled": True, "source_root": str(src), "n_chunks": 2}, **others_off("af3")}
    # A job that AF3 left truncated is a reported problem, not a failed run: AF3 may still be
    # writing it, and the next sync picks it up (issue 3's design).
    return Case(
        "af3",
        config,
        "SMYD2_H3_truncated_data",
        fingerprint,
        failure_text,
        exit_fails=False,
        disturb="organize",
        extra=["--set-threads", "af3_organize_chunk=2"],  # the profile's 16 would fill the test node
    )


# --- rnaseq: two good runs and one whose MD5 is wrong, from a loopback HTTP server ---------------


def rnaseq_config(root: Path, download: dict) -> dict:
    """rnaseq on ``root``/samples.tsv and ``root``/tx.fa, from the ENA URLs of the sheet only."""
    section = {
        "enabled": True,
        "samples": str(root / "samples.tsv"),
        "transcriptomes": {"Formica_simulata": str(root / "tx.fa")},
        "sources": ["ena"],
        "download": download,
    }
    return {"rnaseq": section, **others_off("rnaseq")}


def rnaseq_case(root: Path) -> Case:
    from rnaseq.http_fixture import FixtureServer
    from rnaseq.simulate import make_transcriptome, random_abundances, simulate_reads, write_fasta

    serve = root / "serve"
    (serve / "ena").mkdir(parents=True)
    transcripts = make_transcriptome(30, seed=5)
    write_fasta(transcripts, root / "tx.fa")
    runs = {"SRR40": True, "SRR41": False, "SRR49": False}  # run -> paired
    for k, (run, paired) in enumerate(runs.items()):
        abundances = random_abundances(list(transcripts), seed=50 + k)
        simulate_reads(transcripts, abundances, 4000, serve / "ena" / run, run, paired, seed=60 + k)
    # Slow enough that a download job is still running when the test disturbs it.
    server = FixtureServer(serve, rate=60_000).start()
    columns = ["run", "sample", "layout", "fastq_ftp", "fastq_md5", "fastq_bytes", "sra_url"]
    lines = ["\t".join([*columns, "fragment_length", "fragment_sd"])]
    for run, paired in runs.items():
        names = [f"{run}_1.fastq.gz", f"{run}_2.fastq.gz"] if paired else [f"{run}.fastq.gz"]
        md5s = [hashlib.md5((serve / "ena" / n).read_bytes()).hexdigest() for n in names]
        if run == "SRR49":
            md5s = ["0123456789abcdef0123456789abcdef"]
        sizes = [str((serve / "ena" / n).stat().st_size) for n in names]
        fields = [
            run,
            f"s_{run}",
            "paired" if paired else "single",
            ";".join(server.url(f"ena/{n}") for n in names),
            ";".join(md5s),
            ";".join(sizes),
            "",
            "" if paired else "250",
            "" if paired else "25",
        ]
        lines.append("\t".join(fields))
    (root / "samples.tsv").write_text("\n".join(lines) + "\n")
    config = rnaseq_config(root, {"attempt_timeout_s": 120, "stall_timeout_s": 10, "retries": 0})

    def fingerprint(workdir: Path) -> dict:
        return results_digest(workdir, "rnaseq", RNASEQ_DIFFERS)

    def failure_text(workdir: Path, head_log: str) -> str:
        return head_log + logs_text(workdir, "logs/rnaseq/download/*.log")

    def at_work(workdir: Path, scratch: Path) -> bool:
        """A download is in flight: its ``.part`` file is in partial/<run>/."""
        return any((workdir / "results/rnaseq/partial").rglob("*.part"))

    return Case(
        "rnaseq",
        config,
        "SRR49",
        fingerprint,
        failure_text,
        server=server,
        disturb="download",
        at_work=at_work,
    )


# --- trendy: three good files and one truncated by an interrupted transfer -----------------------


def trendy_case(root: Path) -> Case:
    from trendy.synthetic import bad_cases, quirk_cases, write_case

    tree = root / "TRENDYv13"
    by_name = {case.name: case for case in quirk_cases()}
    for name in ("cable_months_since", "isam_month_as_ymd_lon360", "visit_decimal_years_missing_value_only"):
        write_case(by_name[name], tree)
    truncated, writer = bad_cases()["truncated"]
    writer(truncated, tree)
    section = yaml.safe_load((REPO / "config/config.yaml").read_text())["trendy"]
    section.update(root=str(tree), models=["CABLE-POP", "ISAM", "VISIT-UT", "LPX"], simulations=["S1", "S3"])

    def fingerprint(workdir: Path) -> dict:
        # Each converted file's header and data, read back with netCDF4. Bytes are compared too,
        # except the `history` attribute's creation time.
        import netCDF4

        digests = {}
        for path in sorted((workdir / "results/trendy").rglob("*.nc")):
            with netCDF4.Dataset(path) as ds:
                attrs = {k: str(ds.getncattr(k)) for k in ds.ncattrs() if k != "history"}
                text = json.dumps(attrs, sort_keys=True)
                for name, var in sorted(ds.variables.items()):
                    var.set_auto_mask(False)
                    meta = {k: str(var.getncattr(k)) for k in var.ncattrs()}
                    text += (
                        name
                        + json.dumps(meta, sort_keys=True)
                        + hashlib.sha256(np.ascontiguousarray(var[:]).tobytes()).hexdigest()
                    )
            digests[path.relative_to(workdir).as_posix()] = hashlib.sha256(text.encode()).hexdigest()
        return {**digests, **results_digest(workdir, "trendy", TRENDY_DIFFERS)}

    def failure_text(workdir: Path, head_log: str) -> str:
        return head_log + (workdir / "results/trendy/conversions.tsv").read_text()

    def at_work(workdir: Path, scratch: Path) -> bool:
        """A conversion is under way: its staging dir exists, its status.json is not written yet."""
        stages = (workdir / "results/trendy/staging").glob("*/*")
        return any(stage.is_dir() and not (stage / "status.json").exists() for stage in stages)

    return Case(
        "trendy",
        {"trendy": section, **others_off("trendy")},
        "LPX-Bern_S1_gpp.nc",
        fingerprint,
        failure_text,
        at_work=at_work,
    )


# --- llc: one target, a good sampler and one whose step size diverges ----------------------------


def llc_case(root: Path) -> Case:
    section = {
        "enabled": True,
        "targets": [{"name": "small", "family": "linear", "widths": [3, 1], "n": 200, "seed": 3}],
        "samplers": [
            {"kind": "sgld", "name": "fine", "step_size": 1e-3, "draws": 2000, "burnin": 200, "chains": 2},
            {"kind": "sgld", "name": "blowup", "step_size": 1.0, "draws": 300, "burnin": 100, "chains": 2},
        ],
    }

    def fingerprint(workdir: Path) -> dict:
        # The chains' draws and every estimate; the timings (wall_time_s, grad_evals_per_s) and the
        # tables that hold them differ from run to run.
        digests = {}
        for run in sorted((workdir / "results/llc/runs").iterdir()):
            with np.load(run / "traces.npz") as traces:
                for name in sorted(traces.files):
                    digests[f"{run.name}/traces/{name}"] = hashlib.sha256(traces[name].tobytes()).hexdigest()
            analysis = json.loads((run / "analysis.json").read_text())
            analysis = {k: v for k, v in analysis.items() if "time" not in k and not k.endswith("_per_s")}
            digests[f"{run.name}/analysis"] = hashlib.sha256(
                json.dumps(analysis, sort_keys=True).encode()
            ).hexdigest()
        return {**digests, **results_digest(workdir, "llc", LLC_DIFFERS)}

    def failure_text(workdir: Path, head_log: str) -> str:
        return head_log + logs_text(workdir, "logs/llc/run_sampler/*.log")

    def at_work(workdir: Path, scratch: Path) -> bool:
        """A sampler has logged its start (n, d, nβ) and its run has no analysis yet."""
        for log in (workdir / "logs/llc/run_sampler").glob("*.log"):
            if "nβ=" in log.read_text(errors="replace"):
                if not (workdir / "results/llc/runs" / log.stem / "analysis.json").exists():
                    return True
        return False

    return Case(
        "llc",
        {"llc": section, **others_off("llc")},
        "sampler 'blowup'",
        fingerprint,
        failure_text,
        disturb="sampler",
        at_work=at_work,
    )


# --- dali: two real two-domain queries and one PDB without a chain identifier --------------------


def dali_case(root: Path) -> Case:
    from dali import example_inputs
    from dali.cache import cache_dir_for
    from dali.scratch import CACHE_DIR_NAME, JOB_LOCK, WORK_DIRNAME, lock_is_held

    examples = root / "examples"
    example_inputs.make(examples)
    inputs = root / "inputs"
    inputs.mkdir()
    good = ["AF-EXCYT2-F1", "AF-EXCYT1-F1"]
    bad = "AF-NOCHAIN-F1"
    for protein in good:
        for suffix in (".pdb", "_hits4Dali"):
            shutil.copy(examples / "inputs" / f"{protein}{suffix}", inputs)
    lines = (examples / "inputs" / f"{good[0]}.pdb").read_text().splitlines()
    (inputs / f"{bad}.pdb").write_text(
        "\n".join(x[:21] + " " + x[22:] if x.startswith("ATOM") else x for x in lines) + "\n"
    )
    shutil.copy(examples / "inputs" / f"{good[0]}_hits4Dali", inputs / f"{bad}_hits4Dali")
    section = {
        "enabled": True,
        "input_dir": str(inputs),
        "protein_list": "",
        "template_dir": str(examples / "ECOD70"),
        "aligner": "dali",
        "dali_pl": str(REPO / "tests/dali/fake_dalilite/dali.pl"),
    }
    # A template copy cut by a kill cannot be placed by timing a kill: build that state on
    # purpose in the killed run's cache, a partial copy whose process is dead.
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout.strip()
    cache = cache_dir_for(root.parent / "kill" / "scratch" / CACHE_DIR_NAME, examples / "ECOD70")
    cache.mkdir(parents=True)
    host = os.uname().nodename.replace(".", "_")
    (cache / f".tmp.000000102.{host}.{dead}.cut0ff").write_text("ATOM      1  N   GLY A   1")

    def fingerprint(workdir: Path) -> dict:
        # The hits files, and the summary's columns that do not vary between runs (the markers and
        # the other columns carry timings, hosts, SLURM job ids and whether a protein was reused).
        out = workdir / "results/dali"
        prints = {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.glob("*_iterativdDali_hits"))
        }
        table = out / "dali_summary.tsv"
        if table.exists():
            keep = ["protein", "status", "candidates", "hits", "candidates_with_hits", "aligner_calls"]
            rows = [line.split("\t") for line in table.read_text().splitlines()]
            index = [rows[0].index(column) for column in keep]
            prints["dali_summary.tsv"] = [[row[i] for i in index] for row in rows[1:]]
        return prints

    def failure_text(workdir: Path, head_log: str) -> str:
        return head_log + logs_text(workdir, "logs/dali/*.log")

    def at_work(workdir: Path, scratch: Path) -> bool:
        """Every dali shadow directory holds its job lock and has a protein in flight (a candidate
        directory under c/<protein>/): a kill now leaves a dead job's directory on scratch."""
        shadow = scratch / "shadow"
        dirs = [p for p in shadow.iterdir() if p.is_dir()] if shadow.is_dir() else []
        return bool(dirs) and all(
            lock_is_held(d / JOB_LOCK) and any((d / WORK_DIRNAME).glob("*/*")) for d in dirs
        )

    return Case(
        "dali",
        {"dali": section, **others_off("dali")},
        bad,
        fingerprint,
        failure_text,
        disturb="dali_batch",
        at_work=at_work,
        # 4 cores, not the profile's 16: the scenarios share the test cluster's CPUs (a pool of 16
        # still runs the 3 proteins side by side)
        extra=["--set-threads", "dali_batch=4"],
    )


BUILDERS = {"af3": af3_case, "rnaseq": rnaseq_case, "trendy": trendy_case, "llc": llc_case, "dali": dali_case}


@dataclass
class Outcome:
    """What one run left: its exit code, its output, the fingerprint of its results, observations."""

    returncode: int
    output: str
    workdir: Path
    seen: dict = field(default_factory=dict)


def slurm_extra(case: Case, prefix: str, scratch: Path) -> list[str]:
    # Each scenario names its jobs with its own prefix, so that the scenarios of all workflows
    # can share the test cluster at once without touching each other's jobs.
    return [*SLURM_QUICK, "--slurm-jobname-prefix", prefix, "--shadow-prefix", str(scratch), *case.extra]


def freeze_at_work(case: Case, head, prefix: str, workdir: Path, scratch: Path, timeout: float = 900):
    """Wait until jobs of ``case.disturb`` are RUNNING and ``at_work`` holds; freeze them there.

    Returns (the frozen jobs, their state as the controller reported it once frozen, their pids).
    The check runs again after the freeze: if a job ended or a new one started in between, they
    are thawed and the wait goes on. The wait ends when the head does (every job ended before one
    was seen at work: the test fails saying so), or after ``timeout`` (queue waits included).
    """
    at_work = case.at_work or AT_WORK[case.workflow]
    deadline = time.monotonic() + timeout
    while True:
        assert head.poll() is None, f"snakemake ended (exit {head.returncode}) before a job was at work"
        assert time.monotonic() < deadline, f"{case.workflow}: no job found at work within {timeout} s"
        running = [j for j in slurm_jobs(prefix) if j["state"] == "RUNNING" and case.disturb in j["comment"]]
        if running and at_work(workdir, scratch):
            ids = sorted(job["id"] for job in running)
            pids = freeze(ids)
            states = {job_id: job_state(job_id) for job_id in ids}
            now = sorted(
                j["id"]
                for j in slurm_jobs(prefix)
                if j["state"] == "RUNNING" and case.disturb in j["comment"]
            )
            if pids and now == ids and set(states.values()) == {"RUNNING"} and at_work(workdir, scratch):
                return running, states, pids
            thaw(pids)
        time.sleep(0.1)


def wait_for_head(head, prefix: str) -> None:
    """Wait for the head to end; past HEAD_TIMEOUT it is killed and its jobs cancelled, never left submitting."""
    try:
        head.wait(timeout=HEAD_TIMEOUT)
    except subprocess.TimeoutExpired:
        kill_head(head)
        cancel_leftovers(prefix, hard=True)
        raise AssertionError(f"snakemake did not end within {HEAD_TIMEOUT} s: killed") from None


def reference_run(case: Case, root: Path) -> Outcome:
    """The undisturbed run, with profiles/local."""
    extra = ["--cores", "2", "--shadow-prefix", str(root / "scratch"), *case.extra]
    proc = run_workflow(root / "work", case.config, [case.target], extra=extra, check=False)
    return Outcome(proc.returncode, proc.stdout, root / "work")


def requeued_run(case: Case, root: Path) -> Outcome:
    """Scenario 1: the running jobs at work are requeued, as SLURM does when it preempts them."""
    prefix = f"{JOB_PREFIX}-{case.workflow}-requeue"
    workdir = root / "work"
    head = start_head(workdir, case.config, [case.target], extra=slurm_extra(case, prefix, root / "scratch"))
    jobs, states, pids = freeze_at_work(case, head, prefix, workdir, root / "scratch")
    requeue([job["id"] for job in jobs], frozen=pids)
    thaw(pids)  # what SLURM did not kill (a process it does not track) goes on as it would have
    wait_for_head(head, prefix)
    after = {job["id"]: (job_state(job["id"]), job_restarts(job["id"])) for job in jobs}
    seen = {"jobs": jobs, "states_when_disturbed": states, "after": after}
    return Outcome(head.returncode, (workdir / "head.log").read_text(), workdir, seen)


def killed_run(case: Case, root: Path) -> Outcome:
    """Scenarios 2 and 4: SIGKILL the head mid-run, cancel its jobs by name, rerun what is incomplete."""
    prefix = f"{JOB_PREFIX}-{case.workflow}-kill"
    workdir, scratch = root / "work", root / "scratch"
    extra = slurm_extra(case, prefix, scratch)
    head = start_head(workdir, case.config, [case.target], extra=extra)
    jobs, states, _ = freeze_at_work(case, head, prefix, workdir, scratch)
    kill_head(head)
    # What the README tells a user: cancel what the dead head left queued or running, by name;
    # its running jobs die by SIGKILL first, as on a node failure: none gets to clean up.
    cancelled = cancel_leftovers(prefix, hard=True)
    still_active = slurm_jobs(prefix, active_only=True)
    shadow = scratch / "shadow"
    left_on_scratch = sorted(p.name for p in shadow.iterdir()) if shadow.is_dir() else []
    # A new head process: unlock the work directory the dead one held, then rerun what is incomplete.
    run_workflow(workdir, case.config, [case.target], profile="slurm", extra=["--unlock"])
    rerun = run_workflow(
        workdir,
        case.config,
        [case.target],
        profile="slurm",
        extra=[*extra, "--rerun-incomplete"],
        check=False,
    )
    seen = {
        "jobs": jobs,
        "states_when_disturbed": states,
        "cancelled": cancelled,
        "still_active": still_active,
        "left_on_scratch": left_on_scratch,
    }
    return Outcome(rerun.returncode, rerun.stdout, workdir, seen)


@pytest.fixture(scope="module")
def runs(slurm_cluster, tmp_path_factory):
    """Every scenario of every workflow, run at once on the test cluster (they mostly wait on
    SLURM, so side by side they take the time of the slowest, not the sum)."""
    root = tmp_path_factory.mktemp("resilience")
    # HPCPIPE_RESILIENCE=af3,llc runs only those workflows' scenarios (the others' tests then error).
    chosen = os.environ.get("HPCPIPE_RESILIENCE", ",".join(WORKFLOWS)).split(",")
    cases = {wf: BUILDERS[wf](root / wf / "inputs") for wf in WORKFLOWS if wf in chosen}
    scenarios = {"reference": reference_run, "requeue": requeued_run, "kill": killed_run}
    # Each DaliLite call takes 2 s, as real ones take seconds: a kill then finds a protein at work.
    # (Set for this fixture only: no other module's runs see it.)
    with pytest.MonkeyPatch.context() as env, ThreadPoolExecutor(len(cases) * len(scenarios) + 1) as pool:
        env.setenv("FAKE_DALI_DELAY", "2")
        futures = {
            (wf, name): pool.submit(run, case, root / wf / name)
            for wf, case in cases.items()
            for name, run in scenarios.items()
        }
        if "rnaseq" in cases:
            futures[("rnaseq", "walltime")] = pool.submit(walltime_run, root / "walltime")
        try:
            wait(futures.values())
        finally:  # a pytest-timeout here: end every head, so that the threads end too
            for case in cases.values():
                if case.server is not None:
                    case.server.stop()
            if not all(future.done() for future in futures.values()):
                kill_live_snakemake()
    yield cases, futures


def outcome(runs, workflow: str, scenario: str) -> Outcome:
    """The scenario's outcome; an error inside the scenario is raised here, in its own test."""
    return runs[1][(workflow, scenario)].result()


def check_against_reference(runs, workflow: str, scenario: str) -> Outcome:
    case = runs[0][workflow]
    reference, result = outcome(runs, workflow, "reference"), outcome(runs, workflow, scenario)
    for run in (reference, result):
        assert (run.returncode != 0) == case.exit_fails, run.output[-4000:]
        assert case.bad in case.failure_text(run.workdir, run.output), run.output[-4000:]
    expected = case.fingerprint(reference.workdir)
    assert expected, f"the reference run of {workflow} produced nothing to compare"
    assert case.fingerprint(result.workdir) == expected
    return result


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_a_preempted_job_is_requeued_and_the_results_match(runs, workflow):
    result = check_against_reference(runs, workflow, "requeue")
    # Each requeued job was RUNNING (and at work) when requeued, ran once more, and ended.
    assert set(result.seen["states_when_disturbed"].values()) == {"RUNNING"}, result.seen
    for job_id, (state, restarts) in result.seen["after"].items():
        assert restarts == 1, f"job {job_id} was not requeued: {result.seen}"
        assert state in ENDED, f"job {job_id} did not run again to its end: {result.seen}"


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_a_killed_head_process_resumes_with_rerun_incomplete(runs, workflow):
    result = check_against_reference(runs, workflow, "kill")
    # The jobs at work were RUNNING when the head died, and still active when they were cancelled.
    assert set(result.seen["states_when_disturbed"].values()) == {"RUNNING"}, result.seen
    disturbed = {job["id"] for job in result.seen["jobs"]}
    assert disturbed <= set(result.seen["cancelled"]), result.seen
    assert result.seen["still_active"] == []


def test_stale_scratch_is_cleaned_and_the_template_cache_holds_no_partial_file(runs):
    """Scenario 4, on the dali run whose head and jobs were killed while every batch job held its
    lock with a protein in flight (and with a template copy cut by a dead process in its cache)."""
    case, result = runs[0]["dali"], outcome(runs, "dali", "kill")
    assert result.seen["left_on_scratch"], "the killed dali jobs left no shadow directory to clean"
    scratch = result.workdir.parent / "scratch"
    assert list((scratch / "shadow").iterdir()) == []
    cache = scratch / "dali-template-cache"
    assert not list(cache.rglob(".tmp.*"))
    templates = list(cache.rglob("*.pdb"))
    assert templates
    for template in templates:
        source = Path(case.config["dali"]["template_dir"]) / template.name
        assert template.read_bytes() == source.read_bytes(), template
    # the rerun resumed the batch: proteins finished before the kill were not aligned again
    logs = logs_text(result.workdir, "logs/dali/batch-*.log")
    assert re.search(r"batch \d{3}: 3 proteins, \d done before \(skipped\)", logs), logs


class HoldingServer(http.server.ThreadingHTTPServer):
    """Serves one file; the first transfer never finishes, whatever the machine's speed.

    The first request (from byte 0) gets half of the file, then one byte every 2 s for as long as
    the client reads (no stall, no end): only SLURM's walltime ends that attempt. Once that client
    is gone, every request (a resumed one, with Range) gets what it asks for at full speed.
    ``holding`` is set once the first half is sent: the transfer is under way.
    """

    daemon_threads = True

    def __init__(self, data: bytes):
        super().__init__(("127.0.0.1", 0), HoldingHandler)
        self.data = data
        self.requests: list[int] = []  # the first byte each request asked for
        self.first_attempt_sent = 0
        self.first_attempt_dropped = threading.Event()
        self.holding = threading.Event()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/SRR50.fastq.gz"


class HoldingHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        data, server = self.server.data, self.server
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        start = int(match[1]) if match else 0
        server.requests.append(start)
        if start == 0 and not server.first_attempt_dropped.is_set():
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            sent = len(data) // 2
            try:
                self.wfile.write(data[:sent])
                self.wfile.flush()
                server.holding.set()
                while sent < len(data) - 1:  # never the last byte
                    self.wfile.flush()
                    time.sleep(2)
                    self.wfile.write(data[sent : sent + 1])
                    sent += 1
            except OSError:  # the client is gone: its job was ended
                server.first_attempt_sent = sent
                server.first_attempt_dropped.set()
            return
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        self.wfile.write(data[start:])


def walltime_run(tmp_path: Path) -> Outcome:
    """Scenario 3: a download that cannot finish within its walltime.

    Each attempt asks for ``attempt * 10`` minutes. Once attempt 1's transfer is observably under
    way (the server sent the first half), the test cuts that job's limit to 1 minute with
    ``scontrol update``, as an administrator can: SLURM then ends it with TIMEOUT. A fixed 1-minute
    request would instead race the job's start-up on a loaded machine (attempt 1 could time out
    before its first byte, and attempt 2 would be the one held).
    """
    from rnaseq.simulate import make_transcriptome, random_abundances, simulate_reads, write_fasta

    serve = tmp_path / "serve"
    (serve / "ena").mkdir(parents=True)
    transcripts = make_transcriptome(20, seed=7)
    write_fasta(transcripts, tmp_path / "tx.fa")
    run = "SRR50"
    simulate_reads(
        transcripts, random_abundances(list(transcripts), seed=8), 3000, serve / "ena" / run, run, False
    )
    fastq = serve / "ena" / f"{run}.fastq.gz"
    size = fastq.stat().st_size
    config = rnaseq_config(tmp_path, {"attempt_timeout_s": 600, "stall_timeout_s": 30, "retries": 1})
    server = HoldingServer(fastq.read_bytes())
    prefix = f"{JOB_PREFIX}-rnaseq-walltime"
    stop, reaped, cut = threading.Event(), [], {}

    def cut_the_limit_of_the_held_transfer():
        running = [
            job
            for job in slurm_jobs(prefix)
            if job["state"] == "RUNNING" and "rnaseq_download" in job["comment"]
        ]
        if len(running) != 1:
            return
        job_id = running[0]["id"]
        show = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
        requested = re.search(r"TimeLimit=(\S+)", show)[1]
        subprocess.run(["scontrol", "update", f"JobId={job_id}", "TimeLimit=1"], check=True)
        cut.update(job=job_id, requested=requested)

    def disturb():
        # When SLURM ends a job at its limit, a production node (proctrack/cgroup) kills every
        # process of it; this test node's proctrack/linuxproc can lose the download script, which
        # then keeps the transfer and the run's disk slot open, and attempt 2 waits on it. Do
        # what the node would: kill whatever is left of each ended job (found by SLURM_JOB_ID).
        while not stop.wait(1):
            if server.holding.is_set() and not cut:
                cut_the_limit_of_the_held_transfer()
            for job in slurm_jobs(prefix):
                if job["state"] in ENDED:
                    for pid in job_processes([job["id"]]):
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                            reaped.append((job["id"], pid))

    reaper = threading.Thread(target=disturb, daemon=True)
    reaper.start()
    try:
        (tmp_path / "samples.tsv").write_text(
            "run\tsample\tlayout\tfastq_ftp\tfastq_md5\tfastq_bytes\tfragment_length\tfragment_sd\n"
            f"{run}\ts1\tsingle\t{server.url()}\t{hashlib.md5(fastq.read_bytes()).hexdigest()}\t{size}\t250\t25\n"
        )
        proc = run_workflow(
            tmp_path / "work",
            config,
            ["rnaseq_all"],
            profile="slurm",
            extra=[
                *SLURM_QUICK,
                "--slurm-jobname-prefix",
                prefix,
                "--set-resources",
                "rnaseq_download:runtime=attempt*10",
            ],
            check=False,
        )
    finally:
        stop.set()
        reaper.join()
        server.shutdown()
    seen = {
        "run": run,
        "requests": server.requests,
        "first_attempt_sent": server.first_attempt_sent,
        "reaped": reaped,
        "cut": cut,
    }
    return Outcome(proc.returncode, proc.stdout, tmp_path / "work", seen)


def test_a_job_over_its_walltime_gets_more_time_on_the_next_attempt(runs):
    """SLURM ends attempt 1 at its limit (cut to 1 minute mid-transfer); attempt 2 asks for twice
    attempt 1's request and resumes the transfer where attempt 1 stopped."""
    proc = outcome(runs, "rnaseq", "walltime")
    run = proc.seen["run"]
    assert proc.returncode == 0, proc.output[-4000:]
    # Attempt 1 was cut by its end (it had more than half of the file), attempt 2 asked for the rest.
    requests, sent = proc.seen["requests"], proc.seen["first_attempt_sent"]
    assert len(requests) == 2 and requests[0] == 0 and 0 < requests[1] <= sent, proc.seen
    timeouts = [line for line in proc.output.splitlines() if "TIMEOUT" in line]
    assert timeouts, "attempt 1 was not ended by its walltime:\n" + proc.output[-4000:]
    job_ids = re.findall(r"SLURM jobid (\d+)", proc.output)
    limits = {}
    for job_id in job_ids:
        show = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
        if "rnaseq_download" in show:
            limits[job_id] = (re.search(r"TimeLimit=(\S+)", show)[1], re.search(r"JobState=(\S+)", show)[1])
    cut = proc.seen["cut"]
    assert cut and cut["requested"] == "00:10:00", proc.seen
    assert limits.get(cut["job"]) == ("00:01:00", "TIMEOUT"), limits
    assert sorted(limits.values()) == [("00:01:00", "TIMEOUT"), ("00:20:00", "COMPLETED")], limits
    log = (proc.workdir / "logs/rnaseq/download" / f"{run}.log").read_text()
    assert "resumed at byte" in log, log
    abundance = proc.workdir / f"results/rnaseq/quant/{run}/{run}_abundance.tsv"
    assert abundance.read_text().startswith("target_id\t")
