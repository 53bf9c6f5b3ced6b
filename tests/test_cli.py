"""The command line: every subcommand is listed, --help works, errors are one line."""

import os

import pytest

from posenet import cli
from posenet.core import fileio
from posenet.core.errors import PosenetError


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in cli.COMMANDS:
        assert command.name in out


def test_data_help_lists_every_data_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["data", "--help"])
    out = capsys.readouterr().out
    for command in cli.DATA_COMMANDS:
        assert command.name in out


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["frobnicate"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_unknown_benchmark_is_one_line(capsys, tmp_path):
    assert cli.main(["bench", "nonsense", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown benchmark nonsense" in err[0]


def test_atomic_output_removes_partial_file_and_keeps_old(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with fileio.atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]
    with fileio.atomic_output(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_unwritable_output_is_one_clear_error(tmp_path):
    with pytest.raises(PosenetError, match="is a directory"):
        fileio.check_writable(tmp_path)


def test_help_imports_no_tensorflow():
    """`posenet --help` (and a command's --help that needs no TF) stays instant: no TensorFlow or Keras."""
    import subprocess
    import sys

    code = ("import sys, contextlib, io\n"
            "from posenet import cli\n"
            "for argv in (['--help'], ['data', '--help'], ['track', '--help']):\n"
            "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "        cli.main(argv)\n"
            "loaded = {'tensorflow', 'keras'} & set(sys.modules)\n"
            "assert not loaded, sorted(loaded)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-400:]


def test_an_error_after_tensorflow_loads_is_one_line_without_log_lines(tmp_path):
    """#14 item 10: TensorFlow's oneDNN notice (four lines, printed before absl logging is set up, so
    TF_CPP_MIN_LOG_LEVEL does not stop it) came before every error of a command that loads it."""
    import subprocess
    import sys
    from pathlib import Path

    data = tmp_path / "d.h5"
    data.write_bytes(b"")
    env = {key: value for key, value in os.environ.items() if not key.startswith("TF_")}
    result = subprocess.run([sys.executable, "-m", "posenet", "train", "--model", "C1_NET", "--train", str(data),
                             "--val", str(data)], capture_output=True, text=True, env=env, timeout=300,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"posenet: error: {data}: the validation file is the training "
                                                  "file (leakage)"]
