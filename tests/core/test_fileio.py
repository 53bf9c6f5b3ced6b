"""Atomic outputs: they create their folder, and a failure leaves nothing behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from posenet.core import fileio
from posenet.core.errors import PosenetError


def test_output_creates_its_missing_folders(tmp_path):
    target = tmp_path / "work" / "data" / "x.txt"
    with fileio.atomic_output(target) as tmp:
        assert tmp.parent.is_dir()
        tmp.write_text("done")
    assert target.read_text() == "done"
    assert [p.name for p in target.parent.iterdir()] == ["x.txt"]  # no .tmp left


def test_failure_in_a_new_folder_leaves_no_file_and_no_folder(tmp_path):
    (tmp_path / "kept").mkdir()
    target = tmp_path / "kept" / "new" / "deeper" / "x.h5"
    with pytest.raises(RuntimeError), fileio.atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert not target.exists() and not target.with_name("x.h5.tmp").exists()
    assert list(tmp_path.rglob("*")) == [tmp_path / "kept"]  # only the folders it made are removed


def test_failure_keeps_the_old_file_and_folders_holding_other_files(tmp_path):
    target = tmp_path / "new" / "out.txt"
    with pytest.raises(KeyboardInterrupt), fileio.atomic_output(target) as tmp:
        (target.parent / "other.txt").write_text("someone else's")
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert sorted(p.name for p in target.parent.iterdir()) == ["other.txt"]

    target.write_text("old")
    with pytest.raises(RuntimeError), fileio.atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["other.txt", "out.txt"]


def test_check_writable_accepts_a_missing_folder_without_creating_it(tmp_path):
    target = tmp_path / "a" / "b" / "x.h5"
    assert fileio.check_writable(target) == target
    assert not (tmp_path / "a").exists()


def test_check_writable_rejects_what_cannot_become_a_file(tmp_path):
    with pytest.raises(PosenetError, match="is a directory"):
        fileio.check_writable(tmp_path)
    blocker = tmp_path / "file.txt"
    blocker.write_text("")
    with pytest.raises(PosenetError, match="file.txt is not a directory"):
        fileio.check_writable(blocker / "sub" / "x.h5")
    with pytest.raises(PosenetError, match="not a directory"), fileio.atomic_output(blocker / "x.h5"):
        pass
    assert blocker.read_text() == ""


def test_unwritable_folder_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio.os, "access", lambda path, mode: False)  # as if read-only (works as root too)
    with pytest.raises(PosenetError, match=re.escape(f"directory {tmp_path} is not writable")):
        fileio.check_writable(tmp_path / "new" / "x.h5")
    with pytest.raises(PosenetError, match="is not writable"), fileio.atomic_output(tmp_path / "new" / "x.h5"):
        pass
    assert not list(tmp_path.iterdir())


def test_two_writers_of_one_output_get_their_own_temporary_files(tmp_path):
    target = tmp_path / "same.h5"
    with fileio.atomic_output(target) as first, fileio.atomic_output(target) as second:
        assert first != second and first.parent == second.parent == tmp_path
        first.write_text("first")
        second.write_text("second")
    assert target.read_text() == "first"  # the outer block finished last
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.h5"]


def test_outputs_get_the_usual_file_mode(tmp_path):
    umask = os.umask(0o022)
    try:
        with fileio.atomic_output(tmp_path / "x.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(umask)
    assert (tmp_path / "x.txt").stat().st_mode & 0o777 == 0o644


def test_an_output_that_is_an_input_is_refused(tmp_path):
    data = tmp_path / "data.h5"
    data.write_bytes(b"keep")
    (tmp_path / "link.h5").symlink_to(data)
    for output in (data, tmp_path / "." / "data.h5", tmp_path / "link.h5"):
        with pytest.raises(PosenetError, match="is also an input of this command"):
            fileio.check_writable(output, inputs=[None, data])
    assert fileio.check_writable(tmp_path / "other.h5", inputs=[data]) == tmp_path / "other.h5"
    assert data.read_bytes() == b"keep"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_a_folder_where_no_file_can_be_made_fails_early():
    """#14 item 8: /proc passes os.access for root; check_writable must still fail before the work."""
    with pytest.raises(PosenetError, match="/proc/x.h5: cannot create a file in /proc"):
        fileio.check_writable("/proc/x.h5")


WRITER = """
import os, sys, time
from posenet.core import fileio
with fileio.atomic_output(sys.argv[1]) as tmp:
    tmp.write_text("half")
    print(tmp, flush=True)
    time.sleep(60)
"""


def test_a_killed_writers_temporary_file_is_removed_by_the_next_writer(tmp_path, capsys):
    """#14 item 10: SIGKILL leaves the temporary file; the next writer of that output removes it and says so."""
    target = tmp_path / "out.h5"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    left = Path(writer.stdout.readline().strip())
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    assert left.exists() and not target.exists()
    host = fileio._writer_tag().split("@")[1]
    alive = tmp_path / f".out.h5.{os.getpid()}@{host}.abcd1234.tmp"  # a live writer's file is kept
    alive.write_text("busy")
    with fileio.atomic_output(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole" and not left.exists() and alive.exists()
    assert f"removed {left}" in capsys.readouterr().err


def test_private_tempdir_takes_temporary_files_with_it(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio.tempfile, "tempdir", str(tmp_path))
    dead = tmp_path / f"posenet-autograph-999999999@{fileio._writer_tag().split('@')[1]}-x"
    dead.mkdir()  # a folder of a process that is gone
    with fileio.private_tempdir("autograph") as private:
        assert fileio.tempfile.gettempdir() == str(private)
        fileio.tempfile.NamedTemporaryFile(delete=False, prefix="__autograph_generated_file").close()
    assert fileio.tempfile.gettempdir() == str(tmp_path)
    assert not list(tmp_path.iterdir())
