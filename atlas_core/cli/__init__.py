"""`atlas` command line: a thin front on atlas_core. Subcommands live in sibling modules.

Each module ``atlas_core.cli.<name>`` defines ``register(subparsers)`` which adds its parser and sets
``func`` (returning the exit code: 0 all inputs ok, 1 some input failed, 2 usage error).
"""
from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = ("gcode", "video", "floor", "twin", "leaks", "bridge")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors exit 2 with one line
        self.print_usage(sys.stderr)
        print(f"atlas: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="atlas", description="Energy Atlas: planned and observed energy of manufacturing")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    for name in SUBCOMMANDS:
        try:
            mod = importlib.import_module(f"atlas_core.cli.{name}")
        except ModuleNotFoundError as exc:  # a domain not installed (e.g. video extras missing)
            if exc.name and exc.name.startswith("atlas_core.cli"):
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
