"""Quantify one run with kallisto and check that kallisto read every read.

kallisto 0.48 exits 0 on a truncated gzip and on mates of unequal length: it just stops early.
So success here means: exit 0, *and* ``n_processed`` in ``run_info.json`` equals the spot count the
download step measured by reading the whole FASTQ. Outputs use amalgkit's names
(``<run>_abundance.tsv``, ``<run>_run_info.json``) so ``amalgkit merge`` can read them too.
"""

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from common import CommandError, run_command, write_json

log = logging.getLogger("hpcpipe")


class QuantError(RuntimeError):
    """kallisto failed or read fewer reads than the FASTQ holds; the message names the run."""


@dataclass
class KallistoOptions:
    """What the config's ``rnaseq.quant`` says about kallisto beyond the fragment length."""

    binary: str = "kallisto"
    strandedness: str = "unstranded"  # or fr-stranded, rf-stranded (kallisto's flags)
    bootstraps: int = 0  # > 0: abundance.h5 with the bootstraps (sleuth, fishpond)
    seed: int = 42
    extra_args: list[str] = field(default_factory=list)


def build_index(
    fasta: str | os.PathLike,
    index: str | os.PathLike,
    kmer: int = 31,
    timeout: float = 7200,
    binary: str = "kallisto",
) -> None:
    """``kallisto index`` written beside the target and renamed into place."""
    index = Path(index)
    tmp = index.with_name(index.name + ".tmp")
    run_command([binary, "index", "-k", kmer, "-i", tmp, fasta], timeout=timeout)
    os.replace(tmp, index)


def kallisto_command(
    index: Path,
    outdir: Path,
    fastqs: list[Path],
    paired: bool,
    threads: int,
    fragment_length,
    fragment_sd,
    options: KallistoOptions | None = None,
) -> list:
    """The ``kallisto quant`` call; single-end needs the fragment length mean and sd."""
    options = options or KallistoOptions()
    cmd = [options.binary, "quant", "-i", index, "-o", outdir, "-t", max(1, threads)]
    if options.strandedness != "unstranded":
        cmd.append(f"--{options.strandedness}")
    if options.bootstraps:
        cmd += ["-b", options.bootstraps, "--seed", options.seed]
    cmd += list(options.extra_args)
    if not paired:
        cmd += ["--single", "-l", f"{fragment_length:g}", "-s", f"{fragment_sd:g}"]
    return cmd + list(fastqs)


def quantify_run(
    run: str,
    fastq_dir: Path,
    index: Path,
    abundance: Path,
    run_info: Path,
    threads: int = 1,
    fragment_length: float = 200.0,
    fragment_sd: float = 20.0,
    timeout: float = 3600,
    kallisto_log: Path | None = None,
    options: KallistoOptions | None = None,
) -> dict:
    """Run kallisto on the FASTQs of ``fastq_dir`` (described by its ``reads.json``), check the
    read count, write ``abundance``/``run_info`` (kallisto's messages to ``kallisto_log``), and
    with bootstraps ``<run>_abundance.h5`` beside them; return the quantification metrics."""
    options = options or KallistoOptions()
    reads = json.loads((fastq_dir / "reads.json").read_text())
    paired = reads["layout"] == "paired"
    fastqs = [fastq_dir / f["name"] for f in reads["files"]]
    spots = int(reads["spots"])
    if spots == 0:
        raise QuantError(f"run {run}: the FASTQ holds zero reads; nothing to quantify")
    work = abundance.parent / f".kallisto-{run}"
    shutil.rmtree(work, ignore_errors=True)
    started = datetime.now(UTC).isoformat(timespec="milliseconds")
    t0 = time.monotonic()
    cmd = kallisto_command(index, work, fastqs, paired, threads, fragment_length, fragment_sd, options)
    result = run_command(cmd, timeout=timeout, check=False)
    if kallisto_log is not None:
        Path(kallisto_log).write_text(result.stderr)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-3:])
        if "zero reads pseudoaligned" in result.stderr:
            raise QuantError(
                f"run {run}: no read pseudoaligned to the index (wrong species or index?)\n{tail}"
            )
        raise QuantError(f"run {run}: kallisto exited {result.returncode}\n{tail}")
    info = json.loads((work / "run_info.json").read_text())
    if int(info["n_processed"]) != spots:
        raise QuantError(
            f"run {run}: kallisto processed {info['n_processed']} reads but the FASTQ holds {spots} "
            "(a truncated or unreadable input: kallisto exits 0 in that case)"
        )
    if options.bootstraps:
        if not (work / "abundance.h5").exists():
            raise QuantError(
                f"run {run}: {options.binary} wrote no abundance.h5 for {options.bootstraps} bootstraps "
                "(a kallisto built without HDF5, as Debian's 0.48: set rnaseq.quant.kallisto to 0.50+)"
            )
        os.replace(work / "abundance.h5", abundance.with_name(f"{run}_abundance.h5"))
    os.replace(work / "abundance.tsv", abundance)
    os.replace(work / "run_info.json", run_info)
    shutil.rmtree(work, ignore_errors=True)
    seconds = time.monotonic() - t0
    log.info("%s: %s of %s reads pseudoaligned in %.1f s", run, info["n_pseudoaligned"], spots, seconds)
    return {
        "quant_start": started,
        "quant_end": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "quant_s": round(seconds, 3),
        "n_processed": int(info["n_processed"]),
        "n_pseudoaligned": int(info["n_pseudoaligned"]),
        "p_pseudoaligned": float(info["p_pseudoaligned"]),
        "kallisto_version": info.get("kallisto_version"),
        "kallisto_call": " ".join(str(c) for c in cmd),
        "n_bootstraps": int(info.get("n_bootstraps", 0)),
        "strandedness": options.strandedness,
        "fragment_length": None if paired else fragment_length,
        "fragment_sd": None if paired else fragment_sd,
    }


def options_from_config(quant: dict) -> KallistoOptions:
    """kallisto's options from the validated ``rnaseq.quant`` section."""
    return KallistoOptions(
        binary=quant["kallisto"],
        strandedness=quant["strandedness"],
        bootstraps=int(quant["bootstraps"]),
        seed=int(quant["seed"]),
        extra_args=[str(a) for a in quant["extra_args"]],
    )


def release_fastqs(fastq_dir: Path, keep_in: Path | None) -> str:
    """Delete the run's FASTQs now (or move them to ``keep_in``, the download's ENA folder, where a
    retry finds them verified); return the UTC time they left the FASTQ folder."""
    for path in sorted(fastq_dir.glob("*.fastq.gz")):
        if keep_in is not None:
            keep_in.mkdir(parents=True, exist_ok=True)
            os.replace(path, keep_in / path.name)
        else:
            path.unlink()
    (fastq_dir / "reads.json").unlink(missing_ok=True)  # the disk slot's holder: gone with them
    return datetime.now(UTC).isoformat(timespec="milliseconds")


if "snakemake" in globals():
    from common import setup_logging

    from rnaseq import disk_slots
    from rnaseq.download import failure_record
    from rnaseq.samples import sheet_from_config

    setup_logging(snakemake.log.main)
    run = snakemake.wildcards.run
    fastq_dir = Path(snakemake.input.fastq)
    download = json.loads(Path(snakemake.input.download).read_text())
    metrics = Path(snakemake.output.metrics)
    if download.get("status") == "failed":
        log.info("run %s: its download failed; nothing to quantify", run)
        write_json(metrics, download)
        raise SystemExit(0)
    try:
        quant = quantify_run(
            run,
            fastq_dir,
            Path(snakemake.input.index),
            metrics.with_name(f"{run}_abundance.tsv"),
            metrics.with_name(f"{run}_run_info.json"),
            threads=snakemake.threads,
            fragment_length=float(snakemake.params.fragment_length),
            fragment_sd=float(snakemake.params.fragment_sd),
            timeout=float(snakemake.params.timeout),
            kallisto_log=Path(snakemake.log.kallisto),
            options=options_from_config(snakemake.config["rnaseq"]["quant"]),
        )
    except (QuantError, CommandError) as err:
        log.error("run %s: %s", run, err)
        keep = Path(snakemake.params.partial) / "ena" if download.get("source") == "ena" else None
        deleted = release_fastqs(fastq_dir, keep)
        disk_slots.release(run, Path(snakemake.params.disk_slots))
        record = failure_record(sheet_from_config(snakemake.config["rnaseq"])[run], str(err), "quant")
        write_json(metrics, {**download, **record, "fastq_deleted": deleted})
        raise SystemExit(0) from None  # recorded; rnaseq_check fails the workflow naming the run
    deleted = release_fastqs(fastq_dir, None)
    disk_slots.release(run, Path(snakemake.params.disk_slots))
    write_json(metrics, {**download, **quant, "fastq_deleted": deleted})
