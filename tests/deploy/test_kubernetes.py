"""The Kubernetes manifests: valid against the API's schemas, and true to the services.

The base and each overlay are rendered by the kustomize subset in manifests.py and
every object is validated strictly against the schemas of Kubernetes 1.33 that
kubernetes-validate ships (no network). The remaining checks hold the manifests to
what the code says: settings, commands, ports, the drain and the network policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from services.shared.settings import DEFAULT_HTTP_PORTS, DEFAULT_PORTS, ServiceName, Settings
from tests.deploy.manifests import (
    KUSTOMIZE,
    OVERLAYS,
    Manifest,
    build,
    containers,
    known_variables,
    parse_command,
)

KUBERNETES_VERSION = "1.33.0"
SERVICES: tuple[ServiceName, ...] = ("auth", "loans", "audit")
TREES = {"base": KUSTOMIZE / "base", **{o: KUSTOMIZE / "overlays" / o for o in OVERLAYS}}


@pytest.fixture(params=list(TREES), scope="module")
def rendered(request: pytest.FixtureRequest) -> list[Manifest]:
    return build(TREES[str(request.param)])


def _one(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    (found,) = (m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name)
    return found


def _container(manifests: list[Manifest], service: str) -> dict[str, Any]:
    pod: dict[str, Any] = _one(manifests, "Deployment", service)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return dict(container)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_every_object_is_valid_for_the_kubernetes_api(rendered: list[Manifest]) -> None:
    problems = []
    for manifest in rendered:
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{manifest['kind']}/{manifest['metadata']['name']}: {exc.message}")
    assert problems == []
    kinds = {(m["kind"], m["metadata"]["name"]) for m in rendered}
    for service in SERVICES:
        for kind in ("Deployment", "Service", "PodDisruptionBudget"):
            assert (kind, service) in kinds
    assert ("HorizontalPodAutoscaler", "loans") in kinds


def test_every_file_in_the_tree_is_rendered() -> None:
    """A manifest left out of every kustomization is never applied: none may be."""
    files = {p for p in KUSTOMIZE.rglob("*.yaml") if p.name != "kustomization.yaml"}
    listed = set()
    for tree in TREES.values():
        text = (tree / "kustomization.yaml").read_text()
        listed |= {p for p in files if p.parent == tree and p.name in text}
    assert files == listed


def test_each_deployment_runs_its_service_with_real_settings(rendered: list[Manifest]) -> None:
    known = known_variables()
    for service in SERVICES:
        container = _container(rendered, service)
        command = parse_command(container["args"])
        assert (command.handler.__name__, command.service) == ("_serve", service)
        names = [e["name"] for e in container["env"]]
        assert len(names) == len(set(names)), names
        assert set(names) - known == set()
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"grpc": DEFAULT_PORTS[service], "http": DEFAULT_HTTP_PORTS[service]}


def test_targets_and_secrets_name_what_the_manifests_define(rendered: list[Manifest]) -> None:
    services = {m["metadata"]["name"]: m for m in rendered if m["kind"] == "Service"}
    secrets = {m["metadata"]["name"]: m["stringData"] for m in rendered if m["kind"] == "Secret"}
    for container in containers(rendered):
        for name, value in _env(container).items():
            if name.endswith("_TARGET"):
                host, port = value.split(":")
                assert int(port) in [p["port"] for p in services[host]["spec"]["ports"]]
            elif isinstance(value, dict):
                reference = value["secretKeyRef"]
                assert reference["key"] in secrets[reference["name"]], name
    # Placeholders, never secrets: each value says so, and none is a usable URL or key.
    values = [v for data in secrets.values() for v in data.values()]
    assert values
    assert all(v.startswith("CHANGE-ME") for v in values)


def test_pods_run_unprivileged_on_a_read_only_root(rendered: list[Manifest]) -> None:
    for service in SERVICES:
        pod = _one(rendered, "Deployment", service)["spec"]["template"]["spec"]
        container = _container(rendered, service)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        writable = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert set(mounts.values()) <= writable
        assert _env(container)["LOANSUITE_DATA_DIR"] in mounts
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])


def test_probes_are_native_grpc_and_the_drain_fits_the_grace_period(
    rendered: list[Manifest],
) -> None:
    for service in SERVICES:
        pod = _one(rendered, "Deployment", service)["spec"]["template"]["spec"]
        container = _container(rendered, service)
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["grpc"] == {"port": DEFAULT_PORTS[service]}, probe
        env = _env(container)
        drain = float(env["LOANSUITE_DRAIN_SECONDS"])
        grace = float(
            env.get("LOANSUITE_GRACE_SECONDS", Settings.model_fields["grace_seconds"].default)
        )
        assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", f"{drain:g}"]
        assert pod["terminationGracePeriodSeconds"] > 2 * drain + grace


def test_budgets_services_and_the_autoscaler_select_their_own_pods(
    rendered: list[Manifest],
) -> None:
    for service in SERVICES:
        labels = _one(rendered, "Deployment", service)["spec"]["template"]["metadata"]["labels"]
        selectors = [
            _one(rendered, "Service", service)["spec"]["selector"],
            _one(rendered, "PodDisruptionBudget", service)["spec"]["selector"]["matchLabels"],
        ]
        for selector in selectors:
            assert selector.items() <= labels.items()
            assert selector["app.kubernetes.io/name"] == service
    target = _one(rendered, "HorizontalPodAutoscaler", "loans")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "loans")


def test_only_loans_and_auth_reach_audits_ingest_port(rendered: list[Manifest]) -> None:
    audit_labels = _one(rendered, "Deployment", "audit")["spec"]["template"]["metadata"]["labels"]
    policies = [m["spec"] for m in rendered if m["kind"] == "NetworkPolicy"]
    selecting_audit = [
        p for p in policies if p["podSelector"]["matchLabels"].items() <= audit_labels.items()
    ]
    # A policy with no rules denies; the rest are the only ways in.
    assert any("ingress" not in p for p in selecting_audit)
    peers = []
    for policy in selecting_audit:
        for rule in policy.get("ingress", []):
            if any(port["port"] in ("grpc", DEFAULT_PORTS["audit"]) for port in rule["ports"]):
                assert "from" in rule, "audit's gRPC port open to every pod"
                peers += [peer["podSelector"]["matchLabels"] for peer in rule["from"]]
    services = {p.get("app.kubernetes.io/name") for p in peers}
    assert services == {"loans", "auth", None}
    assert [p for p in peers if "app.kubernetes.io/name" not in p] == [
        {"loansuite.io/audit-reader": "true"}
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_set_their_namespace_and_image(overlay: str) -> None:
    rendered = build(TREES[overlay])
    assert {m["metadata"].get("namespace") for m in rendered} == {
        f"loansuite-{overlay}".removesuffix("-prod")
    }
    images = {c["image"] for c in containers(rendered)}
    assert len(images) == 1
    assert ":" in images.pop()


def test_the_loader_refuses_what_it_cannot_apply(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\ncommonLabels: {a: b}\n")
    with pytest.raises(AssertionError, match="commonLabels"):
        build(tmp_path)
