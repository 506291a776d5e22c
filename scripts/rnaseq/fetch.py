"""Fetch one file with resume, a stall timeout and a deadline; verify size, MD5 and gzip integrity.

A transfer writes ``<dest>.part``. When a job is killed or a connection stalls, the ``.part`` file
stays, and the next attempt asks the server for the rest (HTTP ``Range``). Only a file that passed
every check is renamed to ``dest``; a file that fails its MD5 is deleted (resuming it would never
heal it). A transfer stops, and its ``.part`` is deleted, at the first chunk that makes it longer
than the archive's size or that the gzip check rejects: junk is not read to its end.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

from batches import Progress

log = logging.getLogger("hpcpipe")
CHUNK = 1 << 20


class FetchError(RuntimeError):
    """A transfer or a check failed; the message says which file, from where, and why."""


@dataclass
class FetchResult:
    bytes: int
    seconds: float
    resumed_from: int
    url: str
    records: int | None = None  # FASTQ records, for .fastq.gz files


class StreamCheck:
    """Checks a file while it is written: MD5 always; for ``.fastq.gz`` also the gzip stream
    (every member's CRC32 and length, as ``gzip -t`` does) and the FASTQ record count.

    Fed during the transfer, it costs no extra pass over the file and its CPU time overlaps the
    network wait; after a resume the kept part is fed first.
    """

    def __init__(self, fastq_gz: bool):
        self.fastq_gz = fastq_gz
        self.md5 = hashlib.md5()
        self._inflate = zlib.decompressobj(31)
        self._fed_member = False  # bytes of a gzip member were fed and its end not seen yet
        self.newlines = 0
        self.first = b""
        self.last = b"\n"
        self.error = ""

    def update(self, data: bytes) -> None:
        self.md5.update(data)
        if not self.fastq_gz or self.error:
            return
        try:
            while data:
                self._fed_member = True
                text = self._inflate.decompress(data)
                if text:
                    self.first = self.first or text[:1]
                    self.newlines += text.count(b"\n")
                    self.last = text[-1:]
                if self._inflate.eof:  # end of one gzip member; ENA files may hold several
                    data = self._inflate.unused_data
                    self._inflate = zlib.decompressobj(31)
                    self._fed_member = False
                else:
                    data = b""
        except zlib.error as err:
            self.error = str(err)

    def feed_file(self, path: Path) -> None:
        with open(path, "rb") as handle:
            while block := handle.read(4 * CHUNK):
                self.update(block)

    def records(self, name: str) -> int:
        """FASTQ records in the whole stream; FetchError when it is truncated, corrupt or not FASTQ."""
        if self.error or self._fed_member:
            reason = self.error or "unexpected end of file (truncated)"
            raise FetchError(f"{name}: gzip integrity check failed: {reason}")
        newlines = self.newlines + (self.last != b"\n")
        if self.first and self.first != b"@":
            raise FetchError(f"{name}: not FASTQ (first byte {self.first!r}, expected '@')")
        if newlines % 4:
            raise FetchError(f"{name}: {newlines} lines, not a multiple of 4: a truncated FASTQ record")
        return newlines // 4


def count_fastq_records(path: str | os.PathLike) -> int:
    """Number of FASTQ records in a gzip file, reading it whole; raises FetchError when the gzip
    stream is truncated or corrupt or when the text is not FASTQ."""
    path = Path(path)
    check = StreamCheck(fastq_gz=True)
    check.feed_file(path)
    return check.records(path.name)


def verify_file(path: Path, name: str, check: StreamCheck, md5: str = "", size: int | None = None) -> None:
    """Check size and MD5 against what the archive reports; raise FetchError naming ``name``."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise FetchError(f"{name}: size {actual} bytes, the archive says {size}")
    if md5:
        digest = check.md5.hexdigest()
        if digest != md5.lower():
            path.unlink()
            raise FetchError(f"{name}: MD5 {digest} does not match the archive's {md5} (file deleted)")


def _stop_early(part: Path, written: int, size: int | None, check: StreamCheck) -> None:
    """Raise (deleting ``part``: no resume can heal it) once the file is longer than the archive
    says or its gzip stream is corrupt, so a wrong response is not read to its end."""
    if size is not None and written > size:
        part.unlink(missing_ok=True)
        raise FetchError(f"larger than the archive's {size} bytes (stopped at {written}; part deleted)")
    if check.error:
        part.unlink(missing_ok=True)
        raise FetchError(
            f"gzip integrity check failed at byte {written}: {check.error} (stopped; part deleted)"
        )


def _copy_local(src: Path, part: Path, size: int | None, check: StreamCheck) -> None:
    if not src.is_file():
        raise FetchError(f"{src}: no such file")
    written = 0
    with open(src, "rb") as inp, open(part, "wb") as out:
        while block := inp.read(4 * CHUNK):
            out.write(block)
            check.update(block)
            written += len(block)
            _stop_early(part, written, size, check)


def _http_get(
    url: str, part: Path, size: int | None, stall_timeout: float, deadline: float, check: StreamCheck
) -> int:
    """Append the missing bytes of ``url`` to ``part``; return the offset it resumed from."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    if offset:
        check.feed_file(part)
        if check.error:  # the kept part is corrupt: resuming would never heal it
            log.info("%s: kept part fails the gzip check (%s); starting again", part.name, check.error)
            part.unlink()
            check.__init__(check.fastq_gz)
            offset = 0
    if size is not None and offset == size:
        part.touch()  # a file declared 0 bytes has no body to fetch; the checks still run
        return offset  # complete already; only the checks remain
    headers = {"User-Agent": "hpcpipe-rnaseq"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=stall_timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            return offset  # the server has nothing past our offset: complete, checks decide
        raise FetchError(f"HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        reason = getattr(err, "reason", err)
        raise FetchError(f"cannot connect: {reason}") from None
    with response:
        status = getattr(response, "status", 200)
        mode = "ab"
        if offset and status == 200:
            log.info("%s: server ignored the Range request; starting again from byte 0", url)
            offset, mode = 0, "wb"
            check.__init__(check.fastq_gz)
        elif status == 206:
            content_range = response.headers.get("Content-Range", "")
            match = re.match(r"bytes (\d+)-", content_range)
            if not match or int(match.group(1)) != offset:
                raise FetchError(f"bad Content-Range '{content_range}' for a request from byte {offset}")
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        received = 0
        # a line per minute in the job's log for a long transfer: bytes done, rate, time left
        total = size if size is not None else (offset + expected if expected is not None else 0)
        progress = Progress(
            total, part.name.removesuffix(".part"), min_interval_s=60, unit="bytes", done=offset
        )
        with open(part, mode) as out:
            while True:
                try:
                    # read1: whatever has arrived, so a stall loses no received bytes
                    block = response.read1(CHUNK)
                except TimeoutError:
                    raise FetchError(
                        f"stalled: no data for {stall_timeout:g} s after {offset + received} bytes"
                    ) from None
                except (ConnectionError, OSError) as err:
                    raise FetchError(f"connection lost after {offset + received} bytes: {err}") from None
                if not block:
                    break
                out.write(block)
                check.update(block)
                received += len(block)
                _stop_early(part, offset + received, size, check)
                if total:
                    progress.advance(len(block))
                # checked after the write (what arrived is kept) and only while bytes are missing
                if time.monotonic() > deadline and (expected is None or received < expected):
                    raise FetchError(f"attempt deadline passed after {received + offset} bytes")
        if expected is not None and received < expected:
            raise FetchError(f"connection closed after {offset + received} of {offset + expected} bytes")
    return offset


def fetch_file(
    url: str,
    dest: str | os.PathLike,
    md5: str = "",
    size: int | None = None,
    attempt_timeout: float = 1800,
    stall_timeout: float = 120,
) -> FetchResult:
    """Fetch ``url`` (http, https, ftp or file) to ``dest`` via ``dest.part``, resuming a partial
    transfer; check size and MD5, and for ``.fastq.gz`` the gzip stream and the FASTQ records;
    rename to ``dest`` only when every check passed.

    A ``dest`` that already exists passed these checks in an earlier attempt and is kept.
    """
    dest = Path(dest)
    fastq_gz = dest.name.endswith((".fastq.gz", ".fq.gz"))
    if dest.exists():
        # verified by an earlier attempt; checked again against today's sheet (one read, no transfer)
        check = StreamCheck(fastq_gz)
        check.feed_file(dest)
        try:
            verify_file(dest, dest.name, check, md5, size)
            records = check.records(dest.name) if fastq_gz else None
            return FetchResult(dest.stat().st_size, 0.0, dest.stat().st_size, url, records)
        except FetchError as err:
            log.info("%s: kept from an earlier attempt but %s; fetching it again", dest.name, err)
            dest.unlink(missing_ok=True)
    part = dest.with_name(dest.name + ".part")
    check = StreamCheck(fastq_gz)
    start = time.monotonic()
    resumed_from = 0
    if url.startswith("file://"):
        _copy_local(Path(urllib.request.url2pathname(url[len("file://") :])), part, size, check)
    elif url.startswith("ftp://"):
        # urllib's FTP handler cannot resume: fetch whole, still bounded by the stall timeout.
        try:
            with urllib.request.urlopen(url, timeout=stall_timeout) as response, open(part, "wb") as out:
                written = 0
                while block := response.read(CHUNK):
                    out.write(block)
                    check.update(block)
                    written += len(block)
                    _stop_early(part, written, size, check)
        except (urllib.error.URLError, OSError) as err:
            raise FetchError(f"FTP transfer failed: {err}") from None
    else:
        resumed_from = _http_get(url, part, size, stall_timeout, start + attempt_timeout, check)
    verify_file(part, dest.name, check, md5, size)
    records = None
    if fastq_gz:
        try:
            records = check.records(dest.name)
        except FetchError:
            part.unlink()  # complete but damaged: resuming it would never heal it
            raise
    os.replace(part, dest)
    return FetchResult(dest.stat().st_size, time.monotonic() - start, resumed_from, url, records)
