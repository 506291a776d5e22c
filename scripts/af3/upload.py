"""Stage 6: ``rclone copy`` of the organized tree to a configured remote, then ``rclone check``.

The remote comes from the user's own rclone config (``rclone config``; ``RCLONE_CONFIG`` picks
another file): we pass its name, never credentials, and never print an on-the-fly connection
string's options. ``rclone copy`` skips what already arrived (size and modtime), so a rerun
resumes where a stop left off without re-sending.

A quota stop is a state, not a crash: rclone's exit 8 (``--max-transfer`` reached, the daily-budget
guard) or exit 7 with Google Drive's upload-limit message (with ``--drive-stop-on-upload-limit``)
writes ``QUOTA_REACHED.json`` with a resume time and fails the job with "quota reached, resume
after ...". Before that time a rerun stops at once with the same message. The file counts are
totals since the upload started: the resumed run adds to what the stopped runs sent.

The reports (tables, problems, SUMMARY.txt) travel with the tree, copied into ``_reports/`` first;
work dirs of unfinished jobs (``_partial/``) and temporary files never leave.
"""

import datetime as dt
import json
import logging
import re
import shutil
from pathlib import Path

from common import atomic_open, atomic_path, run_command, setup_logging, write_json

log = logging.getLogger("hpcpipe")

# Never upload what a killed copy or write left behind.
FILTERS = [
    *("--exclude", ".rsync-partial/**", "--exclude", ".tmp-*", "--exclude", "**/.tmp-*"),
    *("--exclude", "/_partial/**"),  # jobs being organized (or failed): not organized yet
]
REPORTS_DIRNAME = "_reports"
QUOTA_TEXT = re.compile(
    r"Received upload limit error|User rate limit exceeded\.|quotaExceeded|max transfer limit reached", re.I
)
FILE_LIMIT_TEXT = re.compile(r"Shared Drive file limit|teamDriveFileLimitExceeded", re.I)


class QuotaReached(RuntimeError):
    """The remote refused more uploads for now; rerun after ``resume_after``."""


class UploadError(RuntimeError):
    """rclone failed for another reason (network, auth, item limit) or the check found differences."""


def redact_remote(remote: str) -> str:
    """A remote for logs: on-the-fly ``:backend,key=value:path`` strings lose their options."""
    if remote.startswith(":") and "," in remote.split(":")[1]:
        parts = remote.split(":", 2)
        backend = parts[1].split(",")[0]
        return f":{backend},<options hidden>:{parts[2] if len(parts) > 2 else ''}"
    return remote


def classify_rclone(returncode: int, log_text: str) -> str:
    """``ok``, ``quota`` (resume later), ``file_limit`` (item cap: resuming will not help) or ``error``."""
    if returncode == 0:
        return "ok"
    if FILE_LIMIT_TEXT.search(log_text):
        return "file_limit"
    if returncode == 8 or (returncode == 7 and QUOTA_TEXT.search(log_text)):
        return "quota"
    return "error"


def count_copied(log_text: str) -> int:
    """Files rclone actually sent, from its INFO lines (``Copied (new)`` / ``Copied (replaced ...)``)."""
    return sum(1 for line in log_text.splitlines() if ": Copied (" in line)


def quota_message(state: dict) -> str:
    return (
        f"quota reached, resume after {state['resume_after']} "
        f"({state['reason']}; {state['files_transferred']} files arrived so far and will not be re-sent)"
    )


def stage_reports(reports: list[Path], source: Path) -> None:
    """Copy the report files into ``source/_reports/`` (with their mtimes; unchanged ones are left)."""
    target = source / REPORTS_DIRNAME
    target.mkdir(parents=True, exist_ok=True)
    for report in reports:
        dest = target / report.name
        if dest.exists() and dest.read_bytes() == report.read_bytes():
            continue
        with atomic_path(dest) as tmp:
            shutil.copy2(report, tmp)


def upload_tree(
    source: Path,
    remote: str,
    state_dir: Path,
    log_dir: Path,
    max_transfer: str = "",
    flags: list[str] | None = None,
    check_download: bool = False,
    resume_after_hours: float = 24,
    timeout: float | None = None,
    reports: list[Path] | None = None,
) -> dict:
    """Copy ``source`` (and ``reports``, into ``_reports/``) to ``remote`` and check it.

    Raises :class:`QuotaReached` or :class:`UploadError`. ``files_transferred`` in the returned
    state (and in QUOTA_REACHED.json) counts every file sent since the upload started, across runs
    that a quota stop cut short; ``files_transferred_this_run`` this run's alone.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    if reports:
        stage_reports(reports, source)
    log_dir.mkdir(parents=True, exist_ok=True)
    quota_file = state_dir / "QUOTA_REACHED.json"
    now = dt.datetime.now(dt.UTC)
    shown = redact_remote(remote)
    sent_before = 0  # by earlier runs of this upload that a quota stop cut short
    if quota_file.exists():
        state = json.loads(quota_file.read_text())
        # A quota stop belongs to the remote that gave it: another remote is not held back.
        if state.get("remote") == shown:
            if now < dt.datetime.fromisoformat(state["resume_after"]):
                raise QuotaReached(quota_message(state) + f"; delete {quota_file} to try earlier")
            sent_before = state.get("files_transferred", 0)
    copy_log = log_dir / "rclone-copy.log"
    copy_log.unlink(missing_ok=True)
    cmd = [
        "rclone",
        "copy",
        str(source),
        remote,
        "--log-file",
        str(copy_log),
        "--log-level",
        "INFO",
        *FILTERS,
    ]
    if max_transfer:
        cmd += ["--max-transfer", max_transfer, "--cutoff-mode", "soft"]
    cmd += list(flags or [])
    log.info("rclone copy %s -> %s", source, shown)
    proc = run_command(cmd, check=False, timeout=timeout)
    text = copy_log.read_text() if copy_log.exists() else ""
    text += proc.stderr or ""
    kind = classify_rclone(proc.returncode, text)
    copied = count_copied(text)
    log.info("rclone copy exited %d (%s); %d files sent", proc.returncode, kind, copied)
    if kind == "quota":
        reason = "max transfer limit reached" if proc.returncode == 8 else "remote upload limit"
        state = {
            "remote": shown,
            "stopped_at": now.isoformat(timespec="seconds"),
            "resume_after": (now + dt.timedelta(hours=resume_after_hours)).isoformat(timespec="seconds"),
            "reason": reason,
            "rclone_exit": proc.returncode,
            "files_transferred": sent_before + copied,
            "files_transferred_this_run": copied,
        }
        with atomic_open(quota_file) as handle:
            json.dump(state, handle, indent=2)
        raise QuotaReached(quota_message(state))
    if kind == "file_limit":
        raise UploadError(f"remote {shown}: item limit reached (Shared Drive file cap); see {copy_log}")
    if kind == "error":
        tail = "\n".join(text.strip().splitlines()[-5:])
        raise UploadError(f"rclone copy to {shown} exited {proc.returncode}; see {copy_log}\n{tail}")
    quota_file.unlink(missing_ok=True)

    combined = log_dir / "rclone-check.txt"
    check = ["rclone", "check", str(source), remote, "--one-way", "--combined", str(combined), *FILTERS]
    if check_download:
        check.append("--download")  # for remotes without a common hash (e.g. webdav)
    check += [f for f in (flags or []) if not f.startswith("--max-transfer")]
    proc = run_command(check, check=False, timeout=timeout)
    if proc.returncode != 0:
        raise UploadError(
            f"rclone check {source} vs {shown} exited {proc.returncode}: differences listed in {combined}"
        )
    lines = combined.read_text().splitlines() if combined.exists() else []
    return {
        "remote": shown,
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "files_transferred": sent_before + copied,
        "files_transferred_this_run": copied,
        "files_checked": sum(1 for line in lines if line.startswith("= ")),
        "check": "clean",
    }


def main(smk) -> None:
    setup_logging(smk.log[0])
    p = smk.params
    try:
        state = upload_tree(
            Path(p.source),
            p.remote,
            Path(p.state_dir),
            Path(p.log_dir),
            p.max_transfer,
            list(p.flags),
            p.check_download,
            p.resume_after_hours,
            reports=[Path(r) for r in p.reports],
        )
    except (QuotaReached, UploadError) as err:
        log.error("af3 upload: %s", err)
        raise SystemExit(f"af3 upload: {err}") from None
    write_json(smk.output.state, state)
    log.info(
        "upload done: %d files sent, %d checked clean", state["files_transferred"], state["files_checked"]
    )


if "snakemake" in globals():
    main(snakemake)
