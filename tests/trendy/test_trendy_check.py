"""The final check names every failed file, every model run ILAMB dropped, and a missing ILAMB config."""

import pytest
from trendy.check import CheckFailed, check_results


def write(path, header, rows):
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(r) + "\n" for r in rows))
    return path


def test_check_names_everything_to_fix(tmp_path):
    table = write(
        tmp_path / "conversions.tsv",
        ["model", "simulation", "variable", "status", "error"],
        [
            ["A", "S3", "gpp", "ok", ""],
            ["B", "S3", "gpp", "failed", "/r/B/S3/B_S3_gpp.nc: dangling symlink (-> /gone)"],
            ["C", "", "", "no_files", "model directory /r/C does not exist"],
        ],
    )
    models = write(
        tmp_path / "models.tsv",
        ["model", "path", "in_ilamb", "reason"],
        [["A_S3", "/m/A_S3", "yes", ""], ["D_S3", "/m/D_S3", "no", "ILAMB ModelResult fails: ValueError: x"]],
    )
    with pytest.raises(CheckFailed) as err:
        check_results(table, models)
    message = str(err.value)
    assert "2 problem(s)" in message
    assert "B_S3_gpp.nc: dangling symlink" in message
    assert "ILAMB dropped model D_S3" in message and "ValueError" in message
    assert "model directory /r/C" not in message  # a model without files is reported, not a failure


def test_check_passes_when_everything_was_scored(tmp_path):
    table = write(
        tmp_path / "t.tsv",
        ["model", "simulation", "variable", "status", "error"],
        [["A", "S3", "gpp", "ok", ""]],
    )
    models = write(tmp_path / "m.tsv", ["model", "path", "in_ilamb", "reason"], [["A_S3", "/m", "yes", ""]])
    assert check_results(table, models) == "all 1 converted files ok, every model run scored by ILAMB"


def test_a_missing_ilamb_config_is_a_warning_in_the_verdict(tmp_path):
    table = write(
        tmp_path / "t.tsv",
        ["model", "simulation", "variable", "status", "error"],
        [["A", "S3", "gpp", "ok", ""]],
    )
    missing = "ILAMB not run: config key 'trendy.ilamb.config': file 'x.cfg' does not exist"
    assert check_results(table, None, missing) == f"all 1 converted files ok; WARNING {missing}"
