"""A modality plugs in by discovery: a package with `detectors/` and `cli.py` gets its detectors
registered and its verbs dispatched without any edit to oddity.cli or the registry."""
from __future__ import annotations

import textwrap

import pytest

import oddity
from oddity.cli import main
from oddity.core import registry
from oddity.core.errors import ConfigError
from oddity.core.modality import modality_names, verb


def test_image_and_series_are_found():
    assert {"image", "series"} <= set(modality_names())
    assert "backbones" not in modality_names() and "metrics" not in modality_names()


@pytest.fixture
def toy_modality(tmp_path, monkeypatch):
    """A package `oddity.toy` outside the source tree: one detector and its CLI verbs."""
    package = tmp_path / "toy"
    (package / "detectors").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "detectors" / "__init__.py").write_text("")
    (package / "detectors" / "constant.py").write_text(textwrap.dedent('''
        from oddity.core.detector import Detector
        from oddity.core.registry import register

        @register("toy-constant")
        class Constant(Detector):
            """Toy detector of the toy modality."""
            modality = "toy"

            def __init__(self, *, level: int = 0):
                self.level = level
    '''))
    (package / "cli.py").write_text(textwrap.dedent('''
        def fit(detector_name, args, params):
            print(f"toy fit {detector_name} on {args.data} with {params}, option {args.toy_option}")

        def add_arguments(verb, parser):
            if verb == "fit":
                parser.add_argument("--toy-option")

        def add_commands(commands, parents):
            toy = commands.add_parser("toy-verb", parents=parents)
            toy.set_defaults(run=lambda args: print("toy verb ran"))
    '''))
    monkeypatch.setattr(oddity, "__path__", [*oddity.__path__, str(tmp_path)])
    monkeypatch.setattr(registry, "_loaded", False)
    yield
    registry._REGISTRY.pop("toy-constant", None)


def test_a_new_modality_plugs_in_without_edits(toy_modality, capsys):
    assert "toy" in modality_names()
    assert "toy-constant" in oddity.list_detectors("toy")
    code = main(["fit", "toy-constant", "--data", "x", "--out", "m", "--set", "level=3", "--toy-option", "y"])
    assert code == 0 and "toy fit toy-constant on x with {'level': 3}, option y" in capsys.readouterr().out
    assert main(["toy-verb"]) == 0 and "toy verb ran" in capsys.readouterr().out


def test_a_verb_the_modality_lacks_is_a_config_error(toy_modality):
    with pytest.raises(ConfigError, match="`oddity eval` is not available for toy models"):
        verb("toy", "evaluate")
