"""Unit tests of the af3 scripts' functions (no Snakemake)."""

import json
import os
import time
from pathlib import Path

import pytest
from af3 import discover, example_inputs, msa_store, organize, seeds, upload


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("af3src") / "out"
    example_inputs.make_tree(root, n_jobs=3, msa_depth=200)
    return root


def test_group_of_default_and_custom_regex():
    assert discover.group_of("SETD6_RPL29_K5me1", "^([^_]+)_") == "SETD6"
    assert discover.group_of("setd6-rpl29", "^([^_]+)_") == ""
    assert discover.group_of("setd6-rpl29_x", r"^([^-]+)-") == "setd6"
    assert discover.group_of("_H3_x", "^([^_]+)_") == ""


def test_chunk_is_stable_and_in_range():
    names = [f"JOB_{i}" for i in range(500)]
    chunks = {n: discover.chunk_of(n, 16) for n in names}
    assert set(chunks.values()) <= {f"{i:03d}" for i in range(16)}
    assert len(set(chunks.values())) == 16
    # Adding jobs never moves an existing one.
    assert all(discover.chunk_of(n, 16) == c for n, c in chunks.items())


def test_discovery_reports_each_broken_job_and_keeps_the_good_ones(small_tree):
    entries = {e.job: e for e in discover.scan_root(small_tree, "^([^_]+)_", 4)}
    complete = {j for j, e in entries.items() if e.status == "complete"}
    assert complete == {s.dirname for s in example_inputs.job_specs(3)}
    expect = {
        "SETD6_H3_missing_model": "missing model file",
        "RPL29_H4_truncated_summary": "truncated JSON",
        "SMYD2_H3_truncated_data": "truncated JSON",
        "SETD6 spaced name": "unsafe job directory name",
        "SETD6..H3_dots": "unsafe job directory name",
        "_H3_no_group": "empty group",
        "PRDM9_H3_msa_only": "only _data.json",
    }
    for job, reason in expect.items():
        assert entries[job].status != "complete", job
        assert reason in entries[job].reason, (job, entries[job].reason)
    v301 = [e for e in entries.values() if e.layout == "v3.0.1"]
    assert all(e.prefix == e.job for e in entries.values() if e.status == "complete" and e.layout)
    assert v301 == [] or all(e.job == e.job.lower() for e in v301)


def test_chunk_manifest_is_rewritten_only_when_its_content_changes(tmp_path):
    path = tmp_path / "chunk-000.tsv"
    assert discover.write_if_changed(path, "a\n")
    before = path.stat().st_mtime_ns
    time.sleep(0.02)
    assert not discover.write_if_changed(path, "a\n")
    assert path.stat().st_mtime_ns == before
    assert discover.write_if_changed(path, "b\n")
    assert path.read_text() == "b\n"


@pytest.mark.parametrize("codec", ["zst", "xz"])
def test_strip_and_restore_are_exact_and_deduplicate(small_tree, tmp_path, codec):
    spec = example_inputs.job_specs(3)[0]
    original = (small_tree / spec.dirname / f"{spec.prefix}_data.json").read_bytes().decode()
    store, job_dir = tmp_path / "_msa_store", tmp_path / "G" / "job"
    job_dir.mkdir(parents=True)
    first = msa_store.strip_text(original, store, job_dir, codec, 3)
    assert len(first.text) < len(original) / 5
    assert {v.field for v in first.values} >= {"unpairedMsa", "pairedMsa"}
    assert {v.chain_ids for v in first.values} == {"A", "B"}
    assert msa_store.restore_text(first.text, job_dir) == original
    # The same chains again: nothing new in the store.
    again = msa_store.strip_text(original, store, job_dir, codec, 3)
    assert not any(v.new_in_store for v in again.values)
    json.loads(first.text)  # still valid JSON, with *MsaPath references AF3 understands
    assert '"unpairedMsaPath": "../../_msa_store/' in first.text


def test_restore_keeps_unusual_formatting_byte_for_byte(tmp_path):
    doc = {
        "sequences": [{"protein": {"id": ["A", "B"], "unpairedMsa": ">q\nMÅK\n", "pairedMsa": ">q\nMK\n"}}]
    }
    variants = [
        json.dumps(doc, indent=1).replace("\n", "\r\n"),  # CRLF
        json.dumps(doc, ensure_ascii=False),  # raw non-ASCII: kept inline, still exact
        json.dumps(doc, separators=(",", ":")),
    ]
    for text in variants:
        result = msa_store.strip_text(text, tmp_path / "_msa_store", tmp_path / "g" / "j")
        assert msa_store.restore_text(result.text, tmp_path / "g" / "j") == text
    assert msa_store.strip_text(variants[1], tmp_path / "_msa_store", tmp_path / "g" / "j").kept_inline == 1
    assert (
        msa_store.strip_text(variants[0], tmp_path / "_msa_store", tmp_path / "g" / "j").values[0].chain_ids
        == "A,B"
    )


def test_restore_rejects_a_corrupted_store_file(tmp_path):
    text = json.dumps({"protein": {"id": "A", "unpairedMsa": ">q\nMKV\n" * 50}}, indent=2)
    job_dir = tmp_path / "g" / "j"
    result = msa_store.strip_text(text, tmp_path / "_msa_store", job_dir)
    stored = next((tmp_path / "_msa_store").rglob("*.zst"))
    stored.write_bytes(msa_store.compress(b"something else", "zst", 3))
    with pytest.raises(msa_store.RestoreError, match="sha256"):
        msa_store.restore_text(result.text, job_dir)
    stored.unlink()
    with pytest.raises(msa_store.RestoreError, match="missing"):
        msa_store.restore_text(result.text, job_dir)


def test_seed_archive_lists_every_sample_file_and_replaces_loose_copies(small_tree, tmp_path):
    spec = example_inputs.job_specs(3)[1]
    job = small_tree / spec.dirname
    samples = sorted(p.name for p in job.glob("seed-*_sample-*"))
    dest = tmp_path / "dest"
    (dest / samples[0]).mkdir(parents=True)  # a loose copy an older organize left
    info = seeds.pack_seeds(job, samples, dest, "zst", 3)
    listed = seeds.list_archive(dest / "seeds.tar.zst", job)
    files = {str(p.relative_to(job)) for p in job.glob("seed-*_sample-*/*")}
    assert {k for k, (kind, _) in listed.items() if kind == "file"} == files
    assert info["members"] == len(files) == len(samples) * 3
    assert not (dest / samples[0]).exists()


def test_seed_archive_verification_catches_a_different_source(small_tree, tmp_path):
    a, b = example_inputs.job_specs(3)[:2]
    dest = tmp_path / "d"
    dest.mkdir()
    samples = sorted(p.name for p in (small_tree / a.dirname).glob("seed-*_sample-*"))
    seeds.pack_seeds(small_tree / a.dirname, samples, dest, "zst", 3)
    other = tmp_path / "other"
    other.mkdir()
    for s in samples:
        (other / s).mkdir()
        for f in (small_tree / a.dirname / s).iterdir():
            (other / s / f.name).write_bytes(f.read_bytes()[:-1] + b"!")
    with pytest.raises(seeds.ArchiveMismatch, match="differs"):
        seeds.list_archive(dest / "seeds.tar.zst", other)


@pytest.mark.parametrize(
    "code,text,kind",
    [
        (0, "", "ok"),
        (8, "max transfer limit reached as set by --max-transfer", "quota"),
        (7, "ERROR : Received upload limit error: googleapi: Error 403: User rate limit exceeded.", "quota"),
        (7, "Received Shared Drive file limit error: teamDriveFileLimitExceeded", "file_limit"),
        (7, "Fatal error received - not attempting retries", "error"),
        (5, "connection refused", "error"),
    ],
)
def test_rclone_outcomes_are_classified(code, text, kind):
    assert upload.classify_rclone(code, text) == kind


def test_connection_string_options_never_reach_the_logs():
    shown = upload.redact_remote(":sftp,host=10.0.0.1,user=u,pass=OBSCURED:backup/af3")
    assert "OBSCURED" not in shown and shown.endswith(":backup/af3")
    assert upload.redact_remote("gdrive:af3_outputs") == "gdrive:af3_outputs"


def test_example_generator_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        example_inputs.write_job(root, example_inputs.job_specs(1)[0], msa_depth=50)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert os.path.exists(a / files[0])


def _packed(small_tree, tmp_path, codec="zst"):
    spec = example_inputs.job_specs(3)[1]
    job = small_tree / spec.dirname
    samples = sorted(p.name for p in job.glob("seed-*_sample-*"))
    dest = tmp_path / "dest"
    dest.mkdir()
    seeds.pack_seeds(job, samples, dest, codec, 3)
    return dest / seeds.archive_name(codec), job, samples


@pytest.mark.parametrize("cut", [1, 4, 5000])
def test_seed_archive_read_back_catches_a_truncated_archive(small_tree, tmp_path, cut):
    # Cutting 1 or 4 bytes removes only the frame checksum: zstandard's stream_reader alone
    # returns every byte of the tar without complaint.
    archive, *_ = _packed(small_tree, tmp_path)
    data = archive.read_bytes()
    archive.write_bytes(data[:-cut])
    with pytest.raises(seeds.ArchiveMismatch):
        seeds.read_archive(archive, compressed=True)
    with pytest.raises(seeds.ArchiveMismatch):
        seeds.list_archive(archive)


def test_seed_archive_read_back_catches_a_flipped_byte_and_trailing_bytes(small_tree, tmp_path):
    archive, *_ = _packed(small_tree, tmp_path)
    data = bytearray(archive.read_bytes())
    archive.write_bytes(bytes(data) + b"\0")
    with pytest.raises(seeds.ArchiveMismatch, match="after the zstd frame"):
        seeds.read_archive(archive, compressed=True)
    data[len(data) // 2] ^= 0x01
    archive.write_bytes(bytes(data))
    with pytest.raises(seeds.ArchiveMismatch):
        seeds.read_archive(archive, compressed=True)


def test_plain_seed_archive_is_checked_by_its_stream_sha256(small_tree, tmp_path):
    archive, job, samples = _packed(small_tree, tmp_path, codec="none")
    listing, digest = seeds.read_archive(archive, compressed=False)
    written, written_digest = seeds.write_archive(job, samples, tmp_path / "again.tar", "none", 0)
    assert listing == written == seeds.source_listing(job, samples)
    assert digest == written_digest != ""
    data = bytearray(archive.read_bytes())
    data[1024] ^= 0x01  # inside the first member's content: the listing alone would not see it
    archive.write_bytes(bytes(data))
    assert seeds.read_archive(archive, compressed=False)[1] != written_digest


def test_pack_seeds_refuses_an_archive_that_reads_back_wrong(small_tree, tmp_path, monkeypatch):
    spec = example_inputs.job_specs(3)[1]
    job = small_tree / spec.dirname
    samples = sorted(p.name for p in job.glob("seed-*_sample-*"))
    dest = tmp_path / "dest"
    (dest / samples[0]).mkdir(parents=True)  # a loose copy: must survive a failed verification
    real = seeds.write_archive

    def truncating(job_dir, sample_dirs, target, codec, level):
        result = real(job_dir, sample_dirs, target, codec, level)
        target.write_bytes(target.read_bytes()[:-3])
        return result

    monkeypatch.setattr(seeds, "write_archive", truncating)
    with pytest.raises(seeds.ArchiveMismatch, match="truncated"):
        seeds.pack_seeds(job, samples, dest, "zst", 3)
    assert not (dest / "seeds.tar.zst").exists() and (dest / samples[0]).is_dir()
    assert not any(p.name.startswith(".tmp-") for p in dest.iterdir())


@pytest.mark.parametrize(
    "value",
    [">q\nMKV-\n", "", 'a"b', "back\\slash", "tab\there", "\x7f", "\x01", "MÅK", "🧬", "\r\n", "/"],
)
def test_fast_json_escaping_equals_json_dumps(value):
    assert msa_store.json_string_body(value) == json.dumps(value)[1:-1]


def test_auto_chunk_count_grows_in_powers_of_two():
    assert discover.chunk_count(5, 10_000) == 5
    counts = {n: discover.chunk_count("auto", n) for n in (0, 1, 256, 257, 300, 1000, 13_700, 10**6)}
    assert counts == {0: 1, 1: 1, 256: 1, 257: 2, 300: 2, 1000: 4, 13_700: 64, 10**6: 512}


def test_one_rsync_per_group_copies_only_the_named_jobs(small_tree, tmp_path):
    specs = example_inputs.job_specs(3)
    group = specs[0].dirname.split("_")[0]
    jobs = [s.dirname for s in specs if s.dirname.startswith(group + "_")]
    organized = tmp_path / "organized"
    (organized / group / "other_job").mkdir(parents=True)  # another chunk's job: left alone
    (organized / group / jobs[0]).mkdir()
    (organized / group / jobs[0] / "seeds.tar.zst").write_bytes(b"ours")  # protected
    (organized / group / jobs[0] / "stale.txt").write_text("left by a killed copy")  # deleted
    (organized / group / f"{group}_vanished").mkdir()  # organized before, gone from the source now
    (organized / group / f"{group}_vanished" / "model.cif").write_text("kept")
    settings = {"root": str(small_tree), "organized": str(organized), "seed_codec": "zst", "timeout": 60}
    rows = [{"job": j, "group": group} for j in [*jobs, f"{group}_vanished"]]
    assert organize.copy_group(rows, settings) == jobs
    for job in jobs:
        top = {
            p.name for p in (small_tree / job).iterdir() if p.is_file() and not p.name.endswith("_data.json")
        }
        got = {p.name for p in (organized / group / job).iterdir()}
        assert got - {"seeds.tar.zst"} == top, job
    assert (organized / group / "other_job").is_dir()
    assert (organized / group / jobs[0] / "seeds.tar.zst").read_bytes() == b"ours"
    assert not (organized / group / jobs[0] / "stale.txt").exists()
    assert (organized / group / f"{group}_vanished" / "model.cif").read_text() == "kept"
    assert sorted(p.name for p in (organized / group).iterdir()) == sorted(
        [*jobs, "other_job", f"{group}_vanished"]
    )


def test_n_chunks_is_a_number_or_auto_in_the_schema():
    from common import config_errors

    schema = Path(__file__).resolve().parents[2] / "config/schemas/af3.schema.yaml"
    assert config_errors({"n_chunks": "auto"}, schema) == config_errors({"n_chunks": 8}, schema) == []
    assert "does not match" in config_errors({"n_chunks": "many"}, schema, where="af3")[0]
    assert "minimum" in config_errors({"n_chunks": 0}, schema, where="af3")[0]


def test_a_job_that_fails_in_a_worker_is_named_and_the_others_are_organized(tmp_path):
    """The worker processes: a job whose _data.json broke after discovery fails alone, by name."""
    root = tmp_path / "out"
    example_inputs.make_tree(root, n_jobs=4, msa_depth=50, broken=False)
    entries = [e for e in discover.scan_root(root, "^([^_]+)_", 1) if e.status == "complete"]
    discover.write_manifests(entries, tmp_path / "jobs.tsv", tmp_path / "problems.tsv", tmp_path / "chunks")
    rows = organize.read_chunk_manifest(tmp_path / "chunks" / "chunk-000.tsv")
    bad = rows[1]
    data_json = root / bad["job"] / f"{bad['prefix']}_data.json"
    data_json.write_text(data_json.read_text().replace('"sequences"', '"sequences', 1))  # invalid JSON
    settings = {
        "root": str(root),
        "organized": str(tmp_path / "organized"),
        "markers": str(tmp_path / "markers"),
        "msa_codec": "zst",
        "msa_level": 3,
        "seed_codec": "zst",
        "seed_level": 1,
        "timeout": 60,
    }
    records, failures = organize.organize_chunk(rows, settings, workers=2)
    assert [job for job, _ in failures] == [bad["job"]]
    assert "JSONDecodeError" in failures[0][1]
    assert sorted(r["job"] for r in records) == sorted(r["job"] for r in rows if r is not bad)
    for r in records:
        assert (tmp_path / "organized" / r["group"] / r["job"] / "seeds.tar.zst").is_file()
    assert not (tmp_path / "markers" / bad["group"] / f"{bad['job']}.json").exists()
