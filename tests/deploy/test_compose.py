"""deploy/compose.yaml against the compose-spec JSON schema (vendored in the pinned
check-jsonschema package), deploy/Caddyfile through the real ``caddy adapt``, and what a
single-machine self-host needs of both."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from importlib.resources import files
from typing import Any

import jsonschema
import pytest

from tests.support.caddy import find_caddy
from tests.support.deploy import (
    COMPOSE_FILE,
    DEPLOY,
    Doc,
    assert_cli_accepts,
    final_user,
    load_documents,
)


def compose_schema() -> dict[str, Any]:
    text = files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema: dict[str, Any] = json.loads(text.read_text())
    return schema


def validate(doc: Doc) -> None:
    schema = compose_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class(schema).validate(doc)


@pytest.fixture
def compose() -> Doc:
    (doc,) = load_documents(COMPOSE_FILE)
    return doc


def test_matches_the_compose_spec(compose: Doc) -> None:
    validate(compose)


def test_the_schema_rejects_a_broken_file(compose: Doc) -> None:
    typo = copy.deepcopy(compose)
    typo["services"]["relay"]["restart_policy"] = "always"  # not a service field
    wrong_type = copy.deepcopy(compose)
    wrong_type["services"]["relay"]["depends_on"] = 5  # a list or a mapping
    for broken in (typo, wrong_type):
        with pytest.raises(jsonschema.ValidationError):
            validate(broken)


def test_relay_postgres_caddy(compose: Doc) -> None:
    services = compose["services"]
    assert set(services) == {"relay", "postgres", "caddy"}
    relay = services["relay"]
    assert relay["build"]["dockerfile"] == "deploy/Dockerfile"
    assert_cli_accepts(relay["command"])
    assert relay["environment"]["SERVER_DATABASE_URL"].startswith("postgresql://relay:")
    assert "@postgres:5432/relay" in relay["environment"]["SERVER_DATABASE_URL"]
    assert relay["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert relay["read_only"] is True
    assert relay["user"] == f"{final_user()}:{final_user()}"
    assert relay["mem_limit"] == "128m"
    assert "ports" not in relay  # reached only through Caddy
    caddy = services["caddy"]
    assert {"80:80", "443:443"} <= set(caddy["ports"])
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    for service in services.values():
        image = service["image"]
        assert ":" in image, image
        assert not image.endswith(":latest"), image


def test_caddyfile_proxies_to_the_relay_with_automatic_tls() -> None:
    result = subprocess.run(
        [find_caddy(), "adapt", "--adapter", "caddyfile", "--config", str(DEPLOY / "Caddyfile")],
        env={**os.environ, "RELAY_DOMAIN": "relay.example.com"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    (server,) = config["apps"]["http"]["servers"].values()
    assert server["listen"] == [":443"]  # HTTPS, with the certificate Caddy manages
    assert "automatic_https" not in server  # not disabled
    (route,) = server["routes"]
    assert route["match"] == [{"host": ["relay.example.com"]}]
    handlers = route["handle"][0]["routes"]
    blocked, proxied = handlers
    assert blocked["match"] == [{"path": ["/metrics"]}]
    assert blocked["handle"][0]["status_code"] == 404
    proxy = proxied["handle"][0]
    assert proxy["handler"] == "reverse_proxy"
    assert proxy["upstreams"] == [{"dial": "relay:8082"}]
    assert proxy["flush_interval"] == -1


def test_env_example_names_what_compose_requires(compose: Doc) -> None:
    text = COMPOSE_FILE.read_text()
    example = (DEPLOY / "env.example").read_text()
    for name in ("POSTGRES_PASSWORD", "RELAY_DOMAIN"):
        assert f"${{{name}:?" in text
        assert f"\n{name}=" in "\n" + example
