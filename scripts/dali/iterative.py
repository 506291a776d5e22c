"""DPAM's iterative DALI loop (step 7 of DPAM v1.0, with the docker variant's matrix lines).

Per candidate template: align it to the working copy of the query; stop when there is no hit or fewer
than 20 equivalent pairs; otherwise record the hit, cut the aligned segments (gaps inside a segment
included) out of the working copy, and stop when fewer than 20 residues remain. Candidates run in a
pool of worker processes, each in its own short directory ``c/<uid>/`` under the job's scratch
directory. Any worker error (aligner crash, timeout, bad output, missing template) fails the protein
with a message naming the candidate; a dead worker process breaks the pool instead of hanging it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import shutil
import socket
import time
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from dali.aligners import QUERY_FILE, TEMPLATE_FILE, Aligner, AlignerOutputError, Alignment
from dali.cache import TemplateCache, TemplateMissingError
from dali.pdb import check_query, read_atom_lines, residue_number, residue_numbers, write_residues

log = logging.getLogger("hpcpipe")

MIN_PAIRS = 20  # fewer equivalent pairs than this: not a hit, stop this candidate
MIN_REMAINING = 20  # fewer query residues left than this: stop this candidate
UID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class ProteinError(RuntimeError):
    """One protein cannot be processed; the message names the protein, the file or the candidate."""


def domain_segments(resids: list[int]) -> list[tuple[int, int]]:
    """DPAM's ``get_domain_range``: split sorted residue numbers where the gap exceeds max(5, 5 % of them)."""
    resids = sorted(resids)
    cutoff = max(5, len(resids) * 0.05)
    segments: list[list[int]] = []
    for resid in resids:
        if segments and resid <= segments[-1][-1] + cutoff:
            segments[-1].append(resid)
        else:
            segments.append([resid])
    return [(seg[0], seg[-1]) for seg in segments]


def covered_residues(segments: list[tuple[int, int]]) -> set[int]:
    """Every residue number from start to end of each segment (DPAM removes the gaps inside, too)."""
    return {resid for start, end in segments for resid in range(start, end + 1)}


def format_hit(uid: str, k: int, alignment: Alignment, query_resids: list[int]) -> str:
    """One block of ``_iterativdDali_hits``: header, 3 rotation rows, translation, then the pairs.

    Header: ``>{uid}_{k}<TAB>score<TAB>n_aligned<TAB>qlen<TAB>slen``; pairs: query PDB residue number
    and the template's 1-based sequential index.
    """
    lines = [f">{uid}_{k}\t{alignment.score}\t{len(alignment.pairs)}\t{alignment.qlen}\t{alignment.slen}"]
    lines += ["rotation\t" + "\t".join(row) for row in alignment.rotation]
    lines.append("translation\t" + "\t".join(alignment.translation))
    lines += [f"{query_resids[q - 1]}\t{t}" for q, t in alignment.pairs]
    return "\n".join(lines) + "\n"


@dataclass
class CandidateResult:
    """What one candidate produced: its hit blocks and how its template was found."""

    uid: str
    blocks: list[str] = field(default_factory=list)
    iterations: int = 0
    cache_hit: bool | None = None
    missing: bool = False
    seconds: float = 0.0


def align_candidate(
    uid: str,
    query_lines: list[str],
    cache: TemplateCache,
    aligner: Aligner,
    base: Path,
    skip_missing: bool,
    copy_template: bool = False,
) -> CandidateResult:
    """Run the iterative loop of one candidate in ``base/<uid>/``; remove that directory afterwards."""
    start = time.monotonic()
    result = CandidateResult(uid)
    try:
        template, result.cache_hit = cache.fetch(uid)
    except TemplateMissingError:
        if skip_missing:
            result.missing = True
            return result
        raise
    workdir = base / uid
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    if copy_template:  # dpam_c2 copies it beside the query (and some filesystems refuse symlinks)
        shutil.copyfile(template, workdir / TEMPLATE_FILE)
    else:
        (workdir / TEMPLATE_FILE).symlink_to(template)
    remaining = set(residue_numbers(query_lines))
    try:
        while True:
            current = [line for line in query_lines if residue_number(line) in remaining]
            write_residues(current, remaining, workdir / QUERY_FILE)
            run_dir = workdir / "run"
            shutil.rmtree(run_dir, ignore_errors=True)  # DaliLite refuses to reuse mol1A.dccp
            run_dir.mkdir()
            result.iterations += 1
            alignment = aligner.align(run_dir)
            if alignment is None or len(alignment.pairs) < MIN_PAIRS:
                break
            index = residue_numbers(current, ca_only=aligner.ca_only)
            if max(q for q, _ in alignment.pairs) > len(index):
                raise AlignerOutputError(
                    f"query index {max(q for q, _ in alignment.pairs)} beyond the {len(index)} query residues"
                )
            result.blocks.append(format_hit(uid, len(result.blocks) + 1, alignment, index))
            aligned = [index[q - 1] for q, _ in alignment.pairs]
            remaining -= covered_residues(domain_segments(aligned))
            if len(remaining) < MIN_REMAINING:
                break
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result.seconds = time.monotonic() - start
    return result


def _align_candidate_or_explain(*args) -> CandidateResult:
    """Pool entry point: turn any failure into one picklable error that names the candidate."""
    uid = args[0]
    try:
        return align_candidate(*args)
    except Exception as err:  # noqa: BLE001 - re-raised with the candidate named
        raise ProteinError(f"candidate {uid}: {type(err).__name__}: {err}") from None


def read_candidates(path: str | os.PathLike) -> list[str]:
    """ECOD uids from ``<prefix>_hits4Dali`` (first word per line), duplicates dropped, order kept.

    A uid becomes a directory and a file name, so anything but a plain name is rejected.
    """
    uids: dict[str, None] = {}
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            words = line.split()
            if not words:
                continue
            if not UID_PATTERN.fullmatch(words[0]):
                raise ProteinError(f"{path} line {number}: {words[0]!r} is not a template uid")
            uids.setdefault(words[0], None)
    return list(uids)


def default_workers(threads: int) -> int:
    """I/O-bound aligner calls: oversubscribe the cores, as the native DPAM run does (min(4 x cpus, 64))."""
    return max(1, min(threads * 4, 64))


def run_protein(
    query_pdb: Path,
    hits4dali: Path,
    template_dir: Path,
    aligner: Aligner,
    workers: int,
    workdir: Path,
    cache_root: Path,
    skip_missing_templates: bool = False,
    copy_templates: bool = False,
) -> tuple[str, dict]:
    """Run every candidate of one protein; return the ``_iterativdDali_hits`` text and statistics.

    The text concatenates the candidates' blocks in uid order, as DPAM's ``cat {prefix}_*_hits`` does.
    """
    start = time.monotonic()
    try:
        notes: list[str] = []
        lines = read_atom_lines(query_pdb, notes)
        check_query(query_pdb, lines, aligner.kind)
    except (OSError, ValueError) as err:
        raise ProteinError(str(err)) from None
    uids = read_candidates(hits4dali)
    cache = TemplateCache(cache_root, template_dir)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, CandidateResult] = {}
    n_workers = max(1, min(workers, len(uids)))
    args = [(uid, lines, cache, aligner, workdir, skip_missing_templates, copy_templates) for uid in uids]
    if n_workers == 1:  # inside a batch's pool: one candidate after the other, no pool of its own
        for a in args:
            result = _align_candidate_or_explain(*a)
            results[result.uid] = result
    elif uids:
        # fork: workers start fast and need nothing re-imported; a worker killed by the OOM killer
        # raises BrokenProcessPool in the futures instead of hanging the job.
        with ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(_align_candidate_or_explain, *a) for a in args]
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in futures if f.done() and f.exception() is not None]
            if failed:
                for future in pending:
                    future.cancel()
                err = failed[0].exception()
                raise ProteinError(str(err) if isinstance(err, ProteinError) else f"worker died: {err!r}")
            for future in futures:
                result = future.result()
                results[result.uid] = result
    ordered = [results[uid] for uid in sorted(results)]
    text = "".join(block for r in ordered for block in r.blocks)
    fetched = [r for r in ordered if not r.missing]
    stats = {
        "aligner": aligner.kind,
        "score": "TM-score normalised by the template (TM=...)" if aligner.kind == "tmalign" else "DALI Z",
        "candidates": len(uids),
        "hits": sum(len(r.blocks) for r in ordered),
        "candidates_with_hits": sum(1 for r in ordered if r.blocks),
        "aligner_calls": sum(r.iterations for r in ordered),
        "cache_hits": sum(1 for r in fetched if r.cache_hit),
        "cache_misses": sum(1 for r in fetched if not r.cache_hit),
        "missing_templates": [r.uid for r in ordered if r.missing],
        "notes": notes,
        "workers": max(1, min(workers, len(uids))) if uids else 0,
        "seconds": round(time.monotonic() - start, 3),
        "host": socket.gethostname(),
        "candidate_dir": str(workdir.resolve()),
        "template_cache": str(cache.dir),
    }
    return text, stats
