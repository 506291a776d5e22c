"""Find the TRENDY files to convert: one directory listing per configured model and simulation.

This runs at parse time (in every SLURM job too), so it never walks the tree: it lists only
``<root>/<model>/<Sx>/`` for the configured models and simulations, a few hundred entries.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

# \Z, not $: '$' also matches before a trailing newline, and "x_S3_npp.nc\n" is not x_S3_npp.nc.
FILE_NAME = re.compile(r"^(?P<prefix>.+?)_(?P<simulation>S[0-9])_(?P<variable>.+?)\.nc(?P<gz>\.gz)?\Z")


@dataclass(frozen=True)
class SourceFile:
    """One input: the model directory, simulation, configured TRENDY variable name, and path."""

    model: str
    simulation: str
    variable: str
    path: str


def find_sources(
    root: str | os.PathLike,
    models: list[str],
    simulations: list[str],
    variables: list[str],
    file_prefixes: dict[str, str] | None = None,
) -> dict[tuple[str, str, str], SourceFile]:
    """Map (model, simulation, variable) to its source file.

    The file-name variable is matched case-insensitively (ISAM writes ``LAI``), and the prefix
    must be the model directory name or its configured prefix (``CLM5.0`` holds ``CLM6.0_*``).
    When both ``x.nc`` and ``x.nc.gz`` exist, the uncompressed file wins.
    """
    root = Path(root)
    wanted = {v.lower(): v for v in variables}
    found: dict[tuple[str, str, str], SourceFile] = {}
    for model in models:
        prefixes = {model.lower(), (file_prefixes or {}).get(model, model).lower()}
        for simulation in simulations:
            directory = root / model / simulation
            try:
                names = sorted(entry.name for entry in os.scandir(directory) if entry.is_file())
            except FileNotFoundError:
                continue
            for name in names:
                match = FILE_NAME.match(name)
                if not match or match["simulation"] != simulation or match["prefix"].lower() not in prefixes:
                    continue
                variable = wanted.get(match["variable"].lower())
                if variable is None:
                    continue
                key = (model, simulation, variable)
                if key in found:  # names are sorted: x.nc comes before x.nc.gz
                    continue
                found[key] = SourceFile(model, simulation, variable, str(directory / name))
    return found


def duplicate_outputs(sources, ilamb_names: dict[str, str]) -> list[str]:
    """Messages for TRENDY variables that would land on the same ILAMB file of one model run."""
    seen: dict[tuple[str, str, str], str] = {}
    problems = []
    for (model, simulation, variable), source in sorted(sources.items()):
        key = (model, simulation, ilamb_names[variable])
        if key in seen:
            problems.append(f"{seen[key]} and {source.path} both become {model}_{simulation}/{key[2]}.nc")
        else:
            seen[key] = source.path
    return problems
