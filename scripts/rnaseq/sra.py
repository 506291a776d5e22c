"""SRA objects: fetch with ``prefetch``, check with ``vdb-validate``, convert with
``fasterq-dump --split-3`` into gzip FASTQ; and build a small ``.sra`` offline (for the examples
and tests) with ``latf-load`` + ``kar --create``.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
from pathlib import Path

from common import CommandError, run_command

from rnaseq.fetch import FetchError

log = logging.getLogger("hpcpipe")


def prefetch(run: str, outdir: Path, max_size: str, timeout: float) -> Path:
    """``prefetch`` the run into ``outdir/<run>/<run>.sra`` and return that path.

    prefetch resumes its own partial downloads (``--resume yes``) when the same ``outdir`` is kept.
    Its default ``--max-size`` of 20 GB silently skips large runs, hence the explicit limit.
    """
    outdir.mkdir(parents=True, exist_ok=True)
    try:
        run_command(
            ["prefetch", "--max-size", max_size, "--resume", "yes", "--output-directory", outdir, run],
            timeout=timeout,
        )
    except CommandError as err:
        # prefetch 3.0.3 exits 3 without a useful message when it cannot reach NCBI.
        raise FetchError(
            f"prefetch failed (no network access to NCBI, or unknown accession?): {err}"
        ) from None
    for candidate in (outdir / run / f"{run}.sra", outdir / run / f"{run}.sralite"):
        if candidate.is_file():
            return candidate
    raise FetchError(f"prefetch exited 0 but wrote no {run}.sra under {outdir}")


def validate_sra(path: Path, timeout: float) -> None:
    """``vdb-validate`` the object; a damaged download fails here rather than in fasterq-dump."""
    try:
        run_command(["vdb-validate", path], timeout=timeout)
    except CommandError as err:
        raise FetchError(f"vdb-validate rejected {path.name}: {err}") from None


def _compress_count(src: Path, dest: Path) -> int:
    """Gzip ``src`` into ``dest`` (level 1: the file lives only until kallisto has read it) and
    count its records on the way."""
    lines = 0
    with open(src, "rb") as inp, gzip.open(dest, "wb", compresslevel=1) as out:
        while block := inp.read(1 << 22):
            lines += block.count(b"\n")
            out.write(block)
    return lines // 4


def sra_to_fastq(
    sra: Path, run: str, paired: bool, workdir: Path, threads: int, timeout: float
) -> dict[str, int]:
    """Convert an SRA object into ``workdir/<run>[_1|_2].fastq.gz``; return records per file.

    fasterq-dump refuses to overwrite (exit 3), so its output folder is emptied first. With
    ``--split-3`` a paired run may also yield an orphan ``<run>.fastq``; kallisto cannot pair it,
    so it is dropped (and logged).
    """
    dump = workdir / "fasterq"
    shutil.rmtree(dump, ignore_errors=True)
    (dump / "tmp").mkdir(parents=True)
    try:
        run_command(
            [
                "fasterq-dump", "--split-3", "--skip-technical", "--threads", max(1, threads),
                "--outdir", dump, "--temp", dump / "tmp", "--outfile", f"{run}.fastq", sra,
            ],
            timeout=timeout,
        )  # fmt: skip
    except CommandError as err:
        raise FetchError(f"fasterq-dump failed: {err}") from None
    produced = sorted(p.name for p in dump.glob("*.fastq"))
    wanted = [f"{run}_1.fastq", f"{run}_2.fastq"] if paired else [f"{run}.fastq"]
    if not all(name in produced for name in wanted):
        layout = "paired" if paired else "single"
        raise FetchError(
            f"the sheet says {layout}-end but fasterq-dump wrote {', '.join(produced) or 'nothing'}"
        )
    for extra in set(produced) - set(wanted):
        log.info("%s: dropping %s (orphan reads of a paired run)", run, extra)
    counts = {}
    for name in wanted:
        counts[name + ".gz"] = _compress_count(dump / name, workdir / (name + ".gz"))
    shutil.rmtree(dump, ignore_errors=True)
    return counts


def build_sra(run: str, fastqs: list[Path], dest: Path, workdir: Path) -> Path:
    """Build a real ``.sra`` archive from plain FASTQ files (1 = single, 2 = paired), offline.

    ``latf-load`` writes a VDB database directory (it prints a harmless "KQueuePop failed" and
    exits 0); ``kar --create`` packs it into the single-file format that prefetch delivers.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / run
    shutil.rmtree(db, ignore_errors=True)
    cmd: list[str | os.PathLike] = ["latf-load", "--quality", "PHRED_33", "--output", db]
    if len(fastqs) == 2:
        cmd += ["-1", fastqs[0], "-2", fastqs[1]]
    else:
        cmd += [fastqs[0]]
    run_command(cmd, timeout=600)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    run_command(["kar", "--create", dest, "--directory", db], timeout=600)
    shutil.rmtree(db)
    return dest
