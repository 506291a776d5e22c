"""Unit tests of the rnaseq scripts: sample sheet, transfers and checks, SRA, kallisto accuracy."""

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from rnaseq.download import DownloadError, DownloadSettings, download_run
from rnaseq.fetch import FetchError, count_fastq_records, fetch_file
from rnaseq.http_fixture import Fault, FixtureServer
from rnaseq.merge import MergeError, merge_abundances
from rnaseq.quantify import QuantError, build_index, quantify_run
from rnaseq.samples import SampleSheetError, load_sample_sheet
from rnaseq.simulate import make_transcriptome, random_abundances, simulate_reads, write_fasta
from rnaseq.sra import build_sra, validate_sra

HEADER = "run\tsample\tlayout\tfastq_ftp\tfastq_md5\tfastq_bytes\tsra_url\n"
TX = {"Formica_simulata": "tx.fa"}


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_sheet(tmp_path: Path, rows: list[str], header: str = HEADER) -> Path:
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(header + "".join(r + "\n" for r in rows))
    return sheet


# ----------------------------------------------------------------------------- sample sheet


def test_sheet_resolves_ena_paths_mirrors_and_local_files(tmp_path):
    sheet = write_sheet(
        tmp_path,
        [
            "SRR1\ts1\tpaired\tftp.sra.ebi.ac.uk/vol1/fastq/SRR1/SRR1.fastq.gz;"
            "ftp.sra.ebi.ac.uk/vol1/fastq/SRR1/SRR1_1.fastq.gz;ftp.sra.ebi.ac.uk/vol1/fastq/SRR1/SRR1_2.fastq.gz"
            "\t\t\t",
            f"ERR2\ts2\tsingle\t./reads/ERR2.fastq.gz\t{'a' * 32}\t123\t",
            "DRR3\ts3\tpaired\t\t\t\thttps://example.org/sra/DRR3",
        ],
    )
    runs = load_sample_sheet(sheet, TX, mirror_base="http://mirror.local/ena/")
    srr1 = runs["SRR1"]
    # the orphan file of a paired run is skipped; the mirror comes first, then the archive
    assert [f.name for f in srr1.fastq] == ["SRR1_1.fastq.gz", "SRR1_2.fastq.gz"]
    assert [loc.url for loc in srr1.fastq[1].locations] == [
        "http://mirror.local/ena/vol1/fastq/SRR1/SRR1_2.fastq.gz",
        "https://ftp.sra.ebi.ac.uk/vol1/fastq/SRR1/SRR1_2.fastq.gz",
    ]
    err2 = runs["ERR2"]
    assert err2.fastq[0].locations[0].url == (tmp_path / "reads" / "ERR2.fastq.gz").as_uri()
    assert err2.fastq[0].size == 123 and err2.species == "Formica_simulata"
    assert runs["DRR3"].sra.locations[0].url.startswith("http://mirror.local/ena/sra/DRR3")


@pytest.mark.parametrize(
    "row, message",
    [
        ("../etc\ts1\tsingle\t/x.fastq.gz\t\t\t", "column 'run'"),
        ("SRR1;rm -rf\ts1\tsingle\t/x.fastq.gz\t\t\t", "column 'run'"),
        ("SRR1\ts 1\tsingle\t/x.fastq.gz\t\t\t", "column 'sample'"),
        ("SRR1\ts1\tboth\t/x.fastq.gz\t\t\t", "column 'layout'"),
        ("SRR1\ts1\tpaired\t/x_1.fastq.gz\t\t\t", "a paired run needs _1 and _2"),
        ("SRR1\ts1\tsingle\t/x.fastq.gz\tabc\t\t", "column 'fastq_md5'"),
        (f"SRR1\ts1\tsingle\t/x.fastq.gz\t{'a' * 32};{'b' * 32}\t\t", "fastq_md5 has 2 entries"),
        ("SRR1\ts1\tsingle\tgopher://x/y\t\t\t", "unsupported URL scheme"),
    ],
)
def test_sheet_rejects_bad_rows_naming_line_and_field(tmp_path, row, message):
    sheet = write_sheet(tmp_path, [row])
    with pytest.raises(SampleSheetError) as info:
        load_sample_sheet(sheet, TX)
    assert message in str(info.value)
    assert f"{sheet} line 2" in str(info.value)


def test_sheet_rejects_duplicates_unknown_columns_and_missing_sources(tmp_path):
    sheet = write_sheet(
        tmp_path, ["SRR1\ts1\tsingle\t/a.fastq.gz\t\t\t", "SRR1\ts2\tsingle\t/b.fastq.gz\t\t\t"]
    )
    with pytest.raises(SampleSheetError, match="run 'SRR1' appears twice"):
        load_sample_sheet(sheet, TX)
    sheet = write_sheet(tmp_path, ["SRR1\ts1\tsingle\tx"], header="run\tsample\tlayout\tcolour\n")
    with pytest.raises(SampleSheetError, match="unknown key 'colour'|colour"):
        load_sample_sheet(sheet, TX)
    sheet = write_sheet(tmp_path, ["SRR1\ts1\tsingle\t\t\t\t"])
    with pytest.raises(SampleSheetError, match="no fastq_ftp and no sra_url"):
        load_sample_sheet(sheet, TX, sources=["ena", "sra"])
    assert load_sample_sheet(sheet, TX, sources=["prefetch"])["SRR1"].fastq == []


# ----------------------------------------------------------------------------- simulated data


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A transcriptome, its kallisto index, and a paired and a single-end run with known truth."""
    root = tmp_path_factory.mktemp("rnaseq_data")
    transcripts = make_transcriptome(40, seed=5)
    write_fasta(transcripts, root / "tx.fa")
    build_index(root / "tx.fa", root / "tx.idx")
    abundances = random_abundances(list(transcripts), seed=6)
    truth = {
        "SRR10": simulate_reads(transcripts, abundances, 8000, root / "SRR10", "SRR10", True, seed=7),
        "SRR11": simulate_reads(transcripts, abundances, 8000, root / "SRR11", "SRR11", False, seed=8),
    }
    return {"root": root, "transcripts": transcripts, "truth": truth}


def test_count_fastq_records_catches_truncation_and_non_fastq(dataset, tmp_path):
    good = dataset["root"] / "SRR11.fastq.gz"
    assert count_fastq_records(good) == 8000
    truncated = tmp_path / "t.fastq.gz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(FetchError, match="gzip integrity check failed"):
        count_fastq_records(truncated)
    text = tmp_path / "x.fastq.gz"
    with gzip.open(text, "wt") as out:
        out.write(">not fastq\nACGT\n")
    with pytest.raises(FetchError, match="not FASTQ"):
        count_fastq_records(text)


# ----------------------------------------------------------------------------- transfers


def test_fetch_resumes_a_stalled_transfer_with_a_range_request(dataset, tmp_path):
    src = dataset["root"] / "SRR10_1.fastq.gz"
    size = src.stat().st_size
    with FixtureServer(dataset["root"]) as server:
        server.faults["SRR10_1.fastq.gz"] = Fault(stall_after=size // 3, times=1)
        dest = tmp_path / "SRR10_1.fastq.gz"
        with pytest.raises(FetchError, match="stalled"):
            fetch_file(server.url("SRR10_1.fastq.gz"), dest, md5=md5(src), size=size, stall_timeout=1)
        assert not dest.exists()
        assert dest.with_name(dest.name + ".part").stat().st_size == size // 3
        result = fetch_file(server.url("SRR10_1.fastq.gz"), dest, md5=md5(src), size=size, stall_timeout=5)
        requests = server.requests_for("SRR10_1.fastq.gz")
    assert dest.read_bytes() == src.read_bytes()
    assert result.resumed_from == size // 3
    assert [r.range_start for r in requests] == [0, size // 3]
    assert requests[1].sent == size - size // 3  # only the missing part came over again


def test_fetch_deletes_a_file_with_the_wrong_md5(dataset, tmp_path):
    src = dataset["root"] / "SRR11.fastq.gz"
    dest = tmp_path / "SRR11.fastq.gz"
    with FixtureServer(dataset["root"]) as server:
        with pytest.raises(FetchError, match="does not match the archive's"):
            fetch_file(server.url("SRR11.fastq.gz"), dest, md5="0" * 32, size=src.stat().st_size)
        with pytest.raises(FetchError, match="HTTP 404"):
            fetch_file(server.url("missing.fastq.gz"), dest)
    assert not dest.exists() and not dest.with_name(dest.name + ".part").exists()


def _run(sheet_rows, tmp_path, sources=("ena", "sra")):
    sheet = write_sheet(tmp_path, sheet_rows)
    runs = load_sample_sheet(sheet, TX, sources=list(sources))
    return runs


def test_killed_download_keeps_verified_files_and_resumes_the_rest(dataset, tmp_path):
    root = dataset["root"]
    r1, r2 = root / "SRR10_1.fastq.gz", root / "SRR10_2.fastq.gz"
    with FixtureServer(root) as server:
        row = (
            f"SRR10\ts\tpaired\t{server.url(r1.name)};{server.url(r2.name)}\t{md5(r1)};{md5(r2)}\t"
            f"{r1.stat().st_size};{r2.stat().st_size}\t"
        )
        run = _run([row], tmp_path, sources=["ena"])["SRR10"]
        server.faults[r2.name] = Fault(stall_after=r2.stat().st_size // 2, times=1)
        settings = DownloadSettings(sources=["ena"], stall_timeout=1)
        out, partial = tmp_path / "fastq" / "SRR10", tmp_path / "partial" / "SRR10"
        with pytest.raises(DownloadError) as info:
            download_run(run, out, partial, settings)
        assert "run SRR10" in str(info.value) and "stalled" in str(info.value)
        assert (partial / "ena" / r1.name).exists()  # verified, kept for the next attempt
        metrics = download_run(run, out, partial, settings)
        assert [r.range_start for r in server.requests_for(r1.name)] == [0]  # not fetched again
        assert [r.range_start for r in server.requests_for(r2.name)] == [0, r2.stat().st_size // 2]
    assert metrics["spots"] == 8000 and metrics["source"] == "ena"
    assert json.loads((out / "reads.json").read_text())["files"][1]["reads"] == 8000
    assert not partial.exists()


def test_zero_read_fastq_falls_through_to_the_next_source_and_then_fails(dataset, tmp_path):
    empty = tmp_path / "SRR12.fastq.gz"
    with gzip.open(empty, "wb"):
        pass
    run = _run([f"SRR12\ts\tsingle\t{empty}\t\t\t"], tmp_path)["SRR12"]
    with pytest.raises(DownloadError) as info:
        download_run(run, tmp_path / "out", tmp_path / "partial", DownloadSettings(sources=["ena", "sra"]))
    message = str(info.value)
    assert message.startswith("run SRR12: every source failed")
    assert "ena: the FASTQ holds zero reads" in message and "sra: no sra_url" in message


# ----------------------------------------------------------------------------- SRA objects


def test_real_sra_object_over_http_is_validated_and_converted(dataset, tmp_path):
    plain = []
    for mate in (1, 2):
        target = tmp_path / f"m{mate}.fastq"
        target.write_bytes(gzip.decompress((dataset["root"] / f"SRR10_{mate}.fastq.gz").read_bytes()))
        plain.append(target)
    sra = build_sra("SRR10", plain, tmp_path / "serve" / "SRR10.sra", tmp_path / "vdb")
    validate_sra(sra, timeout=60)
    with FixtureServer(tmp_path / "serve") as server:
        row = f"SRR10\ts\tpaired\t\t\t\t{server.url('SRR10.sra')}"
        run = _run([row], tmp_path)["SRR10"]
        metrics = download_run(run, tmp_path / "out", tmp_path / "partial", DownloadSettings(["ena", "sra"]))
    assert metrics["source"] == "sra" and metrics["spots"] == 8000
    assert metrics["attempts"][0] == {"source": "ena", "error": "no fastq_ftp in the sample sheet"}
    assert count_fastq_records(tmp_path / "out" / "SRR10_2.fastq.gz") == 8000
    # a damaged object is caught by vdb-validate
    damaged = tmp_path / "damaged.sra"
    data = bytearray(sra.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4096] = bytes(4096)
    damaged.write_bytes(bytes(data))
    with pytest.raises(FetchError, match="vdb-validate rejected"):
        validate_sra(damaged, timeout=60)


# ----------------------------------------------------------------------------- kallisto


def _fastq_dir(dataset, tmp_path, run, layout, spots):
    folder = tmp_path / run
    folder.mkdir()
    names = [f"{run}_1.fastq.gz", f"{run}_2.fastq.gz"] if layout == "paired" else [f"{run}.fastq.gz"]
    for name in names:
        (folder / name).symlink_to(dataset["root"] / name)
    files = [{"name": n} for n in names]
    (folder / "reads.json").write_text(json.dumps({"layout": layout, "files": files, "spots": spots}))
    return folder


@pytest.mark.parametrize("run, layout", [("SRR10", "paired"), ("SRR11", "single")])
def test_kallisto_estimates_correlate_with_the_truth(dataset, tmp_path, run, layout):
    folder = _fastq_dir(dataset, tmp_path, run, layout, 8000)
    out = tmp_path / "quant"
    out.mkdir()
    metrics = quantify_run(
        run,
        folder,
        dataset["root"] / "tx.idx",
        out / "a.tsv",
        out / "i.json",
        fragment_length=250,
        fragment_sd=25,
    )
    assert metrics["n_processed"] == 8000
    est = merge_abundances({run: out / "a.tsv"})["est_counts"].set_index("target_id")[run]
    truth = dataset["truth"][run]
    names = list(dataset["transcripts"])
    r = np.corrcoef([truth[n] for n in names], [est[n] for n in names])[0, 1]
    assert r >= 0.99, f"{layout}: r = {r:.4f}"


def test_a_short_read_count_is_an_error_not_a_success(dataset, tmp_path):
    folder = _fastq_dir(dataset, tmp_path, "SRR11", "single", 9000)  # the FASTQ holds 8000
    with pytest.raises(QuantError, match="processed 8000 reads but the FASTQ holds 9000"):
        quantify_run("SRR11", folder, dataset["root"] / "tx.idx", tmp_path / "a.tsv", tmp_path / "i.json")
    assert not (tmp_path / "a.tsv").exists()


def test_merge_joins_on_target_id_and_rejects_foreign_indexes(tmp_path):
    a = tmp_path / "a.tsv"
    b = tmp_path / "b.tsv"
    c = tmp_path / "c.tsv"
    head = "target_id\tlength\teff_length\test_counts\ttpm\n"
    a.write_text(head + "t1\t100\t50\t10\t1\nt2\t100\t50\t20\t2\n")
    b.write_text(head + "t2\t100\t50\t5\t3\nt1\t100\t50\t7\t4\n")
    c.write_text(head + "t1\t100\t50\t10\t1\nt9\t100\t50\t20\t2\n")
    merged = merge_abundances({"SRR1": a, "SRR2": b})["est_counts"]
    assert list(merged.columns) == ["target_id", "SRR1", "SRR2"]
    assert merged.set_index("target_id").loc["t1"].tolist() == [10, 7]
    with pytest.raises(MergeError, match="run SRR3: its targets differ"):
        merge_abundances({"SRR1": a, "SRR3": c})


# ----------------------------------------------------------------------------- download hygiene


def test_a_later_sources_failure_keeps_the_verified_mate(dataset, tmp_path):
    """ENA fails on mate 2 and the SRA source fails too: mate 1 stays verified and is not fetched again."""
    root = dataset["root"]
    r1, r2 = root / "SRR10_1.fastq.gz", root / "SRR10_2.fastq.gz"
    with FixtureServer(root) as server:
        row = (
            f"SRR10\ts\tpaired\t{server.url(r1.name)};{server.url(r2.name)}\t{md5(r1)};{md5(r2)}\t"
            f"{r1.stat().st_size};{r2.stat().st_size}\t{server.url('missing.sra')}"
        )
        run = _run([row], tmp_path)["SRR10"]
        server.faults[r2.name] = Fault(stall_after=r2.stat().st_size // 2, times=1)
        settings = DownloadSettings(sources=["ena", "sra"], stall_timeout=1)
        out, partial = tmp_path / "fastq" / "SRR10", tmp_path / "partial" / "SRR10"
        with pytest.raises(DownloadError, match="sra: .*HTTP 404"):
            download_run(run, out, partial, settings)
        assert (partial / "ena" / r1.name).exists()
        download_run(run, out, partial, settings)
        assert [r.range_start for r in server.requests_for(r1.name)] == [0]
    assert count_fastq_records(out / r1.name) == 8000


def test_an_oversized_or_corrupt_response_stops_at_once(dataset, tmp_path):
    (tmp_path / "serve").mkdir()
    big = tmp_path / "serve" / "big.fastq.gz"  # a valid FASTQ (gzip members), 100 times too long
    big.write_bytes((dataset["root"] / "SRR11.fastq.gz").read_bytes() * 100)
    junk = tmp_path / "serve" / "junk.fastq.gz"
    junk.write_bytes(b"\x00" * big.stat().st_size)  # what no gzip starts with
    declared = big.stat().st_size // 100
    with FixtureServer(tmp_path / "serve") as server:
        dest = tmp_path / "SRR1.fastq.gz"
        with pytest.raises(FetchError, match=f"larger than the archive's {declared} bytes"):
            fetch_file(server.url("big.fastq.gz"), dest, size=declared)
        with pytest.raises(FetchError, match="gzip integrity check failed at byte"):
            fetch_file(server.url("junk.fastq.gz"), dest)  # no size given: the gzip check stops it
        sent = [r.sent for r in server.requests_for("big.fastq.gz") + server.requests_for("junk.fastq.gz")]
    assert not dest.exists() and not dest.with_name(dest.name + ".part").exists()
    # the server wrote what the sockets buffer, not the whole file
    assert all(s < big.stat().st_size // 2 for s in sent), (sent, big.stat().st_size)


def test_a_zero_byte_file_declared_zero_bytes_falls_through_to_the_next_source(tmp_path):
    (tmp_path / "serve").mkdir()
    (tmp_path / "serve" / "SRR13.fastq.gz").write_bytes(b"")
    with FixtureServer(tmp_path / "serve") as server:
        row = f"SRR13\ts\tsingle\t{server.url('SRR13.fastq.gz')}\t{hashlib.md5(b'').hexdigest()}\t0\t"
        run = _run([row], tmp_path)["SRR13"]
        with pytest.raises(DownloadError) as info:
            download_run(run, tmp_path / "out", tmp_path / "partial", DownloadSettings(["ena", "sra"]))
    message = str(info.value)
    assert "ena: the FASTQ holds zero reads" in message and "sra: no sra_url" in message


@pytest.fixture(scope="module")
def sra_object(dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("sra")
    plain = []
    for mate in (1, 2):
        target = root / f"m{mate}.fastq"
        target.write_bytes(gzip.decompress((dataset["root"] / f"SRR10_{mate}.fastq.gz").read_bytes()))
        plain.append(target)
    return build_sra("SRR10", plain, root / "SRR10.sra", root / "vdb")


def test_an_archive_that_fails_validation_is_removed_and_fetched_again(sra_object, tmp_path):
    serve = tmp_path / "serve"
    serve.mkdir()
    data = bytearray(sra_object.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4096] = bytes(4096)
    (serve / "SRR10.sra").write_bytes(bytes(data))  # the server's copy is damaged; no sra_md5
    partial = tmp_path / "partial" / "SRR10"
    with FixtureServer(serve) as server:
        run = _run([f"SRR10\ts\tpaired\t\t\t\t{server.url('SRR10.sra')}"], tmp_path, sources=["sra"])["SRR10"]
        with pytest.raises(DownloadError, match="vdb-validate rejected"):
            download_run(run, tmp_path / "out", partial, DownloadSettings(["sra"]))
        assert not list(partial.rglob("*.sra*")), "the damaged archive is not kept for the retry"
        (serve / "SRR10.sra").write_bytes(sra_object.read_bytes())  # the server's copy is fixed
        metrics = download_run(run, tmp_path / "out", partial, DownloadSettings(["sra"]))
    assert metrics["spots"] == 8000


def test_a_layout_mismatch_leaves_only_the_validated_archive(sra_object, tmp_path):
    serve = tmp_path / "serve"
    serve.mkdir()
    (serve / "SRR10.sra").write_bytes(sra_object.read_bytes())
    partial = tmp_path / "partial" / "SRR10"
    with FixtureServer(serve) as server:
        row = f"SRR10\ts\tsingle\t\t\t\t{server.url('SRR10.sra')}"  # the archive is paired
        run = _run([row], tmp_path, sources=["sra"])["SRR10"]
        with pytest.raises(DownloadError, match="the sheet says single-end"):
            download_run(run, tmp_path / "out", partial, DownloadSettings(["sra"]))
    # what a resume can use (the archive, validated) and nothing else: no fasterq-dump output
    assert sorted(p.relative_to(partial).as_posix() for p in partial.rglob("*")) == ["sra", "sra/SRR10.sra"]


def test_read_count_other_than_the_archives_fails_the_source(dataset, tmp_path):
    src = dataset["root"] / "SRR11.fastq.gz"
    header = "run\tsample\tlayout\tfastq_ftp\tread_count\n"
    run = _run_header(header, [f"SRR11\ts\tsingle\t{src}\t7999"], tmp_path)["SRR11"]
    with pytest.raises(DownloadError, match="FASTQ holds 8000 spots, the archive's read_count is 7999"):
        download_run(run, tmp_path / "out", tmp_path / "partial", DownloadSettings(["ena"]))
    run = _run_header(header, [f"SRR11\ts\tsingle\t{src}\t8000"], tmp_path)["SRR11"]
    assert (
        download_run(run, tmp_path / "out", tmp_path / "partial", DownloadSettings(["ena"]))["spots"] == 8000
    )


def test_attempt_timeout_stops_a_slow_transfer_and_keeps_its_part(dataset, tmp_path):
    src = dataset["root"] / "SRR11.fastq.gz"
    with FixtureServer(dataset["root"], rate=src.stat().st_size / 20) as server:  # 20 s for the file
        dest = tmp_path / "SRR11.fastq.gz"
        with pytest.raises(FetchError, match="attempt deadline passed after"):
            fetch_file(
                server.url(src.name), dest, size=src.stat().st_size, attempt_timeout=1, stall_timeout=5
            )
    part = dest.with_name(dest.name + ".part")
    assert 0 < part.stat().st_size < src.stat().st_size  # kept: the next attempt resumes it


def test_attempt_history_numbers_every_attempt(tmp_path):
    import logging

    from rnaseq.download import attempt_history

    history = tmp_path / "SRR1.history.log"
    root = logging.getLogger()
    for expected in (1, 2):
        before = list(root.handlers)
        assert attempt_history(history) == expected
        logging.getLogger("hpcpipe").error("run SRR1: try %d failed", expected)
        for handler in set(root.handlers) - set(before):
            root.removeHandler(handler)
            handler.close()
    lines = history.read_text().splitlines()
    assert [line.split(" attempt ")[1][:1] for line in lines] == ["1", "2"]
    assert lines[0].endswith("run SRR1: try 1 failed") and lines[1].endswith("run SRR1: try 2 failed")


def _run_header(header, rows, tmp_path):
    sheet = write_sheet(tmp_path, rows, header=header)
    return load_sample_sheet(sheet, TX, sources=["ena"])


# ----------------------------------------------------------------------------- accessions (ENA filereport)


def _record(run, sample, study, files, layout, species="Formica simulata", read_count=8000):
    """One run as ENA's filereport describes it (paths without scheme, ';'-separated)."""
    return {
        "run_accession": run,
        "sample_accession": sample,
        "study_accession": study,
        "fastq_ftp": ";".join(f"ftp.sra.ebi.ac.uk/vol1/fastq/{run[:6]}/{run}/{f.name}" for f in files),
        "fastq_md5": ";".join(md5(f) for f in files),
        "fastq_bytes": ";".join(str(f.stat().st_size) for f in files),
        "library_layout": layout,
        "scientific_name": species,
        "read_count": str(read_count),
        "instrument_model": "Illumina NovaSeq 6000",
    }


def test_accessions_resolve_through_filereport_once(dataset, tmp_path):
    from rnaseq.ena import ResolveError, resolve

    root = dataset["root"]
    srr10 = _record(
        "SRR10", "SAMN1", "PRJNA9", [root / "SRR10_1.fastq.gz", root / "SRR10_2.fastq.gz"], "PAIRED"
    )
    srr11 = _record("SRR11", "SAMN2", "PRJNA9", [root / "SRR11.fastq.gz"], "SINGLE")
    with FixtureServer(root) as server:
        server.filereports.update(
            {"PRJNA9": [srr10, srr11], "SRR11": [srr11], "SAMN1": [srr10], "SRP404": []}
        )
        portal = server.url("ena/portal/api")
        sheet = resolve(["PRJNA9", "SRR11", "SAMN1"], portal, tmp_path / "filereport.tsv")
        asked = len(server.requests)
        resolve(["PRJNA9", "SRR11", "SAMN1"], portal, tmp_path / "filereport.tsv")
        assert len(server.requests) == asked, "a resolved list is read from its file, not asked again"
        query = server.requests[0].path
        with pytest.raises(ResolveError) as info:
            resolve(["PRJNA9", "SRR99", "SRP404"], portal, tmp_path / "other.tsv")
    for field in (
        "result=read_run",
        "fastq_ftp",
        "fastq_md5",
        "fastq_bytes",
        "library_layout",
        "scientific_name",
    ):
        assert field in query
    assert "accession SRR99: HTTP 400" in str(info.value) and "Invalid accession: SRR99" in str(info.value)
    assert "accession SRP404: ENA lists no runs" in str(info.value)
    runs = load_sample_sheet(sheet, TX, mirror_base="http://mirror.local/")
    assert list(runs) == ["SRR10", "SRR11"]  # SRR11 and SAMN1's run once each
    assert runs["SRR10"].paired and runs["SRR10"].sample == "SAMN1" and runs["SRR11"].layout == "single"
    assert runs["SRR11"].species == "Formica_simulata" and runs["SRR11"].read_count == 8000
    assert runs["SRR10"].metadata["study_accession"] == "PRJNA9"
    assert (
        runs["SRR10"].fastq[0].locations[0].url
        == "http://mirror.local/vol1/fastq/SRR10/SRR10/SRR10_1.fastq.gz"
    )


def test_a_pasted_filereport_is_a_sample_sheet(dataset, tmp_path):
    root = dataset["root"]
    record = _record("SRR11", "SAMEA7", "PRJEB1", [root / "SRR11.fastq.gz"], "SINGLE", species="Homo sapiens")
    sheet = tmp_path / "filereport_read_run_PRJEB1_tsv.txt"
    sheet.write_text("\t".join(record) + "\n" + "\t".join(record.values()) + "\n")
    run = load_sample_sheet(sheet, {"Homo_sapiens": "hs.fa"})["SRR11"]
    assert (run.species, run.layout, run.sample) == ("Homo_sapiens", "single", "SAMEA7")
    assert run.metadata == {
        "sample_accession": "SAMEA7",
        "study_accession": "PRJEB1",
        "instrument_model": "Illumina NovaSeq 6000",
    }
    assert run.fastq[0].size == (root / "SRR11.fastq.gz").stat().st_size


# ----------------------------------------------------------------------------- kallisto options, genes


def test_kallisto_options_reach_the_command(tmp_path):
    from rnaseq.quantify import KallistoOptions, kallisto_command

    options = KallistoOptions(
        binary="/opt/kallisto-0.52/kallisto",
        strandedness="rf-stranded",
        bootstraps=30,
        seed=7,
        extra_args=["--single-overhang"],
    )
    cmd = [
        str(c) for c in kallisto_command(Path("i"), Path("o"), [Path("r.fq.gz")], False, 2, 250, 25, options)
    ]
    assert cmd[0] == "/opt/kallisto-0.52/kallisto" and cmd[-1] == "r.fq.gz"
    for flags in (
        ["--rf-stranded"],
        ["-b", "30", "--seed", "7"],
        ["--single-overhang"],
        ["-l", "250", "-s", "25"],
    ):
        at = cmd.index(flags[0])
        assert cmd[at : at + len(flags)] == flags
    plain = [str(c) for c in kallisto_command(Path("i"), Path("o"), [Path("a"), Path("b")], True, 1, 0, 0)]
    assert "-b" not in plain and "--fr-stranded" not in plain and "--single" not in plain


def test_bootstraps_without_hdf5_fail_naming_the_fix(dataset, tmp_path):
    from rnaseq.quantify import KallistoOptions

    folder = _fastq_dir(dataset, tmp_path, "SRR10", "paired", 8000)
    with pytest.raises(QuantError, match="wrote no abundance.h5 for 5 bootstraps"):
        quantify_run(
            "SRR10",
            folder,
            dataset["root"] / "tx.idx",
            tmp_path / "SRR10_abundance.tsv",
            tmp_path / "SRR10_run_info.json",
            options=KallistoOptions(bootstraps=5),  # Debian's 0.48 has no HDF5
        )
    assert not (tmp_path / "SRR10_abundance.tsv").exists()


def test_gene_matrices_sum_transcripts_by_gene(tmp_path):
    from rnaseq.merge import gene_matrix, read_tx2gene

    head = "target_id\tlength\teff_length\test_counts\ttpm\n"
    a = tmp_path / "a.tsv"
    a.write_text(head + "t1\t100\t50\t10\t100\nt2\t100\t50\t20\t200\nt3\t100\t50\t5\t700\n")
    matrices = merge_abundances({"SRR1": a})
    table = tmp_path / "tx2gene.tsv"
    table.write_text("transcript_id\tgene_id\nt1\tg1\nt2\tg1\nt3\tg2\n")
    tx2gene = read_tx2gene(table, {"t1", "t2", "t3"})
    counts = gene_matrix(matrices["est_counts"], tx2gene).set_index("gene_id")["SRR1"]
    tpm = gene_matrix(matrices["tpm"], tx2gene).set_index("gene_id")["SRR1"]
    assert counts.to_dict() == {"g1": 30, "g2": 5} and tpm.to_dict() == {"g1": 300, "g2": 700}
    with pytest.raises(MergeError, match="1 transcript\\(s\\) of the index have no gene, e.g. t4"):
        read_tx2gene(table, {"t1", "t2", "t3", "t4"})
