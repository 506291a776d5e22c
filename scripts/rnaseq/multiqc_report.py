"""A MultiQC report (its kallisto module) over the runs that were quantified, for ``--report``.

MultiQC names a kallisto sample after the first FASTQ in kallisto's log (``SRR1_1`` for a paired
run); ``--replace-names`` gives it the run's accession back. Runs that failed have no kallisto log
worth reading and are left out (``qc/runs_qc.tsv`` lists them).
"""

import json
import shutil
import sys
import tempfile
from pathlib import Path

from common import run_command


def multiqc_report(metrics_files: list, logs: Path, html: Path, timeout: float = 600) -> int:
    """Write ``html`` from the kallisto logs of the runs whose metrics say ok; return their number."""
    with tempfile.TemporaryDirectory(dir=html.parent) as tmp:
        tmp = Path(tmp)
        (tmp / "logs").mkdir()
        names = []
        for path in metrics_files:
            metrics = json.loads(Path(path).read_text())
            if metrics.get("status", "ok") != "ok":
                continue
            run = metrics["run"]
            shutil.copy(logs / f"{run}.kallisto.log", tmp / "logs" / f"{run}.kallisto.log")
            first = Path(metrics["files"][0]["name"]).name.removesuffix(".gz").removesuffix(".fastq")
            names.append(f"{first}\t{run}\n")
        (tmp / "names.tsv").write_text("".join(names))
        run_command(
            # the module of this Python, the venv's: a plain `multiqc` may not be on PATH
            [sys.executable, "-m", "multiqc", "--module", "kallisto", "--replace-names", tmp / "names.tsv", "--force",
             "--outdir", tmp / "out", "--filename", "multiqc_report.html", "--title", "rnaseq: kallisto",
             tmp / "logs"],
            timeout=timeout,
        )  # fmt: skip
        report = tmp / "out" / "multiqc_report.html"
        if not report.exists():  # MultiQC writes nothing when no run was quantified
            report.write_text("<html><body><p>No run was quantified: see qc/runs_qc.tsv.</p></body></html>\n")
        report.replace(html)
    return len(names)


if "snakemake" in globals():
    from common import setup_logging

    log = setup_logging(snakemake.log[0])
    count = multiqc_report(snakemake.input.metrics, Path(snakemake.params.logs), Path(snakemake.output.html))
    log.info("MultiQC report over %d quantified runs: %s", count, snakemake.output.html)
