"""Unit tests of the af3 scripts' functions (no Snakemake)."""

import json
import os
import signal
from pathlib import Path

import batches
import pytest
from af3 import discover, example_inputs, msa_store, organize, seeds, upload


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory) -> Path:
    """6 jobs (the 6th in AF3 v3.0.1's layout: lower-case names, unprefixed ranking CSV) and the broken ones."""
    root = tmp_path_factory.mktemp("af3src") / "out"
    example_inputs.make_tree(root, n_jobs=6, msa_depth=200)
    return root


def test_group_of_default_and_custom_regex():
    assert discover.group_of("SETD6_RPL29_K5me1", "^([^_]+)_") == "SETD6"
    assert discover.group_of("setd6-rpl29", "^([^_]+)_") == ""
    assert discover.group_of("setd6-rpl29_x", r"^([^-]+)-") == "setd6"
    assert discover.group_of("_H3_x", "^([^_]+)_") == ""


def test_discovery_reports_each_broken_job_and_keeps_the_good_ones(small_tree):
    entries = {e.job: e for e in discover.scan_root(small_tree, "^([^_]+)_", 4)}
    complete = {j for j, e in entries.items() if e.status == "complete"}
    assert complete == {s.dirname for s in example_inputs.job_specs(6)}
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
    assert (
        [e.job for e in v301]
        == [s.dirname for s in example_inputs.job_specs(6) if s.layout == "v3.0.1"]
        != []
    )
    assert all(e.job == e.job.lower() and e.status == "complete" for e in v301)


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
    """af3's use of the shared floor (tests/test_batches.py): 256 jobs per chunk."""
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
    # The copies land in the jobs' work dirs; an earlier organized copy was moved there to be reused.
    for job in jobs:
        top = {
            p.name for p in (small_tree / job).iterdir() if p.is_file() and not p.name.endswith("_data.json")
        }
        got = {p.name for p in organize.partial_dir(organized, group, job).iterdir()}
        assert got - {"seeds.tar.zst"} == top, job
    work = organize.partial_dir(organized, group, jobs[0])
    assert (work / "seeds.tar.zst").read_bytes() == b"ours"
    assert not (work / "stale.txt").exists()
    assert (organized / group / "other_job").is_dir()
    assert (organized / group / f"{group}_vanished" / "model.cif").read_text() == "kept"
    assert sorted(p.name for p in (organized / group).iterdir()) == sorted(["other_job", f"{group}_vanished"])


def test_n_chunks_is_a_number_or_auto_in_the_schema():
    from common import config_errors

    schema = Path(__file__).resolve().parents[2] / "config/schemas/af3.schema.yaml"
    assert config_errors({"n_chunks": "auto"}, schema) == config_errors({"n_chunks": 8}, schema) == []
    assert "does not match" in config_errors({"n_chunks": "many"}, schema, where="af3")[0]
    assert "minimum" in config_errors({"n_chunks": 0}, schema, where="af3")[0]


def organize_settings(root: Path, tmp_path: Path) -> dict:
    return {
        "root": str(root),
        "organized": str(tmp_path / "organized"),
        "markers": str(tmp_path / "markers"),
        "msa_codec": "zst",
        "msa_level": 3,
        "seed_codec": "zst",
        "seed_level": 1,
        "timeout": 60,
    }


def chunk_rows(root: Path, tmp_path: Path) -> list[dict]:
    entries = [e for e in discover.scan_root(root, "^([^_]+)_", 1) if e.status == "complete"]
    discover.write_manifests(entries, tmp_path / "jobs.tsv", tmp_path / "problems.tsv", tmp_path / "chunks")
    return batches.read_manifest(tmp_path / "chunks" / "chunk-000.tsv")


@pytest.mark.parametrize("damage", ["invalid JSON", "invalid UTF-8"])
def test_a_job_that_fails_in_a_worker_is_named_with_its_file_and_leaves_nothing_organized(tmp_path, damage):
    """A job whose _data.json broke after discovery fails alone, by name and file; the others go on."""
    root = tmp_path / "out"
    example_inputs.make_tree(root, n_jobs=4, msa_depth=50, broken=False)
    rows = chunk_rows(root, tmp_path)
    settings = organize_settings(root, tmp_path)
    bad = rows[1]
    data_json = root / bad["job"] / f"{bad['prefix']}_data.json"
    if damage == "invalid JSON":
        data_json.write_text(data_json.read_text().replace('"sequences"', '"sequences', 1))
    else:  # the case: passes discovery (ends with '}'), fails to decode
        data = data_json.read_bytes()
        data_json.write_bytes(data[:100] + b"\xff\xfe" + data[100:])
    records, failures = organize.organize_chunk(rows, settings, workers=2)
    assert [f["job"] for f in failures] == [bad["job"]]
    assert failures[0]["file"] == str(data_json)
    assert ("JSONDecodeError" if damage == "invalid JSON" else "UnicodeDecodeError") in failures[0]["reason"]
    assert sorted(r["job"] for r in records) == sorted(r["job"] for r in rows if r is not bad)
    organized = tmp_path / "organized"
    for r in records:
        assert (organized / r["group"] / r["job"] / "seeds.tar.zst").is_file()
    # Nothing that looks organized: the half-done copy stays in its work dir, out of the tree.
    assert not (organized / bad["group"] / bad["job"]).exists()
    assert organize.partial_dir(organized, bad["group"], bad["job"]).is_dir()
    assert not (tmp_path / "markers" / bad["group"] / f"{bad['job']}.json").exists()
    # Repaired, the job is organized on the next pass; the others are skipped by their markers.
    example_inputs.write_job(
        root, next(s for s in example_inputs.job_specs(4) if s.dirname == bad["job"]), 50
    )
    records, failures = organize.organize_chunk(rows, settings, workers=1)
    assert failures == [] and (organized / bad["group"] / bad["job"] / "seeds.tar.zst").is_file()
    assert [r["job"] for r in records if not r["skipped"]] == [bad["job"]]
    assert not organize.partial_dir(organized, bad["group"], bad["job"]).exists()


def test_a_worker_killed_mid_job_fails_that_job_alone(tmp_path, monkeypatch):
    """The shared pool's isolation, seen from af3: a SIGKILLed worker (the OOM killer) is one failure."""
    root = tmp_path / "out"
    example_inputs.make_tree(root, n_jobs=4, msa_depth=20, broken=False)
    rows = chunk_rows(root, tmp_path)
    victim = rows[2]["job"]
    real = organize.organize_job

    def dies_on_the_victim(row, settings, copied=False):
        if row["job"] == victim:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(row, settings, copied=copied)

    monkeypatch.setattr(organize, "organize_job", dies_on_the_victim)
    records, failures = organize.organize_chunk(rows, organize_settings(root, tmp_path), workers=2)
    assert [(f["job"], f["file"]) for f in failures] == [(victim, str(root / victim))]
    assert "WorkerDied: killed by SIGKILL" in failures[0]["reason"]
    assert sorted(r["job"] for r in records) == sorted(r["job"] for r in rows if r["job"] != victim)


def test_a_symlink_inside_a_sample_dir_fails_the_job_with_a_clear_reason(tmp_path):
    root = tmp_path / "out"
    example_inputs.make_tree(root, n_jobs=2, msa_depth=20, broken=False)
    rows = chunk_rows(root, tmp_path)
    sample = next((root / rows[0]["job"]).glob("seed-*_sample-*"))
    (sample / "link.cif").symlink_to(next(sample.iterdir()).name)
    _, failures = organize.organize_chunk(rows, organize_settings(root, tmp_path), workers=1)
    assert [f["job"] for f in failures] == [rows[0]["job"]]
    assert "symlink inside a sample dir" in failures[0]["reason"] and "link.cif" in failures[0]["reason"]


def test_every_root_entry_is_a_job_or_a_listed_problem(tmp_path):
    root = tmp_path / "out"
    specs = example_inputs.make_tree(root, n_jobs=2, msa_depth=20, broken=False)
    (root / "notes.txt").write_text("a plain file")
    (root / "dangling").symlink_to(tmp_path / "nowhere")
    (root / "loop_a").symlink_to("loop_b")
    (root / "loop_b").symlink_to("loop_a")
    elsewhere = tmp_path / "elsewhere"
    example_inputs.write_job(elsewhere, example_inputs.job_specs(1, start=50)[0], 20, light=True)
    (root / "linked_job").symlink_to(next(elsewhere.iterdir()))
    # The same job again under AF3's timestamp suffix (the newer one) and an unfinished third try.
    twin = specs[0]
    example_inputs.write_job(
        root,
        example_inputs.JobSpec(
            f"{twin.dirname}_20250301_101500",
            twin.prefix,
            twin.display_name,
            twin.chains,
            twin.seeds,
            twin.samples,
            twin.layout,
        ),
        20,
    )
    (root / f"{twin.dirname}_20250302_090000").mkdir()
    entries = {e.job: e for e in discover.scan_root(root, "^([^_]+)_", 1)}
    assert set(entries) == {p.name for p in root.iterdir()}
    reasons = {job: (e.status, e.reason) for job, e in entries.items()}
    assert reasons["notes.txt"] == ("not a job", "plain file at the root: not a job directory")
    assert reasons["dangling"][0] == "not a job" and "dangling symlink" in reasons["dangling"][1]
    assert "symlink loop" in reasons["loop_a"][1] and "symlink loop" in reasons["loop_b"][1]
    # Decided: a symlink to a job dir is listed, never followed.
    assert "symlink to a directory" in reasons["linked_job"][1] and "not followed" in reasons["linked_job"][1]
    assert reasons[twin.dirname][0] == "duplicate"
    assert f"same job as {twin.dirname}_20250301_101500" in reasons[twin.dirname][1]
    assert entries[f"{twin.dirname}_20250301_101500"].status == "complete"
    assert entries[f"{twin.dirname}_20250302_090000"].status == "incomplete"
    discover.write_manifests(
        list(entries.values()), tmp_path / "jobs.tsv", tmp_path / "p.tsv", tmp_path / "c"
    )
    listed = {line.split("\t")[0] for line in (tmp_path / "p.tsv").read_text().splitlines()[1:]}
    assert {"notes.txt", "dangling", "loop_a", "loop_b", "linked_job", twin.dirname} <= listed


def test_an_empty_root_is_a_warning_line(tmp_path):
    (tmp_path / "root").mkdir()
    entries = discover.scan_root(tmp_path / "root", "^([^_]+)_", "auto")
    stats = discover.write_manifests(entries, tmp_path / "jobs.tsv", tmp_path / "p.tsv", tmp_path / "c")
    assert stats["jobs"] == 0
    assert "root\twarning\tthe AF3 output root is empty" in (tmp_path / "p.tsv").read_text()


def test_smaller_discovery_cases_have_their_own_reasons(tmp_path):
    root = tmp_path / "out"
    specs = example_inputs.make_tree(root, n_jobs=6, msa_depth=20, broken=False)
    a, b, c, d = specs[0], specs[1], specs[2], next(s for s in specs if s.layout == "v3.0.1")
    (root / a.dirname / f"{a.prefix}_model.cif").write_bytes(b"")
    (root / b.dirname / f"{b.prefix}_data.json").unlink()
    (root / c.dirname / f"{c.prefix}_summary_confidences.json").write_text("[1, 2]\n")
    (root / d.dirname / "ranking_scores.csv").unlink()
    entries = {e.job: e for e in discover.scan_root(root, "^([^_]+)_", 1)}
    assert (entries[a.dirname].status, entries[a.dirname].reason) == (
        "incomplete",
        f"empty model file {a.prefix}_model.cif (0 bytes)",
    )
    assert (
        entries[b.dirname].status == "complete" and "no " + f"{b.prefix}_data.json" in entries[b.dirname].note
    )
    assert entries[c.dirname].reason == f"not a JSON object: {c.prefix}_summary_confidences.json"
    assert entries[d.dirname].reason == "missing ranking scores file ranking_scores.csv"  # v3.0.1's name


def test_groups_fold_case_by_default_and_keep_it_on_request():
    assert discover.group_of("kmt5a_h3_k9me2_00035", "^([^_]+)_", "fold") == "KMT5A"
    assert discover.group_of("KMT5A_H3_K9me2_00007", "^([^_]+)_", "fold") == "KMT5A"
    assert discover.group_of("kmt5a_h3_k9me2_00035", "^([^_]+)_", "keep") == "kmt5a"
    from common import config_errors

    schema = Path(__file__).resolve().parents[2] / "config/schemas/af3.schema.yaml"
    assert config_errors({"group_case": "fold"}, schema) == []
    assert config_errors({"group_case": "upper"}, schema, where="af3") != []


def test_non_finite_and_missing_scores_are_empty_listed_and_never_averaged():
    from af3 import tabulate

    def record(job, **summary):
        base = {"ranking_score": 0.5, "ptm": 0.5, "iptm": 0.5, "fraction_disordered": 0.1, "has_clash": 0.0}
        base.update(summary)
        missing = [k for k, v in base.items() if v is KeyError]
        return {
            "group": "G",
            "job": job,
            "prefix": job,
            "layout": "v3.0.2",
            "key": "k",
            "summary": {k: (None if v is KeyError else v) for k, v in base.items()},
            "summary_missing": missing,
            "msa": [],
            "data_json_bytes": 0,
            "data_json_organized_bytes": 0,
            "seeds": {"members": 0, "raw_bytes": 0, "archive_bytes": 0},
        }

    records = [
        record("a", ranking_score=0.25),
        record("b", ranking_score=float("nan"), chain_ptm=[0.5, float("inf")]),
        record("c", iptm=float("inf")),
        record("d", ptm=KeyError),
    ]
    table = tabulate.confidence_table(records)
    assert [r["ranking_score"] for r in table] == [0.25, None, 0.5, 0.5]
    assert table[1]["chain_ptm"] == "[0.5, null]"
    groups = {g["group"]: g for g in tabulate.group_table(table, [])}
    assert groups["G"]["ranking_score_mean"] == round((0.25 + 0.5 + 0.5) / 3, 4)
    assert groups["G"]["iptm_mean"] == 0.5
    bad = {(r["item"], r["reason"]) for r in tabulate.bad_values(records)}
    assert ("b", "ranking_score: not a finite number (nan)") in bad
    assert ("c", "iptm: not a finite number (inf)") in bad
    assert ("d", "ptm: missing") in bad
    assert any(item == "b" and reason.startswith("chain_ptm") for item, reason in bad)


def test_ranking_csv_is_read_with_crlf_line_ends_into_one_row_per_sample(small_tree):
    spec = example_inputs.job_specs(6)[0]
    csv_path = small_tree / spec.dirname / f"{spec.prefix}_ranking_scores.csv"
    assert b"\r\n" in csv_path.read_bytes()
    samples = organize.read_ranking_samples(csv_path)
    assert len(samples) == len(spec.seeds) * spec.samples
    assert all(isinstance(s["ranking_score"], float) for s in samples)
    from af3 import tabulate

    rows = tabulate.sample_table([{"group": "G", "job": spec.dirname, "samples": samples}])
    best = [r for r in rows if r["best"]]
    assert len(best) >= 1 and best[0]["ranking_score"] == max(s["ranking_score"] for s in samples)


def test_a_failed_chunk_gets_a_new_retry_note_each_time(tmp_path):
    from af3 import check

    failures = [
        {"item": "J1", "chunk": "003"},
        {"item": "J2", "chunk": "003"},
        {"item": "J3", "chunk": "001"},
    ]
    assert check.retry_next_time(failures, tmp_path) == ["001", "003"]
    first = check.retry_note(tmp_path, "003")
    assert first == "attempt 1\nJ1\nJ2\n" and check.retry_note(tmp_path, "000") == ""
    check.retry_next_time(failures[:1], tmp_path)
    assert check.retry_note(tmp_path, "003") == "attempt 2\nJ1\n"


def test_an_empty_root_reads_as_a_warning_in_the_summary(tmp_path):
    from af3 import summary, tabulate

    (tmp_path / "root").mkdir()
    entries = discover.scan_root(tmp_path / "root", "^([^_]+)_", "auto")
    discover.write_manifests(entries, tmp_path / "jobs.tsv", tmp_path / "problems.tsv", tmp_path / "c")
    tabulate.write_tsv(tabulate.group_table([], []), tabulate.GROUP_COLUMNS, tmp_path / "groups.tsv")
    (tmp_path / "stats.json").write_text(json.dumps(tabulate.archive_stats([], [])))
    inputs = {k: str(tmp_path / f) for k, f in [("stats", "stats.json"), ("problems", "problems.tsv")]}
    inputs |= {"groups": str(tmp_path / "groups.tsv"), "confidences": "c.tsv", "plot": "p.png"}
    text = "\n".join(summary.summary_lines(inputs, "organized"))
    assert text.startswith("WARNING: the AF3 output root is empty")
    assert "None" not in text and "(n/a;" in text
