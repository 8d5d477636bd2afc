"""Files written inside a staged folder skip the per-file checks and the scan for stale
temporaries (a listing of the folder per file would make n files cost n^2), and still land
whole, with the folder's permissions, and leave no temporaries."""
from __future__ import annotations

import glob
import os
import subprocess
import sys

from oddity.core.persistence import atomic_write, staged_directory


def _listing_forbidden(*args, **kwargs):
    raise AssertionError("the folder was listed for a staged file")


def test_staged_files_are_written_without_listing_their_folder(tmp_path, monkeypatch):
    with staged_directory(tmp_path / "out") as stage:
        monkeypatch.setattr(glob, "glob", _listing_forbidden)
        for index in range(3):
            atomic_write(stage / "maps" / f"{index}.txt", lambda tmp, i=index: tmp.write_text(str(i)),
                         staged=True)
        monkeypatch.undo()
    files = sorted(p.name for p in (tmp_path / "out" / "maps").iterdir())
    assert files == ["0.txt", "1.txt", "2.txt"]  # no temporaries left beside them
    assert (tmp_path / "out" / "maps" / "2.txt").read_text() == "2"
    mode = (tmp_path / "out" / "maps" / "0.txt").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_outside_a_stage_a_dead_process_temporaries_are_still_removed(tmp_path):
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    debris = tmp_path / f".a.txt.{finished.pid}.x1y2.tmp"
    debris.write_text("half")
    atomic_write(tmp_path / "a.txt", lambda tmp: tmp.write_text("a"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
