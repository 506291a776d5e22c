"""End-to-end runs of the rnaseq workflow against a loopback HTTP server (the test's ENA/SRA).

One batch mixes good runs (paired and single-end FASTQ over HTTP, one from a site mirror, one real
.sra object) with broken ones (wrong MD5, truncated gzip, a stalling server, zero reads). The
broken ones must fail with an error naming the run while the others finish; after the sheet is
fixed, a rerun redoes only the broken ones, resuming the stalled transfer.
"""

import gzip
import hashlib
import json
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, SLURM_QUICK, run_workflow
from rnaseq.http_fixture import Fault, FixtureServer
from rnaseq.simulate import make_transcriptome, random_abundances, simulate_reads, write_fasta
from rnaseq.sra import build_sra

SPECIES = "Formica_simulata"  # same key as config/config.yaml, so the test's path replaces it
COLUMNS = [
    "run",
    "sample",
    "layout",
    "fastq_ftp",
    "fastq_md5",
    "fastq_bytes",
    "sra_url",
    "fragment_length",
    "fragment_sd",
]
GOOD = {"SRR20": "paired", "SRR21": "single", "SRR22": "paired", "SRR23": "paired", "SRR24": "single"}
BAD = {"SRR30": "wrong MD5", "SRR31": "truncated gzip", "SRR32": "stall", "SRR33": "zero reads"}
CAPS = {"download_slots": 2, "quant_slots": 1}
ON_DISK = 2  # rnaseq.download.max_runs_on_disk: below download + quant slots, so it binds


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def max_overlap(intervals) -> int:
    """Largest number of [start, end) intervals open at one instant."""
    events = sorted(
        [(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1])
    )
    best = current = 0
    for _, step in events:
        current += step
        best = max(best, current)
    return best


def iso(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("rnaseq_batch")
    serve = root / "serve"
    (serve / "ena").mkdir(parents=True)
    transcripts = make_transcriptome(40, seed=21)
    write_fasta(transcripts, root / "tx.fa")
    truth = {}
    for k, run in enumerate([*GOOD, *BAD]):
        layout = GOOD.get(run, "single")
        abundances = random_abundances(list(transcripts), seed=30 + k)
        truth[run] = simulate_reads(
            transcripts, abundances, 5000, serve / "ena" / run, run, layout == "paired", seed=40 + k
        )
    # SRR22 is only an SRA object; SRR23's files are also on the site mirror.
    plain = []
    for mate in (1, 2):
        gz = serve / "ena" / f"SRR22_{mate}.fastq.gz"
        plain.append(root / f"SRR22_{mate}.fastq")
        plain[-1].write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    build_sra("SRR22", plain, serve / "sra" / "SRR22.sra", root / "vdb")
    (serve / "mirror" / "ena").mkdir(parents=True)
    for mate in (1, 2):
        shutil.copy(serve / "ena" / f"SRR23_{mate}.fastq.gz", serve / "mirror" / "ena")
    originals = {run: (serve / "ena" / f"{run}.fastq.gz").read_bytes() for run in BAD}
    return {"root": root, "serve": serve, "truth": truth, "transcripts": transcripts, "originals": originals}


def sheet_rows(server, serve: Path, broken: bool) -> list[dict]:
    rows = []
    for run in [*GOOD, *BAD]:
        layout = GOOD.get(run, "single")
        row = dict.fromkeys(COLUMNS, "")
        row.update(run=run, sample=f"s_{run}", layout=layout)
        if run == "SRR22":
            row["sra_url"] = server.url("sra/SRR22.sra")
        else:
            names = [f"{run}_1.fastq.gz", f"{run}_2.fastq.gz"] if layout == "paired" else [f"{run}.fastq.gz"]
            row["fastq_ftp"] = ";".join(server.url(f"ena/{n}") for n in names)
            row["fastq_md5"] = ";".join(md5(serve / "ena" / n) for n in names)
            row["fastq_bytes"] = ";".join(str((serve / "ena" / n).stat().st_size) for n in names)
        if layout == "single":
            row.update(fragment_length="250", fragment_sd="25")
        if broken and run == "SRR30":
            row["fastq_md5"] = "0123456789abcdef0123456789abcdef"
        if broken and run == "SRR31":  # what a server without checksums sends when it cuts off
            row.update(fastq_md5="", fastq_bytes="")
        rows.append(row)
    return rows


def write_sheet(path: Path, rows: list[dict]) -> None:
    path.write_text(
        "\t".join(COLUMNS) + "\n" + "".join("\t".join(r[c] for c in COLUMNS) + "\n" for r in rows)
    )


def break_inputs(batch, server) -> None:
    serve = batch["serve"]
    truncated = batch["originals"]["SRR31"]
    (serve / "ena" / "SRR31.fastq.gz").write_bytes(truncated[: len(truncated) * 2 // 3])
    size = len(batch["originals"]["SRR32"])
    server.faults["ena/SRR32.fastq.gz"] = Fault(stall_after=size // 2)
    with gzip.open(serve / "ena" / "SRR33.fastq.gz", "wb"):
        pass


def repair_inputs(batch, server) -> None:
    for run in ("SRR31", "SRR33"):
        (batch["serve"] / "ena" / f"{run}.fastq.gz").write_bytes(batch["originals"][run])
    server.faults.clear()


def workflow_config(batch, sheet: Path, server) -> dict:
    return {
        "rnaseq": {
            "enabled": True,
            "samples": str(sheet),
            "transcriptomes": {SPECIES: str(batch["root"] / "tx.fa")},
            "sources": ["ena", "sra"],  # prefetch would need NCBI
            "mirror_base": server.url("mirror"),
            "download": {
                "attempt_timeout_s": 60,
                "stall_timeout_s": 2,
                "retries": 1,
                "max_runs_on_disk": ON_DISK,
            },
        }
    }


def test_batch_with_broken_runs_then_rerun(batch, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    sheet = tmp_path / "samples.tsv"
    # --cores last: --resources takes several words and would swallow the target
    extra = ["--resources", *(f"{k}={v}" for k, v in CAPS.items()), "--cores", "4"]
    with FixtureServer(batch["serve"], rate=500_000) as server:
        server.gather = CAPS["download_slots"]  # transfers wait until the cap is reached (or 60 s)
        break_inputs(batch, server)
        write_sheet(sheet, sheet_rows(server, batch["serve"], broken=True))
        config = workflow_config(batch, sheet, server)
        first = run_workflow(workdir, config, ["rnaseq_all"], extra=extra, check=False)
        assert first.returncode != 0, "broken runs must make the run fail"

        results = workdir / "results" / "rnaseq"
        for run in GOOD:
            assert (results / "quant" / run / f"{run}_abundance.tsv").exists(), first.stdout[-3000:]
            assert not list((results / "fastq").glob(f"{run}/*")), "FASTQs go once quantified"
        expected = {
            "SRR30": "does not match the archive's",
            "SRR31": "gzip integrity check failed",
            "SRR32": "stalled: no data for 2 s",
            "SRR33": "the FASTQ holds zero reads",
        }
        for run, message in expected.items():
            assert not (results / "quant" / run / f"{run}_abundance.tsv").exists()
            assert not (results / "quant" / run / f"{run}_metrics.json").exists(), "cleared for the rerun"
            log = (workdir / "logs" / "rnaseq" / "download" / f"{run}.log").read_text()
            assert f"run {run}: every source failed" in log and message in log, log
            # the final check names the run, its stage and its error
            assert f"run {run} failed at download: run {run}: every source failed" in first.stdout
            # both attempts' lines are kept, numbered
            history = (workdir / "logs" / "rnaseq" / "download" / f"{run}.history.log").read_text()
            for attempt in (1, 2):
                assert f" attempt {attempt} ERROR run {run}: every source failed" in history, history

        # one failed run blocks nothing: matrices, metadata and QC cover every run that succeeded
        est = pd.read_csv(
            results / "merge" / SPECIES / f"{SPECIES}_est_counts.tsv", sep="\t", index_col="target_id"
        )
        assert sorted(est.columns) == sorted(GOOD)
        qc = pd.read_csv(results / "qc" / "runs_qc.tsv", sep="\t", keep_default_na=False).set_index("run")
        assert sorted(qc.index) == sorted([*GOOD, *BAD])
        assert (qc.loc[list(GOOD), "status"] == "ok").all() and (qc.loc[list(GOOD), "error"] == "").all()
        for run in expected:
            assert qc.loc[run, "status"] == "failed" and qc.loc[run, "failed_stage"] == "download"
            assert qc.loc[run, "error"].startswith(f"run {run}: every source failed")
        meta = pd.read_csv(results / "merge" / "metadata.tsv", sep="\t")
        assert sorted(meta["run"]) == sorted(GOOD)
        assert not (results / "rnaseq_check.txt").exists()

        metrics = {
            run: json.loads((results / "quant" / run / f"{run}_metrics.json").read_text()) for run in GOOD
        }
        assert metrics["SRR22"]["source"] == "sra"
        assert all("/mirror/ena/" in url for url in metrics["SRR23"]["urls"])
        assert all("/mirror/" not in url for url in metrics["SRR20"]["urls"])
        # the caps held: transfers counted by the server (open from the request to before the last
        # block, under a lock, so inside the client's own transfer); downloads and kallisto runs
        # by the jobs' own start and end
        downloads = [(iso(m["download_start"]), iso(m["download_end"])) for m in metrics.values()]
        quants = [(iso(m["quant_start"]), iso(m["quant_end"])) for m in metrics.values()]
        # reached (the first transfers waited for it), not only kept
        assert server.max_open == CAPS["download_slots"]
        assert max_overlap(downloads) <= CAPS["download_slots"]
        assert max_overlap(quants) <= CAPS["quant_slots"]
        # disk: a run's FASTQs exist from its disk slot (taken before the first byte) until the
        # quantification deleted them; at most ON_DISK runs, so at most ON_DISK runs' bytes
        on_disk = [(iso(m["disk_slot_start"]), iso(m["fastq_deleted"])) for m in metrics.values()]
        assert max_overlap(on_disk) <= ON_DISK
        for start, _ in on_disk:
            present = [
                m["fastq_bytes"]
                for m in metrics.values()
                if iso(m["disk_slot_start"]) <= start < iso(m["fastq_deleted"])
            ]
            assert sum(present) <= ON_DISK * max(m["fastq_bytes"] for m in metrics.values())
        stamps = {run: (results / "quant" / run / f"{run}_metrics.json").stat().st_mtime for run in GOOD}

        # fix the sheet and the server: only the broken runs run again; the stalled one resumes
        repair_inputs(batch, server)
        write_sheet(sheet, sheet_rows(server, batch["serve"], broken=False))
        before = len(server.requests_for("ena/SRR32.fastq.gz"))
        run_workflow(workdir, config, ["rnaseq_all"], extra=extra)
        srr32 = server.requests_for("ena/SRR32.fastq.gz")[before:]
    assert srr32[0].range_start > 0, "the stalled transfer resumes where it stopped"
    for run in GOOD:
        assert (results / "quant" / run / f"{run}_metrics.json").stat().st_mtime == stamps[run]
    assert not list((results / "fastq").glob("*")) if (results / "fastq").exists() else True
    assert (results / "rnaseq_check.txt").read_text().startswith("9 runs, every one quantified")
    assert not (results / "partial").exists(), "nothing left once every run succeeded"

    est = pd.read_csv(
        results / "merge" / SPECIES / f"{SPECIES}_est_counts.tsv", sep="\t", index_col="target_id"
    )
    assert sorted(est.columns) == sorted([*GOOD, *BAD])
    for run in est.columns:
        truth = [batch["truth"][run][t] for t in est.index]
        assert np.corrcoef(truth, est[run])[0, 1] >= 0.99, run
    qc = pd.read_csv(results / "qc" / "runs_qc.tsv", sep="\t")
    assert (qc["n_processed"] == 5000).all() and (qc["spots"] == 5000).all()
    assert (qc["status"] == "ok").all()
    assert (results / "qc" / "runs_qc.png").stat().st_size > 10_000
    meta = pd.read_csv(results / "merge" / "metadata.tsv", sep="\t")
    assert list(meta.columns)[:2] == ["run", "scientific_name"] and "mapping_rate" in meta
    summary = (results / "SUMMARY.txt").read_text()
    assert "per-run QC table: results/rnaseq/qc/runs_qc.tsv" in summary


def test_hostile_sheet_stops_before_any_job(batch, tmp_path):
    sheet = tmp_path / "samples.tsv"
    row = dict.fromkeys(COLUMNS, "")
    row.update(run="SRR1/../../etc", sample="x", layout="single", fastq_ftp="/etc/passwd")
    write_sheet(sheet, [row])
    config = {
        "rnaseq": {
            "enabled": True,
            "samples": str(sheet),
            "transcriptomes": {SPECIES: str(batch["root"] / "tx.fa")},
        }
    }
    # an option between --configfile (which takes several words) and the target
    proc = run_workflow(tmp_path / "work", config, ["rnaseq_all"], extra=["--cores", "1"], check=False)
    assert proc.returncode != 0
    assert f"sample sheet {sheet} line 2" in proc.stdout and "column 'run'" in proc.stdout
    assert not (tmp_path / "work" / "results").exists()


@pytest.mark.slurm
@pytest.mark.slow
def test_two_runs_through_slurm(batch, tmp_path, slurm_cluster):
    """The same rules as sbatch jobs: the global caps and the disk slots hold across SLURM jobs.

    With every cap at 1 the two runs must not overlap anywhere: not in the server's transfers
    (counted under its lock), not in the jobs' own download and kallisto intervals, and not in
    the time their FASTQs were on disk. Transfers take ~2 s at this rate, so without the caps the
    two downloads would overlap.
    """
    with FixtureServer(batch["serve"], rate=500_000) as server:
        rows = [r for r in sheet_rows(server, batch["serve"], broken=False) if r["run"] in ("SRR20", "SRR21")]
        sheet = tmp_path / "samples.tsv"
        write_sheet(sheet, rows)
        config = workflow_config(batch, sheet, server)
        config["rnaseq"]["download"]["max_runs_on_disk"] = 1
        run_workflow(
            tmp_path / "work",
            config,
            ["rnaseq_all"],
            profile="slurm",
            extra=[*SLURM_QUICK, "--resources", "download_slots=1", "quant_slots=1"],
        )
        transfers_at_once = server.max_open
    results = tmp_path / "work" / "results" / "rnaseq"
    qc = pd.read_csv(results / "qc" / "runs_qc.tsv", sep="\t")
    assert sorted(qc["run"]) == ["SRR20", "SRR21"] and (qc["n_processed"] == 5000).all()
    assert not (results / "fastq").exists() or not list((results / "fastq").iterdir())
    metrics = [
        json.loads((results / "quant" / r / f"{r}_metrics.json").read_text()) for r in ("SRR20", "SRR21")
    ]
    assert transfers_at_once == 1
    assert max_overlap([(iso(m["download_start"]), iso(m["download_end"])) for m in metrics]) == 1
    assert max_overlap([(iso(m["quant_start"]), iso(m["quant_end"])) for m in metrics]) == 1
    assert max_overlap([(iso(m["disk_slot_start"]), iso(m["fastq_deleted"])) for m in metrics]) == 1


def test_a_users_config_with_its_own_species_runs_without_the_examples(batch, tmp_path):
    """A --configfile naming its own species and sheet, in a folder without examples/: the bundled
    example's species (merged in from config/config.yaml by Snakemake) is not required."""
    with FixtureServer(batch["serve"]) as server:
        rows = [r for r in sheet_rows(server, batch["serve"], broken=False) if r["run"] in ("SRR20", "SRR21")]
        sheet = tmp_path / "mine.tsv"
        columns = [*COLUMNS, "scientific_name"]
        sheet.write_text(
            "\t".join(columns)
            + "\n"
            + "".join("\t".join([*(r[c] for c in COLUMNS), "Mus_testus"]) + "\n" for r in rows)
        )
        config = {
            "rnaseq": {
                "enabled": True,
                "samples": str(sheet),
                "transcriptomes": {"Mus_testus": str(batch["root"] / "tx.fa")},
                "sources": ["ena"],
            }
        }
        # a fresh clone's folder: the bundled config/config.yaml (whose rnaseq.transcriptomes
        # Snakemake merges with the user's) and no examples/
        workdir = tmp_path / "work"
        shutil.copytree(REPO / "config", workdir / "config")
        assert "Formica_simulata" in (workdir / "config" / "config.yaml").read_text()
        assert not (workdir / "examples").exists()
        run_workflow(workdir, config, ["rnaseq_all"], extra=["--cores", "2"])
    merge = workdir / "results" / "rnaseq" / "merge"
    assert sorted(p.name for p in merge.iterdir() if p.is_dir()) == ["Mus_testus"]
    tpm = pd.read_csv(merge / "Mus_testus" / "Mus_testus_tpm.tsv", sep="\t")
    assert list(tpm.columns) == ["target_id", "SRR20", "SRR21"]


def test_start_from_accessions_resolved_by_the_loopback_ena(batch, tmp_path):
    """A project and a run accession resolved through filereport; the FASTQs come from the mirror."""
    serve = batch["serve"]

    def record(run, sample, layout):
        names = [f"{run}_1.fastq.gz", f"{run}_2.fastq.gz"] if layout == "PAIRED" else [f"{run}.fastq.gz"]
        return {
            "run_accession": run,
            "sample_accession": sample,
            "study_accession": "PRJNA20",
            "fastq_ftp": ";".join(f"ftp.sra.ebi.ac.uk/ena/{n}" for n in names),
            "fastq_md5": ";".join(md5(serve / "ena" / n) for n in names),
            "fastq_bytes": ";".join(str((serve / "ena" / n).stat().st_size) for n in names),
            "library_layout": layout,
            "scientific_name": "Formica simulata",
            "read_count": "5000",
        }

    accessions = tmp_path / "accessions.txt"
    accessions.write_text("# what the lab asked for\nPRJNA20\nSRR24\n")
    with FixtureServer(serve) as server:
        server.filereports = {
            "PRJNA20": [record("SRR20", "SAMN20", "PAIRED"), record("SRR21", "SAMN21", "SINGLE")],
            "SRR24": [record("SRR24", "SAMN24", "SINGLE")],
        }
        config = {
            "rnaseq": {
                "enabled": True,
                "accessions": str(accessions),
                "ena_portal": server.url("ena/portal/api"),
                "mirror_base": server.url(""),
                "transcriptomes": {SPECIES: str(batch["root"] / "tx.fa")},
                "sources": ["ena"],
                "quant": {"fragment_length": 250, "fragment_sd": 25},
            }
        }
        run_workflow(tmp_path / "work", config, ["rnaseq_all"], extra=["--cores", "2"])
        asked = [r.path for r in server.requests if r.path.startswith("/ena/portal/api/filereport")]
    assert len(asked) == 2, "each accession asked once; later parses read the resolved sheet"
    results = tmp_path / "work" / "results" / "rnaseq"
    est = pd.read_csv(
        results / "merge" / SPECIES / f"{SPECIES}_est_counts.tsv", sep="\t", index_col="target_id"
    )
    assert sorted(est.columns) == ["SRR20", "SRR21", "SRR24"]
    for run in est.columns:
        truth = [batch["truth"][run][t] for t in est.index]
        assert np.corrcoef(truth, est[run])[0, 1] >= 0.99, run
    meta = pd.read_csv(results / "merge" / "metadata.tsv", sep="\t").set_index("run")
    assert meta.loc["SRR21", "sample"] == "SAMN21" and (meta["study_accession"] == "PRJNA20").all()
    # MultiQC's kallisto module read every run's log, each named by its accession
    html = (results / "qc" / "multiqc_report.html").read_text()
    assert "MultiQC" in html and all(f"{run}" in html for run in ("SRR20", "SRR21", "SRR24"))
    assert "SRR20_1" not in html, "samples are named by run, not by their first FASTQ"
