"""Snakemake entry of checkpoint ``dali_plan``: assign the proteins to batches, one manifest per batch.

The protein list is read once; each protein goes to batch ``hash(name) mod n`` (``n`` from
``batch_size``, :func:`batches.batch_count`), so adding proteins never moves the others. Its row
carries an input signature: the size and mtime of its query PDB, its ``_hits4Dali`` file and every
template that file names, plus the aligner settings. A batch's manifest is rewritten only when one
of its rows changes, so its mtime tells Snakemake which batches must run again; inside a batch, the
proteins whose done marker carries the same signature are skipped.

Cost: one read of each ``_hits4Dali`` file, one stat of each input and of each distinct template.
"""

import logging
import os
from pathlib import Path

from batches import assign_batches, batch_count, stat_signature, tsv_text, write_batch_manifests
from common import atomic_open, setup_logging

from dali.iterative import ProteinError, read_candidates

log = logging.getLogger("hpcpipe")

PLAN_COLUMNS = ["protein", "batch", "candidates", "signature", "note"]
MANIFEST_COLUMNS = ["protein", "signature"]
HITS_SUFFIX = "_hits4Dali"


def read_protein_names(protein_list: str, input_dir: str) -> tuple[list[str], str]:
    """Protein prefixes from the list file (blank lines and #-comments ignored), or else from one
    listing of ``input_dir`` (every ``<prefix>_hits4Dali``); returns (names, where they came from)."""
    if protein_list:
        with open(protein_list) as handle:
            names = [line.split("#")[0].strip() for line in handle]
        return [name for name in names if name], f"dali.protein_list '{protein_list}'"
    with os.scandir(input_dir) as entries:
        names = sorted(e.name[: -len(HITS_SUFFIX)] for e in entries if e.name.endswith(HITS_SUFFIX))
    return names, f"dali.input_dir '{input_dir}'"


def plan_rows(
    names: list[str], input_dir: Path, template_dir: Path, settings: dict, batch_size: int
) -> list[dict]:
    """One row per protein: its batch, its number of candidates and its input signature.

    A ``_hits4Dali`` that cannot be read is noted (the batch then fails that protein, naming why).
    """
    batch_of_name = assign_batches(names, "auto", batch_size)
    template_stats: dict[str, str] = {}
    rows = []
    for name in names:
        query, hits = input_dir / f"{name}.pdb", input_dir / f"{name}{HITS_SUFFIX}"
        note, uids = "", []
        try:
            uids = read_candidates(hits)
        except (OSError, ProteinError) as err:
            note = str(err)
        for uid in uids:
            if uid not in template_stats:
                template_stats[uid] = stat_signature([template_dir / f"{uid}.pdb"])
        signature = stat_signature(
            [query, hits],
            {"templates": [template_stats[u] for u in uids], "settings": settings, "note": note},
        )
        rows.append(
            {
                "protein": name,
                "batch": batch_of_name[name],
                "candidates": len(uids),
                "signature": signature,
                "note": note,
            }
        )
    return rows


def write_plan(rows: list[dict], plan_path: Path, batch_dir: Path) -> list[str]:
    """Write the plan table (every protein) and the per-batch manifests; return the batches rewritten."""
    changed = write_batch_manifests(rows, MANIFEST_COLUMNS, batch_dir)
    with atomic_open(plan_path) as handle:
        handle.write(tsv_text(rows, PLAN_COLUMNS))
    return changed


def main(smk) -> None:
    setup_logging(smk.log[0])
    p = smk.params
    names, where = read_protein_names(p.protein_list, p.input_dir)
    rows = plan_rows(names, Path(p.input_dir), Path(p.template_dir), dict(p.settings), int(p.batch_size))
    changed = write_plan(rows, Path(smk.output.plan), Path(p.batch_dir))
    n_batches = batch_count("auto", len(rows), int(p.batch_size))
    log.info("%d proteins from %s in %d batches of about %d", len(rows), where, n_batches, p.batch_size)
    log.info("batches rewritten (new or changed proteins): %s", " ".join(changed) or "none")


if "snakemake" in globals():
    main(snakemake)
