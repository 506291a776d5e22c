"""Rebuild original AF3 ``_data.json`` files from the organized tree and its MSA store.

    python scripts/af3/restore.py results/af3/organized/SETD6/JOB/JOB_data.json -o JOB_data.json
    python scripts/af3/restore.py --tree results/af3/organized -o restored/   # every job

The output is byte-identical to the file AF3 wrote (each store file is checked against its sha256
name on the way). ``--store`` points at a store moved away from the tree (e.g. downloaded apart).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from af3.msa_store import STORE_DIRNAME, restore_file  # noqa: E402


def restore_tree(organized: Path, outdir: Path, store: Path | None = None) -> list[Path]:
    """Restore every ``<group>/<job>/*_data.json`` under ``organized`` into ``outdir/<group>/<job>/``."""
    written = []
    for data_json in sorted(organized.glob("*/*/*_data.json")):
        if data_json.parts[-3] == STORE_DIRNAME:
            continue
        target = outdir / data_json.relative_to(organized)
        restore_file(data_json, target, store)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data_json", nargs="?", type=Path, help="one organized <name>_data.json")
    parser.add_argument("--tree", type=Path, help="an organized tree: restore every job's _data.json")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, help="output file (or directory with --tree)"
    )
    parser.add_argument("--store", type=Path, help="the MSA store, if not at its place in the tree")
    args = parser.parse_args(argv)
    if bool(args.tree) == bool(args.data_json):
        parser.error("give either one _data.json or --tree")
    if args.tree:
        written = restore_tree(args.tree, args.output, args.store)
        print(f"restored {len(written)} _data.json files under {args.output}")
    else:
        restore_file(args.data_json, args.output, args.store)
        print(f"restored {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
