"""Reading the deployment files as their tools would: kustomize's subset, compose, the CLI.

kustomize is not a dependency, so ``build`` applies the fields these kustomizations
use, as kustomize defines them: ``resources`` (files and directories), ``patches``
as JSON 6902 operations aimed by kind and name, ``images``, ``replicas`` and
``namespace``. A field it does not know fails the build rather than being skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import yaml

from services.auth.key_encryption import KEK_VARIABLE
from services.cli import _parser
from services.shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUSTOMIZE = DEPLOY / "kubernetes"
OVERLAYS = ("dev", "prod")
KUSTOMIZATION_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "patches",
    "images",
    "replicas",
    "namespace",
}

Manifest = dict[str, Any]


def build(directory: Path) -> list[Manifest]:
    """The manifests kustomize would render from directory's kustomization.yaml."""
    kustomization: dict[str, Any] = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KUSTOMIZATION_FIELDS
    assert not unknown, f"{directory}: fields this loader does not apply: {sorted(unknown)}"
    manifests: list[Manifest] = []
    for resource in kustomization["resources"]:
        path = directory / resource
        manifests += build(path) if path.is_dir() else load_all(path)
    for patch in kustomization.get("patches", []):
        _patch(manifests, patch)
    for image in kustomization.get("images", []):
        _set_image(manifests, image)
    for replicas in kustomization.get("replicas", []):
        (deployment,) = (m for m in manifests if _is(m, "Deployment", replicas["name"]))
        deployment["spec"]["replicas"] = replicas["count"]
    if namespace := kustomization.get("namespace"):
        for manifest in manifests:
            manifest["metadata"]["namespace"] = namespace
    return manifests


def load_all(path: Path) -> list[Manifest]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def _is(manifest: Manifest, kind: str | None, name: str | None) -> bool:
    return (kind is None or manifest["kind"] == kind) and (
        name is None or manifest["metadata"]["name"] == name
    )


def _patch(manifests: list[Manifest], patch: dict[str, Any]) -> None:
    target = patch["target"]
    operations = jsonpatch.JsonPatch(yaml.safe_load(patch["patch"]))
    matched = [i for i, m in enumerate(manifests) if _is(m, target.get("kind"), target.get("name"))]
    assert matched, f"a patch aims at nothing: {target}"
    for index in matched:
        manifests[index] = operations.apply(manifests[index])


def _set_image(manifests: list[Manifest], image: dict[str, str]) -> None:
    for container in containers(manifests):
        if container["image"] == image["name"]:
            name = image.get("newName", image["name"])
            container["image"] = f"{name}:{image['newTag']}" if "newTag" in image else name


def containers(manifests: list[Manifest]) -> Iterator[dict[str, Any]]:
    for manifest in manifests:
        if manifest["kind"] == "Deployment":
            yield from manifest["spec"]["template"]["spec"]["containers"]


def known_variables() -> set[str]:
    """Every variable the services read: the settings, and the key-encryption key."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    return {f"{prefix}{name}".upper() for name in Settings.model_fields} | {KEK_VARIABLE}


def parse_command(arguments: list[str]) -> argparse.Namespace:
    """Parse arguments with the `loansuite` command's own parser; AssertionError if refused."""
    refusal = io.StringIO()
    try:
        with contextlib.redirect_stderr(refusal):
            return _parser().parse_args(arguments)
    except SystemExit:
        raise AssertionError(f"loansuite {arguments}: {refusal.getvalue().strip()}") from None
