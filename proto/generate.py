"""Regenerates the Python modules and typed stubs under proto/retail from the .proto files.

Usage: uv run python proto/generate.py [--out DIR]
The output path equals the proto path (retail/catalog/v1/catalog.proto ->
retail/catalog/v1/catalog_pb2.py), so generated imports need no rewriting.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def proto_files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in (root / "retail").rglob("*.proto"))


def generate(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for stale in (out / "retail").rglob("*") if (out / "retail").exists() else []:
        if stale.is_file() and stale.name.endswith(GENERATED_SUFFIXES):
            stale.unlink()
    well_known = resources.files("grpc_tools") / "_proto"
    files = [str(p) for p in proto_files(PROTO_ROOT)]
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--mypy_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_grpc_out={out}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for package_dir in {(out / f).parent for f in files} | {out / "retail"}:
        for directory in [package_dir, *package_dir.parents]:
            if directory == out or out not in directory.parents:
                break
            (directory / "__init__.py").touch()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=PROTO_ROOT)
    out = parser.parse_args().out.resolve()
    if out != PROTO_ROOT and (out / "retail").exists():
        shutil.rmtree(out / "retail")
    generate(out)
    print(f"generated {len(proto_files(PROTO_ROOT))} proto files into {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
