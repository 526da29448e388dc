"""The console a person reads: a bad-input error printed once, as the last of a few lines (the
start-up lines of a run that trains: tests/test_training.py)."""

from conftest import run_main


def test_a_bad_input_run_prints_one_error_line_and_little_else(tmp_path):
    result = run_main(str(tmp_path / "run"), **{"data.corpus": str(tmp_path / "missing.txt")})

    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 1
    assert len(lines) <= 3, lines
    assert lines[-1].startswith("error: data.corpus: no file matches"), lines
    assert sum("no file matches" in line for line in lines) == 1, lines
    assert not (tmp_path / "run").exists()
