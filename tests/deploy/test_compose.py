"""deploy/compose.yaml: the three services and PostgreSQL, as the code expects them.

There is no compose binary to ask, so the file is read as YAML (anchors and merge
keys resolved as compose resolves them) and held to the services' settings and
commands, and to the databases and roles that the PostgreSQL init script creates.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from services.auth.key_encryption import KeyEncryptionKey, load_key_encryption_key
from services.shared.settings import DEFAULT_HTTP_PORTS, DEFAULT_PORTS, ServiceName
from tests.deploy.manifests import DEPLOY, known_variables, parse_command

SERVICES: tuple[ServiceName, ...] = ("auth", "loans", "audit")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def _init_sql(compose: dict[str, Any]) -> str:
    mounts = compose["services"]["postgres"]["volumes"]
    (script,) = [m.split(":")[0] for m in mounts if "/docker-entrypoint-initdb.d/" in m]
    return (DEPLOY / str(script)).read_text()


def test_each_service_runs_its_own_command_with_real_settings(compose: dict[str, Any]) -> None:
    known = known_variables()
    assert set(compose["services"]) == {*SERVICES, "postgres"}
    for service in SERVICES:
        spec = compose["services"][service]
        command = parse_command(spec["command"])
        assert (command.handler.__name__, command.service) == ("_serve", service)
        assert set(spec["environment"]) - known == set()
        published = {int(p.split(":")[1]) for p in spec["ports"]}
        assert published == {DEFAULT_PORTS[service], DEFAULT_HTTP_PORTS[service]}
        assert spec["read_only"] is True
        (volume,) = spec["volumes"]
        assert volume.endswith(":" + spec["environment"]["LOANSUITE_DATA_DIR"])


def test_targets_name_the_other_services_on_their_ports(compose: dict[str, Any]) -> None:
    for service in SERVICES:
        environment = compose["services"][service]["environment"]
        for other in ("auth", "audit"):  # the services that others call
            host, port = environment[f"LOANSUITE_{other.upper()}_TARGET"].split(":")
            assert (host, int(port)) == (other, DEFAULT_PORTS[other])


def test_each_service_has_a_database_and_role_that_the_init_script_creates(
    compose: dict[str, Any],
) -> None:
    sql = _init_sql(compose)
    roles = dict(re.findall(r"CREATE ROLE (\w+) LOGIN PASSWORD '([^']+)'", sql))
    databases = dict(re.findall(r"CREATE DATABASE (\w+) OWNER (\w+)", sql))
    used = set()
    for service in SERVICES:
        environment = compose["services"][service]["environment"]
        url = make_url(environment[f"LOANSUITE_{service.upper()}_DATABASE_URL"])
        assert (url.drivername, url.host) == ("postgresql+psycopg", "postgres")
        assert databases[str(url.database)] == url.username
        assert roles[str(url.username)] == url.password
        used.add(url.database)
        assert compose["services"][service]["depends_on"]["postgres"] == {
            "condition": "service_healthy"
        }
    assert used == set(databases)  # one database per service, none left over


def test_the_development_key_encryption_key_is_well_formed(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    value = compose["services"]["auth"]["environment"]["LOANSUITE_KEY_ENCRYPTION_KEY"]
    default = re.fullmatch(r"\$\{LOANSUITE_KEY_ENCRYPTION_KEY:-(.+)\}", value)
    assert default is not None
    # A configured key is parsed, never written: the data directory is not touched.
    key = load_key_encryption_key(default[1], tmp_path / "untouched")
    assert isinstance(key, KeyEncryptionKey)
    assert not (tmp_path / "untouched").exists()
