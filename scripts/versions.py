"""Which versions made these results: every library and command-line tool of one workflow, asked at run time.

nf-core's ``software_versions.yml`` habit: each workflow writes ``results/<workflow>/versions.yml``
so that a result can be cited and reproduced from its own directory. Nothing here is written by
hand: a library's version comes from its installed distribution (``importlib.metadata``), a tool's
from the tool itself (``rsync --version``, ``kallisto version``, ...), together with the path that
was found on ``PATH``. A tool that is not installed is recorded as such, never left out.

Each ``rules/<workflow>.smk`` registers what it uses in ``WORKFLOW_VERSIONS`` (``rules/common.smk``):
``{"libraries": [distribution names], "tools": {name: [argv that prints the version]}}``.
"""

import datetime
import importlib
import importlib.metadata
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

# A version as tools print it: 3.5.0, v1.60.1-DEV, 0.48.0, 3.0.3, or TM-align's date 20190822.
VERSION = re.compile(r"\bv?(\d+(?:\.\d+)+(?:[-+.][0-9A-Za-z.]+)?|\d{8})\b")
# Versions a library carries of the native code it wraps (not visible to importlib.metadata).
NATIVE = {
    "netCDF4": {"netCDF-C": "__netcdf4libversion__", "HDF5": "__hdf5libversion__"},
    "zstandard": {"libzstd": "ZSTD_VERSION"},
}
ALWAYS = ["snakemake", "snakemake-executor-plugin-slurm"]


def library_version(distribution: str) -> str:
    """The installed version of a Python distribution, or ``not installed``."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def native_versions(distribution: str) -> dict:
    """Versions of the C libraries a Python package was built against (netCDF-C, HDF5, libzstd),
    and for JAX the backend it computes on (cpu, gpu)."""
    if distribution == "jax":
        try:
            import jax

            return {"backend": jax.default_backend(), "devices": str(jax.devices())}
        except Exception as err:  # a broken accelerator install is worth recording, not failing on
            return {"backend": f"unavailable: {err}"}
    attributes = NATIVE.get(distribution)
    if not attributes:
        return {}
    try:
        module = importlib.import_module(distribution)
    except ImportError:
        return {}
    found = {}
    for name, attribute in attributes.items():
        value = getattr(module, attribute, None)
        if isinstance(value, tuple):
            value = ".".join(map(str, value))
        if value is not None:
            found[name] = str(value)
    return found


def tool_version(argv: list[str], timeout: float = 60) -> dict:
    """Run ``argv`` (a tool's own version query) and return its version, path and the line it came from."""
    path = shutil.which(argv[0])
    if path is None:
        return {"version": "not found", "path": None, "command": " ".join(argv)}
    try:
        proc = subprocess.run(
            [path, *argv[1:]], capture_output=True, text=True, errors="replace", timeout=timeout
        )
        text = f"{proc.stdout}\n{proc.stderr}"
    except subprocess.TimeoutExpired:
        return {"version": f"unknown (no answer in {timeout:g} s)", "path": path, "command": " ".join(argv)}
    for line in text.splitlines():
        match = VERSION.search(line)
        if match:
            return {"version": match.group(1), "path": path, "says": line.strip(), "command": " ".join(argv)}
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return {"version": "unknown", "path": path, "says": first[:200], "command": " ".join(argv)}


def collect_versions(workflow: str, libraries: list[str], tools: dict[str, list[str]]) -> dict:
    """Everything ``versions.yml`` records for ``workflow``, asked now."""
    libs = {}
    for distribution in sorted({*libraries}, key=str.lower):
        libs[distribution] = library_version(distribution)
        for name, version in native_versions(distribution).items():
            libs[f"{distribution} ({name})"] = version
    return {
        "workflow": workflow,
        "written": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        **{name: library_version(name) for name in ALWAYS},
        "libraries": libs,
        "tools": {name: tool_version(list(argv)) for name, argv in sorted(tools.items())},
    }


def write_versions(path: str | Path, record: dict) -> None:
    """Write ``record`` as YAML atomically."""
    from common import atomic_open

    with atomic_open(path) as handle:
        yaml.safe_dump(record, handle, sort_keys=False, width=120)


def main(smk) -> None:
    from common import setup_logging

    log = setup_logging(smk.log[0])
    spec = smk.params.spec
    record = collect_versions(smk.wildcards.workflow, spec.get("libraries", []), spec.get("tools", {}))
    write_versions(smk.output[0], record)
    missing = [name for name, tool in record["tools"].items() if tool["path"] is None]
    log.info(
        "%s: %d libraries, %d tools%s",
        smk.output[0],
        len(record["libraries"]),
        len(record["tools"]),
        f" (not found: {', '.join(missing)})" if missing else "",
    )


if "snakemake" in globals():
    main(snakemake)
