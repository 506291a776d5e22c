"""The few PDB operations the iterative loop needs, on the text lines as DPAM handles them."""

from __future__ import annotations

import os
from pathlib import Path


class PdbError(ValueError):
    """A structure file the aligners cannot use; the message names the file."""


def read_atom_lines(path: str | os.PathLike) -> list[str]:
    """Return the ``ATOM`` records of a PDB file (DPAM's queries carry nothing else that matters)."""
    with open(path) as handle:
        lines = [line.rstrip("\n") for line in handle if line.startswith("ATOM  ")]
    if not lines:
        raise PdbError(f"{path}: no ATOM records")
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
    """Refuse a query the loop cannot handle: several chains, or (for DaliLite) a blank chain ID.

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
    try:
        residue_numbers(lines)
    except ValueError:
        raise PdbError(f"{path}: unreadable residue number in columns 23-26") from None


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
