"""Simulate a small transcriptome and Illumina-like reads with known abundances.

Debian 12 has no ``wgsim``, and the tests need a ground truth anyway: how many fragments came from
each transcript. The model is the usual one behind RNA-seq quantifiers: a fragment comes from a
transcript with probability proportional to its molar abundance times its effective length; fragment
lengths are normal (truncated to the transcript); reads come from either strand; substitution errors
rise towards the 3' end of a read and carry low base qualities.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
COMPLEMENT = bytes.maketrans(b"ACGTN", b"TGCAN")


def random_sequence(rng: np.random.Generator, length: int, gc: float = 0.45) -> str:
    """A random DNA string with the given GC fraction."""
    p = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]
    return BASES[rng.choice(4, size=length, p=p)].tobytes().decode()


def make_transcriptome(n_genes: int, seed: int = 1) -> dict[str, str]:
    """Transcripts of ``n_genes`` genes; about a third of the genes have two or three isoforms
    that share exons, so some reads are ambiguous and kallisto's EM has real work to do."""
    rng = np.random.default_rng(seed)
    transcripts: dict[str, str] = {}
    for g in range(n_genes):
        n_exons = int(rng.integers(2, 7))
        exons = [random_sequence(rng, int(rng.integers(120, 600))) for _ in range(n_exons)]
        n_isoforms = int(rng.choice([1, 1, 2, 3]))
        for i in range(n_isoforms):
            if i == 0:
                keep = list(range(n_exons))
            else:
                # skip one internal exon (or the last one for two-exon genes)
                skipped = int(rng.integers(1, n_exons - 1)) if n_exons > 2 else n_exons - 1
                keep = [e for e in range(n_exons) if e != skipped]
                if i == 2:
                    keep = keep[:-1] if len(keep) > 2 else keep
            seq = "".join(exons[e] for e in keep)
            name = f"GENE{g:04d}.t{i + 1}"
            if seq not in transcripts.values():
                transcripts[name] = seq
    return transcripts


def write_fasta(transcripts: Mapping[str, str], path: str | os.PathLike, width: int = 70) -> None:
    """Write transcripts as FASTA (plain, or gzip when the name ends in .gz)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt") as out:
        for name, seq in transcripts.items():
            out.write(f">{name}\n")
            for i in range(0, len(seq), width):
                out.write(seq[i : i + width] + "\n")


def random_abundances(names: list[str], seed: int = 2, zero_fraction: float = 0.1) -> dict[str, float]:
    """Log-normal relative molar abundances (summing to 1e6, like TPM), some transcripts silent."""
    rng = np.random.default_rng(seed)
    values = rng.lognormal(mean=0.0, sigma=1.5, size=len(names))
    values[rng.random(len(names)) < zero_fraction] = 0.0
    values = values / values.sum() * 1e6
    return dict(zip(names, values.tolist(), strict=True))


def _add_errors(reads: np.ndarray, rng: np.random.Generator, error_rate: float) -> np.ndarray:
    """Substitute bases in place (rate rising 3x from 5' to 3'); return the Phred+33 qualities."""
    n, length = reads.shape
    ramp = np.linspace(0.5, 1.5, length) * error_rate
    errors = rng.random((n, length)) < ramp
    shift = rng.integers(1, 4, size=(n, length))
    index = np.searchsorted(BASES, reads)
    reads[errors] = BASES[(index[errors] + shift[errors]) % 4]
    good = rng.integers(30, 41, size=(n, length))
    bad = rng.integers(2, 15, size=(n, length))
    return np.where(errors, bad, good).astype(np.uint8) + 33


def simulate_reads(
    transcripts: Mapping[str, str],
    abundances: Mapping[str, float],
    n_fragments: int,
    out_prefix: str | os.PathLike,
    run: str,
    paired: bool,
    read_length: int = 100,
    fragment_mean: float = 250.0,
    fragment_sd: float = 25.0,
    error_rate: float = 0.005,
    seed: int = 3,
    compresslevel: int = 6,
) -> dict[str, int]:
    """Write ``<out_prefix>_1/_2.fastq.gz`` (paired) or ``<out_prefix>.fastq.gz`` (single).

    Returns the true number of fragments drawn from each transcript (the ground truth that
    kallisto's ``est_counts`` should reproduce).
    """
    rng = np.random.default_rng(seed)
    names = [n for n in transcripts if abundances.get(n, 0) > 0]
    lengths = np.array([len(transcripts[n]) for n in names])
    eff = np.clip(lengths - fragment_mean + 1, 1, None)
    weights = np.array([abundances[n] for n in names]) * eff
    choice = rng.choice(len(names), size=n_fragments, p=weights / weights.sum())
    frag = np.rint(rng.normal(fragment_mean, fragment_sd, size=n_fragments)).astype(int)
    frag = np.clip(frag, read_length, lengths[choice])
    start = (rng.random(n_fragments) * (lengths[choice] - frag + 1)).astype(int)
    flip = rng.random(n_fragments) < 0.5

    r1 = np.empty((n_fragments, read_length), dtype=np.uint8)
    r2 = np.empty((n_fragments, read_length), dtype=np.uint8)
    for k in range(n_fragments):
        seq = transcripts[names[choice[k]]].encode()
        fragment = seq[start[k] : start[k] + frag[k]]
        if flip[k]:
            fragment = fragment.translate(COMPLEMENT)[::-1]
        r1[k] = np.frombuffer(fragment[:read_length], dtype=np.uint8)
        r2[k] = np.frombuffer(fragment[-read_length:].translate(COMPLEMENT)[::-1], dtype=np.uint8)
    q1 = _add_errors(r1, rng, error_rate)
    mates = [(r1, q1, "_1" if paired else "")]
    if paired:
        mates.append((r2, _add_errors(r2, rng, error_rate), "_2"))

    for reads, quals, suffix in mates:
        mate = suffix[-1:] or "1"
        path = Path(f"{out_prefix}{suffix}.fastq.gz")
        with gzip.open(path, "wb", compresslevel=compresslevel) as out:
            chunk = []
            for k in range(n_fragments):
                chunk.append(
                    b"@%s.%d %d/%s\n%s\n+\n%s\n"
                    % (run.encode(), k + 1, k + 1, mate.encode(), reads[k].tobytes(), quals[k].tobytes())
                )
                if len(chunk) >= 10000:
                    out.write(b"".join(chunk))
                    chunk = []
            out.write(b"".join(chunk))
    counts = np.bincount(choice, minlength=len(names))
    truth = dict.fromkeys(transcripts, 0)
    truth.update({n: int(c) for n, c in zip(names, counts, strict=True)})
    return truth
