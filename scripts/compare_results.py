"""Compare two results files record by record (a restructure must keep every number).

    python scripts/compare_results.py OLD.json NEW.json [--rtol 1e-9] [--ignore ci_method,...]

Records are matched by their identifying fields (model, metric, lang, layer, layer_b, block);
values are compared exactly and within ``--rtol``. Fields present on one side only are listed.
Exit status 1 when any record is missing or differs beyond the tolerance.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from pathlib import Path

KEY = ("model", "metric", "lang", "layer", "layer_b", "block")


def _key(record: dict) -> tuple:
    return tuple(record.get(k) for k in KEY)


def _close(a, b, rtol: float) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=rtol, abs_tol=rtol)
    return a == b


def compare(old: dict, new: dict, rtol: float, ignore: set[str]) -> tuple[list[str], Counter]:
    old_records = {_key(r): r for r in old["scores"]}
    new_records = {_key(r): r for r in new["scores"]}
    problems, counts = [], Counter()
    for key in old_records.keys() - new_records.keys():
        problems.append(f"missing in new: {key}")
    for key in new_records.keys() - old_records.keys():
        problems.append(f"only in new: {key}")
    for key in old_records.keys() & new_records.keys():
        a, b = old_records[key], new_records[key]
        for field in sorted((a.keys() | b.keys()) - ignore):
            if field not in a or field not in b:
                counts[f"field only in {'new' if field in b else 'old'}: {field}"] += 1
                continue
            if a[field] == b[field]:
                counts["equal"] += 1
            elif _close(a[field], b[field], rtol):
                counts["within rtol"] += 1
            else:
                counts[f"differs: {field}"] += 1
                problems.append(f"{key} {field}: {a[field]!r} -> {b[field]!r}")
    counts["records"] = len(old_records)
    return problems, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--rtol", type=float, default=1e-9)
    parser.add_argument("--ignore", default="", help="comma list of fields not compared")
    parser.add_argument("--show", type=int, default=20, help="differences printed at most")
    args = parser.parse_args(argv)
    old, new = (json.loads(p.read_text(encoding="utf-8")) for p in (args.old, args.new))
    problems, counts = compare(old, new, args.rtol, {f for f in args.ignore.split(",") if f})
    print(f"{args.old.name}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for line in problems[: args.show]:
        print("  " + line)
    if len(problems) > args.show:
        print(f"  ... {len(problems) - args.show} more")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
