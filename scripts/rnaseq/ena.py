"""Resolve run, sample, study or project accessions to a sample sheet with ENA's filereport.

``GET <portal>/filereport?accession=<acc>&result=read_run&fields=...&format=tsv`` answers with a
tab-separated table, a header line of the field names (``run_accession`` first), then one line per
run of the accession; ``fastq_ftp``, ``fastq_md5`` and ``fastq_bytes`` are ``;``-separated in the
same order, paths without scheme. An accession without runs gives an empty body (HTTP 204 or no
line after the header); an unknown one gives an HTTP 4xx. nf-core/fetchngs asks the same.

The table is written as it came (plus ``accession``, what the user asked for) to a TSV that
``load_sample_sheet`` reads as a sample sheet: a pasted filereport works the same way.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from common import atomic_open

log = logging.getLogger("hpcpipe")

FIELDS = [
    "run_accession", "sample_accession", "study_accession", "fastq_ftp", "fastq_md5", "fastq_bytes",
    "library_layout", "scientific_name", "read_count", "sra_ftp", "sra_md5", "sra_bytes",
]  # fmt: skip
ACCESSION = r"(PRJ[EDN][A-Z][0-9]+|[EDS]R[APRSX][0-9]+|SAM[EDN][A-Z]?[0-9]+)"


class ResolveError(RuntimeError):
    """An accession could not be resolved; the message names it and the URL asked."""


def filereport_url(portal: str, accession: str) -> str:
    query = urllib.parse.urlencode(
        {"accession": accession, "result": "read_run", "fields": ",".join(FIELDS), "format": "tsv"}
    )
    return f"{portal.rstrip('/')}/filereport?{query}"


def filereport(portal: str, accession: str, timeout: float = 60, tries: int = 3) -> list[dict]:
    """The runs of ``accession`` as filereport rows; ResolveError when ENA refuses or has none."""
    url = filereport_url(portal, accession)
    for attempt in range(1, tries + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                body = response.read().decode()
            break
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace").strip()[:200]
            if err.code < 500 or attempt == tries:
                raise ResolveError(f"accession {accession}: HTTP {err.code} from {url}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            if attempt == tries:
                reason = getattr(err, "reason", err)
                raise ResolveError(f"accession {accession}: cannot reach {url}: {reason}") from None
        time.sleep(2**attempt)  # ENA asks clients to back off on 5xx and dropped connections
    rows = list(csv.DictReader(io.StringIO(body), delimiter="\t"))
    if not rows:
        raise ResolveError(f"accession {accession}: ENA lists no runs for it ({url})")
    return rows


def read_accessions(path: str | os.PathLike) -> list[str]:
    """Accessions, one per line (blank lines and ``#`` comments skipped), in order, deduplicated."""
    seen = []
    for line in Path(path).read_text().splitlines():
        word = line.split("#", 1)[0].strip()
        if word and word not in seen:
            seen.append(word)
    return seen


def resolve(accessions: list[str], portal: str, sheet: str | os.PathLike) -> Path:
    """Write the filereport rows of every accession to ``sheet`` (a run listed twice once).

    The sheet records a hash of the accession list and the portal; it is rewritten only when they
    change, so the parse of every later Snakemake process (every SLURM job) reads a file and asks
    nobody.
    """
    sheet = Path(sheet)
    stamp = "# accessions " + hashlib.sha256("\n".join([portal, *accessions]).encode()).hexdigest()[:16]
    if sheet.exists() and sheet.read_text().split("\n", 1)[0] == stamp:
        return sheet
    errors, rows, runs = [], [], set()
    for accession in accessions:
        try:
            found = filereport(portal, accession)
        except ResolveError as err:
            errors.append(str(err))
            continue
        for row in found:
            if row.get("run_accession") not in runs:
                runs.add(row.get("run_accession"))
                rows.append({"accession": accession, **row})
    if errors:
        raise ResolveError("cannot resolve the accession list:\n  " + "\n  ".join(errors))
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_open(sheet) as out:
        out.write(stamp + "\n")
        out.write("\t".join(columns) + "\n")
        for row in rows:
            out.write("\t".join(row.get(c, "") or "" for c in columns) + "\n")
    log.info("%d accessions resolved to %d runs in %s", len(accessions), len(rows), sheet)
    return sheet
