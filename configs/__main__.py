"""Validate design and board configurations: ``python -m configs check [NAME...]``.

Without names, every design and board under configs/ is checked; a name is looked up
among designs and boards (both, if it is both). One line per file; exit status 1 if any
file is invalid or a name is unknown.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import configs
from configs import ConfigError, boards, designs, load_board, load_design


def _shown(path: Path) -> Path:
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def check(names: list[str]) -> int:
    all_designs, all_boards = designs(), boards()
    targets: list[tuple[str, str]] = []
    unknown: list[str] = []
    for name in names or []:
        hits = [("design", name)] * (name in all_designs) + [("board", name)] * (name in all_boards)
        if not hits:
            unknown.append(name)
        targets += hits
    if not names:
        targets = [("design", n) for n in all_designs] + [("board", n) for n in all_boards]
    failed = 0
    for kind, name in targets:
        path = _shown(configs.CONFIG_DIR / f"{kind}s" / f"{name}.yaml")
        try:
            (load_design if kind == "design" else load_board)(name)
        except ConfigError as e:
            failed += 1
            print(f"FAIL {kind:6s} {name}: {len(e.problems)} problem(s) in {path}")
            for p in e.problems:
                print(f"       {p}")
            continue
        print(f"ok   {kind:6s} {name} ({path})")
    for name in unknown:
        print(f"FAIL unknown name {name!r}; designs: {', '.join(all_designs)}; "
              f"boards: {', '.join(all_boards)}")
    return 1 if failed or unknown else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m configs", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="validate designs and boards (all, or the named ones)")
    c.add_argument("names", nargs="*", metavar="NAME")
    a = ap.parse_args(argv)
    return check(a.names)


if __name__ == "__main__":
    sys.exit(main())
