"""The committed Python stubs are exactly what proto/generate.py makes from the .proto files."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parents[1]


def generated_files(root: Path) -> set[Path]:
    return {
        p.relative_to(root)
        for p in (root / "retail").rglob("*")
        if p.is_file() and p.suffix in {".py", ".pyi"}
    }


def test_generated_code_matches_the_protos(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(PROTO_ROOT / "generate.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    committed, fresh = generated_files(PROTO_ROOT), generated_files(tmp_path)
    assert committed == fresh, "run `make proto`: generated files were added or removed"
    drifted = [
        str(p)
        for p in sorted(fresh)
        if not filecmp.cmp(PROTO_ROOT / p, tmp_path / p, shallow=False)
    ]
    assert drifted == [], f"run `make proto`: stale generated files {drifted}"


def test_proto_path_equals_python_import_path() -> None:
    from retail.catalog.v1 import catalog_pb2

    assert catalog_pb2.DESCRIPTOR.name == "retail/catalog/v1/catalog.proto"
    assert catalog_pb2.DESCRIPTOR.package == "retail.catalog.v1"
