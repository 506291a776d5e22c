"""Opt-in check (rule af3_verify): restore every organized job and compare it with the source.

Writes one line per job (ok, differs, restore failed, no source): a lab deletes the source after a
sync with evidence, once every line reads ok (the log names each job that does not).
"""

import logging
from pathlib import Path

from common import setup_logging

from af3.restore import verify_jobs
from af3.tabulate import write_tsv

log = logging.getLogger("hpcpipe")


def main(smk) -> None:
    setup_logging(smk.log[0])
    rows = verify_jobs(Path(smk.params.organized), Path(smk.params.root))
    write_tsv(rows, ["group", "job", "status", "files", "detail"], smk.output.report)
    bad = [r for r in rows if r["status"] != "ok"]
    log.info("verified %d organized jobs against the source: %d not identical", len(rows), len(bad))
    for r in bad:
        log.error("job %s: %s: %s", r["job"], r["status"], r["detail"])


if "snakemake" in globals():
    main(snakemake)
