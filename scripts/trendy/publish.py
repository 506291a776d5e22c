"""Put a converted file into its ILAMB model directory, or fail with the conversion's error.

The conversion job always succeeds on bad data (so its status reaches the report); this job is
where a bad file fails, with the message naming the file and the reason.
"""

import json
import logging
import os
from pathlib import Path

from common import atomic_path, setup_logging

log = logging.getLogger("hpcpipe.trendy")


class ConversionFailed(RuntimeError):
    """The staged conversion recorded a failure."""


def publish(stage_dir: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Hard-link (or copy, across file systems) ``stage_dir/<name>.nc`` to ``target`` atomically."""
    stage_dir, target = Path(stage_dir), Path(target)
    status = json.loads((stage_dir / "status.json").read_text())
    if status.get("status") != "ok":
        raise ConversionFailed(f"conversion failed: {status.get('error') or 'no error recorded'}")
    staged = stage_dir / f"{status['ilamb_variable']}.nc"
    with atomic_path(target, suffix=".nc") as tmp:
        tmp.unlink()
        try:
            os.link(staged, tmp)
        except OSError:
            import shutil

            shutil.copyfile(staged, tmp)
    log.info("published %s -> %s", staged, target)
    return target


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    try:
        publish(snakemake.input.stage, snakemake.output.nc)
    except ConversionFailed as err:
        log.error("%s", err)
        raise SystemExit(1) from None
