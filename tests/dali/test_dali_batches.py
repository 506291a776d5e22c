"""dali in batches: resume from markers, failure isolation, the scratch cleaner's race, inputs that lie,
and the summary table."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from batches import stat_signature
from dali import example_inputs
from dali.aligners import Aligner
from dali.batch import run_batch
from dali.iterative import ProteinError, run_protein
from dali.scratch import JOB_LOCK, clean_stale_scratch
from dali.summarize import write_summary

REPO = Path(__file__).resolve().parents[2]
GOOD = ["AF-EXCYT2-F1", "AF-EXLDH2-F1"]


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    root = tmp_path_factory.mktemp("dali-batch-examples")
    example_inputs.make(root)
    return root


@pytest.fixture
def shadow(tmp_path):
    """A directory shaped like a Snakemake shadow dir: <prefix>/shadow/tmpXXXX."""
    path = tmp_path / "scratch" / "shadow" / "tmpjob"
    path.mkdir(parents=True)
    return path


def copy_inputs(examples, inputs, proteins):
    inputs.mkdir(exist_ok=True)
    for protein in proteins:
        for suffix in (".pdb", "_hits4Dali"):
            (inputs / f"{protein}{suffix}").write_bytes(
                (examples / "inputs" / f"{protein}{suffix}").read_bytes()
            )


def rows_for(inputs, proteins, salt=""):
    return [
        {"protein": p, "signature": stat_signature([inputs / f"{p}.pdb", inputs / f"{p}_hits4Dali"], salt)}
        for p in proteins
    ]


def settings_for(examples, inputs, results, aligner=None):
    return {
        "input_dir": str(inputs),
        "template_dir": str(examples / "ECOD70"),
        "results_dir": str(results),
        "aligner": aligner or Aligner("tmalign", "TMalign", timeout=60),
        "skip_missing_templates": False,
    }


def test_a_rerun_skips_finished_proteins_and_redoes_missing_or_changed_ones(examples, tmp_path, shadow):
    inputs, results = tmp_path / "inputs", tmp_path / "results"
    proteins = [*GOOD, "AF-EXCYT1-F1"]
    copy_inputs(examples, inputs, proteins)
    settings = settings_for(examples, inputs, results)
    state = shadow / "results/dali/batches/batch-000.json"
    first = run_batch(rows_for(inputs, proteins), "000", settings, 2, state, 3600, shadow_dir=shadow)
    assert [r["status"] for r in first] == ["ok"] * 3 and not any(r["reused"] for r in first)
    hits = {p: results / f"{p}_iterativdDali_hits" for p in proteins}
    mtimes = {p: h.stat().st_mtime_ns for p, h in hits.items()}
    # a batch killed while the last protein was in flight: its marker was never written
    (results / "AF-EXCYT1-F1.iterativeDali.done").unlink()
    # and one protein's inputs changed since (its signature in the manifest differs)
    rows = rows_for(inputs, proteins)
    rows[1]["signature"] = "changed"
    second = run_batch(rows, "000", settings, 2, state, 3600, shadow_dir=shadow)
    assert [r["reused"] for r in second] == [True, False, False]
    assert hits[GOOD[0]].stat().st_mtime_ns == mtimes[GOOD[0]]
    assert hits[GOOD[1]].stat().st_mtime_ns != mtimes[GOOD[1]]
    marker = json.loads((results / f"{GOOD[1]}.iterativeDali.done").read_text())
    assert marker["signature"] == "changed" and marker["status"] == "ok" and marker["batch"] == "000"
    saved = json.loads(state.read_text())
    assert [r["protein"] for r in saved["proteins"]] == proteins


def test_a_bad_input_and_a_killed_protein_process_fail_those_proteins_alone(examples, tmp_path, shadow):
    inputs, results = tmp_path / "inputs", tmp_path / "results"
    copy_inputs(examples, inputs, GOOD)
    (inputs / "AF-NOTPDB-F1.pdb").write_text("this is not a PDB file\n")
    (inputs / "AF-NOTPDB-F1_hits4Dali").write_text("000000102\n")
    copy_inputs(examples, inputs, ["AF-EXCYT1-F1"])
    for suffix in (".pdb", "_hits4Dali"):
        (inputs / f"AF-EXCYT1-F1{suffix}").rename(inputs / f"AF-BOOM-F1{suffix}")
    # the aligner kills the process of protein AF-BOOM-F1 (as the OOM killer would), and only that one
    aligner = tmp_path / "aligner.sh"
    aligner.write_text(
        '#!/bin/sh\ncase "$PWD" in *AF-BOOM-F1*) kill -9 $PPID; sleep 5;; esac\nexec TMalign "$@"\n'
    )
    aligner.chmod(0o755)
    proteins = [GOOD[0], "AF-NOTPDB-F1", "AF-BOOM-F1", GOOD[1]]
    settings = settings_for(examples, inputs, results, Aligner("tmalign", str(aligner), timeout=60))
    state = shadow / "state.json"
    records = {
        r["protein"]: r
        for r in run_batch(rows_for(inputs, proteins), "007", settings, 2, state, 3600, shadow)
    }
    assert records[GOOD[0]]["status"] == records[GOOD[1]]["status"] == "ok"
    assert records[GOOD[0]]["hits"] >= 2
    assert records["AF-NOTPDB-F1"]["status"] == "failed"
    assert "AF-NOTPDB-F1.pdb: no ATOM records" in records["AF-NOTPDB-F1"]["error"]
    assert records["AF-BOOM-F1"]["status"] == "failed"
    assert "killed by SIGKILL" in records["AF-BOOM-F1"]["error"]
    for protein in proteins:
        marker = json.loads((results / f"{protein}.iterativeDali.done").read_text())
        assert marker["status"] == records[protein]["status"]
        assert (results / f"{protein}_iterativdDali_hits").exists() == (marker["status"] == "ok")


# --- the stale-scratch cleaner and a finished job -------------------------------------------------

# The job: hold the lock, write an output, stamp the directory finished, release the lock and exit.
JOB = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from dali.scratch import hold_job_lock, mark_finished
shadow = Path(sys.argv[1])
with hold_job_lock(shadow):
    (shadow / "results").mkdir()
    (shadow / "results" / "batch-000.json").write_text("{}")
    mark_finished(shadow)
"""
# Stands in for the Snakemake process of the job (its command line names snakemake): it runs the
# job, says so, then waits (on stdin) before it would move the outputs out of the shadow directory.
UNSHADOWER = """
import subprocess, sys
subprocess.run([sys.executable, "-c", sys.argv[1], sys.argv[2], sys.argv[3]], check=True)
print("job finished", flush=True)
sys.stdin.read()
"""


def test_a_finished_job_is_never_cleaned_before_snakemake_moves_its_outputs(tmp_path):
    """Issue 13's race: the job released its lock, its Snakemake has not moved the outputs yet, and
    the next job on the node finds a free lock older than the grace time. Before the fix the
    cleaner removed the directory and the finished job failed on its missing output."""
    prefix = tmp_path / "scratch"
    finished, other = prefix / "shadow" / "tmpfinished", prefix / "shadow" / "tmpother"
    finished.mkdir(parents=True)
    other.mkdir()
    snakemake = subprocess.Popen(
        [sys.executable, "-c", UNSHADOWER, JOB, str(finished), str(REPO / "scripts"), "snakemake"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert snakemake.stdout.readline() == "job finished\n"  # the state: lock released, outputs there
        old = time.time() - 10
        os.utime(finished / JOB_LOCK, (old, old))
        removed = clean_stale_scratch(prefix, stale_after_s=3600, keep=other)
        assert removed == []
        assert (finished / "results" / "batch-000.json").exists()
    finally:
        snakemake.stdin.close()
        snakemake.wait(timeout=60)
    # Its Snakemake is gone without moving the outputs (killed): now nobody ever will.
    assert clean_stale_scratch(prefix, stale_after_s=3600, keep=other) == [finished]


# --- inputs that lie ---------------------------------------------------------------------------


def query_lines(examples, protein=GOOD[0]):
    return (examples / "inputs" / f"{protein}.pdb").read_text().splitlines()


def run_query(examples, shadow, query, hits=None, aligner=None):
    return run_protein(
        query,
        hits or examples / "inputs" / f"{GOOD[0]}_hits4Dali",
        examples / "ECOD70",
        aligner or Aligner("tmalign", "TMalign", timeout=60),
        1,
        shadow / "c",
        shadow.parent.parent / "dali-template-cache",
    )


def test_insertion_codes_are_refused_naming_the_residues(examples, shadow, tmp_path):
    """184 and 184A are two residues to the aligner but one number to DPAM: every pair after them
    would shift silently. The query is refused, naming the residues."""
    lines = query_lines(examples)
    out = []
    for line in lines:
        if line.startswith("ATOM") and int(line[22:26]) >= 50:
            number = int(line[22:26]) - 1  # 49, 49A, 50, 51, ...: one inserted residue
            line = f"{line[:22]}{number:4d}{'A' if number == 49 else ' '}{line[27:]}"
        out.append(line)
    query = tmp_path / "icode.pdb"
    query.write_text("\n".join(out) + "\n")
    with pytest.raises(ProteinError, match=r"icode\.pdb: residues with insertion codes \(49A; 1 in all\)"):
        run_query(examples, shadow, query)


def test_residue_numbers_out_of_order_are_refused(examples, shadow, tmp_path):
    atoms = [line for line in query_lines(examples) if line.startswith("ATOM")]
    first = [line for line in atoms if int(line[22:26]) <= 60]
    query = tmp_path / "order.pdb"
    query.write_text("\n".join([line for line in atoms if int(line[22:26]) > 60] + first) + "\n")
    with pytest.raises(ProteinError, match="do not increase along the file"):
        run_query(examples, shadow, query)


def test_a_multi_model_query_uses_its_first_model_and_says_so(examples, shadow, tmp_path):
    atoms = [line for line in query_lines(examples) if line.startswith("ATOM")]
    query = tmp_path / "models.pdb"
    query.write_text(
        "\n".join(["MODEL        1", *atoms, "ENDMDL", "MODEL        2", *atoms, "ENDMDL", "END"]) + "\n"
    )
    text, stats = run_query(examples, shadow, query)
    reference, _ = run_query(examples, shadow, examples / "inputs" / f"{GOOD[0]}.pdb")
    assert text == reference
    assert stats["notes"] == ["models.pdb: 2 models, the first one used"]


def test_a_query_without_ca_atoms_is_refused(examples, shadow, tmp_path):
    query = tmp_path / "noca.pdb"
    query.write_text("\n".join(line for line in query_lines(examples) if line[12:16].strip() != "CA") + "\n")
    with pytest.raises(ProteinError, match=r"noca\.pdb: no CA atoms"):
        run_query(examples, shadow, query)


def test_a_template_that_is_not_a_pdb_is_named(examples, shadow, tmp_path):
    templates = tmp_path / "ECOD70"
    templates.mkdir()
    (templates / "000000999.pdb").write_bytes(b"\x1f\x8b\x08 gzip bytes, not a PDB")
    hits = tmp_path / "hits"
    hits.write_text("000000999\n")
    with pytest.raises(
        ProteinError, match=r"candidate 000000999: .*template 000000999: .* is not a PDB file"
    ):
        run_protein(
            examples / "inputs" / f"{GOOD[0]}.pdb",
            hits,
            templates,
            Aligner("tmalign", "TMalign", timeout=60),
            1,
            shadow / "c",
            shadow.parent.parent / "dali-template-cache",
        )


def test_an_aligner_error_names_its_cause_not_only_its_last_lines(examples, shadow, tmp_path):
    """gfortran prints the runtime error first and a backtrace after it."""
    crash = tmp_path / "tmalign.sh"
    backtrace = "\n".join(f"#{i}  0x7f00 in ??" for i in range(12))
    crash.write_text(
        "#!/bin/sh\necho 'At line 1234 of file TMalign.f' >&2\n"
        "echo 'Fortran runtime error: End of file' >&2\n"
        f"cat >&2 <<'EOF'\n{backtrace}\nEOF\nexit 2\n"
    )
    crash.chmod(0o755)
    with pytest.raises(ProteinError, match="tmalign.sh exited 2: Fortran runtime error: End of file"):
        run_query(
            examples, shadow, examples / "inputs" / f"{GOOD[0]}.pdb", aligner=Aligner("tmalign", str(crash))
        )


def test_an_aligner_killed_by_a_signal_is_named_by_the_signal(examples, shadow, tmp_path):
    fpe = tmp_path / "fpe.sh"
    fpe.write_text("#!/bin/sh\nkill -FPE $$\n")
    fpe.chmod(0o755)
    with pytest.raises(ProteinError, match="fpe.sh killed by SIGFPE"):
        run_query(
            examples, shadow, examples / "inputs" / f"{GOOD[0]}.pdb", aligner=Aligner("tmalign", str(fpe))
        )


def test_the_summary_keeps_integers_integer_and_one_line_per_protein(tmp_path):
    state = tmp_path / "batch-000.json"
    ok = {"protein": "A", "status": "ok", "error": "", "candidates": 5, "hits": 3, "cache_hits": 1}
    ok |= {"cache_misses": 4, "aligner_calls": 6, "candidates_with_hits": 2, "workers": 8, "seconds": 1.5}
    failed = {"protein": "B", "status": "failed", "error": "line one\n\tline two", "batch": "000"}
    state.write_text(json.dumps({"batch": "000", "proteins": [failed, ok]}))
    table = tmp_path / "dali_summary.tsv"
    write_summary([state], table, tmp_path / "SUMMARY.txt", str(tmp_path))
    lines = table.read_text().splitlines()
    assert len(lines) == 3
    header = lines[0].split("\t")
    a = dict(zip(header, lines[1].split("\t"), strict=True))
    b = dict(zip(header, lines[2].split("\t"), strict=True))
    assert (a["candidates"], a["hits"], a["cache_misses"], a["workers"]) == ("5", "3", "4", "8")
    assert b["candidates"] == "" and b["hits"] == ""
    assert b["error"] == "line one\\n\\tline two"
