"""Deterministic, realistic AlphaFold 3 output trees for the examples, the tests and the benchmark.

Each job directory follows the real AF3 layouts (docs/output.md and the v3.0.1 writer):

* v3.0.2+: ``<name>_seed-S_sample-K_model.cif`` etc. inside ``seed-S_sample-K/``,
  ``<name>_ranking_scores.csv``, case kept in the name;
* v3.0.1: lower-case names, unprefixed sample files, ``ranking_scores.csv``.

MSAs are A3M text inlined in ``<name>_data.json``; the same protein gets the same MSA in every
complex it appears in (that duplication is what the MSA archive removes). A handful of broken
job directories (missing file, truncated JSON, hostile names, MSA-only job) sit beside the
good ones so the discovery report has something to show.
"""

import csv
import functools
import hashlib
import io
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

AMINO = np.frombuffer(b"ACDEFGHIKLMNPQRSTVWY", dtype=np.uint8)
TERMS = (
    "# ALPHAFOLD 3 OUTPUT TERMS OF USE\n\n"
    "Output is provided under CC-BY-NC-SA 4.0 with the additional terms at\n"
    "https://github.com/google-deepmind/alphafold3/blob/main/OUTPUT_TERMS_OF_USE.md\n"
) * 40

# Enzymes (the group) and their substrates: each protein keeps one sequence and one MSA.
ENZYMES = {"SETD6": 140, "SMYD2": 120, "RPL29": 90, "KMT5A": 110}
SUBSTRATES = {"RPL29": 60, "H3": 45, "H4": 40, "RELA": 80, "MEF2D": 70, "PLK1": 90, "E2F1": 55}
MARKS = ["K4me1", "K5me1", "K9me2", "K20me1", "K36me3", "K310me1"]
EXAMPLE_SEED = 20240613


@dataclass
class JobSpec:
    """One AF3 job to write: its directory name, file prefix, chains and sampling."""

    dirname: str
    prefix: str
    display_name: str
    chains: list[tuple[str, int]]  # (protein name, length)
    seeds: list[int]
    samples: int
    layout: str  # "v3.0.2" (prefixed sample files) or "v3.0.1"


def protein_rng(name: str, salt: str = "") -> np.random.Generator:
    digest = hashlib.sha256(f"{name}:{salt}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def protein_sequence(name: str, length: int) -> str:
    rng = protein_rng(name, "seq")
    return AMINO[rng.integers(0, len(AMINO), length)].tobytes().decode()


@functools.lru_cache(maxsize=256)
def make_msa(name: str, sequence: str, depth: int, paired: bool = False) -> str:
    """A3M text: the query first, then homologs with substitutions, gaps and lower-case inserts."""
    rng = protein_rng(name, "paired" if paired else "unpaired")
    query = np.frombuffer(sequence.encode(), dtype=np.uint8)
    lines = [">query", sequence]
    for i in range(depth):
        identity = rng.uniform(0.3, 0.95)
        row = query.copy()
        mutate = rng.random(len(row)) > identity
        row[mutate] = AMINO[rng.integers(0, len(AMINO), int(mutate.sum()))]
        gaps = rng.random(len(row)) < 0.06
        row[gaps] = ord("-")
        text = row.tobytes().decode()
        if rng.random() < 0.3:
            at = int(rng.integers(1, len(text)))
            insert = AMINO[rng.integers(0, len(AMINO), int(rng.integers(1, 6)))].tobytes().decode().lower()
            text = text[:at] + insert + text[at:]
        accession = "".join(chr(c) for c in rng.integers(65, 91, 6))
        if paired:
            lines.append(f">tr|A0A{accession}|{accession}_SPECIES{i % 37} OS=Species {i % 37}")
        else:
            lines.append(f">UniRef90_A0A{accession}/{int(rng.integers(1, 40))}-{len(sequence) + 20}")
        lines.append(text)
    return "\n".join(lines) + "\n"


def template_mmcif(name: str, sequence: str) -> str:
    rng = protein_rng(name, "template")
    lines = [f"data_{name.lower()}_tmpl", "#", "_entry.id tmpl", "#", "loop_"]
    lines += [
        f"_atom_site.{c}" for c in ("group_PDB", "id", "label_comp_id", "Cartn_x", "Cartn_y", "Cartn_z")
    ]
    for i, _aa in enumerate(sequence[:40]):
        x, y, z = rng.normal(0, 10, 3)
        lines.append(f"ATOM {i + 1} ALA {x:.3f} {y:.3f} {z:.3f}")
    return "\n".join(lines) + "\n#\n"


def data_json_text(spec: JobSpec, msa_depth: int) -> str:
    """``<name>_data.json`` as AF3's ``Input.to_json()`` writes it (indent 2, index arrays on one line)."""
    sequences = []
    for chain_index, (protein, length) in enumerate(spec.chains):
        seq = protein_sequence(protein, length)
        depth = max(20, msa_depth * length // 100)
        entry = {
            "id": chr(ord("A") + chain_index),
            "sequence": seq,
            "modifications": [],
            "unpairedMsa": make_msa(protein, seq, depth),
            "pairedMsa": make_msa(protein, seq, depth // 4, paired=True) if len(spec.chains) > 1 else "",
            "templates": [
                {
                    "mmcif": template_mmcif(protein, seq),
                    "queryIndices": list(range(min(40, length))),
                    "templateIndices": list(range(min(40, length))),
                }
            ]
            if length > 80
            else [],
        }
        sequences.append({"protein": entry})
    sequences.append({"ligand": {"id": chr(ord("A") + len(spec.chains)), "ccdCodes": ["SAH"]}})
    doc = {
        "dialect": "alphafold3",
        "version": 2,
        "name": spec.display_name,
        "sequences": sequences,
        "modelSeeds": spec.seeds,
        "bondedAtomPairs": None,
        "userCCD": None,
    }
    text = json.dumps(doc, indent=2)
    # AF3 puts the template index arrays on one line with a regex post-pass.
    return re.sub(
        r'("(?:queryIndices|templateIndices)": )\[([\s\d,]*?)\]',
        lambda m: m.group(1) + "[" + ", ".join(m.group(2).split()).replace(",,", ",").rstrip(",") + "]",
        text,
    )


def summary_json(rng: np.random.Generator, n_chains: int) -> tuple[str, float]:
    """``summary_confidences.json`` (sort_keys, indent=1, 2 d.p.) and its ranking score."""
    ptm = round(float(rng.uniform(0.3, 0.95)), 2)
    iptm = round(float(rng.uniform(0.2, 0.95)), 2)
    disorder = round(float(rng.uniform(0.0, 0.3)), 2)
    clash = 1.0 if rng.random() < 0.04 else 0.0
    pair = [[round(float(rng.uniform(0.2, 0.95)), 2) for _ in range(n_chains)] for _ in range(n_chains)]
    ranking = round(0.8 * iptm + 0.2 * ptm + 0.5 * disorder - 100 * clash, 2)
    doc = {
        "chain_iptm": [round(float(rng.uniform(0.2, 0.95)), 2) for _ in range(n_chains)],
        "chain_pair_iptm": pair,
        "chain_pair_pae_min": [
            [round(float(rng.uniform(0.5, 20)), 2) for _ in range(n_chains)] for _ in range(n_chains)
        ],
        "chain_ptm": [round(float(rng.uniform(0.3, 0.95)), 2) for _ in range(n_chains)],
        "fraction_disordered": disorder,
        "has_clash": clash,
        "iptm": iptm,
        "ptm": ptm,
        "ranking_score": ranking,
    }
    return json.dumps(doc, sort_keys=True, indent=1, separators=(",", ": ")), ranking


def confidences_json(rng: np.random.Generator, tokens: list[str]) -> str:
    n = len(tokens)
    atoms = [c for c in tokens for _ in range(4)]
    pae = np.round(np.abs(rng.normal(8, 6, (n, n))), 1).clip(0, 31.7)
    contacts = np.round(rng.random((n, n)) ** 4, 2)
    parts = {
        "atom_chain_ids": atoms,
        "atom_plddts": np.round(rng.uniform(30, 98, len(atoms)), 2).tolist(),
        "contact_probs": contacts.tolist(),
        "pae": pae.tolist(),
        "token_chain_ids": tokens,
        "token_res_ids": list(range(1, n + 1)),
    }
    body = ",\n".join(f'  "{k}": {json.dumps(v, separators=(",", ":"))}' for k, v in parts.items())
    return "{\n" + body + "\n}"


def model_cif(name: str, rng: np.random.Generator, tokens: list[str]) -> str:
    lines = [
        "# By using this file you agree to the legally binding terms of use found at",
        "# https://github.com/google-deepmind/alphafold3/blob/main/OUTPUT_TERMS_OF_USE.md.",
        f"data_{name}",
        "#",
        f"_entry.id {name}",
        "#",
        "loop_",
    ]
    lines += [
        f"_atom_site.{c}"
        for c in (
            "group_PDB id type_symbol label_atom_id label_alt_id label_comp_id label_asym_id "
            "label_entity_id label_seq_id pdbx_PDB_ins_code Cartn_x Cartn_y Cartn_z occupancy "
            "B_iso_or_equiv auth_seq_id auth_asym_id pdbx_PDB_model_num"
        ).split()
    ]
    xyz = rng.normal(0, 15, (len(tokens) * 4, 3))
    plddt = rng.uniform(30, 98, len(tokens) * 4)
    atom = 0
    for res, chain in enumerate(tokens):
        for atom_name, element in (("N", "N"), ("CA", "C"), ("C", "C"), ("O", "O")):
            x, y, z = xyz[atom]
            lines.append(
                f"ATOM {atom + 1} {element} {atom_name} . ALA {chain} 1 {res + 1} ? "
                f"{x:.3f} {y:.3f} {z:.3f} 1.00 {plddt[atom]:.2f} {res + 1} {chain} 1"
            )
            atom += 1
    return "\n".join(lines) + "\n#\n"


def write_job(root: Path, spec: JobSpec, msa_depth: int = 1500, light: bool = False) -> None:
    """Write one finished AF3 job directory under ``root`` (``light``: top-level files only, tiny)."""
    job = root / spec.dirname
    job.mkdir(parents=True, exist_ok=True)
    p = spec.prefix
    rng = protein_rng(spec.dirname, "job")
    tokens = [chr(ord("A") + i) for i, (_, n) in enumerate(spec.chains) for _ in range(n if not light else 2)]
    tokens.append(chr(ord("A") + len(spec.chains)))
    (job / f"{p}_data.json").write_text(data_json_text(spec, 4 if light else msa_depth))
    rows, best = [], None
    for seed in spec.seeds:
        for sample in range(spec.samples):
            summary, score = summary_json(rng, len(spec.chains) + 1)
            rows.append((seed, sample, score))
            if light:
                if best is None or score > best[0]:
                    best = (score, summary, "{}", f"data_{p}\n#\n")
                continue
            sample_dir = job / f"seed-{seed}_sample-{sample}"
            sample_dir.mkdir(exist_ok=True)
            sp = f"{p}_seed-{seed}_sample-{sample}_" if spec.layout == "v3.0.2" else ""
            confidences = confidences_json(rng, tokens)
            model = model_cif(p, rng, tokens)
            (sample_dir / f"{sp}summary_confidences.json").write_text(summary)
            (sample_dir / f"{sp}confidences.json").write_text(confidences)
            (sample_dir / f"{sp}model.cif").write_text(model)
            if best is None or score > best[0]:
                best = (score, summary, confidences, model)
    _, summary, confidences, model = best
    (job / f"{p}_summary_confidences.json").write_text(summary)
    (job / f"{p}_confidences.json").write_text(confidences)
    (job / f"{p}_model.cif").write_text(model)
    ranking_name = f"{p}_ranking_scores.csv" if spec.layout == "v3.0.2" else "ranking_scores.csv"
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # AF3 uses csv.writer: CRLF line ends
    writer.writerow(["seed", "sample", "ranking_score"])
    writer.writerows(rows)
    (job / ranking_name).write_text(buffer.getvalue(), newline="")
    (job / "TERMS_OF_USE.md").write_text(TERMS[:200] if light else TERMS)


def job_specs(n_jobs: int, rng_seed: int = EXAMPLE_SEED, start: int = 0) -> list[JobSpec]:
    """``n_jobs`` enzyme-substrate complexes; about one in six uses the v3.0.1 (lower-case) layout."""
    rng = np.random.default_rng(rng_seed + start)
    specs = []
    enzymes, substrates = list(ENZYMES), list(SUBSTRATES)
    for i in range(start, start + n_jobs):
        enzyme = enzymes[i % len(enzymes)]
        substrate = substrates[int(rng.integers(0, len(substrates)))]
        mark = MARKS[int(rng.integers(0, len(MARKS)))]
        display = f"{enzyme}_{substrate}_{mark}_{i:05d}"
        layout = "v3.0.1" if i % 6 == 5 else "v3.0.2"
        name = display.lower() if layout == "v3.0.1" else display
        seeds = [1] if i % 4 else [1, 42]
        specs.append(
            JobSpec(
                dirname=name,
                prefix=name,
                display_name=display,
                chains=[(enzyme, ENZYMES[enzyme]), (substrate, SUBSTRATES[substrate])],
                seeds=seeds,
                samples=3 if len(seeds) > 1 else 4,
                layout=layout,
            )
        )
    return specs


def write_broken_jobs(root: Path, msa_depth: int) -> None:
    """Job directories that discovery must report and never organize."""
    base = JobSpec("", "", "", [("SETD6", 140), ("H3", 45)], [1], 2, "v3.0.2")

    def variant(dirname: str) -> JobSpec:
        return JobSpec(dirname, dirname, dirname, base.chains, base.seeds, base.samples, base.layout)

    missing = variant("SETD6_H3_missing_model")
    write_job(root, missing, msa_depth)
    (root / missing.dirname / f"{missing.prefix}_model.cif").unlink()

    truncated = variant("RPL29_H4_truncated_summary")
    write_job(root, truncated, msa_depth)
    path = root / truncated.dirname / f"{truncated.prefix}_summary_confidences.json"
    path.write_text(path.read_text()[:60])

    truncated_data = variant("SMYD2_H3_truncated_data")
    write_job(root, truncated_data, msa_depth)
    path = root / truncated_data.dirname / f"{truncated_data.prefix}_data.json"
    path.write_text(path.read_text()[: path.stat().st_size // 2])

    # Names AF3 would never write but people do: spaces, '..', no group before the '_'.
    for dirname in ("SETD6 spaced name", "SETD6..H3_dots", "_H3_no_group"):
        write_job(root, variant(dirname), 20, light=True)

    # Data pipeline done, inference not run: a group whose only job is incomplete.
    msa_only = variant("PRDM9_H3_msa_only")
    (root / msa_only.dirname).mkdir(exist_ok=True)
    (root / msa_only.dirname / f"{msa_only.prefix}_data.json").write_text(data_json_text(msa_only, 20))


def make_tree(
    root: Path, n_jobs: int, msa_depth: int = 1500, light: bool = False, broken: bool = True, start: int = 0
) -> list[JobSpec]:
    """Write ``n_jobs`` finished jobs (plus the broken ones) under ``root``; return their specs."""
    root.mkdir(parents=True, exist_ok=True)
    specs = job_specs(n_jobs, start=start)
    for spec in specs:
        write_job(root, spec, msa_depth, light=light)
    if broken:
        write_broken_jobs(root, msa_depth)
    return specs


def make(outdir: Path, n_jobs: int = 40) -> None:
    """The bundled example: ``outdir/af3_output`` with ``n_jobs`` good jobs and the broken ones."""
    outdir = Path(outdir)
    root = outdir / "af3_output"
    stamp = outdir / ".complete"
    if stamp.exists() and stamp.read_text() == f"{n_jobs}\n":
        return
    make_tree(root, n_jobs)
    # A timestamped sibling, as AF3 writes when the output dir already exists: the files keep the
    # sanitised name without the timestamp.
    first = job_specs(1)[0]
    twin = JobSpec(
        f"{first.dirname}_20250301_101500",
        first.prefix,
        first.display_name,
        first.chains,
        first.seeds,
        first.samples,
        first.layout,
    )
    write_job(root, twin)
    stamp.write_text(f"{n_jobs}\n")


if __name__ == "__main__":
    make(Path(sys.argv[1] if len(sys.argv) > 1 else "examples/af3"))
