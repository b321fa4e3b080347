"""Where a handler module's import time goes: `python -X importtime`, summed up.

`python -m bench.import_tree [catalog name] [--top N]` imports the function's handler module in a fresh
interpreter under its template's environment and prints the top-level packages by the time their own
modules took (self time, so the rows add up to the whole), then the largest single imports with
everything they pulled in (cumulative).
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass

from bench.conversation import CONVERSATION, handler_import, run_python


@dataclass(frozen=True)
class ImportRow:
    self_us: int
    cumulative_us: int
    depth: int
    module: str


def import_rows(catalog_name: str) -> list[ImportRow]:
    module, env = handler_import(catalog_name)
    rows = []
    for line in run_python(f"import {module}", env, "-X", "importtime").stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line.split(":", 1)[1].split("|")
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append(ImportRow(int(own), int(cumulative), depth, name.strip()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("function", nargs="?", default=CONVERSATION, help="catalog name")
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    rows = import_rows(args.function)
    by_package: Counter[str] = Counter()
    for row in rows:
        by_package[row.module.split(".")[0]] += row.self_us
    print(f"{args.function}: {sum(r.self_us for r in rows) / 1000:.1f} ms of imports (with -X importtime's overhead)")
    print("\nby top-level package (self time)")
    for package, self_us in by_package.most_common(args.top):
        print(f"  {self_us / 1000:7.1f} ms  {package}")
    print("\nlargest imports (cumulative; depth 0 is the handler module)")
    for row in sorted(rows, key=lambda r: -r.cumulative_us)[: args.top]:
        print(f"  {row.cumulative_us / 1000:7.1f} ms  {'  ' * row.depth}{row.module}")


if __name__ == "__main__":
    main()
