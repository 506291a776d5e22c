"""Benchmark of the dali workflow: wall per protein, file operations on the shared tree, cache hit rate,
throughput at 1, cpus and 4 x cpus aligner workers.

Baseline (measured in the same run): the seed's layout, where every temporary file of the loop lives in
the working directory on the shared file system. Here that is the same rule without `--shadow-prefix`
(shadow dirs and template cache under `<workdir>/.snakemake/`). New: `--shadow-prefix` on a separate
"node-local" directory. File operations are counted with `strace -f -e trace=%file,%desc` over the
whole Snakemake run and split by path prefix.

    .venv/bin/python bench/dali.py --proteins 8

`--dry-run N` measures instead what `snakemake -n` costs over N proteins with each profile (inputs are
symlinks to one example protein), beside Snakemake's floor measured in the same run: N jobs of a
one-rule Snakefile under the same profile. CPU is user + sys of the snakemake process tree.

    .venv/bin/python bench/dali.py --dry-run 28000 --repeat 2
"""

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from startup import print_startup

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from dali import example_inputs  # noqa: E402

SNAKEMAKE = REPO / ".venv" / "bin" / "snakemake"
# syscalls whose first quoted string is data or a result, not a path they act on
NOT_A_PATH = {
    "execve",
    "clone",
    "clone3",
    "getcwd",
    "read",
    "write",
    "pread64",
    "pwrite64",
    "readv",
    "writev",
}
PATH_RE = re.compile(r'"(/[^"]*|[^"/][^"]*)"')


def make_inputs(root: Path, n: int) -> Path:
    """n proteins (copies of the example queries under new names) and the example templates."""
    example_inputs.make(root / "examples")
    inputs = root / "shared" / "inputs"
    inputs.mkdir(parents=True)
    queries = list(example_inputs.QUERIES)
    names = []
    for i in range(n):
        source = queries[i % len(queries)]
        name = f"AF-BENCH{i:04d}-F1"
        for suffix in (".pdb", "_hits4Dali"):
            shutil.copy(root / "examples" / "inputs" / f"{source}{suffix}", inputs / f"{name}{suffix}")
        names.append(name)
    shutil.copytree(root / "examples" / "ECOD70", root / "shared" / "ECOD70")
    (root / "shared" / "proteins.txt").write_text("\n".join(names) + "\n")
    return root / "shared"


def config_text(shared: Path) -> str:
    off = "".join(f"{w}: {{enabled: false}}\n" for w in ("af3", "rnaseq", "trendy", "llc"))
    return (
        f"dali:\n  enabled: true\n  input_dir: {shared}/inputs\n  protein_list: {shared}/proteins.txt\n"
        f"  template_dir: {shared}/ECOD70\n  aligner: tmalign\n" + off
    )


def run(shared: Path, workdir: Path, scratch: Path | None, workers: int, strace_to: Path | None) -> float:
    workdir.mkdir(parents=True)
    (workdir / "c.yaml").write_text(config_text(shared))
    cmd = [
        str(SNAKEMAKE),
        "dali_all",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--profile",
        str(REPO / "profiles/local"),
        "--configfile",
        "c.yaml",
        "--cores",
        "1",  # one protein at a time: the per-protein pool is what is measured
        "--set-resources",
        f"dali_iterative:dali_workers={workers}",
    ]
    if scratch:
        cmd += ["--shadow-prefix", str(scratch)]
    if strace_to:
        cmd = ["strace", "-f", "-qq", "-e", "trace=%file,%desc,%process", "-o", str(strace_to)] + cmd
    start = time.monotonic()
    subprocess.run(cmd, cwd=workdir, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start


def count_ops(trace: Path, prefixes: dict[str, str], start_cwd: str) -> Counter:
    """File syscalls naming a path, by the first matching prefix.

    Relative paths are resolved against the process's working directory, followed through chdir and
    inherited through fork/clone (the aligner pool's workers use relative paths).
    """
    counts: Counter = Counter()
    cwd_of: dict[str, str] = {}
    first_pid = None
    for line in trace.read_text(errors="replace").splitlines():
        pid, _, call = line.partition(" ")
        first_pid = first_pid or pid
        cwd = cwd_of.get(pid, start_cwd)
        call = call.lstrip()
        # "<... clone resumed>) = 123": the end of a call that another process interrupted
        name = call.split()[1] if call.startswith("<...") else call.split("(", 1)[0]
        if name in ("clone", "clone3", "fork", "vfork") and "=" in call:
            child = call.rsplit("=", 1)[1].strip().split(" ")[0]
            if child.isdigit():
                cwd_of[child] = cwd
            continue
        match = PATH_RE.search(call)
        if not match or name in NOT_A_PATH:
            continue
        path = match.group(1)
        if not path.startswith("/"):
            path = os.path.normpath(os.path.join(cwd, path))
        if name == "chdir" and call.rstrip().endswith("= 0"):
            cwd_of[pid] = path
        for label, prefix in prefixes.items():
            if path.startswith(prefix):
                counts[label] += 1
                break
        else:
            counts["other (venv, system)"] += 1
    return counts


TOY_SNAKEFILE = """\
N = {n}


rule all:
    input:
        expand("out/{item}.txt", item=range(N)),


rule toy:
    output:
        "out/{item}.txt",
    shell:
        "touch {output}"
"""


def make_dry_run_inputs(root: Path, n: int) -> Path:
    """A dali config over n proteins whose two input files are symlinks to one example protein."""
    example_inputs.make(root / "examples")
    inputs = root / "inputs"
    inputs.mkdir()
    source = root / "examples" / "inputs" / next(iter(example_inputs.QUERIES))
    names = [f"AF-BENCH{i:05d}-F1" for i in range(n)]
    for name in names:
        for suffix in (".pdb", "_hits4Dali"):
            os.symlink(f"{source}{suffix}", inputs / f"{name}{suffix}")
    (root / "proteins.txt").write_text("\n".join(names) + "\n")
    off = "".join(f"{w}: {{enabled: false}}\n" for w in ("af3", "rnaseq", "trendy", "llc"))
    config = root / "dali.yaml"
    config.write_text(
        f"dali:\n  enabled: true\n  input_dir: {inputs}\n  protein_list: {root}/proteins.txt\n"
        f"  template_dir: {root}/examples/ECOD70\n  aligner: tmalign\n" + off
    )
    return config


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU (user + sys of the child tree) seconds of one command, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stdout[-3000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def dry_run(n: int, repeat: int, profiles: list[str]) -> None:
    """Print wall and CPU of `snakemake -n --quiet` over n proteins per profile, beside the toy floor."""
    root = Path(tempfile.mkdtemp(prefix="dali-dryrun-"))
    config = make_dry_run_inputs(root, n)
    (root / "toy").mkdir()
    (root / "toy" / "Snakefile").write_text(TOY_SNAKEFILE.replace("{n}", str(n)))
    print(f"dali dry run: {n} proteins, {os.cpu_count()} cpus, best of {repeat}, {root}")
    print(
        f"{'profile':8s} {'dali wall':>9s} {'dali cpu':>8s} {'toy wall':>8s} {'toy cpu':>7s} {'cpu ratio':>9s}",
        flush=True,
    )
    for profile in profiles:
        # `--quiet all` silences every job line; the target is each Snakefile's default `all`
        common = ["-n", "--profile", str(REPO / "profiles" / profile), "--quiet", "all"]
        dali_cmd = [
            str(SNAKEMAKE),
            "--snakefile",
            str(REPO / "Snakefile"),
            "--configfile",
            str(config),
            *common,
        ]
        toy_cmd = [str(SNAKEMAKE), *common]
        dali = min(timed(dali_cmd, root) for _ in range(repeat))
        toy = min(timed(toy_cmd, root / "toy") for _ in range(repeat))
        print(
            f"{profile:8s} {dali[0]:9.1f} {dali[1]:8.1f} {toy[0]:8.1f} {toy[1]:7.1f} {dali[1] / toy[1]:8.2f}x",
            flush=True,
        )
    shutil.rmtree(root, ignore_errors=True)


def cache_rate(workdir: Path) -> tuple[int, int]:
    hits, misses, _ = done_stats(workdir)
    return hits, misses


def done_stats(workdir: Path) -> tuple[int, int, float]:
    """Cache hits, misses and the summed in-job loop seconds from the done markers."""
    import json

    hits = misses = 0
    seconds = 0.0
    for done in (workdir / "results/dali").glob("*.iterativeDali.done"):
        stats = json.loads(done.read_text())
        hits, misses = hits + stats["cache_hits"], misses + stats["cache_misses"]
        seconds += stats["seconds"]
    return hits, misses, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proteins", type=int, default=8)
    parser.add_argument(
        "--dry-run", type=int, metavar="N", help="time `snakemake -n` over N proteins instead"
    )
    parser.add_argument("--repeat", type=int, default=1, help="dry run: best of this many runs")
    parser.add_argument("--profiles", nargs="+", default=["local", "slurm"], help="dry run: profiles to time")
    args = parser.parse_args()
    print_startup(REPO / ".venv" / "bin")
    if args.dry_run:
        dry_run(args.dry_run, args.repeat, args.profiles)
        return
    cpus = os.cpu_count() or 1
    root = Path(tempfile.mkdtemp(prefix="dali-bench-"))
    shared = make_inputs(root, args.proteins)
    n = args.proteins
    print(f"dali benchmark: {n} proteins (TM-align, real domains), {cpus} cpus, {root}")

    print("\n== file operations per protein (strace -f, whole snakemake run, 4 x cpus workers)")
    results = {}
    for label, scratch in (
        ("baseline: temp I/O in the work tree", None),
        ("new: --shadow-prefix scratch", root / "node"),
    ):
        workdir = root / ("base" if scratch is None else "new")
        trace = root / f"{workdir.name}.strace"
        run(shared, workdir, scratch, 4 * cpus, trace)
        prefixes = {
            "inputs (shared)": f"{shared}/inputs",
            "templates (shared)": f"{shared}/ECOD70",
            "work tree: shadow dirs and template cache (baseline)": f"{workdir}/.snakemake/shadow",
            "work tree: cache (baseline)": f"{workdir}/.snakemake/dali-template-cache",
            "work tree: .snakemake bookkeeping": f"{workdir}/.snakemake",
            "work tree: results/logs/benchmarks": f"{workdir}",
            "node scratch": str(root / "node"),
        }
        counts = count_ops(trace, prefixes, str(workdir))
        shared_ops = sum(v for k, v in counts.items() if "shared" in k or "work tree" in k)
        results[label] = shared_ops
        print(f"-- {label}: {shared_ops / n:.0f} shared-tree ops per protein")
        for key in sorted(counts):
            print(f"   {key:40s} {counts[key] / n:10.1f} per protein")
        h, m = cache_rate(workdir)
        print(f"   template cache: {h} hits / {m} misses (hit rate {h / max(1, h + m):.2f})")
    base, new = results.values()
    print(
        f"shared-tree ops per protein: baseline {base / n:.0f}, new {new / n:.0f}, ratio new/baseline {new / base:.3f}"
    )

    print("\n== wall per protein and throughput (no strace; cache warm after the first run)")
    rows = []
    for label, scratch in (("baseline", None), ("new", root / "node2")):
        for workers in (1, cpus, 4 * cpus):
            workdir = root / f"t-{label}-{workers}"
            wall = run(shared, workdir, scratch, workers, None)
            h, m, loop = done_stats(workdir)
            rows.append((label, workers, wall, loop, h / max(1, h + m)))
    base1 = rows[0][3]
    print(
        f"{'layout':9s} {'workers':>7s} {'wall s':>7s} {'wall/protein':>12s} {'loop s/protein':>14s} "
        f"{'loop proteins/min':>17s} {'cache hit':>9s} {'loop vs baseline@1':>18s}"
    )
    for label, workers, wall, loop, rate in rows:
        print(
            f"{label:9s} {workers:7d} {wall:7.1f} {wall / n:12.2f} {loop / n:14.3f} "
            f"{60 * n / loop:17.1f} {rate:9.2f} {base1 / loop:17.2f}x"
        )
    print(
        "(loop = the iterative loop inside the job, from the done markers; wall adds Snakemake's per-job start-up)"
    )
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
