"""Snakemake's own start-up time on this machine, which every benchmark prints beside its figures.

Each Snakemake run pays it once, and on SLURM each job pays it again. On a machine that has SLURM's
client tools but no controller to answer them (a workstation with slurm-wlm installed, or this
repository's test machine between test runs), the SLURM executor plugin's `scontrol show config`,
run whenever Snakemake starts, waits for its 10 s timeout. The figures would then include that
wait, so this module warns about it.
"""

import shutil
import subprocess
import time
from pathlib import Path

SLURM_STALL_S = 8.0


def snakemake_startup_s(bin_dir: Path) -> float:
    """Seconds of ``snakemake --version`` (the faster of two runs: the first may fill caches)."""
    times = []
    for _ in range(2):
        start = time.perf_counter()
        subprocess.run([str(bin_dir / "snakemake"), "--version"], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return min(times)


def print_startup(bin_dir: Path) -> float:
    """Print Snakemake's start-up time, with a warning when it waits on an absent SLURM controller."""
    seconds = snakemake_startup_s(bin_dir)
    print(f"Snakemake start-up on this machine: {seconds:.1f} s (`snakemake --version`)")
    if seconds > SLURM_STALL_S and shutil.which("sinfo"):
        print(
            "  warning: SLURM's client tools are installed but no controller answers, so every\n"
            "  Snakemake start waits ~10 s for `scontrol show config` (the SLURM executor plugin);\n"
            "  the figures below include that wait. Start the controller (as root:\n"
            "  tests/slurm_cluster.sh start) for figures a cluster's login node would give."
        )
    return seconds
