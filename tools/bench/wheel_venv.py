"""Install this checkout as a production host gets it, for the benchmarks' start-up figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def install(tmp: Path, source: Path = ROOT) -> str:
    """This checkout (or the tree at ``source``) as a production host gets it: a wheel installed
    in a venv of its own (its dependencies reached through a .pth, so nothing is downloaded but
    the build's)."""
    import sysconfig
    wheels = tmp / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                    str(source)], check=True)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    vpy = venv / "bin" / "python"
    site = subprocess.run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True,
                          check=True).stdout.strip()
    (Path(site) / "zz-pbx-bridge-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next(wheels.glob("*.whl"))
    # the venv's own pip: pip install --prefix from this environment would uninstall the
    # pbx-bridge installed here
    subprocess.run([str(vpy), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True)
    return str(venv / "bin" / "pbx-bridge")
