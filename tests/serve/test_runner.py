"""`oddity serve` refuses what it cannot serve safely, with one line and status 2."""
from __future__ import annotations

import pytest

from oddity.cli import main
from oddity.serve.runner import ServeOptions, store_locations


@pytest.mark.parametrize("argv, message", [
    (["serve", "missing.oddity"], "no such model file or folder"),
    (["serve", "MODEL", "--host", "0.0.0.0"], "needs an API key"),
    (["serve", "MODEL", "--batch", "0"], "--batch: must be at least 1"),
    (["serve", "MODEL", "--store", "nonsense://"], "not a database URL"),
])
def test_serve_refuses_with_one_line(argv, message, model_file, capsys, monkeypatch):
    monkeypatch.delenv("ODDITY_API_KEY", raising=False)
    argv = [str(model_file) if a == "MODEL" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_serve_refuses_a_folder_without_models_and_a_non_model_file(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    assert main(["serve", str(tmp_path)]) == 2
    assert "holds no .oddity model file" in capsys.readouterr().err
    assert main(["serve", str(tmp_path / "notes.txt")]) == 2
    assert "not a .oddity model file" in capsys.readouterr().err


def test_store_defaults_beside_the_first_model(tmp_path):
    url, files = store_locations(ServeOptions(models=[]), tmp_path / "m.oddity")
    assert url == f"sqlite:///{tmp_path.resolve() / 'oddity-store' / 'inspections.sqlite'}"
    assert files == tmp_path.resolve() / "oddity-store" / "files"
