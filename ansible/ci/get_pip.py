"""Stands in for get-pip.py in ansible-test's cache (~/.ansible/test/cache/get_pip_X_Y.py), so
that its sanity bootstrap runs offline: instead of a pip downloaded from the internet, pip
installs itself from the pip wheel already fetched (pip runs from its own wheel, as get-pip.py
does), and every package from the wheels folder, never an index. ansible-test passes only
some of its environment on, so the folder is written into the cache's copy (WHEELS, prepended
by ansible-test-offline); PBX_BRIDGE_WHEELS when run by hand.

ansible-test runs it as get-pip.py: ``python get-pip.py [--no-setuptools] [--no-wheel]
[pip options] pip==X``."""

import glob
import os
import runpy
import sys

wheels = globals().get("WHEELS") or os.environ["PBX_BRIDGE_WHEELS"]
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
version = next((a.split("==", 1)[1] for a in args if a.startswith("pip==")), "*")
found = sorted(glob.glob(os.path.join(wheels, "pip-%s-py3-none-any.whl" % version)))
if not found:
    sys.exit("get_pip.py: no pip %s wheel in %s" % (version, wheels))
sys.path.insert(0, found[-1])
sys.argv = ["pip", "install", "--no-index", "--find-links", wheels] + args
runpy.run_module("pip", run_name="__main__", alter_sys=True)
