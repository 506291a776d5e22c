"""Hostile item names in every workflow: rejected with a clear message, or reported and skipped.

Each scenario below runs the real Snakefile once with ``profiles/local``, in a work dir inside a
fresh sandbox that also holds the scenario's inputs, and carries every hostile name at once
(all of these workflows report their bad items together). For every scenario and name we check
what a user would check:

* the run stops before any job with a message that names the item and says what is allowed,
  or the item is reported as bad while the good items finish;
* no file named ``PWNED`` appears or is touched (in the sandbox, the test's cwd, the repository,
  /tmp; one left there by something else must keep its modification time): no name was ever
  read by a shell;
* nothing in the sandbox changed outside the work dir, inputs are byte-identical, and inside
  the work dir only the workflow's own ``results/``, ``logs/``, ``benchmarks/`` and Snakemake's
  ``.snakemake/`` were written.
"""

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from af3 import discover
from af3 import example_inputs as af3_examples
from conftest import REPO, run_workflow
from dali import example_inputs as dali_examples
from trendy.synthetic import quirk_cases, write_case

HOSTILE = ["a b", "..", "x/../../y", "a;touch PWNED", "$(touch PWNED)", "`touch PWNED`", "-rf"]
# A file or directory name cannot carry '/': those scenarios use the other names.
FILE_NAMES = [name for name in HOSTILE if "/" not in name]
WORKFLOWS = ["af3", "rnaseq", "trendy", "llc", "dali"]
SAFE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]*\Z"
CORES = ["--cores", "2"]  # also ends --configfile's list of values before the targets


def af3_dirname(name: str) -> str:
    """The job directory carrying ``name`` ('..' itself is the parent: put it inside a name)."""
    return "SETD6_.." if name == ".." else name


# --------------------------------------------------------------------------- the sandbox


def tree_state(root: Path, work: Path) -> dict[str, str]:
    """Relative path -> what it is: content hash outside ``work``, just its kind inside."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            inside_work = path == work or work in path.parents
            if path.is_symlink():
                state[rel] = f"link {os.readlink(path)}"
            elif path.is_dir():
                state[rel] = "dir"
            elif inside_work:
                state[rel] = "file"
            else:
                state[rel] = f"{hashlib.sha256(path.read_bytes()).hexdigest()} {path.stat().st_mode:o}"
    return state


def pwned_files(sandbox: Path) -> dict[str, int]:
    """Every file named PWNED where a hostile name run by a shell would have left it, with its
    modification time (ns): `touch PWNED` on a file already there changes only that."""
    found = [Path(d) / "PWNED" for d, _, files in os.walk(sandbox) if "PWNED" in files]
    for place in {Path.cwd(), REPO, Path("/tmp"), Path(tempfile.gettempdir()), sandbox.parent}:
        if (place / "PWNED").exists():
            found.append(place / "PWNED")
    return {str(path): path.stat().st_mtime_ns for path in found}


@dataclass
class Outcome:
    """One run of a scenario: the sandbox, Snakemake's output and the sandbox before and after."""

    workflow: str
    sandbox: Path
    work: Path
    returncode: int
    output: str
    before: dict[str, str]
    after: dict[str, str]
    pwned_before: dict[str, int]


def run_in_sandbox(sandbox: Path, workflow: str, section: dict, extra: list[str] | None = None) -> Outcome:
    """Run ``<workflow>_all`` with only ``section`` enabled, in ``sandbox/work``."""
    work = sandbox / "work"
    config = {name: {"enabled": False} for name in WORKFLOWS}
    config[workflow] = {"enabled": True, **section}
    pwned_before = pwned_files(sandbox)
    before = tree_state(sandbox, work)
    proc = run_workflow(work, config, [f"{workflow}_all"], extra=[*CORES, *(extra or [])], check=False)
    return Outcome(
        workflow, sandbox, work, proc.returncode, proc.stdout, before, tree_state(sandbox, work), pwned_before
    )


# --------------------------------------------------------------------------- the scenarios


def scenario_af3_job_dirs(sandbox: Path) -> Outcome:
    """Two good AF3 jobs and one finished job directory per hostile name."""
    root = sandbox / "inputs" / "af3_output"
    good = af3_examples.make_tree(root, n_jobs=2, msa_depth=20, light=True, broken=False)
    base = good[0]
    for name in FILE_NAMES:
        dirname = af3_dirname(name)
        spec = af3_examples.JobSpec(dirname, dirname, dirname, base.chains, base.seeds, 2, base.layout)
        af3_examples.write_job(root, spec, msa_depth=20, light=True)
    (sandbox / "good_jobs.json").write_text(json.dumps([s.dirname for s in good]))
    return run_in_sandbox(sandbox, "af3", {"source_root": str(root), "n_chunks": 2})


def scenario_rnaseq_sheet(sandbox: Path) -> Outcome:
    """A sheet with each hostile name as a run accession, as a sample and as a species."""
    inputs = sandbox / "inputs"
    inputs.mkdir()
    (inputs / "tx.fa").write_text(">t1\nACGTACGTACGTACGTACGTACGTACGTACGTACGT\n")
    columns = ["run", "sample", "layout", "scientific_name", "fastq_ftp"]
    lines = ["\t".join(columns)]
    for i, name in enumerate(HOSTILE):
        for run, sample, species in [
            (name, f"s{i}", ""),
            (f"SRR10{i}", name, ""),
            (f"SRR20{i}", f"t{i}", name),
        ]:
            lines.append("\t".join([run, sample, "single", species, f"./fastq/{run}.fastq.gz"]))
    (inputs / "samples.tsv").write_text("\n".join(lines) + "\n")
    section = {
        "samples": str(inputs / "samples.tsv"),
        "transcriptomes": {"Formica_simulata": str(inputs / "tx.fa")},
    }
    return run_in_sandbox(sandbox, "rnaseq", section)


def trendy_section(root: Path, models: list[str]) -> dict:
    """The repository's trendy section (variables, prefixes) on ``root`` with ``models``."""
    section = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["trendy"]
    section.pop("enabled")
    section.update(root=str(root), models=models, simulations=["S3"], ilamb_check=False)
    return section


def scenario_trendy_models(sandbox: Path) -> Outcome:
    """Each hostile name as a configured model directory."""
    root = sandbox / "inputs" / "TRENDYv13"
    (root / "CABLE-POP" / "S3").mkdir(parents=True)
    return run_in_sandbox(sandbox, "trendy", trendy_section(root, ["CABLE-POP", *HOSTILE]))


def scenario_trendy_files(sandbox: Path) -> Outcome:
    """One good NetCDF file, and copies of it named with each hostile name as prefix or variable."""
    root = sandbox / "inputs" / "TRENDYv13"
    case = next(c for c in quirk_cases() if c.name == "cable_months_since")
    good = write_case(case, root)
    for name in FILE_NAMES:
        for hostile in (f"{name}_S3_gpp.nc", f"CABLE-POP_S3_{name}.nc"):
            shutil.copyfile(good, good.parent / hostile)
    # A trailing newline once slipped through the file-name pattern's '$' (npp is configured).
    shutil.copyfile(good, good.parent / "CABLE-POP_S3_npp.nc\n")
    return run_in_sandbox(sandbox, "trendy", trendy_section(root, ["CABLE-POP"]))


def scenario_llc_names(sandbox: Path) -> Outcome:
    """Each hostile name as a target name and as a sampler name."""
    section = {
        "targets": [{"name": n, "family": "linear", "widths": [3, 1], "n": 50} for n in HOSTILE],
        "samplers": [{"name": n, "kind": "sgld", "draws": 20, "burnin": 5, "chains": 1} for n in HOSTILE],
    }
    return run_in_sandbox(sandbox, "llc", section)


def dali_section(inputs: Path, protein_list: str) -> dict:
    return {
        "input_dir": str(inputs / "inputs"),
        "protein_list": protein_list,
        "template_dir": str(inputs / "ECOD70"),
        "aligner": "tmalign",
    }


def scenario_dali_list(sandbox: Path) -> Outcome:
    """A protein list with one good protein and every hostile name."""
    inputs = sandbox / "inputs"
    dali_examples.make(inputs)
    listing = inputs / "hostile_proteins.txt"
    listing.write_text("\n".join([next(iter(dali_examples.QUERIES)), *HOSTILE]) + "\n")
    return run_in_sandbox(sandbox, "dali", dali_section(inputs, str(listing)))


def scenario_dali_dir(sandbox: Path) -> Outcome:
    """An input directory (no list) with the good proteins and a hostile ``<name>_hits4Dali`` each."""
    inputs = sandbox / "inputs"
    dali_examples.make(inputs)
    good = next(iter(dali_examples.QUERIES))
    for name in FILE_NAMES:
        for suffix in (".pdb", "_hits4Dali"):
            shutil.copyfile(inputs / "inputs" / f"{good}{suffix}", inputs / "inputs" / f"{name}{suffix}")
    return run_in_sandbox(sandbox, "dali", dali_section(inputs, ""))


SCENARIOS = {
    "af3-job-dirs": scenario_af3_job_dirs,
    "rnaseq-sheet": scenario_rnaseq_sheet,
    "trendy-models": scenario_trendy_models,
    "trendy-files": scenario_trendy_files,
    "llc-names": scenario_llc_names,
    "dali-list": scenario_dali_list,
    "dali-dir": scenario_dali_dir,
}


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    """Run each scenario once, on first use, and keep its outcome for every name's test."""
    done: dict[str, Outcome] = {}

    def get(scenario: str) -> Outcome:
        if scenario not in done:
            done[scenario] = SCENARIOS[scenario](tmp_path_factory.mktemp(f"sandbox-{scenario}"))
        return done[scenario]

    return get


# --------------------------------------------------------------------------- every scenario


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_name_reached_a_shell(outcome, scenario):
    result = outcome(scenario)
    assert pwned_files(result.sandbox) == result.pwned_before


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_nothing_written_outside_the_work_dir(outcome, scenario):
    result = outcome(scenario)

    def outside(state):
        return {k: v for k, v in state.items() if k != "work" and not k.startswith("work/")}

    assert outside(result.after) == outside(result.before)
    allowed_top = {"results", "logs", "benchmarks"}
    for rel in set(result.after) - set(result.before):
        parts = Path(rel).relative_to("work").parts
        if parts in [(), ("test-config.yaml",)] or parts[0] == ".snakemake":
            continue
        assert parts[0] in allowed_top and (len(parts) == 1 or parts[1] == result.workflow), rel


# --------------------------------------------------------------------------- per workflow and name


def stopped_before_any_job(result: Outcome) -> None:
    assert result.returncode != 0, result.output[-3000:]
    assert not (result.work / "results").exists() and not (result.work / "logs").exists()


@pytest.mark.parametrize("name", FILE_NAMES)
def test_af3_job_dir_is_reported_and_the_good_jobs_finish(outcome, name):
    result = outcome("af3-job-dirs")
    assert result.returncode == 0, result.output[-3000:]
    results = result.work / "results" / "af3"
    problems = pd.read_csv(results / "manifest" / "problems.tsv", sep="\t", dtype=str, keep_default_na=False)
    reasons = dict(zip(problems["item"], problems["reason"], strict=True))
    dirname = af3_dirname(name)
    assert "unsafe job directory name" in reasons[dirname]
    assert "allowed: letters, digits" in reasons[dirname]
    assert "problems.tsv" in (results / "SUMMARY.txt").read_text()
    organized = results / "organized"
    for job in json.loads((result.sandbox / "good_jobs.json").read_text()):
        assert (organized / job.split("_")[0] / job / f"{job}_model.cif").is_file(), job
    assert not [p for p in organized.glob("*/*") if p.name == dirname]


@pytest.mark.parametrize("name", ["-rf", ".hidden"])
def test_af3_group_from_a_job_name_is_checked(tmp_path, name):
    """A group_regex that captures an unsafe group from an otherwise safe job name."""
    job = f"SETD6_{name}_H3"
    (tmp_path / job).mkdir()
    entry = discover.classify_job(str(tmp_path / job), job, r"^[^_]+_([^_]+)_")
    assert (entry.status, entry.group) == ("malformed", name)
    assert f"unsafe group name {name!r}" in entry.reason


@pytest.mark.parametrize("name", HOSTILE)
def test_rnaseq_sheet_stops_naming_the_row_and_column(outcome, name):
    result = outcome("rnaseq-sheet")
    stopped_before_any_job(result)
    i = HOSTILE.index(name)
    for run, column, pattern in [
        (name, "run", r"^[SED]RR[0-9]+\Z"),
        (f"SRR10{i}", "sample", SAFE_PATTERN),
        (f"SRR20{i}", "scientific_name", r"^([A-Za-z0-9][A-Za-z0-9_.+-]*)?\Z"),
    ]:
        assert f"(run '{run}') column '{column}': {name!r} does not match '{pattern}'" in result.output


@pytest.mark.parametrize("name", HOSTILE)
def test_trendy_model_name_stops_naming_the_key(outcome, name):
    result = outcome("trendy-models")
    stopped_before_any_job(result)
    key = f"trendy key 'models.{1 + HOSTILE.index(name)}'"
    assert f"{key}: {name!r} does not match '{SAFE_PATTERN}'" in result.output


@pytest.mark.parametrize("name", FILE_NAMES)
def test_trendy_file_name_is_never_taken_for_a_source(outcome, name):
    result = outcome("trendy-files")
    assert result.returncode == 0, result.output[-3000:]
    results = result.work / "results" / "trendy"
    table = pd.read_csv(results / "conversions.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert [Path(s).name for s in table["source"]] == ["CABLE-POP_S3_gpp.nc"]
    assert list(table["status"]) == ["ok"]
    assert sorted(str(p.relative_to(results / "MODELS")) for p in (results / "MODELS").rglob("*.nc")) == [
        "CABLE-POP_S3/gpp.nc"
    ]
    staged = [p.name for p in (results / "staging").glob("*/*")]
    assert staged == ["gpp"], f"{name}: {staged}"


@pytest.mark.parametrize("name", HOSTILE)
def test_llc_target_and_sampler_names_stop_naming_the_key(outcome, name):
    result = outcome("llc-names")
    stopped_before_any_job(result)
    i = HOSTILE.index(name)
    for key in (f"targets.{i}.name", f"samplers.{i}.name"):
        assert f"llc key '{key}': {name!r} does not match '{SAFE_PATTERN}'" in result.output


def dali_params(names_in_order: list[str], scenario: str) -> list:
    return [pytest.param(scenario, name, id=f"{scenario}-{name}") for name in names_in_order]


@pytest.mark.parametrize(
    "scenario, name",
    # the list file keeps its order; a directory listing is sorted by file name
    dali_params(HOSTILE, "dali-list")
    + dali_params(sorted(FILE_NAMES, key=lambda n: f"{n}_hits4Dali"), "dali-dir"),
)
def test_dali_protein_name_stops_naming_it(outcome, scenario, name):
    result = outcome(scenario)
    stopped_before_any_job(result)
    assert "protein names must match [A-Za-z0-9][A-Za-z0-9_.+-]* (no path separators" in result.output
    assert repr(name) in result.output
