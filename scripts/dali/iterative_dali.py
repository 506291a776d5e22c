"""Snakemake entry of rule ``dali_iterative``: one protein, run inside its shadow directory on scratch.

Everything temporary (the per-candidate directories, DaliLite's files) stays under the shadow
directory, which lives under the profile's ``shadow-prefix`` (node-local scratch); the templates come
through the node's cache beside it. The shared tree sees only the reads of the two inputs, the DPAM
hits file (written to a temporary name beside its final one, then renamed) and the done marker
that Snakemake moves there.

A protein that cannot be processed (a bad input, an aligner that crashes or hangs) is recorded as
failed in its done marker and the job succeeds: on SLURM proteins share a batch job, and a failed
job would fail the whole batch. Rule ``dali_check`` then fails the run naming it.
"""

import json
import logging
import os
from pathlib import Path

from common import atomic_open, setup_logging

from dali.aligners import Aligner
from dali.iterative import ProteinError, default_workers, run_protein
from dali.scratch import CACHE_DIR_NAME, WORK_DIRNAME, clean_stale_scratch, hold_job_lock, scratch_prefix_of

log = logging.getLogger("hpcpipe")


def iterative_dali(
    protein: str,
    query_pdb: Path,
    hits4dali: Path,
    template_dir: Path,
    aligner: Aligner,
    workers: int,
    out_hits: Path,
    out_done: Path,
    stale_after_s: float,
    skip_missing_templates: bool = False,
    shadow_dir: Path | None = None,
) -> dict:
    """Run one protein in ``shadow_dir`` (default: the working directory) and write both outputs."""
    shadow_dir = Path.cwd() if shadow_dir is None else Path(shadow_dir)
    scratch = scratch_prefix_of(shadow_dir)
    with hold_job_lock(shadow_dir):
        clean_stale_scratch(scratch, stale_after_s, keep=shadow_dir)
        log.info("protein %s: scratch %s, aligner %s, %d workers", protein, shadow_dir, aligner.kind, workers)
        text, stats = run_protein(
            query_pdb,
            hits4dali,
            template_dir,
            aligner,
            workers,
            workdir=shadow_dir / WORK_DIRNAME,
            cache_root=scratch / CACHE_DIR_NAME,
            skip_missing_templates=skip_missing_templates,
        )
    stats = {
        "protein": protein,
        "status": "ok",
        "error": "",
        **stats,
        "hits_file": str(out_hits),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
    with atomic_open(out_hits) as handle:
        handle.write(text)
    with atomic_open(out_done) as handle:
        json.dump(stats, handle, indent=1)
        handle.write("\n")
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
    return stats


def record_failure(protein: str, error: Exception, out_hits: Path, out_done: Path) -> None:
    """A failed protein: no hits file (an older one goes), and a marker that says why."""
    log.error("protein %s failed: %s", protein, error)
    out_hits.unlink(missing_ok=True)
    failure = {
        "protein": protein,
        "status": "failed",
        "error": str(error),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
    with atomic_open(out_done) as handle:
        json.dump(failure, handle, indent=1)
        handle.write("\n")


def main(smk) -> None:
    setup_logging(smk.log[0])
    p = smk.params
    aligner = Aligner(
        kind=p.aligner,
        executable=p.dali_pl if p.aligner == "dali" else p.tmalign,
        timeout=float(smk.resources.dali_aligner_timeout_s),
        min_tmscore=float(p.min_tmscore),
    )
    workers = int(smk.resources.dali_workers) or default_workers(smk.threads)
    protein = smk.wildcards.protein
    out_hits = Path(p.results_dir) / f"{protein}_iterativdDali_hits"
    try:
        iterative_dali(
            protein,
            Path(smk.input.pdb),
            Path(smk.input.hits),
            Path(p.template_dir),
            aligner,
            workers,
            out_hits,
            Path(smk.output.done),
            stale_after_s=float(smk.resources.dali_stale_scratch_s),
            skip_missing_templates=p.missing_template == "skip",
        )
    except ProteinError as err:
        record_failure(protein, err, out_hits, Path(smk.output.done))


if "snakemake" in globals():
    main(snakemake)
