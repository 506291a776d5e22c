# Shared set-up for every workflow: config validation, safe wildcards, the target registry.
# Everything here runs at parse time, which every SLURM job repeats: keep it cheap
# (no directory walks, no network).
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

WORKFLOWS = ["af3", "rnaseq", "trendy", "llc", "dali"]
SCRIPTS = Path(workflow.basedir) / "scripts"
SCHEMAS = Path(workflow.basedir) / "config" / "schemas"

# Scripts import the shared module `common` and their own package (e.g. `af3`);
# jobs inherit this environment, on SLURM too (every job re-parses this file).
sys.path.insert(0, str(SCRIPTS))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in [str(SCRIPTS), os.environ.get("PYTHONPATH", "")] if p
)

from common import config_errors, end_pending_timers  # noqa: E402


def validate_config_section(data, schema_file, where):
    """Stop before any job starts, naming the key at fault; fill in the schema's defaults.

    One pass of our own, not a second one through snakemake.utils.validate: every job parses this.
    """
    errors = config_errors(data, schema_file, where=where, fill_defaults=True)
    if errors:
        raise WorkflowError("invalid configuration:\n  " + "\n  ".join(errors))


# `--config llc_promote=true` reaches us as the string "true" (Snakemake reads Python's
# `True`, not YAML's `true`): accept both spellings for top-level switches.
for _key, _value in list(config.items()):
    if isinstance(_value, str) and _value.lower() in ("true", "false"):
        config[_key] = _value.lower() == "true"
validate_config_section(config, SCHEMAS / "config.schema.yaml", "config")
for _name in WORKFLOWS:
    config.setdefault(_name, {})
    validate_config_section(config[_name], SCHEMAS / f"{_name}.schema.yaml", _name)


def require_path(key, path, kind="path"):
    """Fail with the config key and the path when an input the config names is missing."""
    if not Path(path).exists():
        raise WorkflowError(
            f"config key '{key}': {kind} '{path}' does not exist "
            "(for the bundled examples run `make examples`)"
        )
    return path


# A name that becomes a path component or a shell word: no separators, no leading
# dot or dash, no spaces or shell metacharacters.
SAFE_NAME = r"[A-Za-z0-9][A-Za-z0-9_.+-]*"


wildcard_constraints:
    sample=SAFE_NAME,
    item=SAFE_NAME,


# Each rules/<name>.smk registers a function returning its final targets; `rule all`
# asks only the enabled workflows, so a disabled one costs nothing at parse time.
WORKFLOW_TARGETS = {}
# ... and what it runs, for results/<name>/versions.yml: {"libraries": [distribution names],
# "tools": {name: argv that prints the tool's version}} (scripts/versions.py asks them at run time).
WORKFLOW_VERSIONS = {}


def enabled_targets(wildcards):
    targets = []
    for name in WORKFLOWS:
        if config[name].get("enabled", False) and name in WORKFLOW_TARGETS:
            targets.extend(WORKFLOW_TARGETS[name]())
            if name in WORKFLOW_VERSIONS:
                targets.append(f"results/{name}/versions.yml")
    return targets


# A finished run exits at once, not after Snakemake's last rate-limit timer (common.end_pending_timers).
onsuccess:
    end_pending_timers()


onerror:
    end_pending_timers()


rule versions:
    # No inputs: written once per results directory, and again when it is deleted or this rule's
    # code or the tool list changes. It asks each tool itself, so it runs on the head node.
    output:
        report(
            "results/{workflow}/versions.yml",
            category="{workflow}",
            caption="../scripts/versions_caption.rst",
        ),
    log:
        "logs/{workflow}/versions.log",
    wildcard_constraints:
        workflow="|".join(WORKFLOWS),
    localrule: True
    # the workflow's own environment: the versions recorded are those its jobs ran with
    conda:
        lambda wildcards: f"../envs/{wildcards.workflow}.yaml"
    params:
        spec=lambda wildcards: WORKFLOW_VERSIONS[wildcards.workflow],
    script:
        "../scripts/versions.py"
