"""The last trendy step: fail the run naming every input that did not make it into ILAMB.

Conversions that failed already fail their own ``trendy_publish`` job; this step also names the
inputs that never got a job (dangling symlink, case-only name clash, two files for one output)
and the model runs that ``ilamb-run`` dropped, so one message lists everything to fix.
"""

import csv
import logging
from pathlib import Path

from common import atomic_open, setup_logging

log = logging.getLogger("hpcpipe.trendy")


class CheckFailed(RuntimeError):
    """Something the user asked for is not in ILAMB's results; the message lists each item."""


def read_rows(path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def check_results(table: str | Path, ilamb_models: str | Path | None = None, ilamb_missing: str = "") -> str:
    """Return a one-line verdict, or raise :class:`CheckFailed` naming each failed file and dropped model.

    ``ilamb_missing`` says why ILAMB could not run although it was asked for (its configuration is
    missing): a warning in the verdict, not a failure, so a config copied into another directory
    still converts and checks the files.
    """
    rows = read_rows(table)
    problems = [
        f"{row['model']} {row['simulation']} {row['variable']}: {row['error']}"
        for row in rows
        if row["status"] == "failed"
    ]
    if ilamb_models:
        problems += [
            f"ILAMB dropped model {row['model']} ({row['path']}): {row['reason']}"
            for row in read_rows(ilamb_models)
            if row["in_ilamb"] == "no"
        ]
    if problems:
        raise CheckFailed(f"trendy: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    ok = sum(row["status"] == "ok" for row in rows)
    verdict = f"all {ok} converted files ok"
    if ilamb_models:
        verdict += ", every model run scored by ILAMB"
    if ilamb_missing:
        log.warning("%s", ilamb_missing)
        verdict += f"; WARNING {ilamb_missing}"
    return verdict


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    try:
        verdict = check_results(
            snakemake.input.table, snakemake.input.ilamb_models or None, snakemake.params.ilamb_missing
        )
    except CheckFailed as err:
        log.error("%s", err)
        raise SystemExit(1) from None
    with atomic_open(snakemake.output[0]) as handle:
        handle.write(verdict + "\n")
