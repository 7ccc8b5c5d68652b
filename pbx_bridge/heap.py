"""Python's cyclic garbage collector and the large trees a one-shot command builds."""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def tree_built() -> Iterator[None]:
    """Around reading a large tree (a config of thousands of sections) in a command that runs
    once and ends: the collector is paused while the tree is built, and what was built is then
    moved out of its way (``gc.freeze``) rather than walked. Every collection would otherwise
    walk the tree again, which has no reference cycles and lives until the command ends: a
    tenth of a preflight on 5,000 endpoints. :func:`pbx_bridge.cli.main` unfreezes when the
    command returns."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
