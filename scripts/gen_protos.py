"""Regenerate gen/ and the Python client's typed services from protos/ (--check: stale?)."""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_api_doc
import gen_client

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GEN = ROOT / "gen"
# grpcio-tools ships the well-known types (google/protobuf/*.proto).
WELL_KNOWN = Path(grpc_tools.__file__).parent / "_proto"
# mypy-protobuf's plugins sit beside the interpreter that runs this script.
BIN = Path(sys.executable).parent
PROTOSET = "loansuite.protoset"
CLIENT_MODULE = ROOT / "clients" / "python" / "loansuite_client" / "_services.py"
API_DOC = ROOT / "docs" / "API.md"


def generate(out: Path) -> None:
    """Write Python modules, gRPC stubs and typed .pyi stubs for every proto into out."""
    (out / "loansuite").mkdir(parents=True, exist_ok=True)
    files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    args = [
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{WELL_KNOWN}",
        f"--plugin=protoc-gen-mypy={BIN / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={BIN / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out}",
        f"--mypy_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_grpc_out={out}",
        # Every comment of the contract, for `grpcurl -protoset` and documentation tools
        # (server reflection serves descriptors without their comments).
        f"--descriptor_set_out={out / 'loansuite' / PROTOSET}",
        "--include_source_info",
        "--include_imports",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # Regular packages, so that gen/ installs and type-checks like any other code.
    for directory in [
        out / "loansuite",
        *(p for p in (out / "loansuite").rglob("*") if p.is_dir()),
    ]:
        (directory / "__init__.py").touch()
    (out / "loansuite" / "py.typed").touch()


def differences(a: Path, b: Path) -> list[str]:
    """Paths that differ between two generated trees."""
    found: list[str] = []

    def walk(cmp: filecmp.dircmp[str], prefix: str) -> None:
        found.extend(f"{prefix}{name}" for name in cmp.left_only + cmp.right_only)
        for name in cmp.common_files:
            if not filecmp.cmp(Path(cmp.left) / name, Path(cmp.right) / name, shallow=False):
                found.append(f"{prefix}{name}")
        for name, sub in cmp.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(filecmp.dircmp(a, b, ignore=["__pycache__"]), "")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when gen/ is stale")
    parser.add_argument("--gen", type=Path, default=GEN, help="the tree to write or check")
    args = parser.parse_args()
    check, target = args.check, args.gen
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "gen"
        generate(fresh)
        descriptor_set = (fresh / "loansuite" / PROTOSET).read_bytes()
        derived = {
            CLIENT_MODULE: gen_client.render(descriptor_set),
            API_DOC: gen_api_doc.render(descriptor_set),
        }
        if check:
            stale = differences(fresh, target) if target.exists() else [f"{target} is missing"]
            stale += [
                str(path.relative_to(ROOT))
                for path, text in derived.items()
                if not path.exists() or path.read_text() != text
            ]
            if stale:
                print(f"{target} is stale; run `make gen`:", *stale, sep="\n  ", file=sys.stderr)
                return 1
            return 0
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(fresh, target)
        for path, text in derived.items():
            path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
