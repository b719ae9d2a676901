"""python -m gateway.export_schema [--check]: writes (or checks) the committed SDLs.

- gateway/schema.graphql: the schema as clients see it (plain SDL for their tools);
- gateway/subgraph.graphql, next to it: the Federation v2 subgraph SDL, what `_service { sdl }`
  answers and what a router composes (gateway/federation.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.federation import plain_sdl, subgraph_sdl
from gateway.schema import build_schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"
SUBGRAPH_NAME = "subgraph.graphql"
SUBGRAPH_FILE = SCHEMA_FILE.with_name(SUBGRAPH_NAME)


def printed_schema() -> str:
    return plain_sdl(build_schema()._schema)


def printed_subgraph_schema() -> str:
    return subgraph_sdl(build_schema())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    parser.add_argument(
        "--out", type=Path, default=SCHEMA_FILE, help=f"plain SDL; {SUBGRAPH_NAME} goes next to it"
    )
    args = parser.parse_args(argv)
    outputs = {
        args.out: printed_schema(),
        args.out.with_name(SUBGRAPH_NAME): printed_subgraph_schema(),
    }
    if args.check:
        stale = [
            path
            for path, current in outputs.items()
            if (path.read_text(encoding="utf-8") if path.exists() else "") != current
        ]
        for path in stale:
            print(f"{path} is out of date: run `make schema`", file=sys.stderr)
        return 1 if stale else 0
    for path, current in outputs.items():
        path.write_text(current, encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
