"""Run a benchmark suite: ``python -m benchmarks <suite> [--quick] [suite options]``.

Suites: each module ``benchmarks/<suite>.py`` (``-`` in the name becomes ``_``) with ``main(argv)``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

_NOT_SUITES = {"common", "demo", "train_mnist", "__main__"}


def suites() -> list[str]:
    here = Path(__file__).resolve().parent
    return sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules([str(here)])
                  if m.name not in _NOT_SUITES and not m.name.startswith("_"))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        print("available suites:", ", ".join(suites()))
        return 0
    name = argv[0]
    if name not in suites():
        print(f"unknown suite {name!r}; available: {', '.join(suites())}", file=sys.stderr)
        return 2
    mod = importlib.import_module(f"benchmarks.{name.replace('-', '_')}")
    return int(mod.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
