"""Shared output of the benchmark scripts: a field-per-line printout and the JSON file."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def report(name: str, fields: dict) -> Path:
    """Print ``fields`` one per line and write them to ``benchmarks/results/<name>.json``."""
    for k, v in fields.items():
        print(f"{k:>22}: {v:.4g}" if isinstance(v, float) else f"{k:>22}: {v}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(fields, indent=2) + "\n")
    print(f"wrote {path}")
    return path
