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


@dataclass(frozen=True)
class Problem:
    """An input that gets no conversion job, with the reason (a row of conversions.tsv).

    ``status`` is ``failed`` for inputs that exist but cannot be used (dangling symlink, names
    differing only in case, two files becoming one output), ``no_files`` for what is absent, and
    ``skipped`` for a duplicate that is knowingly left out (``x.nc.gz`` beside ``x.nc``).
    """

    model: str
    simulation: str
    variable: str
    status: str
    error: str
    source: str = ""

    def row(self) -> dict:
        return {
            "model": self.model,
            "simulation": self.simulation,
            "variable": self.variable,
            "status": self.status,
            "error": self.error,
            "source": self.source,
        }


def survey(
    root: str | os.PathLike,
    models: list[str],
    simulations: list[str],
    variables: list[str],
    file_prefixes: dict[str, str] | None = None,
) -> tuple[dict[tuple[str, str, str], SourceFile], list[Problem]]:
    """Map (model, simulation, variable) to its source file, and list what cannot be converted.

    The file-name variable is matched case-insensitively (ISAM writes ``LAI``), and the prefix
    must be the model directory name or its configured prefix (``CLM5.0`` holds ``CLM6.0_*``).
    When both ``x.nc`` and ``x.nc.gz`` exist, the uncompressed file wins (the other gets a
    ``skipped`` row). Two names that differ only in case are ambiguous: neither is converted.
    A configured model without a directory or without any matching file gets a ``no_files`` row.
    """
    root = Path(root)
    wanted = {v.lower(): v for v in variables}
    found: dict[tuple[str, str, str], SourceFile] = {}
    problems: list[Problem] = []
    for model in models:
        prefixes = {model.lower(), (file_prefixes or {}).get(model, model).lower()}
        if not (root / model).is_dir():
            problems.append(
                Problem(model, "", "", "no_files", f"model directory {root / model} does not exist")
            )
            continue
        model_found = 0
        for simulation in simulations:
            directory = root / model / simulation
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except (FileNotFoundError, NotADirectoryError):
                continue
            candidates: dict[tuple[str, str, str], list[str]] = {}
            for entry in entries:
                match = FILE_NAME.match(entry.name)
                if not match or match["simulation"] != simulation or match["prefix"].lower() not in prefixes:
                    continue
                variable = wanted.get(match["variable"].lower())
                if variable is None:
                    continue
                if entry.is_symlink() and not entry.is_file():
                    problems.append(
                        Problem(
                            model,
                            simulation,
                            variable,
                            "failed",
                            f"{directory / entry.name}: dangling symlink (-> {os.readlink(entry.path)})",
                            str(directory / entry.name),
                        )
                    )
                    continue
                if entry.is_file():
                    candidates.setdefault((model, simulation, variable), []).append(entry.name)
            for key, names in candidates.items():
                plain = {n.removesuffix(".gz") for n in names}
                if len(plain) > 1:  # the same variable under names that differ only in case
                    problems.append(
                        Problem(
                            *key,
                            "failed",
                            f"{directory}: {', '.join(names)} differ only in case; rename or remove one",
                            ", ".join(str(directory / n) for n in names),
                        )
                    )
                    continue
                found[key] = SourceFile(*key, str(directory / names[0]))  # sorted: x.nc before x.nc.gz
                model_found += 1
                for other in names[1:]:
                    problems.append(
                        Problem(
                            *key,
                            "skipped",
                            f"{directory / other}: {names[0]} is used instead",
                            str(directory / other),
                        )
                    )
        if model_found == 0 and not any(p.model == model for p in problems):
            problems.append(
                Problem(
                    model,
                    "",
                    "",
                    "no_files",
                    f"no <prefix>_<Sx>_<variable>.nc(.gz) file under {root / model} for simulations "
                    f"{', '.join(simulations)} and prefixes {', '.join(sorted(prefixes))}",
                )
            )
    return found, problems


def find_sources(
    root, models, simulations, variables, file_prefixes=None
) -> dict[tuple[str, str, str], SourceFile]:
    """The convertible sources of :func:`survey`, without the problems."""
    return survey(root, models, simulations, variables, file_prefixes)[0]


def drop_duplicate_outputs(
    sources: dict[tuple[str, str, str], SourceFile], ilamb_names: dict[str, str]
) -> tuple[dict[tuple[str, str, str], SourceFile], list[Problem]]:
    """Remove TRENDY variables that would land on the same ILAMB file of one model run; a row for each."""
    by_output: dict[tuple[str, str, str], list[SourceFile]] = {}
    for key, source in sorted(sources.items()):
        by_output.setdefault((key[0], key[1], ilamb_names[key[2]]), []).append(source)
    kept, problems = {}, []
    for (model, simulation, ilamb_name), group in by_output.items():
        if len(group) == 1:
            kept[(model, simulation, group[0].variable)] = group[0]
            continue
        paths = " and ".join(s.path for s in group)
        for source in group:
            problems.append(
                Problem(
                    model,
                    simulation,
                    source.variable,
                    "failed",
                    f"{paths} both become {model}_{simulation}/{ilamb_name}.nc; keep one",
                    source.path,
                )
            )
    return kept, problems
