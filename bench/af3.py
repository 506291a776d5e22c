"""Benchmark of the af3 workflow against the plain way, measured in the same run.

1. Generates a realistic AF3 output tree (``--jobs`` jobs, MSAs of ``--msa-depth`` rows per 100
   residues, the same proteins recurring across complexes, 4-6 samples per job), each job then
   copied ``--copies`` times under new names (generating float-heavy JSON is slow).
2. Baseline (the issue's): ``rsync -a`` of the whole tree, then ``tar -cf`` of each job's seed
   directories (what the original scripts did, minus their gzip). The headline ratio is against it.
3. The workflow (``af3_all`` with profiles/local, ``--cores`` cores). Baseline and workflow run
   ``--repeat`` rounds, each from scratch, back to back, after a ``sync``; the headline is the median
   of the rounds' ratios (on a shared machine the baseline, which writes 4.8x the bytes, swings 2-3x
   from round to round), printed with every round's ratio and the best times. Then, once: a second
   baseline for comparison only, with ``tar -I 'zstd -1'`` (the same compression the workflow does,
   by standard tools), and a rerun with nothing changed.
4. MSA archive: ratio of raw MSA bytes to stored bytes, and the same store compressed with xz
   (standard library) instead of zstd, for the codec choice.
5. Scale: a light tree of ``--dry-run-jobs`` jobs (top-level files only); discovery once, then
   ``snakemake -n`` timed; then 100 new jobs and the number of chunks discovery rewrites.

Snakemake's own start-up (about 2 s here, printed first) is a fixed cost of every run: at a few
hundred jobs it is most of the distance to the baseline; at thousands of jobs the copy dominates.

    .venv/bin/python bench/af3.py                 # defaults: 200 x 5 jobs, 13,700 for the dry run
    .venv/bin/python bench/af3.py --jobs 60 --dry-run-jobs 0     # 300 jobs, no dry run
"""

import argparse
import json
import lzma
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zstandard
from startup import print_startup

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "scripts"))

from af3 import example_inputs  # noqa: E402
from af3.msa_store import decompress  # noqa: E402


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process so far: on a shared machine
    this moves much less with the load of others than wall time does."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def snakemake(workdir: Path, config: dict, *args: str) -> tuple[float, str]:
    (workdir / "bench-config.yaml").write_text(json.dumps(config))
    cmd = [
        str(BIN / "snakemake"),
        *args,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--profile",
        str(REPO / "profiles/local"),
        "--configfile",
        "bench-config.yaml",
    ]
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"snakemake failed ({' '.join(args)}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout + proc.stderr


def af3_config(source: Path, n_chunks: int | str, seed_codec: str = "zst") -> dict:
    cfg = {
        "af3": {
            "enabled": True,
            "source_root": str(source),
            "n_chunks": n_chunks,
            "seeds": {"codec": seed_codec, "level": 1},
        }
    }
    cfg.update({w: {"enabled": False} for w in ("rnaseq", "trendy", "llc", "dali")})
    return cfg


def replicate(source: Path, copies: int) -> int:
    """Clone every job ``copies`` times under new names (files renamed to match): a big tree fast."""
    made = 0
    for job in sorted(p for p in source.iterdir() if p.is_dir()):
        for k in range(1, copies):
            new = f"{job.name}r{k}"
            for path in sorted(job.rglob("*")):
                target = source / new / str(path.relative_to(job)).replace(job.name, new)
                if path.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target)
            made += 1
    return made


def baseline(source: Path, dest: Path, zstd: bool = False) -> float:
    """rsync -a of the tree, then one tar of the seed dirs per job (sequential, as a user would).

    ``zstd``: ``tar -I 'zstd -1'`` into seeds.tar.zst instead of a plain tar.
    """
    start = time.perf_counter()
    subprocess.run(["rsync", "-a", f"{source}/", f"{dest}/"], check=True)
    compress = ["-I", "zstd -1"] if zstd else []
    name = "seeds.tar.zst" if zstd else "seeds.tar"
    for job in sorted(dest.iterdir()):
        samples = sorted(p.name for p in job.glob("seed-*_sample-*"))
        if samples:
            subprocess.run(["tar", "-C", str(job), *compress, "-cf", str(job / name), *samples], check=True)
    return time.perf_counter() - start


def codec_comparison(store: Path) -> list[tuple[str, int, float]]:
    """(codec, bytes, seconds) for the store's distinct MSA texts under each candidate codec."""
    texts = [decompress(p.read_bytes(), "zst") for p in store.rglob("*.zst")]
    results = []
    for label, fn in [
        ("zstd -10 (kept)", lambda b: zstandard.ZstdCompressor(level=10).compress(b)),
        ("zstd -19", lambda b: zstandard.ZstdCompressor(level=19).compress(b)),
        ("xz -6 (lzma)", lambda b: lzma.compress(b, preset=6)),
        ("xz -9e (lzma)", lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME)),
    ]:
        start = time.perf_counter()
        size = sum(len(fn(t)) for t in texts)
        results.append((label, size, time.perf_counter() - start))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=200,
        help="distinct jobs in the full tree (default 200, x 5 copies: 1,000)",
    )
    parser.add_argument(
        "--msa-depth", type=int, default=1500, help="MSA rows per 100 residues (default 1500)"
    )
    parser.add_argument("--copies", type=int, default=5, help="copies of each job, new names (default 5)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument(
        "--chunks", default="auto", help="n_chunks for the full tree (default auto, as the config)"
    )
    parser.add_argument(
        "--seed-codec",
        choices=["zst", "none"],
        default="zst",
        help="seed archives: zst, or none for a plain tar (default zst, as the config)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds of baseline + workflow (default 3)")
    parser.add_argument("--dry-run-jobs", type=int, default=13700, help="jobs in the dry-run tree (0: skip)")
    parser.add_argument("--dry-run-chunks", type=int, default=64)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    print_startup(REPO / ".venv" / "bin")

    tmp = Path(tempfile.mkdtemp(prefix="af3-bench-"))
    try:
        source = tmp / "af3_output"
        start = time.perf_counter()
        example_inputs.make_tree(source, args.jobs, msa_depth=args.msa_depth, broken=False)
        n_jobs = args.jobs + replicate(source, args.copies)
        print(f"generated {n_jobs} jobs, {du(source) / 1e6:.1f} MB in {time.perf_counter() - start:.1f} s")

        # Rounds of (baseline, workflow), each from scratch: the headline is the median of the
        # rounds' ratios, printed beside every round's ratio and the best time of each side.
        work = tmp / "run"
        config = af3_config(
            source, args.chunks if args.chunks == "auto" else int(args.chunks), args.seed_codec
        )
        rounds = []
        for _ in range(args.repeat):
            shutil.rmtree(tmp / "baseline", ignore_errors=True)
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            # Flush dirty pages first, so that neither side pays for the other's writes.
            os.sync()
            cpu = [children_cpu()]
            base_s = baseline(source, tmp / "baseline")
            os.sync()
            cpu.append(children_cpu())
            wf_s, _ = snakemake(work, config, "af3_all", "--cores", str(args.cores))
            cpu.append(children_cpu())
            rounds.append((base_s, cpu[1] - cpu[0], wf_s, cpu[2] - cpu[1]))
        base_s, base_cpu = min((r[0], r[1]) for r in rounds)
        wf_s, wf_cpu = min((r[2], r[3]) for r in rounds)
        os.sync()
        start_cpu = children_cpu()
        zst_s = baseline(source, tmp / "baseline-zstd", zstd=True)
        zst_cpu = children_cpu() - start_cpu
        rerun_s, _ = snakemake(work, config, "af3_all", "--cores", str(args.cores))
        stats = json.loads((work / "results/af3/tables/archive_stats.json").read_text())
        organized = work / "results/af3/organized"
        codecs = codec_comparison(organized / "_msa_store")

        print()
        print(f"{'':34}{'seconds':>10}{'CPU s':>8}{'MB written':>12}{'files':>9}")
        print(
            f"{'baseline: rsync -a + tar seeds':34}{base_s:>10.1f}{base_cpu:>8.1f}"
            f"{du(tmp / 'baseline') / 1e6:>12.1f}"
            f"{sum(1 for p in (tmp / 'baseline').rglob('*') if p.is_file()):>9}"
        )
        print(
            f"{'(for comparison) ... + tar zstd -1':34}{zst_s:>10.1f}{zst_cpu:>8.1f}"
            f"{du(tmp / 'baseline-zstd') / 1e6:>12.1f}"
            f"{sum(1 for p in (tmp / 'baseline-zstd').rglob('*') if p.is_file()):>9}"
        )
        print(
            f"{'af3 workflow (--cores ' + str(args.cores) + ')':34}{wf_s:>10.1f}{wf_cpu:>8.1f}"
            f"{du(organized) / 1e6:>12.1f}{sum(1 for p in organized.rglob('*') if p.is_file()):>9}"
        )
        print(f"{'af3 rerun, nothing changed':34}{rerun_s:>10.1f}")
        n_chunks = len(list((work / "results/af3/state/chunks").glob("chunk-*.json")))
        paired = [w / b for b, _, w, _ in rounds]
        print(
            f"ratio workflow / baseline: {statistics.median(paired):.2f}x (goal <= 1.5x), the median of "
            f"{args.repeat} rounds, each timed back to back: " + ", ".join(f"{r:.2f}x" for r in paired)
        )
        print(f"  (best workflow / best baseline: {wf_s / base_s:.2f}x; {n_chunks} chunks)")
        print(
            f"(ratio workflow / rsync + tar zstd -1: {wf_s / zst_s:.2f}x; CPU time: "
            f"{wf_cpu / base_cpu:.2f}x the baseline, {wf_cpu / zst_cpu:.2f}x rsync + tar zstd -1)"
        )
        print(
            f"MSA archive: {stats['msa_raw_bytes'] / 1e6:.1f} MB raw MSA text in {stats['msa_values']} values "
            f"-> {stats['msa_stored_bytes'] / 1e6:.2f} MB stored ({stats['msa_distinct']} distinct): "
            f"{stats['msa_ratio']}x (dedup alone {stats['msa_dedup_ratio']}x)"
        )
        raw_distinct = stats["msa_distinct_raw_bytes"]
        for label, size, seconds in codecs:
            print(
                f"  distinct MSAs ({raw_distinct / 1e6:.1f} MB) with {label:16}: {size / 1e6:.3f} MB "
                f"({raw_distinct / size:.1f}x) in {seconds:.2f} s"
            )
        print(
            f"seed archives: {stats['seed_raw_bytes'] / 1e6:.1f} MB -> {stats['seed_archive_bytes'] / 1e6:.1f} MB "
            f"({stats['seed_ratio']}x, {args.seed_codec})"
        )

        if args.dry_run_jobs:
            big = tmp / "big_output"
            start = time.perf_counter()
            example_inputs.make_tree(big, args.dry_run_jobs, light=True, broken=False)
            print(
                f"\nlight tree of {args.dry_run_jobs} jobs generated in {time.perf_counter() - start:.1f} s"
            )
            bwork = tmp / "big_run"
            bwork.mkdir()
            bconfig = af3_config(big, args.dry_run_chunks)
            manifest = "results/af3/manifest/jobs.tsv"
            disc_s, _ = snakemake(bwork, bconfig, manifest, "--cores", "1")
            dry_s, out = snakemake(bwork, bconfig, "af3_all", "-n", "--quiet")
            dry2_s, _ = snakemake(bwork, bconfig, "af3_all", "-n", "--quiet")
            print(f"discovery of {args.dry_run_jobs} jobs (snakemake run incl. start-up): {disc_s:.1f} s")
            print(
                f"dry run `snakemake -n` at {args.dry_run_jobs} jobs ({args.dry_run_chunks} chunks): "
                f"{dry_s:.1f} s, again {dry2_s:.1f} s (goal < 15 s)"
            )
            for spec in example_inputs.job_specs(100, start=args.dry_run_jobs + 1000):
                example_inputs.write_job(big, spec, light=True)
            snakemake(bwork, bconfig, manifest, "--cores", "1")
            log = (bwork / "logs/af3/discover.log").read_text()
            changed = log.split("chunks rewritten (new or changed jobs): ")[1].split("\n")[0].split()
            print(
                f"adding 100 jobs rewrote {len(changed)} of {args.dry_run_chunks} chunk manifests (only those rerun)"
            )
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
