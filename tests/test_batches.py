"""The shared batch floor (scripts/batches.py): plan, manifests, markers, worker pool, progress."""

from __future__ import annotations

import logging
import os
import signal
import time

import batches
import pytest


def test_batch_of_is_stable_when_other_items_come_and_go():
    names = [f"protein-{i}" for i in range(500)]
    before = {n: batches.batch_of(n, 16) for n in names}
    after = batches.assign_batches(names[:200] + [f"new-{i}" for i in range(300)], 16)
    assert all(after[n] == before[n] for n in names[:200])
    assert set(before.values()) == {f"{i:03d}" for i in range(16)}


def test_batch_count_auto_is_a_power_of_two_at_or_above_items_per_target():
    assert batches.batch_count(5, 10_000) == 5
    assert batches.batch_count("auto", 0, 256) == 1
    assert batches.batch_count("auto", 256, 256) == 1
    assert batches.batch_count("auto", 257, 256) == 2
    assert batches.batch_count("auto", 28_000, 256) == 128
    assert batches.batch_count("auto", 28_000, 1000) == 32
    assert batches.batch_count("auto", 10**9, 1) == batches.MAX_BATCHES
    with pytest.raises(ValueError):
        batches.batch_count(0, 10)


def test_write_if_changed_keeps_the_mtime_of_an_unchanged_file(tmp_path):
    path = tmp_path / "sub" / "m.tsv"
    assert batches.write_if_changed(path, "a\n")
    os.utime(path, (1, 1))
    assert not batches.write_if_changed(path, "a\n")
    assert path.stat().st_mtime == 1
    assert batches.write_if_changed(path, "b\n")
    assert path.read_text() == "b\n"
    assert [p.name for p in path.parent.iterdir()] == ["m.tsv"]  # no temporary file left


def test_only_the_manifests_of_changed_batches_are_rewritten_and_empty_ones_go(tmp_path):
    columns = ["name", "signature"]
    rows = [{"name": n, "signature": "s1", "batch": batches.batch_of(n, 4)} for n in "abcdefgh"]
    written = batches.write_batch_manifests(rows, columns, tmp_path)
    assert written == sorted({r["batch"] for r in rows})
    for path in tmp_path.iterdir():
        os.utime(path, (1, 1))
    changed_row = rows[0]
    changed_row["signature"] = "s2"
    assert batches.write_batch_manifests(rows, columns, tmp_path) == [changed_row["batch"]]
    untouched = [p for p in tmp_path.iterdir() if p.name != f"batch-{changed_row['batch']}.tsv"]
    assert untouched and all(p.stat().st_mtime == 1 for p in untouched)
    # the batch of "a" alone: its manifest only; the others are removed
    only = [r for r in rows if r["batch"] == changed_row["batch"]]
    batches.write_batch_manifests(only, columns, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [f"batch-{changed_row['batch']}.tsv"]
    assert [r["name"] for r in batches.read_manifest(tmp_path / f"batch-{changed_row['batch']}.tsv")] == [
        r["name"] for r in only
    ]


def test_manifest_cells_survive_tabs_newlines_and_backslashes(tmp_path):
    rows = [{"name": "a\tb\nc\\t", "batch": "000", "n": 3}]
    batches.write_batch_manifests(rows, ["name", "n"], tmp_path, prefix="chunk")
    back = batches.read_manifest(tmp_path / "chunk-000.tsv")
    assert back == [{"name": "a\tb\nc\\t", "n": "3"}]


def test_read_batch_ids_lists_the_non_empty_batches_of_the_rows_asked_for(tmp_path):
    path = tmp_path / "plan.tsv"
    rows = [
        {"item": "x", "batch": "003", "status": "complete"},
        {"item": "y", "batch": "001", "status": "complete"},
        {"item": "z", "batch": "007", "status": "incomplete"},
        {"item": "w", "batch": "", "status": "complete"},
    ]
    path.write_text(batches.tsv_text(rows, ["item", "batch", "status"]))
    assert batches.read_batch_ids(path) == ["001", "003", "007"]
    assert batches.read_batch_ids(path, only={"status": "complete"}) == ["001", "003"]


def test_a_marker_counts_only_with_its_signature_and_a_cut_one_counts_as_none(tmp_path):
    marker = tmp_path / "m" / "item.json"
    assert batches.current_marker(marker, "sig") is None
    batches.write_marker(marker, {"signature": "sig", "status": "ok"})
    assert batches.current_marker(marker, "sig") == {"signature": "sig", "status": "ok"}
    assert batches.current_marker(marker, "other") is None
    marker.write_text('{"signature": "sig", "sta')  # what a non-atomic write cut by a kill leaves
    assert batches.current_marker(marker, "sig") is None


def test_stat_signature_changes_with_the_files_and_the_settings(tmp_path):
    a = tmp_path / "a"
    a.write_text("1")
    first = batches.stat_signature([a], {"aligner": "tmalign"})
    assert batches.stat_signature([a], {"aligner": "tmalign"}) == first
    assert batches.stat_signature([a], {"aligner": "dali"}) != first
    a.write_text("22")
    assert batches.stat_signature([a], {"aligner": "tmalign"}) != first
    assert batches.stat_signature([tmp_path / "gone"]) != batches.stat_signature([a])


def _work(item):
    """Items of the pool tests: an int is squared; strings say how to fail."""
    if item == "raise":
        raise ValueError("bad item")
    if item == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    if item == "hang":
        time.sleep(600)
    if item == "exit":
        raise SystemExit(3)
    return item * item


@pytest.mark.parametrize("workers", [1, 3])
def test_one_failing_item_never_stops_the_others(workers):
    items = [1, 2, "raise", 3, "exit", 4]
    records, failures = batches.run_items(items, _work, workers)
    assert records == [1, 4, 9, 16]
    assert failures[0] == ("raise", "ValueError: bad item")
    assert failures[1][0] == "exit"


def test_a_killed_or_hung_worker_fails_its_item_alone():
    items = [1, "crash", 2, "hang", 3, 4, 5]
    records, failures = batches.run_items(items, _work, 3, item_timeout_s=3, name=lambda i: f"item {i}")
    assert records == [1, 4, 9, 16, 25]
    assert failures[0][0] == "item crash" and "SIGKILL" in failures[0][1]
    assert failures[1][0] == "item hang" and failures[1][1].startswith("TimeoutError")


def test_the_queue_is_dynamic_a_slow_item_does_not_hold_back_the_rest(tmp_path):
    """With 2 workers, the fast items all finish while the slow one still runs (no fixed layers)."""
    gate = tmp_path / "gate"

    def work(item):
        if item == "slow":
            while not gate.exists():  # released only when every fast item has finished
                time.sleep(0.01)
            return "slow done"
        (tmp_path / f"done-{item}").touch()
        if len(list(tmp_path.glob("done-*"))) == 6:
            gate.touch()
        return item

    records, failures = batches.run_items(["slow", *range(6)], work, 2, item_timeout_s=120)
    assert failures == []
    assert records == ["slow done", *range(6)]


def test_progress_lines_are_rate_limited_and_the_last_one_always_comes(caplog):
    now = [0.0]
    progress = batches.Progress(100, "batch 007", min_interval_s=10, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="hpcpipe"):
        for _ in range(99):
            now[0] += 0.5
            progress.advance()
        now[0] += 0.5
        progress.advance()
    lines = [r.getMessage() for r in caplog.records]
    # one line per 10 s (20 items at 2/s), the last one when the 100th is done
    assert [line.split(":")[1].split(" of")[0].strip() for line in lines] == ["20", "40", "60", "80", "100"]
    assert lines[0] == "batch 007: 20 of 100 done, 2.00/s, ETA 40 s"
    assert lines[-1] == "batch 007: 100 of 100 done, 2.00/s, done"


def test_byte_progress_reads_in_megabytes(caplog):
    """A long download's progress: bytes as MB, the rate in MB/s, the time left."""
    now = [0.0]
    progress = batches.Progress(
        400_000_000, "SRR1_1.fastq.gz", min_interval_s=30, clock=lambda: now[0], unit="bytes"
    )
    with caplog.at_level(logging.INFO, logger="hpcpipe"):
        for _ in range(40):
            now[0] += 1.0
            progress.advance(2_000_000)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["SRR1_1.fastq.gz: 60.0 of 400.0 MB done, 2.00 MB/s, ETA 170 s"]
    # resumed at byte 60 MB: the rate counts this attempt's bytes only (2 MB/s, not 8 MB/s)
    resumed = batches.Progress(100_000_000, "x", clock=lambda: now[0], unit="bytes", done=60_000_000)
    now[0] += 10
    resumed.advance(20_000_000)
    assert resumed.line() == "x: 80.0 of 100.0 MB done, 2.00 MB/s, ETA 10 s"
