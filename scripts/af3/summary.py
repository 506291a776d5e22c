"""SUMMARY.txt for af3: the files a user should open first, and the headline numbers.

Also writes the upload's content list (``contents``): one line per organized job (its marker key)
and per report file (its sha256), rewritten only when it changes. The upload depends on that file
alone, so it reruns when what it would send changed, not when discovery or the tables merely ran.
"""

import csv
import hashlib
import json
import logging
from pathlib import Path

from batches import write_if_changed
from common import atomic_open, setup_logging

from af3.upload import redact_remote

log = logging.getLogger("hpcpipe")


def read_tsv(path: str) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def group_line(groups_tsv: str) -> str:
    """``groups: KMT5A (7 jobs), ...`` from groups.tsv (the case-folded names when group_case is fold)."""
    rows = [r for r in read_tsv(groups_tsv) if r["group"] != "overall"]
    return "groups: " + ", ".join(f"{r['group']} ({r['jobs']} jobs)" for r in rows)


def ratio(value) -> str:
    """``19.45x``, or ``n/a`` when nothing was archived (an empty root)."""
    return "n/a" if value is None else f"{value}x"


def summary_lines(inputs: dict, organized: str, upload_remote: str = "", upload_state: str = "") -> list[str]:
    """``label: path`` lines (plus the archive ratios and problem counts) for SUMMARY.txt."""
    stats = json.loads(open(inputs["stats"]).read())
    problems = read_tsv(inputs["problems"])
    failed = read_tsv(inputs["failed"]) if "failed" in inputs else []
    count = {k: sum(r["status"] == k for r in failed) for k in ("failed", "gone", "bad value")}
    lines = []
    if any(r["item"] == "root" and "empty" in r["reason"] for r in problems):
        lines.append("WARNING: the AF3 output root is empty: no job was found (is af3.source_root right?)")
    if count["failed"]:
        names = [r["item"] for r in failed if r["status"] == "failed"]
        lines.append(
            f"FAILED in organize, left out of the tables and the upload ({count['failed']}): {', '.join(names)}"
        )
    lines += [
        f"confidences table ({stats['jobs']} organized jobs): {inputs['confidences']}",
        f"per-sample ranking scores (best sample of each job marked): {inputs['samples']}"
        if "samples" in inputs
        else "",
        f"per-group ranking scores: {inputs['groups']}",
        group_line(inputs["groups"]),
        f"ranking score plot: {inputs['plot']}",
        f"discovery problems (not jobs, unfinished, malformed, duplicates; {len(problems)} lines): {inputs['problems']}",
    ]
    if "failed" in inputs:
        lines.append(
            f"organize failures ({count['failed']}), organized copies no longer current ({count['gone']}), "
            f"missing or non-finite values ({count['bad value']}): {inputs['failed']}"
        )
    lines += [
        f"organized tree: {organized}",
        f"MSA archive: {stats['msa_raw_bytes']} raw bytes -> {stats['msa_stored_bytes']} stored "
        f"({ratio(stats['msa_ratio'])}; {stats['msa_values']} MSAs, {stats['msa_distinct']} distinct): {inputs['stats']}",
        "restore a whole job as AF3 wrote it: python scripts/af3/restore.py --job <job> -o OUT "
        "(--all for every job; the af3_verify rule checks them all against the source)",
    ]
    if upload_remote:
        lines.append(
            f"upload to {redact_remote(upload_remote)} (organized tree + reports in _reports/; "
            f"state; rclone check after copy): {upload_state}"
        )
    else:
        lines.append("upload: disabled (set af3.upload.remote to an rclone remote)")
    return [line for line in lines if line]


def upload_contents(organized_tsv: str, report_texts: dict[str, bytes]) -> str:
    """What the upload would send, as text: a line per organized job (key) and per report (sha256)."""
    lines = [f"job\t{r['group']}/{r['job']}\t{r['signature']}" for r in read_tsv(organized_tsv)]
    lines += [
        f"report\t{name}\t{hashlib.sha256(data).hexdigest()}" for name, data in sorted(report_texts.items())
    ]
    return "\n".join(lines) + "\n"


def main(smk) -> None:
    setup_logging(smk.log[0])
    inputs = dict(smk.input.items())
    lines = summary_lines(inputs, smk.params.organized, smk.params.upload_remote, smk.params.upload_state)
    text = "\n".join(lines) + "\n"
    with atomic_open(smk.output.summary) as out:
        out.write(text)
    for line in lines:
        if line.startswith(("WARNING", "FAILED")):
            log.warning("%s", line)
    reports = {Path(p).name: Path(p).read_bytes() for p in smk.params.reports}
    reports["SUMMARY.txt"] = text.encode()
    if write_if_changed(Path(smk.params.contents), upload_contents(inputs["organized"], reports)):
        log.info("what the upload would send changed: %s rewritten", smk.params.contents)


if "snakemake" in globals():
    main(snakemake)
