"""The package as an install leaves it: byte-compiled.

``pip install .`` (the README's first command) compiles every module to ``__pycache__``, so a
user's runs load bytecode. A checkout run with ``PYTHONDONTWRITEBYTECODE=1`` (set on this
machine) never writes it, and every run would compile all of aggregator's modules again:
~0.1 s of each run's start-up that no installed copy pays. The benchmarks call
``compile_package()`` first, so they measure what a user runs.
"""

from __future__ import annotations

import compileall
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "aggregator"


def compile_package() -> None:
    compileall.compile_dir(PACKAGE, quiet=1)
