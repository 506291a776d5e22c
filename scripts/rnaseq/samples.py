"""The rnaseq sample sheet: loading, validation, and where each run's files can be fetched from.

The sheet is read at parse time by every Snakemake process (every SLURM job too), so this module
uses only the standard library and ``common`` (no pandas), and reads one small TSV.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from common import config_errors, load_yaml

SCHEMA = Path(__file__).resolve().parents[2] / "config" / "schemas" / "rnaseq.samples.schema.yaml"
RUN_PATTERN = r"[SED]RR[0-9]+"
SOURCE_KINDS = ("ena", "sra", "prefetch")


class SampleSheetError(ValueError):
    """The sample sheet is malformed; the message names the file, row, run and field."""


@dataclass(frozen=True)
class Location:
    """One place a file can be read from: a URL or a local path."""

    url: str  # http(s)://, ftp:// or file:// (local paths are turned into file:// URLs)

    @property
    def is_local(self) -> bool:
        return self.url.startswith("file://")

    @property
    def path(self) -> Path:
        return Path(urlsplit(self.url).path)


@dataclass
class RemoteFile:
    """A file to fetch (a FASTQ mate or an SRA object), with what the archive says about it."""

    name: str  # local file name, e.g. SRR1_1.fastq.gz
    locations: list[Location]
    md5: str = ""
    size: int | None = None


@dataclass
class Run:
    """One row of the sheet, with defaults filled in."""

    run: str
    sample: str
    layout: str
    species: str
    fastq: list[RemoteFile] = field(default_factory=list)
    sra: RemoteFile | None = None
    read_count: int | None = None
    fragment_length: float | None = None
    fragment_sd: float | None = None
    metadata: dict = field(default_factory=dict)  # a filereport's other columns, for metadata.tsv

    @property
    def paired(self) -> bool:
        return self.layout == "paired"

    @property
    def fastq_names(self) -> list[str]:
        """The FASTQ file names the download step produces for this run."""
        if self.paired:
            return [f"{self.run}_1.fastq.gz", f"{self.run}_2.fastq.gz"]
        return [f"{self.run}.fastq.gz"]


def species_name(scientific_name: str) -> str:
    """ENA's ``Homo sapiens`` as the species key ``Homo_sapiens``; anything else unsafe is left
    for the schema to refuse, naming it."""
    return re.sub(r" +", "_", scientific_name.strip())


def from_filereport(row: dict, known: set[str]) -> tuple[dict, dict]:
    """Map one row of ENA's filereport onto the sheet's columns; return (row, other columns).

    ``run_accession`` is the run, ``sample_accession`` the sample (unless a ``sample`` column is
    there), ``library_layout`` (PAIRED/SINGLE) the layout; columns the sheet does not know are kept
    as metadata rather than refused.
    """
    mapped = {k: v for k, v in row.items() if k in known}
    mapped.setdefault("run", row.get("run_accession", ""))
    mapped.setdefault("sample", row.get("sample_accession", "") or mapped["run"])
    if "layout" not in mapped and row.get("library_layout"):
        mapped["layout"] = row["library_layout"].lower()
    if mapped.get("scientific_name"):
        mapped["scientific_name"] = species_name(mapped["scientific_name"])
    if "sra_url" not in mapped and row.get("sra_ftp"):
        mapped["sra_url"] = row["sra_ftp"]
    used = ("run_accession", "library_layout", "sra_ftp")
    extra = {k: v for k, v in row.items() if k not in known and k not in used}
    return mapped, extra


def resolve_location(entry: str, sheet_dir: Path, default_scheme: str = "https") -> str:
    """Turn one sheet entry into a URL.

    ``/abs``, ``./rel``, ``../rel`` are local paths (relative ones against the sheet's folder);
    ``scheme://...`` is taken as is; anything else is an ENA-style ``host/path`` without scheme.
    """
    if entry.startswith(("/", "./", "../")):
        return (sheet_dir / entry).resolve().as_uri()
    if "://" in entry:
        scheme = entry.split("://", 1)[0].lower()
        if scheme not in ("http", "https", "ftp", "file"):
            raise ValueError(f"unsupported URL scheme '{scheme}' in '{entry}'")
        return entry
    return f"{default_scheme}://{entry}"


def mirrored(url: str, mirror_base: str) -> str | None:
    """The same file on a site mirror: ``mirror_base`` + the URL's path; None for local files."""
    if not mirror_base or url.startswith("file://"):
        return None
    return mirror_base.rstrip("/") + "/" + urlsplit(url).path.lstrip("/")


def _locations(url: str, mirror_base: str) -> list[Location]:
    mirror = mirrored(url, mirror_base)
    return [Location(u) for u in ([mirror] if mirror else []) + [url]]


def _pick_mates(run: str, urls: list[str], layout: str) -> list[int]:
    """Indices of the files to use: ENA lists 1-3 files per run; a paired run may carry an
    orphan ``<run>.fastq.gz`` beside ``_1``/``_2``, which kallisto cannot use as pairs."""
    if layout == "single":
        if len(urls) != 1:
            raise ValueError(f"a single-end run needs 1 FASTQ, the sheet lists {len(urls)}")
        return [0]
    base = [urlsplit(u).path.rsplit("/", 1)[-1] for u in urls]
    by_mate = {}
    for i, name in enumerate(base):
        match = re.search(r"_([12])\.f(ast)?q(\.gz)?$", name)
        if match:
            by_mate.setdefault(match.group(1), i)
    if "1" in by_mate and "2" in by_mate:
        return [by_mate["1"], by_mate["2"]]
    if len(urls) == 2:
        return [0, 1]
    raise ValueError(f"a paired run needs _1 and _2 FASTQs, the sheet lists {len(urls)}: {', '.join(base)}")


def parse_row(
    row: dict,
    sheet_dir: Path,
    transcriptomes: dict,
    mirror_base: str = "",
    default_scheme: str = "https",
    metadata: dict | None = None,
) -> Run:
    """Build a :class:`Run` from one validated row (defaults already filled); raise ValueError."""
    species = row["scientific_name"]
    if not species:
        if len(transcriptomes) != 1:
            raise ValueError(
                "scientific_name is empty but rnaseq.transcriptomes has "
                f"{len(transcriptomes)} entries ({', '.join(transcriptomes)}): say which one"
            )
        species = next(iter(transcriptomes))
    elif species not in transcriptomes:
        raise ValueError(
            f"scientific_name '{species}' is not a key of rnaseq.transcriptomes ({', '.join(transcriptomes)})"
        )

    fastq: list[RemoteFile] = []
    if row["fastq_ftp"]:
        entries = row["fastq_ftp"].split(";")
        md5s = row["fastq_md5"].split(";") if row["fastq_md5"] else []
        sizes = row["fastq_bytes"].split(";") if row["fastq_bytes"] else []
        for label, values in (("fastq_md5", md5s), ("fastq_bytes", sizes)):
            if values and len(values) != len(entries):
                raise ValueError(f"{label} has {len(values)} entries but fastq_ftp has {len(entries)}")
        urls = [resolve_location(e, sheet_dir, default_scheme) for e in entries]
        chosen = _pick_mates(row["run"], urls, row["layout"])
        names = (
            [f"{row['run']}_1.fastq.gz", f"{row['run']}_2.fastq.gz"]
            if row["layout"] == "paired"
            else [f"{row['run']}.fastq.gz"]
        )
        for name, i in zip(names, chosen, strict=True):
            fastq.append(
                RemoteFile(
                    name=name,
                    locations=_locations(urls[i], mirror_base),
                    md5=md5s[i].lower() if md5s else "",
                    size=int(sizes[i]) if sizes else None,
                )
            )
    sra = None
    if row["sra_url"]:
        url = resolve_location(row["sra_url"], sheet_dir, default_scheme)
        sra = RemoteFile(
            name=f"{row['run']}.sra",
            locations=_locations(url, mirror_base),
            md5=row["sra_md5"].lower(),
            size=int(row["sra_bytes"]) if row["sra_bytes"] else None,
        )
    return Run(
        run=row["run"],
        sample=row["sample"],
        layout=row["layout"],
        species=species,
        fastq=fastq,
        sra=sra,
        read_count=int(row["read_count"]) if row["read_count"] else None,
        fragment_length=float(row["fragment_length"]) if row["fragment_length"] else None,
        fragment_sd=float(row["fragment_sd"]) if row["fragment_sd"] else None,
        metadata=metadata or {},
    )


def load_sample_sheet(
    path: str | os.PathLike,
    transcriptomes: dict,
    sources: list[str] = SOURCE_KINDS,
    mirror_base: str = "",
    default_scheme: str = "https",
) -> dict[str, Run]:
    """Read and validate the sheet; return runs by accession, in sheet order.

    Every problem is collected and raised together as one :class:`SampleSheetError`, each line
    naming the file, the row, the run and the field. A sheet with ``run_accession`` and no ``run``
    column is ENA's filereport as it comes (see :func:`from_filereport`); in the sheet's own format
    an unknown column is refused (a typo must not pass silently).
    """
    path = Path(path)
    schema = load_yaml(SCHEMA)
    defaults = {k: v["default"] for k, v in schema["properties"].items() if "default" in v}
    errors: list[str] = []
    runs: dict[str, Run] = {}
    with open(path, newline="") as handle:
        lines = [line for line in handle if line.strip() and not line.startswith("#")]
    reader = csv.DictReader(lines, delimiter="\t")
    if reader.fieldnames is None:
        raise SampleSheetError(f"sample sheet {path}: empty")
    header = [name.strip() for name in reader.fieldnames]
    filereport = "run_accession" in header and "run" not in header
    for number, raw in enumerate(reader, start=2):
        if None in raw:
            errors.append(f"sample sheet {path} line {number}: more fields than header columns")
            continue
        row = {k.strip(): (v or "").strip() for k, v in raw.items()}
        extra = {}
        if filereport:
            row, extra = from_filereport(row, set(schema["properties"]))
        where = f"sample sheet {path} line {number} (run '{row.get('run', '?')}')"
        problems = config_errors(row, schema, where=where)
        if problems:
            errors.extend(p.replace(" key '", " column '") for p in problems)
            continue
        row = {**defaults, **row}
        if row["run"] in runs:
            errors.append(f"{where}: run '{row['run']}' appears twice")
            continue
        if not row["fastq_ftp"] and not row["sra_url"] and "prefetch" not in sources:
            errors.append(f"{where}: no fastq_ftp and no sra_url, and 'prefetch' is not in rnaseq.sources")
            continue
        try:
            runs[row["run"]] = parse_row(
                row, path.parent, transcriptomes, mirror_base, default_scheme, metadata=extra
            )
        except ValueError as err:
            errors.append(f"{where}: {err}")
    if errors:
        raise SampleSheetError("invalid sample sheet:\n  " + "\n  ".join(errors))
    if not runs:
        raise SampleSheetError(f"sample sheet {path}: no runs")
    return runs


RESOLVED_SHEET = "results/rnaseq/accessions/filereport.tsv"


def sheet_path(cfg: dict) -> str:
    """The sheet to read: ``samples``, or the filereport of ``accessions`` (resolved once, then
    read from its file: asked again only when the accession list or the portal changed)."""
    if not cfg.get("accessions"):
        return cfg["samples"]
    from rnaseq.ena import read_accessions, resolve

    return str(resolve(read_accessions(cfg["accessions"]), cfg["ena_portal"], RESOLVED_SHEET))


def sheet_from_config(cfg: dict) -> dict[str, Run]:
    """The sample sheet the validated ``rnaseq`` config section names."""
    return load_sample_sheet(
        sheet_path(cfg),
        cfg["transcriptomes"],
        sources=cfg["sources"],
        mirror_base=cfg["mirror_base"],
        default_scheme=cfg["default_scheme"],
    )
