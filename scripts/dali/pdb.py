"""The few PDB operations the iterative loop needs, on the text lines as DPAM handles them.

DPAM maps the aligner's i-th residue to the i-th of the query's sorted residue numbers. That holds
only when residue numbers are plain integers that increase along the file: an insertion code
(184, 184A) or numbers out of order would shift every pair after it, silently, with status ok. Such a
query is refused with an error that names the residues; renumber it (e.g. ``pdb_reres``) first.
A file with several models gives its first model (and says so); a query without CA atoms, which
TM-align and DALI's DSSP cannot use, is refused.
"""

from __future__ import annotations

import os
from pathlib import Path


class PdbError(ValueError):
    """A structure file the aligners cannot use; the message names the file."""


def read_atom_lines(path: str | os.PathLike, notes: list[str] | None = None) -> list[str]:
    """Return the ``ATOM`` records of the first model of a PDB file (DPAM's queries carry nothing
    else that matters); when the file holds more models, append a note saying so to ``notes``."""
    lines, models = [], 0
    with open(path, errors="replace") as handle:
        for line in handle:
            if line.startswith("MODEL "):
                models += 1
            elif line.startswith("ENDMDL") and models == 1:
                models += sum(1 for rest in handle if rest.startswith("MODEL "))
                break
            elif line.startswith("ATOM  "):
                lines.append(line.rstrip("\n"))
    if not lines:
        raise PdbError(f"{path}: no ATOM records (not a PDB file, or an empty one)")
    if models > 1 and notes is not None:
        notes.append(f"{Path(path).name}: {models} models, the first one used")
    return lines


def residue_number(line: str) -> int:
    """PDB residue number (columns 23-26), as DPAM reads it with ``int(line[22:26])``."""
    return int(line[22:26])


def residue_numbers(lines: list[str], ca_only: bool = False) -> list[int]:
    """Sorted distinct residue numbers; with ``ca_only``, only residues that have a CA atom.

    DALI numbers residues sequentially over the file (DPAM maps index ``i`` to the ``i``-th number of
    this list); TM-align counts only residues with a CA atom, hence ``ca_only`` for it.
    """
    if ca_only:
        lines = [line for line in lines if line[12:16].strip() == "CA"]
    return sorted({residue_number(line) for line in lines})


def chain_ids(lines: list[str]) -> list[str]:
    """Chain identifiers (column 22) in order of first appearance; a blank chain is ``' '``."""
    seen: dict[str, None] = {}
    for line in lines:
        seen.setdefault(line[21:22] or " ", None)
    return list(seen)


def check_query(path: str | os.PathLike, lines: list[str], aligner: str) -> None:
    """Refuse a query the loop cannot handle: several chains, (for DaliLite) a blank chain ID, an
    unreadable residue number, insertion codes, residue numbers that do not increase along the
    file, or no CA atom. Each error names the file and the residues at fault.

    DaliLite imports a chain-less file as ``mol1.dat`` but looks for ``mol1_.dat`` and then silently
    reports no hits; failing here turns that silent loss into a clear per-protein error.
    """
    chains = chain_ids(lines)
    if len(chains) > 1:
        raise PdbError(f"{path}: query has {len(chains)} chains {chains}; DPAM expects one chain per query")
    if aligner == "dali" and chains == [" "]:
        raise PdbError(
            f"{path}: query has no chain identifier (PDB column 22); DaliLite then reports no hits. "
            "Write chain 'A' as DPAM does."
        )
    labels: list[str] = []
    for line in lines:
        label = line[22:27].strip()
        if not labels or labels[-1] != label:
            labels.append(label)
    try:
        for line in lines:
            residue_number(line)
    except ValueError:
        bad = next(line[22:26] for line in lines if not line[22:26].strip().lstrip("-").isdigit())
        raise PdbError(f"{path}: unreadable residue number {bad!r} in columns 23-26") from None
    inserted = [label for label in labels if not label.lstrip("-").isdigit()]
    if inserted:
        raise PdbError(
            f"{path}: residues with insertion codes ({', '.join(inserted[:5])}"
            f"{', ...' if len(inserted) > 5 else ''}; {len(inserted)} in all): DPAM's hits format numbers "
            "query residues by integer, and the aligner would count them as extra residues, shifting every "
            "pair after them. Renumber the query (e.g. pdb_reres) first."
        )
    order = [int(label) for label in labels]
    for before, after in zip(order, order[1:], strict=False):
        if after <= before:
            raise PdbError(
                f"{path}: residue numbers do not increase along the file ({before} then {after}): "
                "DPAM maps the aligner's i-th residue to the i-th sorted number, which would shift the pairs. "
                "Renumber the query first."
            )
    if not any(line[12:16].strip() == "CA" for line in lines):
        raise PdbError(f"{path}: no CA atoms (a C-alpha trace is the least the aligners need)")


def write_residues(lines: list[str], keep: set[int], path: Path) -> int:
    """Write the ATOM lines whose residue is in ``keep`` (the working query copy); return the count.

    A HEADER record comes first because some DSSP builds used by DaliLite refuse files without one.
    """
    kept = [line for line in lines if residue_number(line) in keep]
    with open(path, "w") as handle:
        handle.write("HEADER    DPAM ITERATIVE DALI WORKING COPY\n")
        handle.writelines(line + "\n" for line in kept)
        handle.write("END\n")
    return len(kept)


def check_template(path: str | os.PathLike, uid: str) -> None:
    """Refuse a template file that is not a PDB with CA atoms (TM-align dies on it with gfortran's
    "End of file" or a floating-point exception; DaliLite reports nothing)."""
    with open(path, errors="replace") as handle:
        has_ca = any(line.startswith(("ATOM  ", "HETATM")) and line[12:16].strip() == "CA" for line in handle)
    if not has_ca:
        raise PdbError(f"template {uid}: {path} is not a PDB file with CA atoms")
