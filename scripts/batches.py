"""Work done in batches: one implementation for af3's chunks and dali's batches.

A workflow with many small items (13,700 AF3 jobs, 28,000 proteins) schedules batches of them, not
items: Snakemake pays milliseconds per job, and a whole process per ``shadow:`` job. The shape:

* **plan**: a planning step (a checkpoint) assigns each item to a batch by a hash of its name
  (:func:`batch_of`, :func:`batch_count`), and writes one manifest per batch
  (:func:`write_batch_manifests`) that is rewritten only when that batch's rows change, so the
  manifest's mtime tells Snakemake which batches must run again;
* **markers**: inside a batch job, each item's result is recorded in a marker keyed by the item's
  input signature (:func:`current_marker`, :func:`write_marker`); a rerun skips items whose marker
  still matches, so a killed or requeued batch redoes only the items that were in flight;
* **isolation**: :func:`run_items` runs the items on a dynamic queue of worker processes; an
  exception, a crash or a kill of one item is a failure of that item alone;
* **progress**: :class:`Progress` writes "k of N done" lines at a bounded rate into the job's log.

Each workflow keeps only its own stage logic (what an item is, what its signature covers).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from common import atomic_open

log = logging.getLogger("hpcpipe")

ITEMS_PER_BATCH = 256  # DPAM ran ~260 proteins per batch job; af3 ~200 jobs per chunk
MAX_BATCHES = 512


# --------------------------------------------------------------------------- plan


def batch_of(name: str, n_batches: int) -> str:
    """Stable batch id (``"%03d"``) of an item name: adding or removing other items never moves it."""
    digest = hashlib.sha1(name.encode("utf-8", "surrogateescape")).digest()
    return f"{int.from_bytes(digest[:8], 'big') % n_batches:03d}"


def batch_count(setting: int | str, n_items: int, target_size: int = ITEMS_PER_BATCH) -> int:
    """The number of batches: an int ``setting`` as is; ``"auto"``: the power of two at or above
    ``n_items / target_size`` (1 up to ``target_size`` items, at most 512).

    A power of two changes seldom as items are added; when it does, every batch is planned again
    once (items whose markers still match are skipped inside the batches).
    """
    if setting != "auto":
        count = int(setting)
        if count < 1:
            raise ValueError(f"batch count must be at least 1, not {setting!r}")
        return count
    count = 1
    while count * max(1, int(target_size)) < n_items and count < MAX_BATCHES:
        count *= 2
    return count


def assign_batches(names: Iterable[str], setting: int | str, target_size: int = ITEMS_PER_BATCH) -> dict:
    """Map each name to its batch id (:func:`batch_of` over :func:`batch_count` batches)."""
    names = list(names)
    count = batch_count(setting, len(names), target_size)
    return {name: batch_of(name, count) for name in names}


def stat_signature(paths: Iterable[str | os.PathLike], extra=None) -> str:
    """A short signature of files by path, size and mtime (a missing file counts as missing), plus
    ``extra`` (settings that change the result). Reads no content: one stat per file."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            st = os.stat(path)
            digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        except FileNotFoundError:
            digest.update(f"{path}\0missing\n".encode("utf-8", "surrogateescape"))
    if extra is not None:
        digest.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:20]


# --------------------------------------------------------------------------- manifests

_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def tsv_cell(value) -> str:
    """One TSV cell: tabs, newlines and backslashes escaped, so hostile names cannot break a table."""
    return "".join(_ESCAPES.get(char, char) for char in str(value))


def _unescape(cell: str) -> str:
    if "\\" not in cell:
        return cell
    out, chars = [], iter(cell)
    for char in chars:
        out.append(_UNESCAPES.get(next(chars, ""), "\\") if char == "\\" else char)
    return "".join(out)


def tsv_text(rows: Iterable[dict], columns: Sequence[str]) -> str:
    """A header line and one line per row (cells escaped by :func:`tsv_cell`)."""
    lines = ["\t".join(columns)]
    lines += ["\t".join(tsv_cell(row[c]) for c in columns) for row in rows]
    return "\n".join(lines) + "\n"


def write_if_changed(path: str | os.PathLike, text: str) -> bool:
    """Replace ``path`` atomically, only when its content differs (an unchanged file keeps its mtime).

    Returns whether it was written.
    """
    path = Path(path)
    with contextlib.suppress(FileNotFoundError, UnicodeDecodeError):
        if path.read_text() == text:
            return False
    with atomic_open(path) as handle:
        handle.write(text)
    return True


def manifest_path(batch_dir: str | os.PathLike, batch: str, prefix: str = "batch") -> Path:
    """Where the manifest of ``batch`` lives: ``<batch_dir>/<prefix>-<batch>.tsv``."""
    return Path(batch_dir) / f"{prefix}-{batch}.tsv"


def write_batch_manifests(
    rows: Iterable[dict],
    columns: Sequence[str],
    batch_dir: str | os.PathLike,
    key: str = "batch",
    prefix: str = "batch",
) -> list[str]:
    """Write ``<prefix>-<batch>.tsv`` per non-empty batch (rows grouped by ``row[key]``, in input order,
    with ``columns``); rewrite one only when its content changes; remove the manifests of batches
    that are now empty. Returns the ids of the batches written (new or changed), sorted.
    """
    batch_dir = Path(batch_dir)
    batch_dir.mkdir(parents=True, exist_ok=True)
    by_batch: dict[str, list[dict]] = {}
    for row in rows:
        by_batch.setdefault(str(row[key]), []).append(row)
    changed = [
        batch
        for batch, batch_rows in by_batch.items()
        if write_if_changed(manifest_path(batch_dir, batch, prefix), tsv_text(batch_rows, columns))
    ]
    for stale in batch_dir.glob(f"{prefix}-*.tsv"):
        if stale.stem.removeprefix(f"{prefix}-") not in by_batch:
            stale.unlink()
    return sorted(changed)


def read_manifest(path: str | os.PathLike) -> list[dict]:
    """Rows of a TSV written by :func:`tsv_text` (or :func:`write_batch_manifests`), as dicts of str."""
    with open(path) as handle:
        header = handle.readline().rstrip("\n").split("\t")
        rows = []
        for number, line in enumerate(handle, 2):
            if not line.strip():
                continue
            cells = line.rstrip("\n").split("\t")
            if len(cells) != len(header):
                raise ValueError(f"{path} line {number}: {len(cells)} cells, the header has {len(header)}")
            rows.append({name: _unescape(cell) for name, cell in zip(header, cells, strict=True)})
    return rows


def read_batch_ids(path: str | os.PathLike, key: str = "batch", only: dict | None = None) -> list[str]:
    """The distinct non-empty values of column ``key`` in a manifest, sorted; with ``only``
    (column -> value), only rows that match it (e.g. ``{"status": "complete"}``)."""
    batches = set()
    for row in read_manifest(path):
        if only and any(row.get(column) != value for column, value in only.items()):
            continue
        if row[key]:
            batches.add(row[key])
    return sorted(batches)


# --------------------------------------------------------------------------- markers


def current_marker(path: str | os.PathLike, signature: str) -> dict | None:
    """The marker's record when it exists, is readable and carries ``signature``; else ``None``."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):  # no marker yet, or one cut by a kill: redo the item
        return None
    if isinstance(record, dict) and record.get("signature") == signature:
        return record
    return None


def write_marker(path: str | os.PathLike, record: dict) -> None:
    """Write an item's marker as JSON, atomically (a kill leaves the old marker or none, never half)."""
    with atomic_open(path) as handle:
        json.dump(record, handle, indent=1, default=str)
        handle.write("\n")


# --------------------------------------------------------------------------- progress


class Progress:
    """``label: k of N done, x/s, ETA ...`` lines in the job's log, at most one per ``min_interval_s``
    (and always one when the last item is done). With ``unit="bytes"`` (a long download) the counts
    are bytes and the line reads ``12.5 of 445.8 MB done, 3.10 MB/s``."""

    def __init__(
        self,
        total: int,
        label: str,
        min_interval_s: float = 30.0,
        clock=time.monotonic,
        unit: str = "",
        done: int = 0,
    ):
        self.total, self.label, self.min_interval_s, self.clock = total, label, min_interval_s, clock
        self.unit = unit
        self.done = self.initial = done  # a resumed download starts at its offset; the rate does not
        self.start = self.last = clock()

    def line(self) -> str:
        elapsed = max(self.clock() - self.start, 1e-9)
        rate = (self.done - self.initial) / elapsed
        left = self.total - self.done
        eta = f"ETA {left / rate:.0f} s" if rate > 0 and left > 0 else ("done" if left <= 0 else "ETA ?")
        if self.unit == "bytes":
            mb = 1e6
            return (
                f"{self.label}: {self.done / mb:.1f} of {self.total / mb:.1f} MB done, "
                f"{rate / mb:.2f} MB/s, {eta}"
            )
        return f"{self.label}: {self.done} of {self.total} done, {rate:.2f}/s, {eta}"

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if self.done >= self.total or now - self.last >= self.min_interval_s:
            self.last = now
            log.info("%s", self.line())


# --------------------------------------------------------------------------- the worker pool


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def _run_in_child(work: Callable, item, conn) -> None:
    try:
        message = ("ok", work(item))
    except BaseException as err:  # noqa: BLE001 - reported to the parent as this item's failure
        message = ("error", _describe(err))
    try:
        conn.send(message)
    except Exception as err:  # noqa: BLE001 - e.g. a result that cannot be pickled
        conn.send(("error", f"result could not be returned: {_describe(err)}"))
    conn.close()


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"WorkerDied: killed by {signal.Signals(-exitcode).name} (out of memory?)"
        return f"WorkerDied: killed by signal {-exitcode}"
    return f"WorkerDied: exited {exitcode} without a result"


def run_items(
    items: Sequence,
    work: Callable,
    workers: int,
    *,
    name: Callable = str,
    progress: Progress | None = None,
    item_timeout_s: float | None = None,
) -> tuple[list, list[tuple[str, str]]]:
    """Run ``work(item)`` for every item; return (results in item order, failures).

    A failure is ``(name(item), "Type: message")``: an exception raised by ``work``, a worker
    process that died (a crash, the OOM killer) or, with ``item_timeout_s``, one that ran too long.
    One item's failure never stops the others. With ``workers`` > 1, each item runs in its own
    forked process, at most ``workers`` at a time, started as others finish (a dynamic queue: a
    slow item never holds back a layer); with 1 worker, items run inline, one by one.
    """
    results: dict[int, object] = {}
    failures: dict[int, tuple[str, str]] = {}

    def finished(index: int, outcome: tuple[str, object]) -> None:
        status, value = outcome
        if status == "ok":
            results[index] = value
        else:
            failures[index] = (name(items[index]), str(value))
            log.error("%s failed: %s", name(items[index]), value)
        if progress is not None:
            progress.advance()

    if workers <= 1 or len(items) <= 1:
        for index, item in enumerate(items):
            try:
                outcome = ("ok", work(item))
            except (Exception, SystemExit) as err:  # one item's failure must not stop the others
                outcome = ("error", _describe(err))
            finished(index, outcome)
    else:
        context = multiprocessing.get_context("fork")
        queue = deque(range(len(items)))
        running: dict = {}  # receiving end of the pipe -> (index, process, start time)
        try:
            _drain(items, work, workers, queue, running, context, finished, item_timeout_s)
        finally:  # an interrupted parent (SIGTERM, an error) leaves no worker behind
            for _, process, _ in running.values():
                process.kill()
                process.join()
    ordered = [results[i] for i in sorted(results)]
    return ordered, [failures[i] for i in sorted(failures)]


def _drain(items, work, workers, queue, running, context, finished, item_timeout_s) -> None:
    """The dynamic queue of :func:`run_items`: keep ``workers`` processes busy until all are done."""
    while queue or running:
        while queue and len(running) < workers:
            index = queue.popleft()
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(target=_run_in_child, args=(work, items[index], sender))
            process.start()
            sender.close()  # the child holds the only write end: EOF when it dies
            running[receiver] = (index, process, time.monotonic())
        wait_s = None
        if item_timeout_s is not None:
            oldest = min(start for _, _, start in running.values())
            wait_s = max(0.0, oldest + item_timeout_s - time.monotonic())
        for receiver in multiprocessing.connection.wait(list(running), timeout=wait_s):
            index, process, _ = running.pop(receiver)
            try:
                outcome = receiver.recv()
            except EOFError:
                process.join()
                outcome = ("error", _death(process.exitcode))
            receiver.close()
            process.join()
            finished(index, outcome)
        if item_timeout_s is not None:
            now = time.monotonic()
            for receiver, (index, process, start) in list(running.items()):
                if now - start >= item_timeout_s:
                    process.kill()
                    process.join()
                    receiver.close()
                    del running[receiver]
                    finished(index, ("error", f"TimeoutError: still running after {item_timeout_s:g} s"))
