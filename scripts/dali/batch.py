"""Snakemake entry of rule ``dali_batch``: the proteins of one batch, on node-local scratch.

The job runs in its shadow directory under the profile's ``shadow-prefix`` and holds the job lock
there (:mod:`dali.scratch`). A protein whose done marker carries the signature of the batch
manifest and says ``ok`` (with its hits file present) is skipped: a batch killed or requeued by
SLURM redoes only the proteins that were in flight. The others run on a pool of ``dali_workers``
processes, one protein per process (:func:`batches.run_items`), each aligner call in its own process
with its own timeout: a crash, hang or out-of-memory kill fails that protein alone.

Per protein, on the shared tree: DPAM's ``<prefix>_iterativdDali_hits`` (only on success) and the
done marker ``<prefix>.iterativeDali.done`` (status, error, timings, cache hits, signature), each
written to a temporary name and renamed, so a kill never leaves a file that looks complete. The
batch's state (every protein's record) is the rule's output; a failed protein does not fail the job
(rule ``dali_check`` fails the run, naming it).
"""

import json
import logging
import os
import socket
import time
from pathlib import Path

from batches import Progress, current_marker, read_manifest, run_items, write_marker
from common import atomic_open, setup_logging

from dali.aligners import Aligner
from dali.iterative import ProteinError, default_workers, run_protein
from dali.scratch import (
    CACHE_DIR_NAME,
    WORK_DIRNAME,
    clean_stale_scratch,
    hold_job_lock,
    mark_finished,
    scratch_prefix_of,
)

log = logging.getLogger("hpcpipe")

HITS_SUFFIX = "_iterativdDali_hits"  # DPAM's spelling
MARKER_SUFFIX = ".iterativeDali.done"


def hits_path(results_dir: Path, protein: str) -> Path:
    return Path(results_dir) / f"{protein}{HITS_SUFFIX}"


def marker_path(results_dir: Path, protein: str) -> Path:
    return Path(results_dir) / f"{protein}{MARKER_SUFFIX}"


def finished_record(row: dict, results_dir: Path) -> dict | None:
    """The protein's marker record when it is done with this signature and its hits file exists."""
    record = current_marker(marker_path(results_dir, row["protein"]), row["signature"])
    if record and record.get("status") == "ok" and hits_path(results_dir, row["protein"]).exists():
        return record
    return None


def record_failure(row: dict, error: str, results_dir: Path, batch: str, seconds: float = 0.0) -> dict:
    """A failed protein: no hits file (an older one goes) and a marker that says why."""
    protein = row["protein"]
    log.error("protein %s failed: %s", protein, error)
    hits_path(results_dir, protein).unlink(missing_ok=True)
    record = {
        "protein": protein,
        "status": "failed",
        "error": error,
        "signature": row["signature"],
        "batch": batch,
        "seconds": round(seconds, 3),
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
    write_marker(marker_path(results_dir, protein), record)
    return record


def run_one_protein(row: dict, settings: dict) -> dict:
    """Run one protein (in its pool process) and write its hits file and marker; return its record."""
    protein, started = row["protein"], time.monotonic()
    input_dir, results_dir = Path(settings["input_dir"]), Path(settings["results_dir"])
    try:
        text, stats = run_protein(
            input_dir / f"{protein}.pdb",
            input_dir / f"{protein}_hits4Dali",
            Path(settings["template_dir"]),
            settings["aligner"],
            1,  # the pool runs proteins side by side; a protein's candidates run one after the other
            workdir=Path(settings["workdir"]) / protein,
            cache_root=Path(settings["cache_root"]),
            skip_missing_templates=settings["skip_missing_templates"],
        )
    except ProteinError as err:
        return record_failure(row, str(err), results_dir, settings["batch"], time.monotonic() - started)
    with atomic_open(hits_path(results_dir, protein)) as handle:
        handle.write(text)
    record = {
        "protein": protein,
        "status": "ok",
        "error": "",
        **stats,
        "signature": row["signature"],
        "batch": settings["batch"],
        "workers": settings["workers"],
        "hits_file": str(hits_path(results_dir, protein)),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
    write_marker(marker_path(results_dir, protein), record)
    log.info(
        "protein %s: %d candidates, %d hits, template cache %d hits / %d misses, %.1f s",
        protein,
        stats["candidates"],
        stats["hits"],
        stats["cache_hits"],
        stats["cache_misses"],
        stats["seconds"],
    )
    if stats["missing_templates"]:
        log.warning(
            "protein %s: templates missing (skipped): %s", protein, " ".join(stats["missing_templates"])
        )
    return record


def run_batch(
    rows: list[dict],
    batch: str,
    settings: dict,
    workers: int,
    out_state: Path,
    stale_after_s: float,
    shadow_dir: Path | None = None,
    unshadowers: list | None = None,
) -> list[dict]:
    """Run the proteins of ``rows`` not done yet; write the batch state ``out_state``; return the records.

    ``settings``: input_dir, template_dir, results_dir, aligner (:class:`Aligner`),
    skip_missing_templates. Runs in ``shadow_dir`` (default: the working directory, a Snakemake
    shadow directory); ``unshadowers``: see :func:`dali.scratch.hold_job_lock`.
    """
    shadow_dir = Path.cwd() if shadow_dir is None else Path(shadow_dir)
    scratch = scratch_prefix_of(shadow_dir)
    results_dir = Path(settings["results_dir"])
    settings = {
        **settings,
        "batch": batch,
        "workers": workers,
        "workdir": str(shadow_dir / WORK_DIRNAME),
        "cache_root": str(scratch / CACHE_DIR_NAME),
    }
    with hold_job_lock(shadow_dir, unshadowers):
        clean_stale_scratch(scratch, stale_after_s, keep=shadow_dir)
        records, pending = {}, []
        for row in rows:
            record = finished_record(row, results_dir)
            if record is None:
                pending.append(row)
            else:
                records[row["protein"]] = {**record, "reused": True}
        log.info(
            "batch %s: %d proteins, %d done before (skipped), %d to run on %d workers; scratch %s, aligner %s",
            batch,
            len(rows),
            len(records),
            len(pending),
            workers,
            shadow_dir,
            settings["aligner"].kind,
        )
        done, failures = run_items(
            pending,
            lambda row: run_one_protein(row, settings),
            workers,
            name=lambda row: row["protein"],
            progress=Progress(len(pending), f"dali batch {batch}"),
        )
        for record in done:
            records[record["protein"]] = {**record, "reused": False}
        by_name = {row["protein"]: row for row in pending}
        for protein, error in failures:  # the protein's process died, or a bug: still its failure alone
            record = record_failure(by_name[protein], error, results_dir, batch)
            records[protein] = {**record, "reused": False}
        ordered = [records[row["protein"]] for row in rows]
        with atomic_open(out_state) as handle:
            json.dump({"batch": batch, "proteins": ordered}, handle, indent=1)
            handle.write("\n")
        mark_finished(shadow_dir)
    failed = [r["protein"] for r in ordered if r["status"] != "ok"]
    log.info(
        "batch %s: %d ok, %d failed %s", batch, len(ordered) - len(failed), len(failed), " ".join(failed)
    )
    return ordered


def main(smk) -> None:
    setup_logging(smk.log[0])
    p = smk.params
    aligner = Aligner(
        kind=p.aligner,
        executable=p.dali_pl if p.aligner == "dali" else p.tmalign,
        timeout=float(smk.resources.dali_aligner_timeout_s),
        min_tmscore=float(p.min_tmscore),
    )
    settings = {
        "input_dir": p.input_dir,
        "template_dir": p.template_dir,
        "results_dir": p.results_dir,
        "aligner": aligner,
        "skip_missing_templates": p.missing_template == "skip",
    }
    run_batch(
        read_manifest(smk.input.manifest),
        smk.wildcards.batch,
        settings,
        int(smk.resources.dali_workers) or default_workers(smk.threads),
        Path(smk.output.state),
        stale_after_s=float(smk.resources.dali_stale_scratch_s),
    )


if "snakemake" in globals():
    main(snakemake)
