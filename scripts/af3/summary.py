"""SUMMARY.txt for af3: the files a user should open first, and the headline numbers."""

import json

from common import atomic_open, setup_logging

from af3.upload import redact_remote


def summary_lines(inputs: dict, organized: str, upload_remote: str = "", upload_state: str = "") -> list[str]:
    """``label: path`` lines (plus the archive ratios and problem count) for SUMMARY.txt."""
    stats = json.loads(open(inputs["stats"]).read())
    with open(inputs["problems"]) as handle:
        problems = max(0, sum(1 for _ in handle) - 1)
    lines = [
        f"confidences table (every job): {inputs['confidences']}",
        f"per-group ranking scores: {inputs['groups']}",
        f"ranking score plot: {inputs['plot']}",
        f"problem jobs and groups ({problems} lines): {inputs['problems']}",
        f"organized tree: {organized}",
        f"MSA archive: {stats['msa_raw_bytes']} raw bytes -> {stats['msa_stored_bytes']} stored "
        f"({stats['msa_ratio']}x; {stats['msa_values']} MSAs, {stats['msa_distinct']} distinct): {inputs['stats']}",
        f"restore a _data.json: python scripts/af3/restore.py {organized}/<group>/<job>/<name>_data.json -o OUT",
    ]
    if upload_remote:
        lines.append(
            f"upload to {redact_remote(upload_remote)} (state; rclone check after copy): {upload_state}"
        )
    else:
        lines.append("upload: disabled (set af3.upload.remote to an rclone remote)")
    return lines


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    with atomic_open(snakemake.output[0]) as out:
        out.write(
            "\n".join(
                summary_lines(
                    dict(snakemake.input.items()),
                    snakemake.params.organized,
                    snakemake.params.upload_remote,
                    snakemake.params.upload_state,
                )
            )
            + "\n"
        )
