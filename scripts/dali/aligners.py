"""The two pairwise aligners of the iterative loop and the parsers of their output.

Both run in a per-candidate directory on scratch, on the same two short relative file names, and give
an :class:`Alignment`: structurally equivalent pairs of (query index, template index), both 1-based
sequential, plus the score, the lengths and the superposition of the template onto the query.

* ``dali``: a site's DaliLite.v5 ``dali.pl`` (not packaged anywhere we can install; user-provided).
  Equivalent pairs are the columns where both residues are upper case, as DPAM reads them.
* ``tmalign``: Debian's ``TMalign`` for sites without DALI. Equivalent pairs are those TM-align marks
  ``:`` (distance under 5 A); the score is a TM-score normalised by the template, written ``TM=...``
  so that nothing downstream can mistake it for a DALI Z-score.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from common import CommandError, run_command

# Names inside the per-candidate directory: short and relative, because DaliLite's Fortran keeps
# paths in character*80 and locks its working directory.
QUERY_FILE = "q.pdb"
TEMPLATE_FILE = "t.pdb"


class AlignerOutputError(ValueError):
    """The aligner ran but its output is not in the expected format."""


@dataclass
class Alignment:
    """One pairwise alignment as the hits file needs it."""

    score: str
    pairs: list[tuple[int, int]]
    qlen: int
    slen: int
    rotation: list[list[str]] = field(default_factory=list)
    translation: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- DaliLite


def dali_command(dali_pl: str | os.PathLike) -> list[str]:
    """The command DPAM runs per iteration, from inside ``<candidate>/run/``.

    ``dali.pl`` finds its Perl modules next to its real path (FindBin), so a symlink to it fails:
    call it by its resolved path.
    """
    return [
        os.path.realpath(dali_pl),
        "--pdbfile1",
        f"../{QUERY_FILE}",
        "--pdbfile2",
        f"../{TEMPLATE_FILE}",
        "--dat1",
        "./",
        "--dat2",
        "./",
        "--outfmt",
        "summary,alignments,transrot",
    ]


def parse_dali_output(text: str) -> Alignment | None:
    """Parse DaliLite.v5 pairwise output (``mol1A.txt``) the way DPAM does; ``None`` if it has no hit.

    Only the first alignment counts (DPAM stops reading at ``No 2:``). Query and Sbjct strings are
    concatenated over the alignment blocks; a column is an equivalent pair when both letters are upper
    case. ``qlen``/``slen`` count every residue shown (DPAM's ``qposi``/``sposi``). The first three
    ``-matrix`` lines give the rotation rows and the translation.
    """
    qali, sali, zscore, reading = [], [], None, True
    matrix_rows: list[list[str]] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2:
            continue
        if words[0] == "-matrix":
            if len(matrix_rows) < 3:
                cleaned = line.strip().rstrip('"').replace('"', " ").split()
                if len(cleaned) < 8:
                    raise AlignerOutputError(f"short -matrix line: {line.strip()!r}")
                matrix_rows.append(cleaned[4:8])
            continue
        if not reading:
            continue
        if words[0] == "No" and words[1] == "2:":
            reading = False
        elif words[0] == "No" and words[1] == "1:":
            for word in words:
                if word.startswith("Z-score="):
                    try:
                        zscore = float(word.split("=", 1)[1])
                    except ValueError:
                        raise AlignerOutputError(f"unreadable Z-score in {line.strip()!r}") from None
        elif words[0] == "Query":
            qali.append(words[1])
        elif words[0] == "Sbjct":
            sali.append(words[1])
    if zscore is None or not qali:
        return None
    query, subject = "".join(qali), "".join(sali)
    if len(query) != len(subject):
        raise AlignerOutputError(f"Query and Sbjct strings differ in length ({len(query)} != {len(subject)})")
    pairs, qpos, spos = [], 0, 0
    for q, s in zip(query, subject, strict=True):
        qpos += q != "-"
        spos += s != "-"
        if q != "-" and s != "-" and q.isupper() and s.isupper():
            pairs.append((qpos, spos))
    if len(matrix_rows) != 3:
        raise AlignerOutputError(f"expected 3 -matrix lines (transrot), found {len(matrix_rows)}")
    return Alignment(
        score=str(zscore),
        pairs=pairs,
        qlen=qpos,
        slen=spos,
        rotation=[row[:3] for row in matrix_rows],
        translation=[row[3] for row in matrix_rows],
    )


# --------------------------------------------------------------------------- TM-align


def tmalign_command(tmalign: str | os.PathLike) -> list[str]:
    """TM-align with the template as chain 1, so its matrix moves the template onto the query (as DALI's)."""
    return [str(tmalign), f"../{TEMPLATE_FILE}", f"../{QUERY_FILE}", "-m", "matrix.txt"]


def parse_tmalign_output(text: str, matrix_text: str) -> Alignment:
    """Parse TM-align's stdout and its ``-m`` matrix file.

    Chain 1 is the template, chain 2 the query. Pairs marked ``:`` (d < 5 A) are the equivalents. The
    score is the TM-score normalised by the template (chain 1), labelled ``TM=``.
    """
    lines = text.splitlines()
    lengths, tmscore, start = {}, None, None
    for i, line in enumerate(lines):
        if line.startswith("Length of Chain_"):
            lengths[line[16]] = int(line.split(":")[1].split()[0])
        elif line.startswith("TM-score=") and "Chain_1" in line and tmscore is None:
            tmscore = line.split("=", 1)[1].split()[0]
        elif line.startswith('(":" denotes'):
            start = i + 1
    if start is None or tmscore is None or set(lengths) != {"1", "2"} or start + 2 >= len(lines):
        raise AlignerOutputError("TM-align output lacks the lengths, the TM-score or the alignment block")
    template_seq, marks, query_seq = lines[start], lines[start + 1], lines[start + 2]
    if not (len(template_seq) == len(query_seq) and len(marks) <= len(template_seq)):
        raise AlignerOutputError("TM-align alignment lines differ in length")
    pairs, tpos, qpos = [], 0, 0
    for column, (t, q) in enumerate(zip(template_seq, query_seq, strict=True)):
        tpos += t != "-"
        qpos += q != "-"
        if column < len(marks) and marks[column] == ":":
            pairs.append((qpos, tpos))
    rotation, translation = [], []
    for line in matrix_text.splitlines():
        words = line.split()
        if len(words) == 5 and words[0] in ("1", "2", "3"):
            translation.append(words[1])
            rotation.append(words[2:5])
    if len(rotation) != 3:
        raise AlignerOutputError(f"TM-align matrix file has {len(rotation)} rotation rows, expected 3")
    return Alignment(
        score=f"TM={float(tmscore):.4f}",
        pairs=pairs,
        qlen=lengths["2"],
        slen=lengths["1"],
        rotation=rotation,
        translation=translation,
    )


# --------------------------------------------------------------------------- failures

# Lines that say why an aligner died, wherever they are in its output (gfortran prints its runtime
# error first and a backtrace after it, so the last lines alone miss the cause).
CAUSES = re.compile(
    r"End of file|Fortran runtime error|Floating[- ]point exception|SIGFPE|SIGSEGV|Segmentation fault|"
    r"Killed|Cannot allocate|out of memory|No such file|Permission denied|Bad value|Error|error",
)


def explain_failure(result: subprocess.CompletedProcess) -> str:
    """One message for a failed aligner call: the command, how it ended (a signal by name), the
    lines that give the cause, and the last lines of its output."""
    code = result.returncode
    if code < 0:
        try:
            how = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"killed by signal {-code}"
    elif code > 128:
        try:
            how = f"exited {code} ({signal.Signals(code - 128).name})"
        except ValueError:
            how = f"exited {code}"
    else:
        how = f"exited {code}"
    lines = [
        line.strip() for line in f"{result.stderr or ''}\n{result.stdout or ''}".splitlines() if line.strip()
    ]
    causes = list(dict.fromkeys(line for line in lines if CAUSES.search(line)))[:3]
    tail = [line for line in lines[-3:] if line not in causes]
    detail = "; ".join(causes + tail) or "no output"
    return f"{Path(result.args[0]).name} {how}: {detail} (command: {' '.join(map(str, result.args))})"


# --------------------------------------------------------------------------- the aligner a run uses


@dataclass(frozen=True)
class Aligner:
    """Which aligner to call, how long one call may take, and (TM-align only) the score cut-off.

    DaliLite reports a hit only when Z > 2; ``min_tmscore`` plays that role for TM-align, whose
    alignments are always printed.
    """

    kind: str
    executable: str
    timeout: float = 600.0
    min_tmscore: float = 0.5

    @property
    def ca_only(self) -> bool:
        """TM-align indexes residues that have a CA atom; DALI (as DPAM reads it) every residue."""
        return self.kind == "tmalign"

    def command(self) -> list[str]:
        if self.kind == "dali":
            return dali_command(self.executable)
        if self.kind == "tmalign":
            return tmalign_command(self.executable)
        raise ValueError(f"unknown aligner {self.kind!r} (expected 'dali' or 'tmalign')")

    def align(self, run_dir: Path) -> Alignment | None:
        """Run one alignment in ``run_dir`` (which holds nothing else); ``None`` means no hit.

        A non-zero exit or a timeout raises :class:`common.CommandError`; the message says the cause
        (a signal by name, the first line of the output that explains it), not only the last lines.
        """
        result = run_command(self.command(), timeout=self.timeout, cwd=run_dir, check=False)
        if result.returncode != 0:
            raise CommandError(explain_failure(result))
        if self.kind == "dali":
            outputs = sorted(run_dir.glob("mol*.txt"))
            if not outputs:
                return None
            return parse_dali_output("".join(p.read_text() for p in outputs))
        alignment = parse_tmalign_output(result.stdout, (run_dir / "matrix.txt").read_text())
        if float(alignment.score.removeprefix("TM=")) < self.min_tmscore:
            return None
        return alignment
