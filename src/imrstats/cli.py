"""The command line: one command per analysis, for a reviewer with a single file or directory.

Each command prints a human summary; errors in the input are printed as a list (file, row, column,
value, rule) and the command exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import load_config
from .errors import AnalysisError, InputError


def _config(args) -> dict:
    overrides = {}
    if getattr(args, "seed", None) is not None:
        overrides["seed"] = args.seed
    return load_config(args.config, overrides)


def cmd_simulate(args) -> int:
    from .data_stage import write_synthetic_inputs

    config = _config(args)
    paths = write_synthetic_inputs(config, args.out)
    for name, path in paths.items():
        print(f"wrote {path}")
    print(f"synthetic data from seed {config['seed']}")
    return 0


def cmd_check(args) -> int:
    from .check import has_errors
    from .data_stage import run_check

    config = _config(args)
    problems = run_check(args.paths, config, args.problems)
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]
    for problem in problems:
        print(problem)
    print(f"{len(errors)} errors, {len(warnings)} warnings")
    if args.json:
        Path(args.json).write_text(json.dumps([p.__dict__ for p in problems], indent=2) + "\n")
    return 2 if has_errors(problems) else 0


def cmd_clean(args) -> int:
    from .data_stage import run_clean

    config = _config(args)
    written = run_clean([args.input], args.out, config)
    for name, path in written.items():
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imrstats", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="config YAML (default: the embedded config/config.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="write synthetic participants, assessments, service_use and programme tables")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, help="master seed (default: config's seed)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("check", help="validate input tables; exit 0 when clean, 2 with a problem list")
    p.add_argument("paths", nargs="+", help="a directory of tables, or table files (participants.csv, ...)")
    p.add_argument("--problems", help="also write the problem list as CSV")
    p.add_argument("--json", help="also write the problem list as JSON")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("clean", help="typed canonical tables and cleaning_log.csv")
    p.add_argument("--in", dest="input", required=True, help="directory holding the input tables")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=cmd_clean)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (InputError, AnalysisError) as exc:
        print(f"imrstats {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
