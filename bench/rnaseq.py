"""Benchmark of the rnaseq workflow: N runs served by a bandwidth-limited loopback HTTP server.

In one invocation it measures
  1. the sequential baseline (the seed's old method): index, then for each run download + verify,
     then kallisto, one after the other, by calling the workflow's own functions in-process;
  2. the ideal pipeline bound computed from those measured stage times: downloads run at the cap
     in parallel (per-connection bandwidth is the limit, as with ENA), each kallisto starts as soon
     as its run is downloaded and a quant slot is free, zero scheduling overhead;
  3. the workflow itself under Snakemake (profiles/local, the same caps), wall time end to end,
     including Snakemake's start-up, with the peak disk taken by FASTQs in flight.

    .venv/bin/python bench/rnaseq.py                  # 12 runs, ~11 MB each, 2 MB/s per connection
    .venv/bin/python bench/rnaseq.py --runs 20 --rate 4e6
"""

import argparse
import hashlib
import heapq
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml
from startup import print_startup

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from rnaseq.download import DownloadSettings, download_run  # noqa: E402
from rnaseq.http_fixture import FixtureServer  # noqa: E402
from rnaseq.merge import merge_abundances, plot_qc, qc_table  # noqa: E402
from rnaseq.quantify import build_index, quantify_run  # noqa: E402
from rnaseq.samples import load_sample_sheet  # noqa: E402
from rnaseq.simulate import make_transcriptome, random_abundances, simulate_reads, write_fasta  # noqa: E402

SPECIES = "Formica_simulata"


def make_data(root: Path, runs: int, fragments: int) -> list[str]:
    """Simulated paired runs under root/serve/ena (kept between invocations)."""
    serve = root / "serve" / "ena"
    serve.mkdir(parents=True, exist_ok=True)
    transcripts = make_transcriptome(300, seed=1)
    if not (root / "tx.fa").exists():
        write_fasta(transcripts, root / "tx.fa")
    names = [f"SRR{8800001 + i}" for i in range(runs)]
    for i, run in enumerate(names):
        if not (serve / f"{run}_2.fastq.gz").exists():
            ab = random_abundances(list(transcripts), seed=100 + i)
            simulate_reads(transcripts, ab, fragments, serve / run, run, True, seed=i)
    return names


def write_sheet(path: Path, server: FixtureServer, serve: Path, names: list[str]) -> None:
    lines = ["run\tsample\tlayout\tfastq_ftp\tfastq_md5\tfastq_bytes"]
    for run in names:
        files = [serve / "ena" / f"{run}_{m}.fastq.gz" for m in (1, 2)]
        lines.append(
            "\t".join(
                [
                    run,
                    f"s_{run}",
                    "paired",
                    ";".join(server.url(f"ena/{f.name}") for f in files),
                    ";".join(hashlib.md5(f.read_bytes()).hexdigest() for f in files),
                    ";".join(str(f.stat().st_size) for f in files),
                ]
            )
        )
    path.write_text("\n".join(lines) + "\n")


def sequential(root: Path, sheet: Path, names: list[str], threads: int) -> dict:
    """Run every stage one after the other in this process; return the time of each."""
    work = root / "sequential"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    runs = load_sample_sheet(sheet, {SPECIES: str(root / "tx.fa")}, sources=["ena"])
    t0 = time.monotonic()
    build_index(root / "tx.fa", work / "tx.idx")
    index_s = time.monotonic() - t0
    downloads, quants, metrics = [], [], []
    for run in names:
        t0 = time.monotonic()
        download_run(runs[run], work / "fastq" / run, work / "partial" / run, DownloadSettings(["ena"]))
        downloads.append(time.monotonic() - t0)
        t0 = time.monotonic()
        out = work / "quant" / run
        out.mkdir(parents=True)
        quant = quantify_run(
            run, work / "fastq" / run, work / "tx.idx", out / "a.tsv", out / "i.json", threads=threads
        )
        shutil.rmtree(work / "fastq" / run)
        quants.append(time.monotonic() - t0)
        reads = json.loads((out / "i.json").read_text())
        metrics.append(out / "m.json")
        metrics[-1].write_text(
            json.dumps({"run": run, "layout": "paired", **quant, "spots": reads["n_processed"]})
        )
    t0 = time.monotonic()
    merge_abundances({run: work / "quant" / run / "a.tsv" for run in names})
    plot_qc(qc_table(metrics), work / "qc.png")
    merge_s = time.monotonic() - t0
    return {"index": index_s, "download": downloads, "quant": quants, "merge": merge_s}


def ideal_bound(stages: dict, download_slots: int, quant_slots: int, on_disk: int) -> float:
    """Makespan of a perfect pipeline with the measured stage times (list scheduling, FIFO), under
    the workflow's three caps: downloads, kallisto runs, and runs whose FASTQs are on disk (from
    the start of a run's download to the end of its kallisto)."""
    dl_free = [0.0] * download_slots
    q_free = [stages["index"]] * quant_slots  # kallisto needs the index; downloads need not wait
    disk_free = [0.0] * on_disk
    for heap in (dl_free, q_free, disk_free):
        heapq.heapify(heap)
    end = 0.0
    for d, q in zip(stages["download"], stages["quant"], strict=True):
        start = max(heapq.heappop(dl_free), heapq.heappop(disk_free))
        heapq.heappush(dl_free, start + d)
        q_start = max(start + d, heapq.heappop(q_free))
        heapq.heappush(q_free, q_start + q)
        heapq.heappush(disk_free, q_start + q)
        end = max(end, q_start + q)
    return end + stages["merge"]


def watch_disk(folder: Path, stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        total = 0
        for path in list(folder.glob("results/rnaseq/fastq/*/*")) + list(
            folder.glob("results/rnaseq/partial/*/*")
        ):
            try:
                total += path.stat().st_size
            except OSError:
                pass
        peak[0] = max(peak[0], total)
        stop.wait(0.1)


def workflow_round(root: Path, server: FixtureServer, names: list[str], args) -> dict:
    """One round: the sequential baseline, the ideal bound from its stage times, then the workflow
    from scratch on the same files."""
    sheet = root / "samples.tsv"
    write_sheet(sheet, server, root / "serve", names)
    stages = sequential(root, sheet, names, threads=1)
    seq_s = stages["index"] + sum(stages["download"]) + sum(stages["quant"]) + stages["merge"]
    ideal_s = ideal_bound(stages, args.download_slots, args.quant_slots, args.on_disk)

    work = root / "workflow"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    config = {
        "rnaseq": {
            "enabled": True,
            "samples": str(sheet),
            "transcriptomes": {SPECIES: str(root / "tx.fa")},
            "sources": ["ena"],
            "download": {"max_runs_on_disk": args.on_disk},
        }
    }
    (work / "bench.yaml").write_text(yaml.safe_dump(config))
    cmd = [
        str(REPO / ".venv" / "bin" / "snakemake"), "rnaseq_all",
        "--snakefile", str(REPO / "Snakefile"), "--profile", str(REPO / "profiles" / "local"),
        "--configfile", str(work / "bench.yaml"), "--cores", str(args.quant_slots),
        "--resources", f"download_slots={args.download_slots}", f"quant_slots={args.quant_slots}",
    ]  # fmt: skip
    stop, peak = threading.Event(), [0]
    watcher = threading.Thread(target=watch_disk, args=(work, stop, peak), daemon=True)
    watcher.start()
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    wall = time.monotonic() - t0
    stop.set()
    watcher.join()
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:])
        raise SystemExit(f"workflow failed (exit {proc.returncode})")
    return {"stages": stages, "seq_s": seq_s, "ideal_s": ideal_s, "wall": wall, "peak": peak[0]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--fragments", type=int, default=60000, help="read pairs per run")
    parser.add_argument("--rate", type=float, default=2e6, help="bytes/s per connection")
    parser.add_argument("--download-slots", type=int, default=5)
    parser.add_argument("--quant-slots", type=int, default=2)
    parser.add_argument("--on-disk", type=int, default=5, help="rnaseq.download.max_runs_on_disk")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of baseline + workflow; ratios are medians"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "rnaseq")
    args = parser.parse_args()
    print_startup(REPO / ".venv" / "bin")

    root = args.out.resolve()
    names = make_data(root, args.runs, args.fragments)
    sample_bytes = sum((root / "serve" / "ena" / f"{names[0]}_{m}.fastq.gz").stat().st_size for m in (1, 2))
    with FixtureServer(root / "serve", rate=args.rate) as server:
        rounds = [workflow_round(root, server, names, args) for _ in range(args.rounds)]

    print(f"rnaseq benchmark: {len(names)} paired runs x {sample_bytes / 1e6:.1f} MB, "
          f"{args.rate / 1e6:g} MB/s per connection, download_slots={args.download_slots}, "
          f"quant_slots={args.quant_slots}, max_runs_on_disk={args.on_disk}, {args.quant_slots} cores, "
          f"{len(rounds)} rounds")  # fmt: skip
    for i, r in enumerate(rounds, 1):
        mean_d = sum(r["stages"]["download"]) / len(names)
        mean_q = sum(r["stages"]["quant"]) / len(names)
        print(f"  round {i}: per run (solo) download+verify {mean_d:.2f} s, kallisto {mean_q:.2f} s, "
              f"index {r['stages']['index']:.2f} s; sequential {r['seq_s']:.1f} s, "
              f"ideal bound {r['ideal_s']:.1f} s, workflow {r['wall']:.1f} s "
              f"({r['wall'] / r['ideal_s']:.2f}x ideal)")  # fmt: skip
    to_ideal = [r["wall"] / r["ideal_s"] for r in rounds]
    speedup = [r["seq_s"] / r["wall"] for r in rounds]
    peak = max(r["peak"] for r in rounds)
    print(f"  ratio to ideal bound (median)   : {statistics.median(to_ideal):8.2f} x   "
          f"(rounds {min(to_ideal):.2f}-{max(to_ideal):.2f}; goal <= 1.15)")  # fmt: skip
    print(f"  speed-up over sequential (median): {statistics.median(speedup):7.2f} x   (seed: 2.5x)")
    print(f"  peak FASTQ on disk              : {peak / 1e6:8.1f} MB = {peak / sample_bytes:.1f} runs "
          f"(max_runs_on_disk = {args.on_disk}; without it up to every run downloaded so far)")  # fmt: skip


if __name__ == "__main__":
    main()
