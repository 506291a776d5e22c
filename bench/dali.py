"""Benchmark of the dali workflow against the physical floor, with a real network filesystem.

A real shared filesystem on this machine: Debian's ``sshfs`` mounts a directory over SFTP from an
``sshd`` that the bench starts on 127.0.0.1 (a generated key, its own config and port; stopped at the
end), one round trip per metadata operation, as on NFS. In each round, on the same proteins and
TM-align, with the same number of workers:

  (a) the workflow as a user runs it: work tree (inputs, templates, results, .snakemake/) on sshfs,
      ``--shadow-prefix`` on local disk;
  (b) the same with the work tree on local disk;
  (c) the seed's dpam_c2 layout: the temporary I/O inside the work tree on sshfs (the same workflow
      without ``--shadow-prefix``: shadow dirs and template cache under ``<work tree>/.snakemake/``);
  (d) the floor: the bare aligner loop of every protein through the same worker pool
      (:func:`batches.run_items` over :func:`dali.iterative.run_protein`), all on local disk.

It prints wall per protein for each, and the ratios a/b, a/c, a/d (median over the rounds, each
ratio taken within its round; each round starts with the next layout, so that none always runs
right after the same one); then file operations per protein on the shared tree for a and c,
counted with ``strace -f`` in separate runs (strace slows a run down, so it never runs in a timed one).

    .venv/bin/python bench/dali.py --proteins 64 --rounds 3

``--dry-run N`` measures instead what ``snakemake -n`` costs over N proteins with each profile, after
the plan has run once (its time is printed too), beside Snakemake's floor measured in the same run:
one job per batch of a one-rule Snakefile under the same profile.

    .venv/bin/python bench/dali.py --dry-run 28000

Needs ``envs/debian-bench-packages.txt`` (sshfs, openssh-server) and /dev/fuse.
"""

import argparse
import contextlib
import datetime
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from startup import print_startup

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from batches import batch_count, run_items  # noqa: E402
from dali import example_inputs  # noqa: E402
from dali.aligners import Aligner  # noqa: E402
from dali.iterative import run_protein  # noqa: E402

SNAKEMAKE = REPO / ".venv" / "bin" / "snakemake"
OTHERS_OFF = "".join(f"{w}: {{enabled: false}}\n" for w in ("af3", "rnaseq", "trendy", "llc"))
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


# --------------------------------------------------------------------------- the sshfs mount


@contextlib.contextmanager
def sshfs_mount(private: Path, export: Path, mount: Path):
    """Mount ``export`` at ``mount`` over SFTP from an sshd of our own on 127.0.0.1; stop both after."""
    for tool in ("sshfs", "/usr/sbin/sshd", "ssh-keygen", "fusermount"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: scripts/install_debian_packages.sh envs/debian-bench-packages.txt")
    private.mkdir(parents=True)
    export.mkdir(parents=True)
    mount.mkdir(parents=True)
    for key in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(private / key)], check=True)
    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = private / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {private}/host_key\n"
        f"AuthorizedKeysFile {private}/user_key.pub\nPermitRootLogin yes\nPasswordAuthentication no\n"
        f"StrictModes no\nSubsystem sftp internal-sftp\nPidFile {private}/sshd.pid\nUsePAM no\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    subprocess.run(["/usr/sbin/sshd", "-f", str(config)], check=True)
    mounted = False
    try:
        deadline = time.monotonic() + 30
        while not (private / "sshd.pid").exists():
            if time.monotonic() > deadline:
                sys.exit("sshd did not start")
            time.sleep(0.1)
        options = f"IdentityFile={private}/user_key,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null"
        user = os.environ.get("USER", "root")
        subprocess.run(
            ["sshfs", "-p", str(port), "-o", options, f"{user}@127.0.0.1:{export}", str(mount)], check=True
        )
        mounted = True
        yield mount
    finally:
        if mounted:
            subprocess.run(["fusermount", "-u", str(mount)], check=False)
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int((private / "sshd.pid").read_text()), 15)


# --------------------------------------------------------------------------- inputs and runs


def strace_prefix(trace: Path) -> list[str]:
    """strace of a command and all its tasks: file and descriptor calls, and the clones and chdirs
    that :func:`count_ops` follows to resolve relative paths."""
    return ["strace", "-f", "-qq", "-e", "trace=%file,%desc,%process", "-o", str(trace)]


def make_inputs(tree: Path, examples: Path, n: int) -> list[str]:
    """n proteins (copies of the example queries under new names) and the templates, under ``tree``."""
    inputs = tree / "inputs"
    inputs.mkdir(parents=True)
    queries = list(example_inputs.QUERIES)
    names = [f"AF-BENCH{i:05d}-F1" for i in range(n)]
    for i, name in enumerate(names):
        for suffix in (".pdb", "_hits4Dali"):
            shutil.copy(
                examples / "inputs" / f"{queries[i % len(queries)]}{suffix}", inputs / f"{name}{suffix}"
            )
    shutil.copytree(examples / "ECOD70", tree / "ECOD70")
    (tree / "proteins.txt").write_text("\n".join(names) + "\n")
    return names


def config_text(tree: Path) -> str:
    return (
        f"dali:\n  enabled: true\n  input_dir: {tree}/inputs\n  protein_list: {tree}/proteins.txt\n"
        f"  template_dir: {tree}/ECOD70\n  aligner: tmalign\n  batch_size: 100000\n" + OTHERS_OFF
    )


def run_workflow(tree: Path, scratch: Path | None, workers: int, strace_to: Path | None = None) -> float:
    """Wall seconds of one whole ``snakemake dali_all`` run (plan, one batch, summary, check) in ``tree``."""
    work = tree / "work"
    work.mkdir()
    (work / "c.yaml").write_text(config_text(tree))
    cmd = [
        str(SNAKEMAKE),
        "dali_all",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--profile",
        str(REPO / "profiles/local"),
        "--configfile",
        "c.yaml",
        "--set-resources",
        f"dali_batch:dali_workers={workers}",
    ]
    if scratch:
        cmd += ["--shadow-prefix", str(scratch)]
    if strace_to:
        cmd = [*strace_prefix(strace_to), *cmd]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed in {work}: {' '.join(cmd)}\n{proc.stdout[-4000:]}")
    return time.monotonic() - start


def pool_seconds(tree: Path) -> float:
    """Seconds the batch job's pool ran in a workflow run in ``tree``: from the batch log's line that
    starts the proteins to the one that counts them (logs/dali/batch-000.log; one batch in this bench)."""
    stamps = []
    for line in (tree / "work" / "logs" / "dali" / "batch-000.log").read_text().splitlines():
        if re.search(r"INFO batch 000: \d+ proteins,|INFO batch 000: \d+ ok,", line):
            stamps.append(datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp())
    if len(stamps) != 2:
        sys.exit(f"{tree}: the batch log does not say when its pool started and ended")
    return stamps[1] - stamps[0]


def run_loop(tree: Path, names: list[str], scratch: Path, workers: int, results: Path | None = None) -> float:
    """Wall seconds of the bare aligner loop of every protein through the same pool as the workflow.

    With ``scratch`` on local disk and no ``results`` it is the floor (d); with ``scratch`` inside the
    shared tree and ``results`` there, it is the seed's dpam_c2 layout (c): per-candidate temporary
    directories and the template cache in the shared working directory, hits files written beside.
    """
    aligner = Aligner("tmalign", "TMalign", timeout=600)
    scratch.mkdir(parents=True, exist_ok=True)
    if results:
        results.mkdir(parents=True, exist_ok=True)

    def work(name):
        inputs = tree / "inputs"
        text, _ = run_protein(
            inputs / f"{name}.pdb",
            inputs / f"{name}_hits4Dali",
            tree / "ECOD70",
            aligner,
            1,
            scratch / f"iterativeDali_{name}",
            scratch / "template_cache",
            copy_templates=results is not None,  # as dpam_c2 does (this sshfs also refuses readlink)
        )
        if results:
            (results / f"{name}_iterativdDali_hits").write_text(text)

    start = time.monotonic()
    _, failures = run_items(names, work, workers)
    if failures:
        sys.exit(f"aligner loop: {failures[:3]}")
    return time.monotonic() - start


def seed_layout(tree: Path, names: list[str], workers: int, strace_to: Path | None = None) -> float:
    """(c): the loop with its temporary I/O in the shared tree, in a process of its own (for strace)."""
    cmd = [sys.executable, __file__, "--seed-layout", str(tree), str(workers)]
    if strace_to:
        cmd = [*strace_prefix(strace_to), *cmd]
    start = time.monotonic()
    subprocess.run(cmd, check=True)
    return time.monotonic() - start


def run_layout(k: str, tree: Path, scratch: Path, names: list[str], workers: int) -> float:
    """Wall seconds of layout ``k`` (a, b, c or d; see the module's docstring) in ``tree``."""
    if k in "ab":
        return run_workflow(tree, scratch, workers)
    if k == "c":
        return seed_layout(tree, names, workers)
    return run_loop(tree, names, scratch, workers)


def returned(call: str) -> str:
    """What a traced call returned (``"1234"`` of ``clone(...) = 1234``), or ``""`` if not shown."""
    return call.rsplit("=", 1)[1].strip().split(" ")[0] if "=" in call else ""


AT_DIRFD_RE = re.compile(r"^\w+\((\d+), \"")  # a *at() call relative to a descriptor, not AT_FDCWD


def count_ops(trace: Path, prefixes: dict[str, str], start_cwd: str) -> Counter:
    """File syscalls naming a path, by the first matching prefix.

    Relative paths are resolved as the kernel does: against the working directory (followed through
    chdir, and shared by the tasks that a clone with ``CLONE_FS`` made, such as a process's threads)
    or, for a ``*at()`` call given a descriptor (``shutil.rmtree``), against the path that
    descriptor was opened with.
    """
    counts: Counter = Counter()
    cwd_of: dict[str, list[str]] = {}  # task -> [working directory], one list shared under CLONE_FS
    fds_of: dict[str, dict[int, str]] = {}  # task -> {descriptor: path}, shared under CLONE_FILES
    clone_args: dict[str, str] = {}  # a clone cut by strace's <unfinished ...>: its arguments
    for line in trace.read_text(errors="replace").splitlines():
        pid, _, call = line.partition(" ")
        cwd = cwd_of.setdefault(pid, [start_cwd])
        fds = fds_of.setdefault(pid, {})
        call = call.lstrip()
        name = call.split()[1] if call.startswith("<...") else call.split("(", 1)[0]
        if name in ("clone", "clone3", "fork", "vfork"):
            if call.endswith("<unfinished ...>"):
                clone_args[pid] = call
                continue
            child = returned(call)
            if child.isdigit():
                flags = clone_args.pop(pid, "") + call
                cwd_of[child] = cwd if "CLONE_FS" in flags else [cwd[0]]
                fds_of[child] = fds if "CLONE_FILES" in flags else dict(fds)
            continue
        if name == "close" and call.startswith("close("):
            fd = re.match(r"close\((\d+)", call)
            if fd:
                fds.pop(int(fd.group(1)), None)
            continue
        match = PATH_RE.search(call)
        if not match or name in NOT_A_PATH:
            continue
        path = match.group(1)
        if not path.startswith("/"):
            at_fd = AT_DIRFD_RE.match(call)
            base = fds.get(int(at_fd.group(1)), cwd[0]) if at_fd else cwd[0]
            path = os.path.normpath(os.path.join(base, path))
        if name == "chdir" and call.rstrip().endswith("= 0"):
            cwd[0] = path
        if name == "openat" and returned(call).isdigit():
            fds[int(returned(call))] = path
        for label, prefix in prefixes.items():
            if path.startswith(prefix):
                counts[label] += 1
                break
    return counts


def bench(n: int, rounds: int, workers: int, keep: bool) -> None:
    root = Path(tempfile.mkdtemp(prefix="dali-bench-"))
    examples = root / "examples"
    example_inputs.make(examples)
    cpus = os.cpu_count() or 1
    print(
        f"dali benchmark: {n} proteins (TM-align on real domains), {workers} workers, {cpus} cpus, {rounds} rounds"
    )
    with sshfs_mount(root / "ssh", root / "export", root / "mnt") as mnt:
        walls: dict[str, list[float]] = {k: [] for k in "abcd"}
        pools: dict[str, list[float]] = {k: [] for k in "ab"}  # the batch job's pool, inside a and b
        for r in range(rounds):
            # fresh trees each round: nothing cached from an earlier round, in any layout
            trees = {k: (mnt if k in "ac" else root / "local") / f"r{r}{k}" for k in "abcd"}
            names = []
            for tree in trees.values():
                names = make_inputs(tree, examples, n)
            # each round starts with another layout: no layout always runs right after the same one
            for k in "abcd"[r % 4 :] + "abcd"[: r % 4]:
                walls[k].append(run_layout(k, trees[k], root / f"scratch-r{r}{k}", names, workers))
                if k in "ab":
                    pools[k].append(pool_seconds(trees[k]))
            print(
                f"round {r + 1}: " + ", ".join(f"{k} {walls[k][-1] / n:.3f} s/protein" for k in "abcd"),
                flush=True,
            )
        med = {k: statistics.median(v) / n for k, v in walls.items()}
        ratios = {
            pair: statistics.median(walls[pair[0]][i] / walls[pair[2]][i] for i in range(rounds))
            for pair in ("a/b", "a/c", "a/d")
        }
        labels = {
            "a": "workflow, work tree on sshfs, scratch local",
            "b": "workflow, all local",
            "c": "seed layout: loop with temp I/O in the sshfs tree",
            "d": "floor: bare aligner loop, same pool, local",
        }
        print(
            "\nwall per protein (median of rounds; a, b: the whole snakemake run; c, d: the loop's process)"
        )
        for k, label in labels.items():
            print(f"  ({k}) {label:48s} {med[k]:7.3f} s")
        for pair, value in ratios.items():
            goal = {"a/b": " (goal <= 1.15)", "a/d": " (goal <= 1.15 at >= 64 proteins)"}.get(pair, "")
            print(f"  {pair} = {value:.2f}{goal}")
        print("\nwhere a and b spend their time beyond d's loop (seconds per run, median of rounds)")
        print(f"  (d) the loop: {statistics.median(walls['d']):.1f} s")
        for k in "ab":
            pool = statistics.median(pools[k])
            rest = statistics.median(w - p for w, p in zip(walls[k], pools[k], strict=True))
            print(
                f"  ({k}) the batch job's pool: {pool:.1f} s; before and after it (Snakemake's start-ups "
                f"and the plan, batch set-up, summary and check jobs): {rest:.1f} s"
            )

        print("\nfile operations per protein on the shared tree (strace -f, separate runs)")
        for k in "ac":
            tree = mnt / f"strace-{k}"
            names = make_inputs(tree, examples, n)
            trace = root / f"strace-{k}.txt"
            if k == "a":
                run_workflow(tree, root / "scratch-strace-a", workers, trace)
            else:
                (tree / "work").mkdir()
                seed_layout(tree, names, workers, trace)
            prefixes = {
                "inputs": f"{tree}/inputs",
                "templates": f"{tree}/ECOD70",
                "list": f"{tree}/proteins.txt",
                "temporary I/O (seed layout)": f"{tree}/work/tmp",
                ".snakemake bookkeeping": f"{tree}/work/.snakemake",
                "results, logs, benchmarks": f"{tree}/work",
            }
            counts = count_ops(trace, prefixes, str(tree / "work"))
            total = sum(counts.values())
            print(f"  ({k}) {labels[k]}: {total / n:.0f} per protein (goal <= 150 for a)")
            for key in prefixes:
                if counts[key]:
                    print(f"      {key:50s} {counts[key] / n:9.1f}")
    if not keep:
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- dry run at scale

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


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU (user + sys of the child tree) seconds of one command, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stdout[-3000:]}")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def dry_run(n: int, repeat: int, profiles: list[str]) -> None:
    """Run the plan over n proteins once, then time ``snakemake -n`` per profile beside the toy floor."""
    root = Path(tempfile.mkdtemp(prefix="dali-dryrun-"))
    example_inputs.make(root / "examples")
    inputs = root / "inputs"
    inputs.mkdir()
    source = root / "examples" / "inputs" / next(iter(example_inputs.QUERIES))
    names = [f"AF-BENCH{i:05d}-F1" for i in range(n)]
    for name in names:
        for suffix in (".pdb", "_hits4Dali"):
            os.symlink(f"{source}{suffix}", inputs / f"{name}{suffix}")
    (root / "proteins.txt").write_text("\n".join(names) + "\n")
    config = root / "dali.yaml"
    config.write_text(
        f"dali:\n  enabled: true\n  input_dir: {inputs}\n  protein_list: {root}/proteins.txt\n"
        f"  template_dir: {root}/examples/ECOD70\n  aligner: tmalign\n" + OTHERS_OFF
    )
    base = [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--configfile", str(config)]
    plan = timed([*base, "--profile", str(REPO / "profiles/local"), "results/dali/plan/proteins.tsv"], root)
    batches = batch_count("auto", n, 256)
    print(f"dali dry run: {n} proteins in {batches} batches, {os.cpu_count()} cpus, best of {repeat}, {root}")
    print(f"plan (dali_plan, run once): {plan[0]:.1f} s wall, {plan[1]:.1f} s CPU")
    (root / "toy").mkdir()
    (root / "toy" / "Snakefile").write_text(TOY_SNAKEFILE.replace("{n}", str(batches)))
    print(
        f"{'profile':8s} {'dali wall':>9s} {'dali cpu':>8s} {'toy wall':>8s} {'toy cpu':>7s}  goal: dali wall < 10 s"
    )
    for profile in profiles:
        common = ["-n", "--profile", str(REPO / "profiles" / profile), "--quiet", "all"]
        dali = min(timed([*base, *common], root) for _ in range(repeat))
        toy = min(timed([str(SNAKEMAKE), *common], root / "toy") for _ in range(repeat))
        print(f"{profile:8s} {dali[0]:9.1f} {dali[1]:8.1f} {toy[0]:8.1f} {toy[1]:7.1f}", flush=True)
    shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proteins", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of a, b, c, d; ratios are medians")
    parser.add_argument("--workers", type=int, default=0, help="pool size (default: 4 x cpus, at most 64)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary trees")
    parser.add_argument(
        "--dry-run", type=int, metavar="N", help="time `snakemake -n` over N proteins instead"
    )
    parser.add_argument("--repeat", type=int, default=1, help="dry run: best of this many runs")
    parser.add_argument("--profiles", nargs="+", default=["local", "slurm"], help="dry run: profiles to time")
    parser.add_argument("--seed-layout", nargs=2, metavar=("TREE", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed_layout:
        tree = Path(args.seed_layout[0])
        names = (tree / "proteins.txt").read_text().split()
        run_loop(tree, names, tree / "work" / "tmp", int(args.seed_layout[1]), tree / "work" / "results")
        return
    print_startup(REPO / ".venv" / "bin")
    if args.dry_run:
        dry_run(args.dry_run, args.repeat, args.profiles)
        return
    bench(args.proteins, args.rounds, args.workers or min(4 * (os.cpu_count() or 1), 64), args.keep)


if __name__ == "__main__":
    main()
