"""Snakemake entry of rule ``dali_check``: fail the run, naming them, if any protein failed.

``dali_batch`` records a failed protein in its done marker and in the batch state, and succeeds
(so that one protein never fails the others' batch). Here the failure reaches the user: the run's
exit code says something failed, the message names each protein and its error, and the states of
the batches holding them are removed, so that the next run runs those batches again, where only
the failed proteins are redone (the others' markers still match). A protein marked ok whose hits
file has gone is redone the same way.
"""

from pathlib import Path

from batches import read_manifest
from common import atomic_open, fail_naming, setup_logging


def check(table_path: Path, results_dir: Path, out_path: Path) -> list[str]:
    """Return the problems (one line per protein); write ``out_path`` only when there are none."""
    rows = read_manifest(table_path)
    problems, batches = [], set()
    for row in rows:
        hits = results_dir / f"{row['protein']}_iterativdDali_hits"
        if row["status"] != "ok":
            problems.append(
                f"protein {row['protein']} failed: {row['error']} (log: logs/dali/batch-{row['batch']}.log)"
            )
        elif not hits.exists():
            problems.append(f"protein {row['protein']}: its hits file {hits} is missing")
        else:
            continue
        batches.add(row["batch"])
    for batch in sorted(batches):
        (results_dir / "batches" / f"batch-{batch}.json").unlink(missing_ok=True)
    if not problems:
        with atomic_open(out_path) as handle:
            handle.write(f"{len(rows)} proteins, every one with its hits file\n")
    return problems


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    table = Path(snakemake.input.table)
    problems = check(table, table.parent, Path(snakemake.output[0]))
    fail_naming(
        problems,
        f"{len(problems)} dali protein(s) failed; their batches will run again on the next run, "
        "which redoes only these proteins",
    )
