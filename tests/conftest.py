"""Shared pytest fixtures: the repository paths, a Snakemake runner, and a real SLURM."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(SCRIPTS))  # tests import the scripts' functions directly


# For runs on the test SLURM: the first status check after 2 s (the profile's 40 s suits a real
# queue) and then every 2 s (Snakemake's default is 10 s), so that a test waits on its jobs, not on polling.
SLURM_QUICK = ["--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2"]


def snakemake_env(path: str | None = None) -> dict:
    """The environment of a Snakemake run: the venv first on ``path`` (default: ours)."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{path or env.get('PATH', '')}"
    return env


def snakemake_command(
    workdir: Path, config: dict, targets: list[str], profile: str = "local", extra: list[str] | None = None
) -> list[str]:
    """Write ``config`` to workdir/test-config.yaml; return the Snakemake command that runs it."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "test-config.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    return [
        str(BIN / "snakemake"),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--profile",
        str(REPO / "profiles" / profile),
        "--configfile",
        str(cfg),
        *(extra or []),
        # options such as --configfile take several values: `--` ends them before the targets
        "--",
        *targets,
    ]


def run_workflow(
    workdir: Path,
    config: dict,
    targets: list[str] | None = None,
    profile: str = "local",
    extra: list[str] | None = None,
    check: bool = True,
    timeout: float = 900,
    path: str | None = None,
) -> subprocess.CompletedProcess:
    """Run the package's Snakefile in ``workdir`` with ``config`` (written to workdir/config.yaml).

    Returns the completed process (stdout and stderr merged into ``.stdout``); with ``check``,
    a non-zero exit fails the test and shows Snakemake's output. ``path`` replaces PATH.
    """
    cmd = snakemake_command(workdir, config, targets or [], profile, extra)
    proc = subprocess.run(
        cmd,
        cwd=workdir,
        env=snakemake_env(path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        pytest.fail(f"snakemake exited {proc.returncode}: {' '.join(cmd)}\n{proc.stdout[-6000:]}")
    return proc


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real single-node SLURM (Debian's slurm-wlm), started if needed, stopped if we started it."""
    script = REPO / "tests" / "slurm_cluster.sh"
    if shutil.which("sbatch") is None and os.geteuid() != 0:
        pytest.skip("SLURM is not installed and we are not root")
    out = subprocess.run([str(script), "start"], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.fail(f"could not start the test SLURM:\n{out.stdout}\n{out.stderr}")
    started = "started" in out.stdout
    yield
    if started:
        subprocess.run([str(script), "stop"], capture_output=True, text=True)


@pytest.fixture(scope="session", autouse=True)
def slurm_controller_for_fast_snakemake_starts(request):
    """Keep the test SLURM up for the whole session where its client tools are installed.

    Where ``sinfo`` is on PATH, the SLURM executor plugin runs ``scontrol show config`` each time
    Snakemake starts (at import, whatever the profile), and with no controller to answer it waits
    for its 10 s timeout: a whole suite of ``profiles/local`` runs would spend minutes waiting.
    Where the cluster cannot start, this does nothing: the SLURM tests fail on their own, naming why.
    """
    if shutil.which("sinfo") is None:
        return
    try:
        request.getfixturevalue("slurm_cluster")
    except (pytest.fail.Exception, pytest.skip.Exception):
        pass
