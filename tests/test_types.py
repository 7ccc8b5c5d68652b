"""House rule 9: the package is mypy --strict clean."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy not installed "
                    "(pip install -e '.[test]')")
def test_mypy_strict_clean():
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "pbx_bridge"], cwd=ROOT,
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
