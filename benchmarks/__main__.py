"""python -m benchmarks NAME [NAME ...]: run benchmarks/NAME.py:run() and print one JSON object per line."""

from __future__ import annotations

import importlib
import json
import logging
import os
import pkgutil
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name not in {"common", "__main__"})


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if not argv or argv[0] in {"-h", "--help"}:
        sys.stderr.write(
            f"usage: python -m benchmarks NAME [NAME ...]\navailable: {', '.join(available())}\n"
        )
        return 2
    for name in argv:
        if name not in available():
            sys.stderr.write(f"unknown benchmark {name!r}; available: {', '.join(available())}\n")
            return 2
        module = importlib.import_module(f"benchmarks.{name}")
        for row in module.run():
            sys.stdout.write(json.dumps({"benchmark": name, **row}, default=str) + "\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
