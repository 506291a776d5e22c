"""A loopback HTTP file server standing in for ENA/SRA in tests and the benchmark.

It serves a folder with ``Range`` support (206 partial content, as ENA's HTTPS servers do), an
optional per-connection bandwidth limit, and injected faults: stall a path after N bytes (the
connection stays open and silent), a given number of times. Every request is recorded (path,
range start, bytes sent, start and end time) so tests can check what was fetched again.

It also answers ENA's portal API ``/ena/portal/api/filereport?accession=..&fields=..`` from
recorded records (``filereports``: accession -> rows), as ENA does: tab-separated, a header of the
requested fields, one line per run; 204 and no body when the accession has no run, 400 with a
JSON message for an accession it does not know.

Concurrency is counted without timing races: a transfer counts as open from the moment its
request is read (before any byte goes out) until just before its last block is written, both
under a lock. That interval lies inside the client's own, so ``max_open`` never exceeds the number
of transfers the clients really had open at once, however the server's threads are scheduled.
Transfers with an injected stall are not counted (their end is only seen after the client left).
With ``gather = n``, the first transfers hold their body until n are open at once (or ``gather_s``
passed), so a test sees a cap reached by waiting for that state, not by hoping the timing works.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Fault:
    stall_after: int = 0  # bytes of the body sent before the connection goes silent
    times: int = 1_000_000  # how many requests it applies to


@dataclass
class RequestRecord:
    path: str
    range_start: int
    sent: int = 0
    start: float = field(default_factory=time.time)
    end: float | None = None


class FixtureServer:
    """``with FixtureServer(root, rate=1e6) as server: server.url("x.fastq.gz")``."""

    def __init__(self, root: str | os.PathLike, rate: float | None = None, chunk: int = 64 * 1024):
        self.root = Path(root)
        self.rate = rate  # bytes per second per connection; None = unlimited
        self.chunk = chunk
        self.faults: dict[str, Fault] = {}
        self.requests: list[RequestRecord] = []
        self.filereports: dict[str, list[dict]] = {}
        self.gather = 0  # hold the first transfers until this many are open at once (0: off)
        self.gather_s = 60.0
        self.open_now = 0  # transfers between their request and their last block, under _lock
        self.max_open = 0
        self._lock = threading.Lock()
        self._opened = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._httpd: http.server.ThreadingHTTPServer | None = None

    # -------------------------------------------------------------- lifecycle
    def start(self) -> FixtureServer:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                server._serve(self)

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._closing.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self) -> FixtureServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, relpath: str) -> str:
        return f"{self.base}/{relpath.lstrip('/')}"

    def requests_for(self, relpath: str) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self.requests if r.path == "/" + relpath.lstrip("/")]

    # -------------------------------------------------------------- serving
    def _filereport(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(handler.path).query)
        accession = query.get("accession", [""])[0]
        fields = query.get("fields", ["run_accession"])[0].split(",")
        with self._lock:
            self.requests.append(RequestRecord(handler.path, 0, end=time.time()))
            rows = self.filereports.get(accession)
        if rows is None:
            body = json.dumps({"message": f"Invalid accession: {accession}"}).encode()
            handler.send_response(400)
            handler.send_header("Content-Type", "application/json")
        elif not rows:
            handler.send_response(204)
            handler.end_headers()
            return
        else:
            if "run_accession" not in fields:
                fields = ["run_accession", *fields]
            lines = ["\t".join(fields)] + ["\t".join(str(r.get(f, "")) for f in fields) for r in rows]
            body = ("\n".join(lines) + "\n").encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _serve(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        if path == "/ena/portal/api/filereport":
            self._filereport(handler)
            return
        target = (self.root / path.lstrip("/")).resolve()
        if self.root.resolve() not in target.parents or not target.is_file():
            handler.send_error(404)
            return
        size = target.stat().st_size
        start, end = 0, size - 1
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", handler.headers.get("Range", ""))
        if match:
            start = int(match.group(1))
            end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            if start >= size:
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{size}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
        record = RequestRecord(path, start)
        with self._lock:
            self.requests.append(record)
            fault = self.faults.get(path.lstrip("/"))
            if fault is not None and fault.times > 0:
                fault.times -= 1
            else:
                fault = None
            counted = fault is None
            if counted:
                self.open_now += 1
                self.max_open = max(self.max_open, self.open_now)
                self._opened.notify_all()
                if self.gather:
                    # a cap never reached shows in max_open; the transfers then go on
                    self._opened.wait_for(lambda: self.open_now >= self.gather, self.gather_s)
                    self.gather = 0

        def close_count():
            nonlocal counted
            with self._lock:
                if counted:
                    self.open_now -= 1
                    counted = False

        handler.send_response(206 if match else 200)
        if match:
            handler.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        handler.send_header("Content-Length", str(end - start + 1))
        handler.send_header("Accept-Ranges", "bytes")
        if end < start:
            close_count()  # an empty body: the headers are the last bytes
        handler.end_headers()
        try:
            with open(target, "rb") as source:
                source.seek(start)
                remaining = end - start + 1
                began = time.monotonic()
                while remaining > 0:
                    if fault is not None and record.sent >= fault.stall_after:
                        self._closing.wait(3600)  # silent, connection open
                        return
                    limit = self.chunk
                    if fault is not None:
                        limit = min(limit, max(1, fault.stall_after - record.sent))
                    block = source.read(min(limit, remaining))
                    if len(block) >= remaining:
                        close_count()  # before the last block: the client cannot finish first
                    handler.wfile.write(block)
                    record.sent += len(block)
                    remaining -= len(block)
                    if self.rate and remaining > 0:
                        ahead = record.sent / self.rate - (time.monotonic() - began)
                        if ahead > 0:
                            time.sleep(ahead)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            close_count()
            record.end = time.time()
