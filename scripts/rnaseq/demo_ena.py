"""Run a command (the demo's Snakemake) while a loopback server plays ENA for the rnaseq example.

    python scripts/rnaseq/demo_ena.py examples/rnaseq -- snakemake --profile profiles/local

The server answers ENA's filereport from the recorded answers in ``<examples>/ena/<accession>.tsv``
and serves ``<examples>`` as the site mirror of ``ftp.sra.ebi.ac.uk`` (``fastq/``, ``sra/``). The
command gets ``--configfile config/config.yaml <overlay>``, where the overlay points rnaseq at
``<examples>/accessions.txt``, the loopback portal and the loopback mirror: the demo starts from
accessions, as a lab would, without the internet.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnaseq.http_fixture import FixtureServer  # noqa: E402


def main(examples: Path, command: list[str]) -> int:
    with FixtureServer(examples) as server, tempfile.TemporaryDirectory() as tmp:
        for answer in sorted((examples / "ena").glob("*.tsv")):
            with open(answer, newline="") as handle:
                server.filereports[answer.stem] = list(csv.DictReader(handle, delimiter="\t"))
        overlay = Path(tmp) / "rnaseq-accessions.yaml"
        section = {
            "accessions": str(examples / "accessions.txt"),
            "ena_portal": server.url("ena/portal/api"),
            "mirror_base": server.url(""),
        }
        overlay.write_text(yaml.safe_dump({"rnaseq": section}))
        print(f"demo: ENA filereport and mirror on {server.base} (loopback)", flush=True)
        return subprocess.run([*command, "--configfile", "config/config.yaml", str(overlay)]).returncode


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        raise SystemExit(__doc__)
    raise SystemExit(main(Path(sys.argv[1]), sys.argv[3:]))
