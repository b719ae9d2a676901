"""python -m gateway.export_schema [--check]: writes (or checks) gateway/schema.graphql."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.schema import build_schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


def printed_schema() -> str:
    return str(build_schema()).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    parser.add_argument("--out", type=Path, default=SCHEMA_FILE)
    args = parser.parse_args(argv)
    current = printed_schema()
    if args.check:
        existing = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if existing != current:
            print(f"{args.out} is out of date: run `make schema`", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(current, encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
