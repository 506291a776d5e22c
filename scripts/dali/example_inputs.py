"""Example inputs for the dali workflow, built from real PDB domain files that Debian ships.

* ``ECOD70/<uid>.pdb``: templates named like ECOD uids (9 digits): cytochrome c domains
  (``theseus-examples``), lactate/malate dehydrogenase chains (``theseus-examples``) and zinc fingers
  (``mustang-testdata``), each rewritten as chain A.
* ``inputs/<prefix>.pdb``: queries made by joining two real domains into one chain A (the second moved
  60 A away, residues renumbered 1..n), so the iterative loop must find one hit per domain and stop.
* ``inputs/<prefix>_hits4Dali``: the candidate uids of each query (never its own source domains).
* ``proteins.txt``: the protein list the config points at.
"""

from __future__ import annotations

import functools
import gzip
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import atomic_open  # noqa: E402

# Where Debian installs the structures. Slim images drop /usr/share/doc (a dpkg path-exclude), while
# dpkg still lists the packages as installed: then they are taken from the packages themselves.
PACKAGE_DIRS = {
    "theseus-examples": "usr/share/doc/theseus/examples",
    "mustang-testdata": "usr/share/doc/mustang-testdata/examples/pdbs",
}
ROOT = Path("/")
# where a package unpacked by `apt-get download` + `dpkg-deb -x` is kept between runs
UNPACKED = Path(os.environ.get("HPCPIPE_DEBIAN_DATA", Path.home() / ".cache" / "hpcpipe" / "debian"))


class StructuresMissing(FileNotFoundError):
    """The Debian package that holds the example structures is not on this machine; names it."""


def unpack_package(package: str, into: Path) -> None:
    """Fetch ``package``'s .deb with apt-get (no root needed) and unpack it under ``into``."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", package], cwd=tmp, check=True, capture_output=True, text=True)
        (deb,) = Path(tmp).glob(f"{package}_*.deb")
        partial = Path(tempfile.mkdtemp(prefix=f".{package}.", dir=into.parent))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(partial)], check=True, capture_output=True, text=True)
        os.replace(partial, into)


@functools.cache
def package_dir(package: str, fetch=unpack_package) -> Path:
    """The directory of ``package``'s structures: as installed, or unpacked from the package (fetched
    with ``fetch`` once, kept under ``UNPACKED``); raise :class:`StructuresMissing` naming it."""
    installed = ROOT / PACKAGE_DIRS[package]
    if installed.is_dir():
        return installed
    unpacked = UNPACKED / package
    if not (unpacked / PACKAGE_DIRS[package]).is_dir():
        unpacked.parent.mkdir(parents=True, exist_ok=True)
        try:
            fetch(package, unpacked)
        except (OSError, subprocess.CalledProcessError, ValueError) as err:
            detail = getattr(err, "stderr", "") or err
            raise StructuresMissing(
                f"the dali examples need the structures of Debian package {package} in {installed}, which "
                f"is missing (not installed, or dropped by a dpkg path-exclude of /usr/share/doc as in slim "
                f"images, while dpkg still lists it), and unpacking it from the package failed: {detail}. "
                f"Run: apt-get download {package} && dpkg-deb -x {package}_*.deb {unpacked}"
            ) from None
    return unpacked / PACKAGE_DIRS[package]


CYTOCHROMES = ["d1cih__", "d1crj__", "d1csu__", "d1csx__", "d1kyow_", "d1lfma_", "d1m60a_", "d1yeb__"]
DEHYDROGENASES = ["1a5z_A", "1bdm_A", "1ceq_A", "1ez4_A"]
ZINC_FINGERS = ["1zaa1", "2drp1", "1sp1"]


def source_file(name: str) -> Path:
    """The Debian file of a named domain or chain."""
    if name.startswith("d1") or name.startswith("d2"):
        return package_dir("theseus-examples") / "cytochromes" / f"{name}.pdb.gz"
    if "_" in name:
        return package_dir("theseus-examples") / "ldh" / f"{name}.pdb.gz"
    return package_dir("mustang-testdata") / f"{name}.pdb"


def load_domain(path: Path) -> list[str]:
    """ATOM lines of the first model, first alternate location only."""
    opener = gzip.open if path.suffix == ".gz" else open
    lines = []
    with opener(path, "rt") as handle:
        for line in handle:
            if line.startswith("ENDMDL"):
                break
            if line.startswith("ATOM  ") and line[16] in " A":
                lines.append(line.rstrip("\n").ljust(80))
    if not lines:
        raise ValueError(f"{path}: no ATOM records")
    return lines


def rewrite(lines: list[str], chain: str = "A", first_resid: int = 1, shift_x: float = 0.0) -> list[str]:
    """Renumber residues from ``first_resid``, set the chain, move along x; atom serials restart at 1."""
    out, resid, previous = [], first_resid - 1, None
    for serial, line in enumerate(lines, 1):
        key = line[22:27]
        if key != previous:
            resid, previous = resid + 1, key
        x = float(line[30:38]) + shift_x
        out.append(
            f"{line[:6]}{serial:5d}{line[11:16]} {line[17:21]}{chain}{resid:4d} {line[27:30]}{x:8.3f}{line[38:]}".rstrip()
        )
    return out


def n_residues(lines: list[str]) -> int:
    return len({line[22:27] for line in lines})


def join_domains(first: list[str], second: list[str], gap: float = 60.0) -> list[str]:
    """One chain A: ``first`` then ``second`` moved ``gap`` A along x, residues numbered 1..n."""
    a = rewrite(first)
    b = rewrite(second, first_resid=n_residues(a) + 1, shift_x=gap)
    return a + b


def write_pdb(path: Path, lines: list[str], header: str) -> None:
    with atomic_open(path) as handle:
        handle.write(f"HEADER    {header}\n")
        handle.writelines(line + "\n" for line in lines)
        handle.write("END\n")


TEMPLATES = CYTOCHROMES + DEHYDROGENASES + ZINC_FINGERS
UIDS = {name: f"{i:09d}" for i, name in enumerate(TEMPLATES, start=101)}

# query prefix -> (two source domains, candidate template names)
QUERIES = {
    "AF-EXCYT2-F1": (("d1cih__", "d1yeb__"), ["d1crj__", "d1csu__", "d1kyow_", "1zaa1", "1a5z_A"]),
    "AF-EXCYTLDH-F1": (("d1csx__", "1bdm_A"), ["d1lfma_", "d1m60a_", "1a5z_A", "1ceq_A", "2drp1"]),
    "AF-EXLDH2-F1": (("1ez4_A", "1ceq_A"), ["1a5z_A", "1bdm_A", "d1cih__", "1sp1"]),
    "AF-EXCYT1-F1": (("d1m60a_", "d1lfma_"), ["d1cih__", "d1yeb__", "d1csu__", "1ez4_A", "2drp1", "1sp1"]),
}


def make_templates(ecod_dir: Path, names: list[str] | None = None) -> dict[str, str]:
    """Write ``ECOD70/<uid>.pdb`` for the named real domains; return name -> uid."""
    ecod_dir.mkdir(parents=True, exist_ok=True)
    for name in names or TEMPLATES:
        target = ecod_dir / f"{UIDS[name]}.pdb"
        if not target.exists():
            write_pdb(
                target, rewrite(load_domain(source_file(name))), f"ECOD TEMPLATE {UIDS[name]} FROM {name}"
            )
    return {name: UIDS[name] for name in names or TEMPLATES}


def make_query(inputs_dir: Path, prefix: str, domains: tuple[str, str], candidates: list[str]) -> None:
    """Write ``<prefix>.pdb`` (two real domains joined) and ``<prefix>_hits4Dali`` (candidate uids)."""
    inputs_dir.mkdir(parents=True, exist_ok=True)
    pdb = inputs_dir / f"{prefix}.pdb"
    if not pdb.exists():
        first, second = (load_domain(source_file(d)) for d in domains)
        write_pdb(pdb, join_domains(first, second), f"QUERY {prefix} = {domains[0]} + {domains[1]}")
    hits = inputs_dir / f"{prefix}_hits4Dali"
    if not hits.exists():
        with atomic_open(hits) as handle:
            handle.writelines(f"{UIDS[name]}\n" for name in sorted(candidates, key=UIDS.get))


def make(outdir: Path) -> None:
    """Write the example templates, queries, candidate lists and protein list under ``outdir``."""
    outdir = Path(outdir)
    make_templates(outdir / "ECOD70")
    for prefix, (domains, candidates) in QUERIES.items():
        make_query(outdir / "inputs", prefix, domains, candidates)
    listing = outdir / "proteins.txt"
    if not listing.exists():
        with atomic_open(listing) as handle:
            handle.write("# DPAM protein prefixes, one per line\n")
            handle.writelines(f"{prefix}\n" for prefix in QUERIES)


if __name__ == "__main__":
    make(Path(sys.argv[1] if len(sys.argv) > 1 else "examples/dali"))
