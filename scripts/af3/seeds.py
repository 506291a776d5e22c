"""Stage 4: pack a job's ``seed-*_sample-*`` directories into one verified archive.

The archive is written straight from the (read-only) source job directory, in-process with
``tarfile`` and ``zstandard`` (no tar/zstd processes per job), in a reproducible form (sorted
names, owner 0, source mtimes), to a temporary name. A checksum of the tar stream is computed while
it is written: zstd's own frame checksum (XXH64 of everything the compressor was given) for
``seeds.tar.zst``, a sha256 for a plain ``seeds.tar``. The archive is then read back once, in full:
the frame must decode to its end with a matching checksum (a truncated or corrupted file fails
here), and its listing (names, types, sizes) must equal both what was written and the source's
own listing. Only then is it renamed into place, and only then are loose sample directories (left
in the organized tree by an older organize) removed.
"""

import hashlib
import os
import shutil
import tarfile
from pathlib import Path

import zstandard
from common import atomic_path

# Compressed bytes handed to the decompressor at a time: small enough that a tar block read
# never copies more than this much of decompressed text around.
_READ_BLOCK = 1 << 16


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


class _FrameReader:
    """Read-only file object over one zstd frame that fails unless the frame ends properly.

    ``zstandard``'s ``stream_reader`` returns a truncated frame's data without complaint; this
    reader raises :class:`ArchiveMismatch` at the end of the file when the frame did not end (or
    bytes follow it). A content-checksum mismatch raises ``zstandard.ZstdError`` on the way.
    """

    def __init__(self, raw, name: str):
        self.raw, self.name = raw, name
        self.frame = zstandard.ZstdDecompressor().decompressobj()
        self.pending, self.offset = b"", 0

    def read(self, size: int = -1) -> bytes:
        parts = []
        while size < 0 or size > 0:
            if self.offset == len(self.pending):
                self.pending, self.offset = self._next_block(), 0
                if not self.pending:
                    break
            end = len(self.pending) if size < 0 else min(len(self.pending), self.offset + size)
            parts.append(self.pending[self.offset : end])
            if size > 0:
                size -= end - self.offset
            self.offset = end
        return b"".join(parts)

    def _next_block(self) -> bytes:
        while not self.frame.eof:
            block = self.raw.read(_READ_BLOCK)
            if not block:
                raise ArchiveMismatch(f"{self.name}: truncated (the zstd frame does not end)")
            out = self.frame.decompress(block)
            if out:
                return out
        if self.frame.unused_data or self.raw.read(1):
            raise ArchiveMismatch(f"{self.name}: unexpected bytes after the zstd frame")
        return b""


class _HashingFile:
    """A file wrapper that sha256s every byte read or written through it."""

    def __init__(self, handle):
        self.handle = handle
        self.sha256 = hashlib.sha256()

    def read(self, size=-1):
        block = self.handle.read(size)
        self.sha256.update(block)
        return block

    def write(self, data):
        self.sha256.update(data)
        return self.handle.write(data)


def _drain(stream) -> None:
    while stream.read(1 << 20):
        pass


def list_archive(
    archive: Path, job_dir: Path | None = None, compressed: bool | None = None
) -> dict[str, tuple[str, int]]:
    """Read the whole archive; return its listing. With ``job_dir``, also compare each file's sha256."""
    listing: dict[str, tuple[str, int]] = {}
    if compressed is None:
        compressed = archive.name.endswith(".zst")
    with open(archive, "rb") as raw:
        stream = _FrameReader(raw, str(archive)) if compressed else raw
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
        _drain(stream)
    return listing


def write_archive(
    job_dir: Path, sample_dirs: list[str], target: Path, codec: str, level: int
) -> tuple[dict[str, tuple[str, int]], str]:
    """Write a reproducible tar (sorted, owner 0, source mtimes) of the sample dirs to ``target``.

    Returns (path -> (type, size) as written, sha256 of the tar stream). The sha256 is empty for
    ``zst``: there the frame checksum, written by the compressor, plays that part.
    """
    written: dict[str, tuple[str, int]] = {}
    with open(target, "wb") as raw:
        if codec == "zst":
            compressor = zstandard.ZstdCompressor(level=level, write_checksum=True)
            stream = compressor.stream_writer(raw, closefd=False)
        else:
            stream = _HashingFile(raw)
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
                                tar.addfile(info, handle)
                            written[arcname] = ("file", info.size)
                        else:
                            tar.addfile(info)
                            written[arcname] = ("dir" if info.isdir() else "other", 0)
        if codec == "zst":
            stream.close()
    return written, "" if codec == "zst" else stream.sha256.hexdigest()


def read_archive(archive: Path, compressed: bool) -> tuple[dict[str, tuple[str, int]], str]:
    """Read the whole archive back: (path -> (type, size), sha256 of the tar stream).

    For a compressed archive the frame is decoded to its end, which checks the zstd content
    checksum and catches truncation (:class:`ArchiveMismatch`); the sha256 is then empty.
    """
    found: dict[str, tuple[str, int]] = {}
    with open(archive, "rb") as raw:
        stream = _FrameReader(raw, str(archive)) if compressed else _HashingFile(raw)
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    name = member.name.rstrip("/")
                    if member.isfile():
                        found[name] = ("file", member.size)
                    else:
                        found[name] = ("dir" if member.isdir() else "other", 0)
            _drain(stream)
        except (tarfile.TarError, zstandard.ZstdError) as err:
            raise ArchiveMismatch(f"{archive}: unreadable: {err}") from err
    return found, "" if compressed else stream.sha256.hexdigest()


def pack_seeds(
    job_dir: Path,
    sample_dirs: list[str],
    dest_dir: Path,
    codec: str = "zst",
    level: int = 1,
) -> dict:
    """Write ``dest_dir/seeds.tar[.zst]`` from ``job_dir``'s sample dirs, verify it, drop loose copies.

    Verification reads the archive back once (see the module docstring): stream checksum,
    and the listing against what was written and against the source's own listing.
    """
    archive = dest_dir / archive_name(codec)
    expected = source_listing(job_dir, sample_dirs)
    with atomic_path(archive) as tmp:
        written, written_sha = write_archive(job_dir, sample_dirs, tmp, codec, level)
        found, found_sha = read_archive(tmp, compressed=codec == "zst")
        if found != written or found != expected or found_sha != written_sha:
            missing = sorted(set(expected) - set(found))[:5]
            differ = sorted(k for k in found if written.get(k) != found[k] or expected.get(k) != found[k])
            raise ArchiveMismatch(
                f"{archive}: archive does not match {job_dir} (missing {missing}, differing {differ[:5]}"
                + (", stream checksum differs" if found_sha != written_sha else "")
                + ")"
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
