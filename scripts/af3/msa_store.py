"""Stage 3: a content-addressed store of the MSAs (and template mmCIFs) inlined in ``_data.json``.

Each distinct text is stored once, compressed, under ``<store>/<h[:2]>/<sha256>.<kind>.<codec>``
where ``sha256`` is the hash of the text itself. The organized ``_data.json`` keeps everything
else byte for byte, and each stored value becomes a reference AF3 itself understands:
``"unpairedMsa": "<text>"`` turns into ``"unpairedMsaPath": "../../_msa_store/ab/ab…a3m.zst"``
(likewise ``pairedMsa`` and template ``mmcif``). :func:`restore_text` reverses exactly that edit,
so the original file comes back byte-identical; :func:`strip_text` checks this before it returns,
and :func:`put` reads each new store file back before it renames it into place.

The edit is made on the JSON text, not on a re-serialised object: whatever spacing or escaping
the writer used is kept. A value whose JSON escaping differs from Python's ``json.dumps`` stays
inline (counted in ``kept_inline``) rather than risk an inexact restore.
"""

import hashlib
import json
import lzma
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import zstandard
from common import atomic_path

STORED_KEYS = {"unpairedMsa": "a3m", "pairedMsa": "a3m", "mmcif": "cif"}
# A JSON key we store, then the opening quote of its string value.
VALUE_START = re.compile(r'"(unpairedMsa|pairedMsa|mmcif)"(\s*:\s*)"')
REFERENCE = re.compile(
    r'"(unpairedMsa|pairedMsa|mmcif)Path"(\s*:\s*)"((?:\.\./)*_msa_store/[0-9a-f]{2}/([0-9a-f]{64})\.(a3m|cif)\.(zst|xz))"'
)
STORE_DIRNAME = "_msa_store"
# Bytes that ``json.dumps`` writes unescaped (printable ASCII but '"' and '\\'), and newline,
# which it writes as the two characters '\\n'. An MSA is made of these alone.
_PLAIN_BYTES = bytes([0x0A, *(b for b in range(0x20, 0x7F) if b not in (0x22, 0x5C))])


class RestoreError(RuntimeError):
    """A reference in an organized ``_data.json`` cannot be resolved or does not match its hash."""


@dataclass
class StoredValue:
    """One inlined text replaced by a reference: where it was and where it went."""

    chain_ids: str
    field: str
    sha256: str
    raw_bytes: int
    stored_path: str
    new_in_store: bool = False
    stored_bytes: int = 0


@dataclass
class StripResult:
    text: str
    values: list[StoredValue] = field(default_factory=list)
    kept_inline: int = 0


def compress(data: bytes, codec: str, level: int) -> bytes:
    if codec == "zst":
        return zstandard.ZstdCompressor(level=level, write_checksum=True).compress(data)
    if codec == "xz":
        return lzma.compress(data, preset=level)
    raise ValueError(f"unknown MSA codec {codec!r} (use zst or xz)")


def decompress(data: bytes, codec: str) -> bytes:
    if codec == "zst":
        return zstandard.ZstdDecompressor().decompress(data)
    if codec == "xz":
        return lzma.decompress(data)
    raise ValueError(f"unknown MSA codec {codec!r}")


def json_string_body(value: str) -> str:
    """``json.dumps(value)[1:-1]``, the way this module writes a value back; fast for MSA text.

    Text of printable ASCII and newlines (every MSA and mmCIF seen) is escaped by one replace,
    several times faster than ``json.dumps`` on megabytes; anything else goes to ``json.dumps``.
    """
    if value.isascii() and not value.encode("ascii").translate(None, _PLAIN_BYTES):
        return value.replace("\n", "\\n")
    return json.dumps(value)[1:-1]


def _string_end(text: str, start: int) -> int:
    """Index of the closing quote of the JSON string literal whose body starts at ``start``."""
    i = start
    while True:
        j = text.index('"', i)
        backslashes = 0
        k = j - 1
        while text[k] == "\\":
            backslashes += 1
            k -= 1
        if backslashes % 2 == 0:
            return j
        i = j + 1


def _owners(doc) -> list[tuple[str, str, str]]:
    """(chain ids, key, value) of every stored key, in document order (the order of the text)."""
    found: list[tuple[str, str, str]] = []

    def walk(node, chain):
        if isinstance(node, dict):
            if "id" in node and isinstance(node["id"], (str, list)):
                chain = ",".join(node["id"]) if isinstance(node["id"], list) else node["id"]
            for key, value in node.items():
                if key in STORED_KEYS and isinstance(value, str):
                    found.append((chain, key, value))
                else:
                    walk(value, chain)
        elif isinstance(node, list):
            for item in node:
                walk(item, chain)

    walk(doc, "")
    return found


def store_path(store: Path, sha: str, kind: str, codec: str) -> Path:
    return store / sha[:2] / f"{sha}.{kind}.{codec}"


def put(store: Path, text: str, kind: str, codec: str, level: int) -> tuple[str, Path, bool]:
    """Add ``text`` to the store unless its hash is already there; return (sha256, path, new)."""
    data = text.encode("utf-8")
    sha = hashlib.sha256(data).hexdigest()
    path = store_path(store, sha, kind, codec)
    if path.exists():
        return sha, path, False
    # Two chunk jobs may store the same MSA at once: both write the same bytes, last rename wins.
    # The file is read back and decoded before the rename: a store entry is checked once, here.
    with atomic_path(path) as tmp:
        tmp.write_bytes(compress(data, codec, level))
        if decompress(tmp.read_bytes(), codec) != data:
            raise RestoreError(f"{path}: the compressed copy does not decode to the text")
    return sha, path, True


def strip_text(
    text: str, store: Path, job_dir: Path, codec: str = "zst", level: int = 10, min_bytes: int = 1
) -> StripResult:
    """Move each stored value of a ``_data.json`` text into ``store``; return the edited text.

    ``job_dir`` is where the edited file will live: references are relative to it. Raises
    ``ValueError`` when the text is not valid JSON or the edit would not restore exactly.
    """
    doc = json.loads(text)
    owners = _owners(doc)
    out: list[str] = []
    bodies: dict[str, str] = {}  # sha256 -> the JSON string body it replaced
    result = StripResult(text="")
    pos = 0
    index = 0
    for match in VALUE_START.finditer(text):
        if match.start() < pos:
            continue  # inside a value we already consumed
        body_start = match.end()
        body_end = _string_end(text, body_start)
        literal = text[body_start:body_end]
        if index < len(owners) and owners[index][1] == match.group(1):
            chain, key, value = owners[index]
        else:  # the text and the parsed document disagree: the count check below fails the job
            chain, key, value = "", match.group(1), json.loads('"' + literal + '"')
        index += 1
        # A value whose escaping json.dumps would not reproduce stays inline (exact restore).
        if len(value.encode()) < min_bytes or json_string_body(value) != literal:
            if value:
                result.kept_inline += 1
            continue
        kind = STORED_KEYS[match.group(1)]
        sha, path, new = put(store, value, kind, codec, level)
        bodies[sha] = literal
        reference = os.path.relpath(path, job_dir)
        out.append(text[pos : match.start()])
        out.append(f'"{match.group(1)}Path"{match.group(2)}"{reference}"')
        pos = body_end + 1
        result.values.append(
            StoredValue(chain, key, sha, len(value.encode()), reference, new, path.stat().st_size)
        )
    if index != len(owners):
        raise ValueError(f"found {index} stored keys in the text but {len(owners)} in the parsed JSON")
    out.append(text[pos:])
    result.text = "".join(out)
    json.loads(result.text)
    if restore_text(result.text, job_dir, store, bodies) != text:
        raise ValueError("stripped _data.json does not restore to the original bytes")
    return result


def restore_text(
    text: str, job_dir: Path, store: Path | None = None, bodies: dict[str, str] | None = None
) -> str:
    """Put every stored value back into an organized ``_data.json`` text (exact inverse of strip).

    ``bodies`` (sha256 -> JSON string body) stands in for the store: :func:`strip_text` checks its
    edit with the values it has just stored (each store file was checked by :func:`put` when written).
    """

    def replace(match: re.Match) -> str:
        key, sep, reference, sha, _kind, codec = match.groups()
        if bodies is not None:
            return f'"{key}"{sep}"{bodies[sha]}"'
        # Lexical '..' resolution: the job dir need not exist yet (strip checks before writing).
        path = (
            (store / sha[:2] / Path(reference).name) if store else Path(os.path.normpath(job_dir / reference))
        )
        try:
            data = decompress(path.read_bytes(), codec)
        except FileNotFoundError:
            raise RestoreError(f"{key}Path points at {path}, which is missing from the MSA store") from None
        if hashlib.sha256(data).hexdigest() != sha:
            raise RestoreError(f"{path}: content does not match its sha256 name")
        return f'"{key}"{sep}"{json_string_body(data.decode("utf-8"))}"'

    return REFERENCE.sub(replace, text)


def restore_file(organized_json: Path, output: Path, store: Path | None = None) -> None:
    """Rebuild the original ``_data.json`` from an organized one (and its store) into ``output``."""
    organized_json = Path(organized_json)
    # Bytes in and out: text mode would turn CRLF into LF and break exactness.
    text = organized_json.read_bytes().decode("utf-8")
    restored = restore_text(text, organized_json.parent, store)
    with atomic_path(output) as tmp:
        tmp.write_bytes(restored.encode("utf-8"))
