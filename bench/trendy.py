"""Benchmark the trendy workflow against nccopy, the physical baseline, on TRENDY-sized files.

Generates monthly files on a global 0.5 degree grid (360 x 720, float32, deflate 1 like many
TRENDY uploads) with three different quirks (LaTeX units, 0..360 longitudes, north-to-south
latitudes), converts them with the workflow (one Snakemake job per file, --cores 1 so times add
up), then copies the same files with `nccopy` (which decompresses and recompresses, as we do).
Each round runs both on the same files; the headline is the median of the rounds' ratios. Peak
memory (RSS) is measured for each conversion job (Snakemake's benchmark) and for each nccopy
process (wait4), in the same run.

    .venv/bin/python bench/trendy.py                      # defaults: 3 files, 2/8/24 years, 3 rounds
    .venv/bin/python bench/trendy.py --years 5 20 100     # longer files
"""

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import yaml
from startup import print_startup

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from trendy.synthetic import quirk_cases, with_size, write_case  # noqa: E402

BIN = Path(sys.executable).parent
PATTERNS = ["classic_latex_units", "isam_month_as_ymd_lon360", "orchidee_decreasing_latitude_dash"]


def make_inputs(root: Path, resolution: float, years: list[int]) -> list[Path]:
    by_name = {case.name: case for case in quirk_cases()}
    paths = []
    for index, n_years in enumerate(years):
        case = by_name[PATTERNS[index % len(PATTERNS)]]
        case = replace(with_size(case, resolution, n_years), simulation=f"S{index % 4}")
        paths.append(write_case(case, root))
    return paths


def run_nccopy(sources: list[Path], outdir: Path) -> tuple[float, list[float]]:
    """Seconds for all files, and each nccopy process's peak RSS in MB (from wait4)."""
    outdir.mkdir(parents=True, exist_ok=True)
    peaks = []
    began = time.perf_counter()
    for source in sources:
        proc = subprocess.Popen(["nccopy", str(source), str(outdir / source.name)])
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            sys.exit(f"nccopy failed on {source}")
        peaks.append(usage.ru_maxrss / 1024.0)
    return time.perf_counter() - began, peaks


def run_workflow(root: Path, workdir: Path, ilamb_check: bool) -> float:
    section = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["trendy"]
    models = sorted(p.name for p in root.iterdir())
    section.update(
        root=str(root), models=models, ilamb_check=ilamb_check, simulations=["S0", "S1", "S2", "S3"]
    )
    section["ilamb"] = {**section["ilamb"], "config": ""}  # conversion only: no reference data here
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "bench.yaml").write_text(yaml.safe_dump({"trendy": section}))
    cmd = [
        str(BIN / "snakemake"),
        "trendy_all",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--profile",
        str(REPO / "profiles" / "local"),
        "--configfile",
        "bench.yaml",
        "--cores",
        "1",
        "--quiet",
        "all",
    ]
    began = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    elapsed = time.perf_counter() - began
    if proc.returncode != 0:
        sys.exit(f"workflow failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed


def section_slab_mb() -> float:
    return float(yaml.safe_load((REPO / "config" / "config.yaml").read_text())["trendy"]["slab_mb"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--years", type=int, nargs="+", default=[2, 8, 24], help="length of each file in years"
    )
    parser.add_argument("--resolution", type=float, default=0.5, help="grid spacing in degrees")
    parser.add_argument("--no-ilamb-check", action="store_true", help="skip ILAMB's read-back in each job")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of nccopy + workflow (median ratio)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    print_startup(REPO / ".venv" / "bin")
    if shutil.which("nccopy") is None:
        sys.exit("nccopy not found (Debian package netcdf-bin)")

    tmp = Path(tempfile.mkdtemp(prefix="bench-trendy-"))
    try:
        began = time.perf_counter()
        sources = make_inputs(tmp / "TRENDY", args.resolution, args.years)
        size_mb = sum(p.stat().st_size for p in sources) / 1e6
        print(
            f"generated {len(sources)} files, {size_mb:.0f} MB on disk, in {time.perf_counter() - began:.0f} s"
        )
        # Warm the page cache for both contenders alike.
        for p in sources:
            p.read_bytes()
        ratios = []
        for round_ in range(args.rounds):
            shutil.rmtree(tmp / "nccopy", ignore_errors=True)
            shutil.rmtree(tmp / "run", ignore_errors=True)
            nccopy_s, nccopy_rss = run_nccopy(sources, tmp / "nccopy")
            workflow_s = run_workflow(tmp / "TRENDY", tmp / "run", ilamb_check=not args.no_ilamb_check)
            round_convert_s = sum(
                json.loads(p.read_text())["seconds"]
                for p in (tmp / "run/results/trendy/staging").glob("*/*/status.json")
            )
            ratios.append(round_convert_s / nccopy_s)
            print(
                f"round {round_ + 1}: nccopy {nccopy_s:.2f} s, conversions {round_convert_s:.2f} s, "
                f"ratio {ratios[-1]:.2f}, workflow wall {workflow_s:.2f} s"
            )
        print(f"median ratio conversions / nccopy over {args.rounds} rounds: {statistics.median(ratios):.2f}")
        print("figures below: last round")

        statuses = [
            json.loads(p.read_text())
            for p in sorted((tmp / "run/results/trendy/staging").glob("*/*/status.json"))
        ]
        assert all(s["status"] == "ok" for s in statuses), [s["error"] for s in statuses]
        convert_s = sum(s["seconds"] for s in statuses)
        check_s = sum(s.get("ilamb_check_seconds", 0.0) for s in statuses)
        bench_rows = {}
        for path in (tmp / "run/benchmarks/trendy/convert").glob("*.tsv"):
            with open(path) as handle:
                bench_rows[path.stem] = next(csv.DictReader(handle, delimiter="\t"))
        by_steps = sorted(statuses, key=lambda s: s["n_steps"])
        key = lambda s: f"{s['model']}_{s['simulation']}_{s['variable']}"  # noqa: E731
        out_mb = (
            sum(
                Path(
                    tmp
                    / "run"
                    / "results/trendy/MODELS"
                    / f"{s['model']}_{s['simulation']}"
                    / f"{s['ilamb_variable']}.nc"
                )
                .stat()
                .st_size
                for s in statuses
            )
            / 1e6
        )
        nccopy_out_mb = sum(p.stat().st_size for p in (tmp / "nccopy").iterdir()) / 1e6

        print(
            f"grid {args.resolution} deg, monthly, files of {', '.join(str(s['n_steps']) for s in by_steps)} steps"
        )
        print(f"{'':34s}{'seconds':>9s}{'MB/s':>9s}{'ratio':>8s}")
        print(f"{'nccopy (baseline)':34s}{nccopy_s:9.2f}{size_mb / nccopy_s:9.1f}{1.0:8.2f}")
        print(
            f"{'conversion in jobs (sum)':34s}{convert_s:9.2f}{size_mb / convert_s:9.1f}{convert_s / nccopy_s:8.2f}"
        )
        if check_s:
            print(f"{'  of which ILAMB read-back':34s}{check_s:9.2f}{'':9s}{check_s / nccopy_s:8.2f}")
            bare_s = convert_s - check_s
            print(
                f"{'conversion without read-back':34s}{bare_s:9.2f}{size_mb / bare_s:9.1f}{bare_s / nccopy_s:8.2f}"
            )
        print(
            f"{'whole workflow (--cores 1)':34s}{workflow_s:9.2f}{size_mb / workflow_s:9.1f}{workflow_s / nccopy_s:8.2f}"
        )
        print(
            f"output size: workflow {out_mb:.0f} MB, nccopy {nccopy_out_mb:.0f} MB (input {size_mb:.0f} MB)"
        )
        overhead = (workflow_s - convert_s) / len(statuses)
        print(
            f"Snakemake overhead per file (wall - conversion, incl. publish + report jobs): {overhead:.2f} s"
        )
        # Peak memory per job, shortest to longest file: flat once a file spans a few slabs.
        rss_of = {str(source): peak for source, peak in zip(sources, nccopy_rss, strict=True)}
        slab_mb = section_slab_mb()
        for status in by_steps:
            row = bench_rows[key(status)]
            print(
                f"peak RSS, file of {status['n_steps']} steps ({Path(status['source']).stat().st_size / 1e6:.0f} MB): "
                f"job {float(row['max_rss']):.0f} MB, nccopy {rss_of[status['source']]:.0f} MB "
                f"(job wall {float(row['s']):.1f} s; slab_mb {slab_mb:g})"
            )
        print(f"ILAMB read-back in each job: {'off' if args.no_ilamb_check else 'on'}")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
