"""Every input the config asks for gets a row: missing models, dangling symlinks, case-only clashes."""

import os

from trendy.inventory import SourceFile, drop_duplicate_outputs, survey
from trendy.report import collect_statuses, model_runs, summary_lines

VARIABLES = ["gpp", "cVeg", "land_fraction", "areacella"]


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"CDF")
    return path


def test_every_input_without_a_job_has_a_reason(tmp_path):
    root = tmp_path / "TRENDY"
    touch(root / "A" / "S3" / "A_S3_gpp.nc")
    touch(root / "A" / "S3" / "A_S3_GPP.nc")  # the same variable, differing only in case
    touch(root / "A" / "S3" / "A_S3_cVeg.nc")
    touch(root / "A" / "S3" / "A_S3_cVeg.nc.gz")  # the plain file wins
    (root / "B" / "S3").mkdir(parents=True)
    os.symlink(tmp_path / "gone.nc", root / "B" / "S3" / "B_S3_gpp.nc")  # dangling
    touch(root / "C" / "S3" / "C_S3_notes.txt")  # a model directory with no TRENDY file
    sources, problems = survey(root, ["A", "B", "C", "D"], ["S3"], VARIABLES)

    assert sorted(sources) == [("A", "S3", "cVeg")]
    rows = {(p.model, p.simulation, p.variable): p for p in problems}
    clash = rows[("A", "S3", "gpp")]
    assert clash.status == "failed" and "A_S3_GPP.nc, A_S3_gpp.nc differ only in case" in clash.error
    assert (
        rows[("A", "S3", "cVeg")].status == "skipped" and "A_S3_cVeg.nc.gz" in rows[("A", "S3", "cVeg")].error
    )
    dangling = rows[("B", "S3", "gpp")]
    assert (
        dangling.status == "failed"
        and "dangling symlink" in dangling.error
        and "B_S3_gpp.nc" in dangling.error
    )
    assert (
        rows[("C", "", "")].status == "no_files"
        and "no <prefix>_<Sx>_<variable>.nc" in rows[("C", "", "")].error
    )
    assert rows[("D", "", "")].status == "no_files" and "does not exist" in rows[("D", "", "")].error


def test_two_files_for_one_output_both_get_a_failed_row():
    sources = {
        ("A", "S3", "land_fraction"): SourceFile("A", "S3", "land_fraction", "/r/A_S3_land_fraction.nc"),
        ("A", "S3", "sftlf"): SourceFile("A", "S3", "sftlf", "/r/A_S3_sftlf.nc"),
        ("A", "S3", "gpp"): SourceFile("A", "S3", "gpp", "/r/A_S3_gpp.nc"),
    }
    kept, problems = drop_duplicate_outputs(
        sources, {"land_fraction": "sftlf", "sftlf": "sftlf", "gpp": "gpp"}
    )
    assert list(kept) == [("A", "S3", "gpp")]
    assert {p.variable for p in problems} == {"land_fraction", "sftlf"}
    assert all("both become A_S3/sftlf.nc" in p.error for p in problems)


def test_report_rows_for_problems_and_runs_without_static_fields(tmp_path):
    statuses = []
    for variable, ilamb in [("gpp", "gpp"), ("land_fraction", "sftlf")]:
        path = tmp_path / f"{variable}.json"
        path.write_text(
            f'{{"model": "A", "simulation": "S3", "variable": "{variable}", "ilamb_variable": "{ilamb}",'
            ' "status": "ok", "error": ""}'
        )
        statuses.append(path)
    problems = [{"model": "D", "simulation": "", "variable": "", "status": "no_files", "error": "no dir"}]
    table = collect_statuses(statuses, "MODELS", problems=problems)
    assert [(r.model, r.variable, r.status) for r in table.itertuples()] == [
        ("A", "gpp", "ok"),
        ("A", "land_fraction", "ok"),
        ("D", "", "no_files"),
    ]
    runs = model_runs(table, {"sftlf": ["land_fraction", "sftlf"], "areacella": ["areacella"]})
    (run,) = runs.itertuples()
    assert (run.model, run.simulation, run.files_ok, run.sftlf, run.areacella) == (
        "A",
        "S3",
        2,
        "ok",
        "missing",
    )
    assert "no cell area" in run.note
    lines = summary_lines(table, "conversions.tsv", "MODELS", runs)
    assert "NO FILES D: no dir" in lines
    assert any(line.startswith("STATIC A S3: no cell area") for line in lines)
