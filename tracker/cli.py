"""The ``posetrack`` command line: one entry point, one subcommand per job.

Each package that owns a job exposes ``register(subparsers)`` in its own ``cli`` module; it adds its
subcommand(s) and sets ``func`` (``args -> int`` exit status). Imports are lazy so ``posetrack eval``
never pays for torch.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# module path -> the subcommands it registers (for lazy import and for the help text)
_COMMANDS: dict[str, tuple[str, ...]] = {
    "tracker.track_cli": ("track",),
    "tracker.estimate_cli": ("estimate", "convert-checkpoint"),
    "eval_posetrack.cli": ("eval",),
    "tracker.weights_cli": ("weights",),
    "estimators.training.cli": ("train", "evaluate-coco"),
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="posetrack", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    wanted = None
    if argv:
        wanted = next((a for a in argv if not a.startswith("-")), None)
    for module_name, commands in _COMMANDS.items():
        if wanted is not None and wanted not in commands:
            # Register a cheap placeholder so `posetrack --help` lists every command without imports.
            for name in commands:
                sub.add_parser(name, help=f"see `posetrack {name} --help`", add_help=False)
            continue
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(argv)
        args, extra = parser.parse_known_args(argv)
    except KeyboardInterrupt:  # Ctrl-C before a subcommand installs its handlers: no traceback
        print("posetrack: interrupted", file=sys.stderr)
        return 130
    if extra:
        # dotted KEY=VALUE overrides may follow options (argparse only takes positionals in one run)
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = list(args.overrides or []) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as exc:
        # Every package reports bad input as a ValueError/OSError subclass whose message names the
        # file, the item and the field; show it as one line (set POSETRACK_DEBUG=1 for the traceback).
        if os.environ.get("POSETRACK_DEBUG"):
            raise
        print(f"posetrack {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"posetrack {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
