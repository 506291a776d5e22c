"""Stage 4: pack a job's ``seed-*_sample-*`` directories into one verified archive.

The archive is written straight from the (read-only) source job directory, in-process with
``tarfile`` and ``zstandard`` (no tar/zstd processes per job), in a reproducible form (sorted
names, owner 0, source mtimes), to a temporary name, hashing every file as it is read. It is then
read back in full: every member's name, type, size and sha256 must match what was read, the listing
must match the source's, and the zstd frame checksum is checked on the way. Only then is it renamed into place, and only then are
loose sample directories (left in the organized tree by an older organize) removed.
"""

import hashlib
import os
import shutil
import tarfile
from pathlib import Path

import zstandard
from common import atomic_path


class ArchiveMismatch(RuntimeError):
    """The archive just written does not hold exactly the source's sample files."""


def archive_name(codec: str) -> str:
    return "seeds.tar.zst" if codec == "zst" else "seeds.tar"


def source_listing(job_dir: Path, sample_dirs: list[str]) -> dict[str, tuple[str, int]]:
    """Relative path -> (type, size) of every entry inside the sample directories."""
    listing: dict[str, tuple[str, int]] = {}
    for d in sample_dirs:
        listing[d] = ("dir", 0)
        for root, dirs, files in os.walk(job_dir / d):
            rel_root = os.path.relpath(root, job_dir)
            for name in dirs:
                listing[os.path.join(rel_root, name)] = ("dir", 0)
            for name in files:
                st = os.lstat(os.path.join(root, name))
                listing[os.path.join(rel_root, name)] = ("file", st.st_size)
    return listing


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def list_archive(
    archive: Path, job_dir: Path | None = None, compressed: bool | None = None
) -> dict[str, tuple[str, int]]:
    """Read the whole archive; return its listing. With ``job_dir``, also compare each file's sha256."""
    listing: dict[str, tuple[str, int]] = {}
    if compressed is None:
        compressed = archive.name.endswith(".zst")
    with open(archive, "rb") as raw:
        stream = zstandard.ZstdDecompressor().stream_reader(raw) if compressed else raw
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                name = member.name.rstrip("/")
                if member.isdir():
                    listing[name] = ("dir", 0)
                    continue
                listing[name] = ("file" if member.isfile() else "other", member.size)
                handle = tar.extractfile(member)
                h = hashlib.sha256()
                while handle is not None and (block := handle.read(1 << 20)):
                    h.update(block)
                if job_dir is not None and member.isfile() and h.hexdigest() != _sha256(job_dir / name):
                    raise ArchiveMismatch(f"{archive}: member {name} differs from {job_dir / name}")
    return listing


class _HashingReader:
    """A file wrapper that hashes what tarfile reads, so the archive can be checked without re-reading."""

    def __init__(self, handle):
        self.handle = handle
        self.sha256 = hashlib.sha256()

    def read(self, size=-1):
        block = self.handle.read(size)
        self.sha256.update(block)
        return block


def write_archive(
    job_dir: Path, sample_dirs: list[str], target: Path, codec: str, level: int
) -> dict[str, tuple[str, int, str]]:
    """Write a reproducible tar (sorted, owner 0, source mtimes) of the sample dirs to ``target``.

    Returns path -> (type, size, sha256 of the bytes read from the source while writing).
    """
    written: dict[str, tuple[str, int, str]] = {}
    with open(target, "wb") as raw:
        compressor = zstandard.ZstdCompressor(level=level, write_checksum=True) if codec == "zst" else None
        stream = compressor.stream_writer(raw, closefd=False) if compressor else raw
        with tarfile.open(fileobj=stream, mode="w|", format=tarfile.GNU_FORMAT) as tar:
            for top in sorted(sample_dirs):
                for root, dirs, files in os.walk(job_dir / top):
                    dirs.sort()
                    rel_root = os.path.relpath(root, job_dir)
                    for name in [None, *sorted(files)]:
                        path = root if name is None else os.path.join(root, name)
                        arcname = rel_root if name is None else os.path.join(rel_root, name)
                        info = tar.gettarinfo(path, arcname)
                        info.uid = info.gid = 0
                        info.uname = info.gname = ""
                        if info.isfile():
                            with open(path, "rb") as handle:
                                reader = _HashingReader(handle)
                                tar.addfile(info, reader)
                            written[arcname] = ("file", info.size, reader.sha256.hexdigest())
                        else:
                            tar.addfile(info)
                            written[arcname] = ("dir" if info.isdir() else "other", 0, "")
        if compressor:
            stream.close()
    return written


def read_archive(archive: Path, compressed: bool) -> dict[str, tuple[str, int, str]]:
    """Read the whole archive back (zstd frame checksum included): path -> (type, size, sha256)."""
    found: dict[str, tuple[str, int, str]] = {}
    with open(archive, "rb") as raw:
        stream = zstandard.ZstdDecompressor().stream_reader(raw) if compressed else raw
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                name = member.name.rstrip("/")
                if not member.isfile():
                    found[name] = ("dir" if member.isdir() else "other", 0, "")
                    continue
                h = hashlib.sha256()
                handle = tar.extractfile(member)
                while handle is not None and (block := handle.read(1 << 20)):
                    h.update(block)
                found[name] = ("file", member.size, h.hexdigest())
    return found


def pack_seeds(
    job_dir: Path,
    sample_dirs: list[str],
    dest_dir: Path,
    codec: str = "zst",
    level: int = 1,
) -> dict:
    """Write ``dest_dir/seeds.tar[.zst]`` from ``job_dir``'s sample dirs, verify it, drop loose copies.

    Verification reads the archive back and compares every member's name, type, size and sha256
    with what was read from the source, and the listing with the source's own listing.
    """
    archive = dest_dir / archive_name(codec)
    expected = source_listing(job_dir, sample_dirs)
    with atomic_path(archive) as tmp:
        written = write_archive(job_dir, sample_dirs, tmp, codec, level)
        found = read_archive(tmp, compressed=codec == "zst")
        if found != written or {k: (t, s) for k, (t, s, _) in found.items()} != expected:
            missing = sorted(set(expected) - set(found))[:5]
            differ = sorted(k for k in found if written.get(k) != found[k])[:5]
            raise ArchiveMismatch(
                f"{archive}: archive does not match {job_dir} (missing {missing}, differing {differ})"
            )
    for d in sample_dirs:
        loose = dest_dir / d
        if loose.is_dir():
            shutil.rmtree(loose)
    return {
        "archive": archive.name,
        "members": sum(1 for kind, _ in expected.values() if kind == "file"),
        "raw_bytes": sum(size for _, size in expected.values()),
        "archive_bytes": archive.stat().st_size,
    }
