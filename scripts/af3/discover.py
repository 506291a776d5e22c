"""Stage 1: walk the AF3 output root once and write the job manifest and per-chunk manifests.

One ``os.scandir`` of the root, one of each job directory, a stat of each top-level entry and a
read of the JSON files' last bytes (to catch truncation): no walk into the sample directories, so
13,700 jobs cost about 30 stats each. A job is *complete* when AF3 finished it: top-level model,
confidences, summary confidences and ranking scores are present and the JSON files end properly.

Every entry of the root is either a job (complete or not) or a problem line with its reason: a
plain file, a symlink (dangling, a loop, or to a directory: symlinks are listed, never followed,
so a job is organized from the one place it lives), or a duplicate: AF3 adds a timestamp suffix
(``_YYYYMMDD_HHMMSS``) when the output dir already exists, and of the dirs that differ only by it
the newest complete one (latest suffix) is the job; the others are listed as duplicates.

Groups fold letter case by default (``group_case: fold``): AF3 v3.0.1 lower-cases its output dir
names and v3.0.2+ keeps the case, so ``KMT5A_...`` and ``kmt5a_...`` are one group, named in upper
case (a name that does not depend on which jobs exist, so a group's directory never moves).

Each complete job goes to chunk ``sha1(name) mod n_chunks``. A chunk manifest is rewritten only
when its content changes, so its mtime tells Snakemake which chunks must be organized again.
``n_chunks: auto`` derives the count from the number of complete jobs (:func:`chunk_count`).
The chunk plan, the manifests and their reading are the shared floor's (:mod:`batches`); this
module keeps what an AF3 job is.
"""

import errno
import hashlib
import json
import logging
import os
import re
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path

from batches import batch_count, batch_of, read_batch_ids, tsv_text, write_batch_manifests
from common import atomic_open, setup_logging

log = logging.getLogger("hpcpipe")

# Stricter than the shell: a job name becomes a path component under the output tree.
JOB_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
SAMPLE_DIR = re.compile(r"seed-\d+_sample-\d+")
# AF3 appends the time when the output dir exists already (run_alphafold.py, --output_dir).
TIMESTAMP_SUFFIX = re.compile(r"(.+)_(\d{8}_\d{6})")
MANIFEST_COLUMNS = [
    "job",
    "group",
    "chunk",
    "status",
    "reason",
    "prefix",
    "layout",
    "n_files",
    "n_sample_dirs",
    "bytes",
    "newest_mtime",
    "signature",
]
CHUNK_COLUMNS = ["job", "group", "prefix", "layout", "signature"]


@dataclass
class JobEntry:
    """One directory under the AF3 root, as discovery sees it."""

    job: str
    group: str = ""
    chunk: str = ""
    status: str = "complete"  # complete | incomplete | malformed | duplicate | not a job
    reason: str = ""
    note: str = ""  # complete, but worth a line in problems.tsv (e.g. no _data.json)
    prefix: str = ""
    layout: str = ""
    n_files: int = 0
    n_sample_dirs: int = 0
    bytes: int = 0
    newest_mtime: float = 0.0
    signature: str = ""
    sample_dirs: list[str] = field(default_factory=list)


def group_of(job: str, group_regex: str, group_case: str = "keep") -> str:
    """The group a job belongs to: the first capture group of ``group_regex`` (empty if no match).

    ``group_case: fold`` names the group in upper case, so ``KMT5A_x`` and ``kmt5a_y`` share one.
    """
    match = re.search(group_regex, job)
    if not match:
        return ""
    group = match.group(1) if match.groups() else match.group(0)
    return group.upper() if group_case == "fold" else group


JOBS_PER_CHUNK = 256


def chunk_count(n_chunks: int | str, n_jobs: int) -> int:
    """The number of chunks: ``n_chunks`` itself, or for ``"auto"`` the power of two at or above
    ``n_jobs / 256`` (1 up to 256 jobs, 64 for 13,700): :func:`batches.batch_count`.

    Each chunk is one Snakemake job with its own Python start-up, so a small tree gets few. A power
    of two changes seldom as jobs are added; when it does, every chunk is checked again once
    (unchanged jobs are skipped by their markers).
    """
    return batch_count(n_chunks, n_jobs, JOBS_PER_CHUNK)


def json_object_problem(path: str, edge_bytes: int = 64) -> str:
    """Why the file is not a whole JSON object, from its first and last bytes ("" when it looks whole).

    A cheap check: the first non-blank byte opens an object, the last one closes it.
    """
    with open(path, "rb") as handle:
        head = handle.read(edge_bytes).lstrip()
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - edge_bytes))
        tail = handle.read().rstrip()
    if not head:
        return "empty file"
    if not head.startswith(b"{"):
        return "not a JSON object"
    return "" if tail.endswith(b"}") else "truncated JSON"


def classify_job(path: str, name: str, group_regex: str, group_case: str = "keep") -> JobEntry:
    """Inspect one job directory (top level only) and say whether it is complete and why not."""
    entry = JobEntry(job=name)
    if not JOB_NAME.fullmatch(name) or ".." in name:
        entry.status, entry.reason = (
            "malformed",
            ("unsafe job directory name (allowed: letters, digits, '_', '.', '+', '-'; no '..', no spaces)"),
        )
        return entry
    entry.group = group_of(name, group_regex, group_case)
    if not entry.group:
        entry.status, entry.reason = (
            "malformed",
            f"empty group: group_regex {group_regex!r} finds no group in the name",
        )
        return entry
    if not GROUP_NAME.fullmatch(entry.group) or ".." in entry.group:
        entry.status, entry.reason = (
            "malformed",
            f"unsafe group name {entry.group!r} from group_regex {group_regex!r}",
        )
        return entry
    files: dict[str, os.stat_result] = {}
    digest = hashlib.sha256()
    with os.scandir(path) as it:
        for child in sorted(it, key=lambda e: e.name):
            st = child.stat(follow_symlinks=False)
            if child.is_dir(follow_symlinks=False):
                if SAMPLE_DIR.fullmatch(child.name):
                    entry.sample_dirs.append(child.name)
                # A directory's mtime changes when files appear in it: enough to notice new samples.
                digest.update(f"d {child.name} {st.st_mtime_ns}\n".encode())
            else:
                files[child.name] = st
                entry.bytes += st.st_size
                digest.update(f"f {child.name} {st.st_size} {st.st_mtime_ns}\n".encode())
            entry.newest_mtime = max(entry.newest_mtime, st.st_mtime)
    entry.n_files = len(files)
    entry.n_sample_dirs = len(entry.sample_dirs)
    entry.signature = digest.hexdigest()[:20]
    summaries = [f for f in files if f.endswith("_summary_confidences.json")]
    if not summaries:
        data = [f for f in files if f.endswith("_data.json")]
        entry.status = "incomplete"
        entry.reason = (
            "only _data.json: the data pipeline ran, inference did not finish"
            if data
            else "no <name>_summary_confidences.json: AF3 did not finish this job"
        )
        return entry
    # A job named "x_summary" also has "x_summary_confidences.json" as its confidences file:
    # prefer the candidate whose other files exist, then the longest.
    candidates = [f[: -len("_summary_confidences.json")] for f in summaries]
    prefix = entry.prefix = max(
        candidates, key=lambda p: (f"{p}_confidences.json" in files or f"{p}_model.cif" in files, len(p))
    )
    # v3.0.1 writes lower-case names and an unprefixed ranking_scores.csv; v3.0.2+ prefixes it.
    entry.layout = (
        "v3.0.2" if f"{prefix}_ranking_scores.csv" in files or prefix != prefix.lower() else "v3.0.1"
    )
    ranking = [f"{prefix}_ranking_scores.csv", "ranking_scores.csv"]
    required = {
        "model": [f"{prefix}_model.cif", f"{prefix}_model.cif.zst"],
        "confidences": [f"{prefix}_confidences.json", f"{prefix}_confidences.json.zst"],
        "ranking scores": ranking if entry.layout == "v3.0.2" else ranking[::-1],
    }
    for label, names in required.items():
        present = [n for n in names if n in files]
        if not present:
            entry.status, entry.reason = "incomplete", f"missing {label} file {names[0]}"
            return entry
        if files[present[0]].st_size == 0:
            entry.status, entry.reason = "incomplete", f"empty {label} file {present[0]} (0 bytes)"
            return entry
    for name_ in (f"{prefix}_summary_confidences.json", f"{prefix}_confidences.json", f"{prefix}_data.json"):
        if name_ in files and (problem := json_object_problem(os.path.join(path, name_))):
            entry.status, entry.reason = "malformed", f"{problem}: {name_}"
            return entry
    try:
        with open(os.path.join(path, f"{prefix}_summary_confidences.json"), "rb") as handle:
            json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError) as err:
        entry.status, entry.reason = "malformed", f"unreadable {prefix}_summary_confidences.json: {err}"
        return entry
    if f"{prefix}_data.json" not in files:
        entry.note = f"no {prefix}_data.json: organized without MSAs (nothing to restore it from)"
    return entry


def root_entry_problem(entry: os.DirEntry) -> str:
    """Why a root entry is not a job directory ("" for a plain directory)."""
    if entry.is_symlink():
        try:
            target = os.stat(entry.path)
        except OSError as err:
            if err.errno == errno.ELOOP:
                return f"symlink loop ({os.readlink(entry.path)}): not followed"
            return f"dangling symlink to {os.readlink(entry.path)}: not followed"
        kind = "a directory" if stat.S_ISDIR(target.st_mode) else "a file"
        return (
            f"symlink to {kind} ({os.readlink(entry.path)}): not followed; "
            "move the job dir into the root or sync the root it lives in"
        )
    if not entry.is_dir(follow_symlinks=False):
        return "plain file at the root: not a job directory"
    return ""


def mark_duplicates(entries: list[JobEntry]) -> None:
    """Of the dirs that differ only by AF3's timestamp suffix, keep the newest complete one.

    The newest is the one with the latest suffix (AF3 adds it when the dir exists already); the
    others become ``duplicate`` with the name of the one kept.
    """
    by_base: dict[str, list[JobEntry]] = {}
    for e in entries:
        match = TIMESTAMP_SUFFIX.fullmatch(e.job)
        base = match.group(1) if match else e.job
        by_base.setdefault(base, []).append(e)
    for base, same in by_base.items():
        if len(same) < 2:
            continue
        complete = [e for e in same if e.status == "complete"]
        if not complete:
            continue
        # "" (no suffix) sorts first: the unsuffixed dir is the oldest.
        kept = max(complete, key=lambda e: e.job.removeprefix(base))
        for e in complete:
            if e is not kept:
                e.status = "duplicate"
                e.reason = f"same job as {kept.job} (AF3's timestamp suffix); the newest complete one is kept"


def scan_root(
    root: str | os.PathLike, group_regex: str, n_chunks: int | str, group_case: str = "keep"
) -> list[JobEntry]:
    """Classify every entry directly under ``root``: a job directory or a ``not a job`` line.

    ``n_chunks``: a count, or ``"auto"`` (see :func:`chunk_count`); ``group_case``: fold | keep.
    """
    entries = []
    with os.scandir(root) as it:
        children = sorted(it, key=lambda c: c.name)
    for child in children:
        if problem := root_entry_problem(child):
            entries.append(JobEntry(job=child.name, status="not a job", reason=problem))
            continue
        try:
            entry = classify_job(child.path, child.name, group_regex, group_case)
        except OSError as err:
            entry = JobEntry(job=child.name, status="malformed", reason=f"unreadable: {err}")
        entries.append(entry)
    mark_duplicates(entries)
    complete = [e for e in entries if e.status == "complete"]
    count = chunk_count(n_chunks, len(complete))
    for entry in complete:
        entry.chunk = batch_of(entry.job, count)
    return entries


def write_manifests(entries: list[JobEntry], manifest: Path, problems: Path, chunk_dir: Path) -> dict:
    """Write the job manifest, the problem report and one manifest per non-empty chunk."""
    rows = [asdict(e) for e in entries]
    with atomic_open(manifest) as handle:
        handle.write(tsv_text(rows, MANIFEST_COLUMNS))
    bad = [r for r in rows if r["status"] != "complete"]
    groups_all = {r["group"] for r in rows if r["group"]}
    groups_ok = {r["group"] for r in rows if r["status"] == "complete"}
    problem_rows = [{"item": r["job"], "status": r["status"], "reason": r["reason"]} for r in bad]
    problem_rows += [
        {"item": r["job"], "status": "warning", "reason": r["note"]}
        for r in rows
        if r["note"] and r not in bad
    ]
    if not rows:
        problem_rows.append({"item": "root", "status": "warning", "reason": "the AF3 output root is empty"})
    problem_rows += [
        {"item": f"group {g}", "status": "empty group", "reason": "no complete job in this group"}
        for g in sorted(groups_all - groups_ok)
    ]
    with atomic_open(problems) as handle:
        handle.write(tsv_text(problem_rows, ["item", "status", "reason"]))
    complete = [r for r in rows if r["status"] == "complete"]
    changed = write_batch_manifests(complete, CHUNK_COLUMNS, chunk_dir, key="chunk", prefix="chunk")
    return {
        "jobs": len(rows),
        "complete": len(rows) - len(bad),
        "problems": len(problem_rows),
        "changed_chunks": changed,
    }


def read_chunk_ids(manifest: str | os.PathLike) -> list[str]:
    """The non-empty chunks listed in a job manifest (called by the rules after discovery)."""
    return read_batch_ids(manifest, key="chunk", only={"status": "complete"})


def unfinished_job_dirs(manifest: str | os.PathLike, root: str | os.PathLike) -> list[str]:
    """Directories of jobs that were incomplete last time: discovery reruns when one of them changes."""
    if not os.path.exists(manifest):
        return []
    dirs = []
    with open(manifest) as handle:
        header = handle.readline().rstrip("\n").split("\t")
        ji, si = header.index("job"), header.index("status")
        for line in handle:
            cells = line.rstrip("\n").split("\t")
            if cells[si] == "incomplete" and JOB_NAME.fullmatch(cells[ji]):
                path = os.path.join(root, cells[ji])
                if os.path.isdir(path):
                    dirs.append(path)
    return dirs


def main(smk) -> None:
    setup_logging(smk.log[0])
    entries = scan_root(smk.params.root, smk.params.group_regex, smk.params.n_chunks, smk.params.group_case)
    stats = write_manifests(
        entries, Path(smk.output.manifest), Path(smk.output.problems), Path(smk.params.chunk_dir)
    )
    log.info(
        "discovered %(jobs)d root entries: %(complete)d complete jobs, %(problems)d problem lines", stats
    )
    if not entries:
        log.warning("the AF3 output root %s is empty: no job to organize", smk.params.root)
    complete = sum(e.status == "complete" for e in entries)
    log.info("%d chunks (n_chunks: %s)", chunk_count(smk.params.n_chunks, complete), smk.params.n_chunks)
    log.info("chunks rewritten (new or changed jobs): %s", " ".join(stats["changed_chunks"]) or "none")
    for e in entries:
        if e.status != "complete" or e.note:
            log.warning("job %r: %s: %s", e.job, e.status, e.reason or e.note)


if "snakemake" in globals():
    main(snakemake)
