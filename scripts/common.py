"""Helpers shared by every workflow's scripts: atomic writes, logging, checksums,
subprocesses with a timeout, and concise config validation.

Every script under ``scripts/<workflow>/`` imports this module (``scripts/`` is put on
``PYTHONPATH`` by ``rules/common.smk``, and on ``sys.path`` by ``tests/conftest.py``).
Nothing here knows about any one workflow.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import yaml

log = logging.getLogger("hpcpipe")


# --------------------------------------------------------------------------- logging


def setup_logging(logfile: str | os.PathLike | None = None, level: int = logging.INFO) -> logging.Logger:
    """Log to ``logfile`` (the rule's ``log:``) and to stderr, with timestamps."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if logfile:
        Path(logfile).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(logfile, mode="w"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )
    return log


def end_pending_timers() -> None:
    """Cancel every ``threading.Timer`` still waiting in this process (called when a run is over).

    Snakemake 9's scheduler arms a 1 s Timer (its job-rate limit) after each scheduling round and
    leaves the last one waiting; it is not a daemon thread, so Python waits for it before the process
    exits: up to a second at the end of every run, of every ``shadow:`` job's own Snakemake process,
    and of every SLURM job. ``rules/common.smk`` calls this from ``onsuccess`` and ``onerror``.
    """
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()


# --------------------------------------------------------------------------- atomic writes


def _temporary_beside(path: Path, suffix: str = "") -> tuple[int, str]:
    """``mkstemp`` in ``path``'s directory, which is made only when it is missing: on a shared
    filesystem each operation is a round trip, and most writes go to a directory that exists."""
    try:
        return tempfile.mkstemp(prefix=f".tmp-{path.name}.", suffix=suffix, dir=path.parent)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(prefix=f".tmp-{path.name}.", suffix=suffix, dir=path.parent)


def _file_mode() -> int:
    """The mode ``open()`` would give a new file (mkstemp's is 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A killed job therefore leaves at most a ``.tmp-*`` file, never a file that looks complete.
    The temporary file is in the same directory, so the final ``os.replace`` is atomic.
    """
    path = Path(path)
    fd, tmp = _temporary_beside(path, suffix)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.is_file():  # the block may have made a directory there instead
            os.chmod(tmp_path, _file_mode())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            if tmp_path.is_dir():
                shutil.rmtree(tmp_path)
            else:
                tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """``open()`` for writing that renames into place on success (see :func:`atomic_path`).

    Written through the temporary file's own descriptor: two operations on the directory (create,
    rename), where per-item markers and results on a shared filesystem are written by the thousand.
    """
    path = Path(path)
    fd, tmp = _temporary_beside(path)
    try:
        with open(fd, mode, **kwargs) as handle:
            yield handle
            os.fchmod(handle.fileno(), _file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike, data, indent: int | None = 2) -> None:
    """Write ``data`` as JSON atomically."""
    with atomic_open(path) as handle:
        json.dump(data, handle, indent=indent, sort_keys=False, default=str)
        handle.write("\n")


def write_table(df, path: str | os.PathLike) -> None:
    """Write a pandas DataFrame atomically; ``.parquet`` or tab-separated text by extension."""
    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp:
        if path.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, sep="\t", index=False)


def fail_naming(problems: Sequence[str], headline: str) -> None:
    """End a workflow's final check: log each problem and stop the job naming them all.

    Used by the ``*_check`` rules, which fail the run after the aggregates cover every item that
    succeeded; ``headline`` says how many failed and what the next run does about them.
    """
    for line in problems:
        log.error(line)
    if problems:
        raise SystemExit(f"{headline}:\n  " + "\n  ".join(problems))


# --------------------------------------------------------------------------- checksums


def file_digest(path: str | os.PathLike, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file, read in chunks (``md5`` for ENA, ``sha256`` for provenance)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            h.update(block)
    return h.hexdigest()


def content_hash(data, length: int = 12) -> str:
    """Stable short hash of a JSON-serialisable value (used for content-addressed ids)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


# --------------------------------------------------------------------------- subprocesses


class CommandError(RuntimeError):
    """A command failed or timed out; the message names the command and ends with its stderr."""


def run_command(
    cmd: Sequence[str],
    timeout: float | None = None,
    cwd: str | os.PathLike | None = None,
    env: dict | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run ``cmd`` (a list, never a shell string) with a timeout; raise :class:`CommandError` on failure.

    On timeout the whole process group is killed, so a hung child cannot outlive the job.
    """
    cmd = [str(c) for c in cmd]
    log.debug("run: %s", " ".join(cmd))
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        raise CommandError(f"{cmd[0]} timed out after {timeout:g} s: {' '.join(cmd)}") from None
    result = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if check and proc.returncode != 0:
        tail = (err or out or "").strip().splitlines()[-5:]
        raise CommandError(f"{cmd[0]} exited {proc.returncode}: {' '.join(cmd)}\n" + "\n".join(tail))
    return result


# --------------------------------------------------------------------------- config validation


# libyaml's loader where PyYAML has it: the schemas are read at parse time, which every job repeats
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: str | os.PathLike):
    with open(path) as handle:
        return yaml.load(handle, Loader=SAFE_LOADER)  # noqa: S506 - a safe loader


@functools.cache
def _validator_class(fill_defaults: bool):
    """Draft 2020-12, optionally also setting each missing property to its schema ``default`` as it
    validates (the recipe of jsonschema's FAQ, which Snakemake's ``validate(set_default=True)`` uses)."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    if not fill_defaults:
        return base
    check_properties = base.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, schema):
        if validator.is_type(instance, "object"):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from check_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": properties_with_defaults})


def config_errors(
    data, schema: dict | str | os.PathLike, where: str = "config", fill_defaults: bool = False
) -> list[str]:
    """Return one readable line per schema violation: the key at fault and what was expected.

    Example: ``config key 'af3.workers': 'many' is not of type 'integer'``. With ``fill_defaults``,
    ``data`` also gets the schema's default of every property it lacks, in the same pass.
    """
    if not isinstance(schema, dict):
        schema = load_yaml(schema)
    validator = _validator_class(fill_defaults)(schema)
    lines = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        path = [str(p) for p in error.absolute_path]
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            # Name the misspelt key itself, and what would have been accepted there.
            allowed = sorted(error.schema.get("properties", {}))
            for extra in sorted(set(error.instance) - set(allowed)):
                key = ".".join([*path, str(extra)])
                lines.append(f"{where} key '{key}': unknown key; expected one of: {', '.join(allowed)}")
            continue
        if error.validator == "required":
            key = ".".join([*path, error.message.split("'")[1]]) if "'" in error.message else ".".join(path)
            lines.append(f"{where} key '{key}': missing, and it has no default")
            continue
        key = ".".join(path)
        label = f"{where} key '{key}'" if key else where
        if error.validator == "pattern":
            # The pattern as written in the schema (jsonschema's repr doubles its backslashes).
            lines.append(f"{label}: {error.instance!r} does not match '{error.validator_value}'")
            continue
        lines.append(f"{label}: {error.message}")
    return lines
