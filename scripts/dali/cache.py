"""A per-node cache of ECOD template files on node-local scratch, shared by every protein and job.

The native DPAM run keeps ``/scratch/ECOD_pdbs/<uid>.pdb`` and copies a template from the shared
file system only when it is missing; this is that cache, made safe for concurrent jobs: a miss copies
to a uniquely named temporary file in the cache directory, then renames it into place, so a reader
sees either no file or a whole one, and a job killed mid-copy leaves only a ``.tmp.*`` file that the
stale-scratch cleaner removes later.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from pathlib import Path

from common import content_hash

from dali.pdb import check_template


class TemplateMissingError(FileNotFoundError):
    """A candidate's template file is not in the template directory."""


def cache_dir_for(cache_root: Path, template_dir: Path) -> Path:
    """The cache directory for one template set: keyed by its real path and its directory mtime.

    Replacing the template set (a new ECOD70 unpacked or renamed into place) changes the key, so a
    node never serves templates of an older set. One stat of the template directory per protein.
    """
    real = os.path.realpath(template_dir)
    return cache_root / f"ecod-{content_hash([real, os.stat(real).st_mtime_ns])}"


class TemplateCache:
    """Fetch ``<uid>.pdb`` from ``template_dir`` through the node cache under ``cache_root``."""

    def __init__(self, cache_root: Path, template_dir: Path):
        self.template_dir = Path(template_dir)
        self.dir = cache_dir_for(Path(cache_root), self.template_dir)
        self.dir.mkdir(parents=True, exist_ok=True)

    def fetch(self, uid: str) -> tuple[Path, bool]:
        """Return the cached path of template ``uid`` and whether it was already cached (a hit)."""
        cached = self.dir / f"{uid}.pdb"
        if cached.exists():
            return cached, True
        source = self.template_dir / f"{uid}.pdb"
        # host and pid in the name: the cleaner can tell a copy cut by a kill from one in progress
        host = socket.gethostname().replace(".", "_")
        fd, tmp = tempfile.mkstemp(prefix=f".tmp.{uid}.{host}.{os.getpid()}.", dir=self.dir)
        try:
            with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
                shutil.copyfileobj(src, dst)
            check_template(tmp, uid)  # only checked templates enter the cache: a hit needs no check
            os.chmod(tmp, 0o644)
            os.replace(tmp, cached)
        except FileNotFoundError:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise TemplateMissingError(f"template {uid}: {source} does not exist") from None
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return cached, False
