"""Rebuild original AF3 job directories (or single ``_data.json`` files) from the organized tree.

    python scripts/af3/restore.py --job SETD6_RPL29_K4me1_00000 -o restored/   # one whole job
    python scripts/af3/restore.py --all -o restored/                           # every organized job
    python scripts/af3/restore.py results/af3/organized/SETD6/JOB/JOB_data.json -o JOB_data.json
    python scripts/af3/restore.py --tree results/af3/organized -o restored/    # every _data.json

A whole job comes back flat as AF3 wrote it, ``OUT/<job>/``: every file byte-identical, the
``_data.json`` from the MSA store (each store file checked against its sha256 name), the
``seed-*_sample-*`` dirs from ``seeds.tar[.zst]`` (the archive read to the end of its checksummed
frame), the other top-level files from the organized copy. ``--organized`` points at another
organized tree (default results/af3/organized), ``--store`` at a store moved away from it.

``--verify SOURCE_ROOT`` restores each job into a temporary dir and compares it with the job in
the source root (the ``af3_verify`` rule): evidence that the source may be deleted.
"""

import argparse
import filecmp
import os
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from af3.msa_store import STORE_DIRNAME, restore_file  # noqa: E402
from af3.seeds import _FrameReader  # noqa: E402

# Not job groups: the store, the index, work dirs of unfinished jobs, the uploaded reports.
RESERVED_DIRS = {STORE_DIRNAME, "_index", "_partial", "_reports"}
ARCHIVES = ("seeds.tar.zst", "seeds.tar")


def organized_jobs(organized: Path) -> dict[str, Path]:
    """Job name -> its organized dir ``<organized>/<group>/<job>``."""
    jobs = {}
    for group in sorted(organized.iterdir()):
        if group.name in RESERVED_DIRS or not group.is_dir():
            continue
        for job in sorted(group.iterdir()):
            if job.is_dir():
                jobs[job.name] = job
    return jobs


def restore_tree(organized: Path, outdir: Path, store: Path | None = None) -> list[Path]:
    """Restore every ``<group>/<job>/*_data.json`` under ``organized`` into ``outdir/<group>/<job>/``."""
    written = []
    for data_json in sorted(organized.glob("*/*/*_data.json")):
        if data_json.parts[-3] in RESERVED_DIRS:
            continue
        target = outdir / data_json.relative_to(organized)
        restore_file(data_json, target, store)
        written.append(target)
    return written


def extract_seeds(archive: Path, outdir: Path) -> None:
    """Unpack a seed archive into ``outdir``, refusing members outside it; the frame must end whole."""
    with open(archive, "rb") as raw:
        stream = _FrameReader(raw, str(archive)) if archive.name.endswith(".zst") else raw
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            tar.extractall(outdir, filter="data")
        while stream.read(1 << 20):  # to the frame's end: its checksum is checked there
            pass


def restore_job(job_dir: Path, outdir: Path, store: Path | None = None) -> Path:
    """Rebuild one organized job as AF3 wrote it, into ``outdir/<job>/``; return that dir."""
    target = outdir / job_dir.name
    target.mkdir(parents=True, exist_ok=False)
    for entry in sorted(job_dir.iterdir()):
        if entry.name in ARCHIVES:
            extract_seeds(entry, target)
        elif entry.name.endswith("_data.json"):
            restore_file(entry, target / entry.name, store)
        elif entry.is_file():
            (target / entry.name).write_bytes(entry.read_bytes())
            os.utime(target / entry.name, ns=(entry.stat().st_atime_ns, entry.stat().st_mtime_ns))
    return target


def tree_differences(a: Path, b: Path) -> list[str]:
    """Paths (relative) whose presence, type or bytes differ between two trees; [] when identical."""

    def listing(root: Path) -> dict[str, str]:
        out = {}
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                out[str(path.relative_to(root))] = "dir" if path.is_dir() else "file"
        return out

    la, lb = listing(a), listing(b)
    diffs = [f"only in {a}: {p}" for p in sorted(set(la) - set(lb))]
    diffs += [f"only in {b}: {p}" for p in sorted(set(lb) - set(la))]
    for p in sorted(set(la) & set(lb)):
        if la[p] != lb[p]:
            diffs.append(f"type differs: {p}")
        elif la[p] == "file" and not filecmp.cmp(a / p, b / p, shallow=False):
            diffs.append(f"bytes differ: {p}")
    return diffs


def verify_jobs(organized: Path, source_root: Path, store: Path | None = None) -> list[dict]:
    """Restore every organized job and compare it with the source: one row per job (ok or why not)."""
    rows = []
    for job, job_dir in organized_jobs(organized).items():
        row = {"group": job_dir.parent.name, "job": job, "status": "ok", "files": 0, "detail": ""}
        with tempfile.TemporaryDirectory(dir=organized.parent) as tmp:
            try:
                restored = restore_job(job_dir, Path(tmp), store)
                row["files"] = sum(len(f) for _, _, f in os.walk(restored))
                if not (source_root / job).is_dir():
                    row["status"], row["detail"] = (
                        "no source",
                        f"{source_root / job} is gone: nothing to compare",
                    )
                elif diffs := tree_differences(source_root / job, restored):
                    row["status"], row["detail"] = "differs", "; ".join(diffs[:5])
            except Exception as err:  # noqa: BLE001 (reported per job)
                row["status"], row["detail"] = "restore failed", f"{type(err).__name__}: {err}"
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data_json", nargs="?", type=Path, help="one organized <name>_data.json")
    parser.add_argument("--job", action="append", help="a job to restore whole (repeatable)")
    parser.add_argument("--all", action="store_true", help="restore every organized job whole")
    parser.add_argument("--tree", type=Path, help="an organized tree: restore every job's _data.json")
    parser.add_argument("--organized", type=Path, default=Path("results/af3/organized"))
    parser.add_argument("-o", "--output", type=Path, required=True, help="output file or directory")
    parser.add_argument("--store", type=Path, help="the MSA store, if not at its place in the tree")
    args = parser.parse_args(argv)
    modes = [bool(args.data_json), bool(args.tree), bool(args.job), args.all]
    if sum(modes) != 1:
        parser.error("give one of: a _data.json, --tree, --job NAME, --all")
    if args.tree:
        written = restore_tree(args.tree, args.output, args.store)
        print(f"restored {len(written)} _data.json files under {args.output}")
    elif args.data_json:
        restore_file(args.data_json, args.output, args.store)
        print(f"restored {args.output}")
    else:
        jobs = organized_jobs(args.organized)
        names = sorted(jobs) if args.all else args.job
        unknown = [n for n in names if n not in jobs]
        if unknown:
            parser.error(f"not organized under {args.organized}: {', '.join(unknown)}")
        for name in names:
            restore_job(jobs[name], args.output, args.store)
        print(f"restored {len(names)} job(s) under {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
