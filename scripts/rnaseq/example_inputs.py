"""Example inputs for the rnaseq demo: a simulated transcriptome and six runs, fetchable offline.

Five runs are FASTQ files referenced by relative paths in the sheet's ``fastq_ftp`` column (with
the MD5 and byte counts ENA's filereport would give); one run is only an SRA object (a real
``.sra`` built with latf-load + kar), so the demo exercises both download paths. Accessions are
made up (SRR999000x); the reads are simulated with known abundances (``truth.tsv``).
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import tempfile
from pathlib import Path

from rnaseq.simulate import make_transcriptome, random_abundances, simulate_reads, write_fasta
from rnaseq.sra import build_sra

SPECIES = "Formica_simulata"
# run, sample, layout, fragments, source, fragment length given in the sheet (single-end)
RUNS = [
    ("SRR9990001", "brain_1", "paired", 30000, "ena", ""),
    ("SRR9990002", "brain_2", "paired", 30000, "ena", ""),
    ("SRR9990003", "gut_1", "paired", 30000, "ena", ""),
    ("SRR9990004", "gut_2", "single", 30000, "ena", "250"),
    ("SRR9990005", "muscle_1", "single", 30000, "ena", ""),
    ("SRR9990006", "muscle_2", "paired", 20000, "sra", ""),
]
COLUMNS = [
    "run", "sample", "layout", "scientific_name", "fastq_ftp", "fastq_md5", "fastq_bytes",
    "sra_url", "read_count", "fragment_length", "fragment_sd",
]  # fmt: skip


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# What the demo asks ENA for: a project (runs 1-4), a sample (run 5) and a run (6).
PROJECT = "PRJNA999000"
ACCESSIONS = [PROJECT, "SAMN99900005", "SRR9990006"]
ENA_FIELDS = [
    "run_accession", "sample_accession", "study_accession", "fastq_ftp", "fastq_md5", "fastq_bytes",
    "library_layout", "scientific_name", "read_count", "sra_ftp", "sra_md5", "sra_bytes", "sample_alias",
]  # fmt: skip


def make(outdir: Path) -> None:
    """Write transcriptome.fa, truth.tsv, fastq/, sra/ and samples.tsv (last: it marks completion),
    then the demo's accession list and ENA's recorded answers for it."""
    outdir = Path(outdir)
    if not (outdir / "samples.tsv").exists():
        _make_runs(outdir)
    write_ena_records(outdir)


def write_ena_records(outdir: Path) -> None:
    """``accessions.txt`` and ``ena/<accession>.tsv``: what ENA's filereport would answer for each
    accession (tab-separated, header of field names, one line per run, paths without scheme),
    pointing at ``ftp.sra.ebi.ac.uk/fastq/...`` and ``.../sra/...``, which the demo's loopback
    server serves from this folder as the site mirror."""
    rows = []
    with open(outdir / "samples.tsv") as handle:
        lines = [line.rstrip("\n").split("\t") for line in handle if not line.startswith("#")]
    header = lines[0]
    for k, values in enumerate(lines[1:], start=1):
        row = dict(zip(header, values, strict=True))
        sra = outdir / "sra" / f"{row['run']}.sra"
        rows.append(
            {
                "run_accession": row["run"],
                "sample_accession": f"SAMN9990000{k}",
                "study_accession": PROJECT,
                "fastq_ftp": row["fastq_ftp"].replace("./fastq/", "ftp.sra.ebi.ac.uk/fastq/"),
                "fastq_md5": row["fastq_md5"],
                "fastq_bytes": row["fastq_bytes"],
                "library_layout": row["layout"].upper(),
                "scientific_name": SPECIES.replace("_", " "),
                "read_count": row["read_count"],
                "sra_ftp": f"ftp.sra.ebi.ac.uk/sra/{row['run']}.sra" if sra.exists() else "",
                "sra_md5": _md5(sra) if sra.exists() else "",
                "sra_bytes": str(sra.stat().st_size) if sra.exists() else "",
                "sample_alias": row["sample"],
            }
        )
    answers = {PROJECT: rows[:4], "SAMN99900005": rows[4:5], "SRR9990006": rows[5:6]}
    (outdir / "ena").mkdir(exist_ok=True)
    for accession, found in answers.items():
        text = (
            "\t".join(ENA_FIELDS) + "\n" + "".join("\t".join(r[f] for f in ENA_FIELDS) + "\n" for r in found)
        )
        (outdir / "ena" / f"{accession}.tsv").write_text(text)
    (outdir / "accessions.txt").write_text(
        "# The demo's accessions (made up), resolved with ENA's filereport against a loopback server\n"
        + "".join(a + "\n" for a in ACCESSIONS)
    )


def _make_runs(outdir: Path) -> None:
    sheet = outdir / "samples.tsv"
    (outdir / "fastq").mkdir(parents=True, exist_ok=True)
    (outdir / "sra").mkdir(exist_ok=True)
    transcripts = make_transcriptome(80, seed=11)
    write_fasta(transcripts, outdir / "transcriptome.fa")
    rows, truths = [], {}
    for k, (run, sample, layout, n, source, fraglen) in enumerate(RUNS):
        abundances = random_abundances(list(transcripts), seed=100 + k)
        paired = layout == "paired"
        row = dict.fromkeys(COLUMNS, "")
        row.update(run=run, sample=sample, layout=layout, scientific_name=SPECIES, read_count=str(n))
        row["fragment_length"] = fraglen
        row["fragment_sd"] = "25" if fraglen else ""
        if source == "ena":
            truths[run] = simulate_reads(
                transcripts, abundances, n, outdir / "fastq" / run, run, paired, seed=k
            )
            names = [f"{run}_1.fastq.gz", f"{run}_2.fastq.gz"] if paired else [f"{run}.fastq.gz"]
            files = [outdir / "fastq" / name for name in names]
            row["fastq_ftp"] = ";".join(f"./fastq/{name}" for name in names)
            row["fastq_md5"] = ";".join(_md5(f) for f in files)
            row["fastq_bytes"] = ";".join(str(f.stat().st_size) for f in files)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                tmp = Path(tmp)
                truths[run] = simulate_reads(transcripts, abundances, n, tmp / run, run, paired, seed=k)
                plain = []
                for gz in sorted(tmp.glob("*.fastq.gz")):
                    target = gz.with_suffix("")
                    with gzip.open(gz, "rb") as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    plain.append(target)
                build_sra(run, plain, outdir / "sra" / f"{run}.sra", tmp / "vdb")
            row["sra_url"] = f"./sra/{run}.sra"
        rows.append(row)
    with open(outdir / "truth.tsv", "w") as out:
        out.write("target_id\t" + "\t".join(truths) + "\n")
        for name in transcripts:
            out.write(name + "\t" + "\t".join(str(truths[r][name]) for r in truths) + "\n")
    tmp_sheet = sheet.with_name(".samples.tsv.tmp")
    with open(tmp_sheet, "w") as out:
        out.write("# Simulated runs (made-up accessions); columns as in ENA's filereport.\n")
        out.write("\t".join(COLUMNS) + "\n")
        for row in rows:
            out.write("\t".join(row[c] for c in COLUMNS) + "\n")
    tmp_sheet.rename(sheet)
