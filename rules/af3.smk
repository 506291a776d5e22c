# Workflow af3: organize, archive, compress and upload AlphaFold 3 outputs (13,700+ jobs).
#
#   af3_discover (checkpoint) -> af3_organize_chunk (one per chunk) -> af3_tabulate, af3_plot
#     -> af3_summary (checkpoint: SUMMARY.txt and what the upload would send)
#     -> af3_upload (if a remote is set) and af3_check (fails the run naming each failed job)
# af3_verify (opt-in target) restores every organized job and compares it with the source.
# The DAG follows chunks, not AF3 jobs: discovery puts each job into chunk hash(name) mod n_chunks
# and rewrites a chunk's manifest only when the chunk's jobs change, so a rerun organizes only
# the chunks holding new or changed jobs. Inside a chunk, a worker pool (the rule's threads,
# set in the profiles) runs one rsync + MSA archive + seed archive per job.
from af3.check import retry_note
from af3.discover import read_chunk_ids, unfinished_job_dirs

AF3 = config["af3"]
AF3_OUT = "results/af3"


wildcard_constraints:
    chunk=r"\d{3}",


def af3_source_root():
    """The AF3 output root; config paths are relative to the repository root."""
    root = AF3["source_root"]
    return root if os.path.isabs(root) else os.path.join(workflow.basedir, root)


def af3_chunks():
    """Non-empty chunks, known once discovery has run (re-evaluated after it runs)."""
    return read_chunk_ids(checkpoints.af3_discover.get().output.manifest)


def af3_chunk_states(wildcards):
    return expand(f"{AF3_OUT}/state/chunks/chunk-{{chunk}}.json", chunk=af3_chunks())


def af3_upload_enabled():
    return bool(AF3["upload"]["remote"])


def af3_targets():
    require_path("af3.source_root", af3_source_root(), "directory")
    # The upload is a target of its own, not an input of SUMMARY.txt: after a quota stop, Snakemake
    # 9.27 missed the missing upload state behind the checkpoint-dependent summary.
    upload = [f"{AF3_OUT}/upload/upload.json"] if af3_upload_enabled() else []
    return [f"{AF3_OUT}/SUMMARY.txt", *upload, f"{AF3_OUT}/state/check.json"]


def af3_upload_contents(wildcards):
    """What the upload would send (written by af3_summary only when it changes): its only input,
    so the upload reruns when that changed, not whenever discovery or the tables ran."""
    checkpoints.af3_summary.get()
    return f"{AF3_OUT}/upload/contents.tsv"


AF3_REPORTS = [
    f"{AF3_OUT}/tables/confidences.tsv",
    f"{AF3_OUT}/tables/samples.tsv",
    f"{AF3_OUT}/tables/groups.tsv",
    f"{AF3_OUT}/manifest/problems.tsv",
    f"{AF3_OUT}/manifest/failed.tsv",
]


WORKFLOW_TARGETS["af3"] = af3_targets


rule af3_all:
    input:
        lambda wildcards: af3_targets(),


checkpoint af3_discover:
    input:
        # The root's mtime changes when a job directory appears; the directories of jobs that
        # were unfinished last time change when AF3 finishes them. Either reruns discovery.
        # Force a full rescan with `--forcerun af3_discover`.
        root=lambda wildcards: af3_source_root(),
        unfinished=lambda wildcards: unfinished_job_dirs(
            f"{AF3_OUT}/manifest/jobs.tsv", af3_source_root()
        ),
    output:
        manifest=f"{AF3_OUT}/manifest/jobs.tsv",
        problems=f"{AF3_OUT}/manifest/problems.tsv",
    log:
        "logs/af3/discover.log",
    benchmark:
        "benchmarks/af3/discover.tsv"
    conda:
        "../envs/af3.yaml"
    params:
        root=lambda wildcards: af3_source_root(),
        group_regex=AF3["group_regex"],
        group_case=AF3["group_case"],
        n_chunks=AF3["n_chunks"],
        chunk_dir=f"{AF3_OUT}/manifest/chunks",
    script:
        "../scripts/af3/discover.py"


rule af3_organize_chunk:
    input:
        # Written by discovery only when this chunk's jobs change: its mtime drives reruns.
        chunk=f"{AF3_OUT}/manifest/chunks/chunk-{{chunk}}.tsv",
    output:
        state=f"{AF3_OUT}/state/chunks/chunk-{{chunk}}.json",
    log:
        "logs/af3/organize/chunk-{chunk}.log",
    benchmark:
        "benchmarks/af3/organize/chunk-{chunk}.tsv"
    conda:
        "../envs/af3.yaml"
    threads: 4
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    params:
        settings=lambda wildcards: {
            "root": af3_source_root(),
            "organized": f"{AF3_OUT}/organized",
            "markers": f"{AF3_OUT}/state/jobs",
            "msa_codec": AF3["msa"]["codec"],
            "msa_level": AF3["msa"]["level"],
            "seed_codec": AF3["seeds"]["codec"],
            "seed_level": AF3["seeds"]["level"],
            "timeout": 6 * 3600,
        },
        # Rewritten by af3_check when jobs of this chunk failed: a changed value reruns the chunk,
        # which redoes only the jobs without a current marker.
        retry=lambda wildcards: retry_note(f"{AF3_OUT}/state/retry", wildcards.chunk),
    script:
        "../scripts/af3/organize.py"


rule af3_tabulate:
    input:
        states=af3_chunk_states,
        problems=f"{AF3_OUT}/manifest/problems.tsv",
    output:
        parquet=f"{AF3_OUT}/tables/confidences.parquet",
        tsv=report(f"{AF3_OUT}/tables/confidences.tsv", category="af3"),
        samples=report(f"{AF3_OUT}/tables/samples.tsv", category="af3"),
        groups=report(f"{AF3_OUT}/tables/groups.tsv", category="af3"),
        msa_index=f"{AF3_OUT}/organized/_index/msa_index.tsv",
        stats=f"{AF3_OUT}/tables/archive_stats.json",
        failed=report(f"{AF3_OUT}/manifest/failed.tsv", category="af3"),
        organized=f"{AF3_OUT}/manifest/organized.tsv",
    log:
        "logs/af3/tabulate.log",
    benchmark:
        "benchmarks/af3/tabulate.tsv"
    # Tabulate, plot and summary read the per-chunk states (64 small files at 13,700 jobs) and take a
    # second or two: on SLURM they run in the head process, not in the queue.
    localrule: True
    conda:
        "../envs/af3.yaml"
    params:
        store=f"{AF3_OUT}/organized/_msa_store",
        organized=lambda wildcards, output: os.path.dirname(
            os.path.dirname(output.msa_index)
        ),
    script:
        "../scripts/af3/tabulate.py"


rule af3_plot:
    # Beside af3_tabulate, not after it: both read the chunk states, and each spends most of its
    # time importing its library (matplotlib here, pyarrow there).
    input:
        states=af3_chunk_states,
    output:
        plot=report(f"{AF3_OUT}/plots/ranking_scores.png", category="af3"),
    log:
        "logs/af3/plot.log",
    benchmark:
        "benchmarks/af3/plot.tsv"
    localrule: True
    conda:
        "../envs/af3.yaml"
    script:
        "../scripts/af3/plot.py"


rule af3_upload:
    input:
        contents=af3_upload_contents,
    output:
        state=f"{AF3_OUT}/upload/upload.json",
    log:
        "logs/af3/upload.log",
    benchmark:
        "benchmarks/af3/upload.tsv"
    conda:
        "../envs/af3.yaml"
    resources:
        upload_slots=1,
        runtime=lambda wildcards, attempt: 24 * 60 * attempt,
    params:
        source=f"{AF3_OUT}/organized",
        reports=[*AF3_REPORTS, f"{AF3_OUT}/SUMMARY.txt"],
        remote=AF3["upload"]["remote"],
        max_transfer=AF3["upload"]["max_transfer"],
        flags=AF3["upload"]["flags"],
        check_download=AF3["upload"]["check_download"],
        resume_after_hours=AF3["upload"]["resume_after_hours"],
        state_dir=lambda wildcards, output: os.path.dirname(output.state),
        log_dir="logs/af3/rclone",
    script:
        "../scripts/af3/upload.py"


checkpoint af3_summary:
    # A checkpoint so that the upload's input (the content list written beside SUMMARY.txt, only
    # when it changes) is looked at after this ran.
    input:
        confidences=f"{AF3_OUT}/tables/confidences.tsv",
        samples=f"{AF3_OUT}/tables/samples.tsv",
        groups=f"{AF3_OUT}/tables/groups.tsv",
        stats=f"{AF3_OUT}/tables/archive_stats.json",
        plot=f"{AF3_OUT}/plots/ranking_scores.png",
        problems=f"{AF3_OUT}/manifest/problems.tsv",
        failed=f"{AF3_OUT}/manifest/failed.tsv",
        organized=f"{AF3_OUT}/manifest/organized.tsv",
        manifest=f"{AF3_OUT}/manifest/jobs.tsv",
    output:
        summary=f"{AF3_OUT}/SUMMARY.txt",
    log:
        "logs/af3/summary.log",
    localrule: True
    conda:
        "../envs/af3.yaml"
    params:
        organized=f"{AF3_OUT}/organized",
        upload_remote=AF3["upload"]["remote"],
        upload_state=f"{AF3_OUT}/upload/upload.json",
        reports=AF3_REPORTS,
        contents=f"{AF3_OUT}/upload/contents.tsv",
    script:
        "../scripts/af3/summary.py"


rule af3_check:
    # Last: fails the run naming each job that failed in organize, once the others are tabulated,
    # summarized and (by the upload target) uploaded; the next run retries exactly those.
    input:
        failed=f"{AF3_OUT}/manifest/failed.tsv",
        summary=f"{AF3_OUT}/SUMMARY.txt",
    output:
        f"{AF3_OUT}/state/check.json",
    log:
        "logs/af3/check.log",
    localrule: True
    conda:
        "../envs/af3.yaml"
    params:
        retry_dir=f"{AF3_OUT}/state/retry",
    script:
        "../scripts/af3/check.py"


rule af3_verify:
    # Opt-in (`snakemake af3_verify`): restore every organized job and compare it with the source.
    input:
        organized=f"{AF3_OUT}/manifest/organized.tsv",
    output:
        report=f"{AF3_OUT}/verify/verify.tsv",
    log:
        "logs/af3/verify.log",
    benchmark:
        "benchmarks/af3/verify.tsv"
    conda:
        "../envs/af3.yaml"
    params:
        organized=f"{AF3_OUT}/organized",
        root=lambda wildcards: af3_source_root(),
    script:
        "../scripts/af3/verify.py"


WORKFLOW_VERSIONS["af3"] = {
    "libraries": ["numpy", "pyarrow", "matplotlib", "zstandard"],
    "tools": {"rsync": ["rsync", "--version"], "rclone": ["rclone", "version"]},
}
