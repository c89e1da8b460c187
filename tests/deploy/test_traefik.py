"""deploy/traefik: the IngressRoute and its Middlewares against Traefik's own CRD schemas
(openAPIV3Schema of traefik.io_ingressroutes / traefik.io_middlewares, Traefik v3, fetched
pinned by scripts/deploy-schemas.sh), and the route split the relay needs."""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.support.deploy import (
    DEPLOY,
    INGRESS_FILE,
    Doc,
    find,
    load_documents,
)

CRD_FILES = {
    "IngressRoute": "traefik.io_ingressroutes.yaml",
    "Middleware": "traefik.io_middlewares.yaml",
}


@cache
def crd_schema(directory: Path, kind: str) -> dict[str, Any]:
    crd = yaml.safe_load((directory / "traefik" / CRD_FILES[kind]).read_text())
    assert crd["spec"]["names"]["kind"] == kind
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def validate(schema_dir: Path, doc: Doc) -> None:
    assert doc["apiVersion"] == "traefik.io/v1alpha1"
    schema = crd_schema(schema_dir, doc["kind"])
    # Structural schemas of CRDs are OpenAPI 3.0 schemas: Draft 4 keywords.
    jsonschema.Draft4Validator(schema).validate(doc)
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])


@pytest.fixture
def documents() -> list[Doc]:
    return load_documents(INGRESS_FILE)


def test_every_document_matches_traefiks_crd(schema_dir: Path, documents: list[Doc]) -> None:
    kinds = [doc["kind"] for doc in documents]
    assert kinds.count("IngressRoute") == 1
    for doc in documents:
        validate(schema_dir, doc)


def test_the_schema_rejects_broken_routes(schema_dir: Path, documents: list[Doc]) -> None:
    route = find(documents, "IngressRoute")
    bad_kind = copy.deepcopy(route)
    bad_kind["spec"]["routes"][0]["kind"] = "Rules"
    no_match = copy.deepcopy(route)
    del no_match["spec"]["routes"][0]["match"]
    bad_middleware = copy.deepcopy(find(documents, "Middleware", "ip-allowlist"))
    bad_middleware["spec"]["ipAllowList"]["sourceRange"] = "10.0.0.0/8"
    for broken in (bad_kind, no_match, bad_middleware):
        with pytest.raises(jsonschema.ValidationError):
            validate(schema_dir, broken)


def test_relay_rule_first_without_forward_auth(documents: list[Doc]) -> None:
    route = find(documents, "IngressRoute")
    relay, catch_all = route["spec"]["routes"]
    host = "Host(`vk.cluster.derio.net`)"
    assert relay["match"] == f"{host} && PathPrefix(`/v1/relay`)"
    assert catch_all["match"] == host
    assert [s["port"] for s in relay["services"]] == [8082]
    assert [s["port"] for s in catch_all["services"]] == [8081]
    # Traefik orders routes by priority, by default the rule's length: the relay's rule
    # is the longer one, so it wins with or without explicit priorities.
    assert len(relay["match"]) > len(catch_all["match"])
    middlewares = {doc["metadata"]["name"]: doc["spec"] for doc in documents[1:]}
    relay_names = [m["name"] for m in relay["middlewares"]]
    assert relay_names == ["ip-allowlist", "security-headers"]  # as in the story
    for name in relay_names:
        assert not {"forwardAuth", "basicAuth", "digestAuth", "chain"} & middlewares[name].keys()
    # The web UI keeps its login; every named middleware is defined here.
    catch_all_names = [m["name"] for m in catch_all["middlewares"]]
    assert any("forwardAuth" in middlewares[name] for name in catch_all_names)
    assert set(relay_names + catch_all_names) == middlewares.keys()


def test_routes_point_at_the_sidecar_service(documents: list[Doc]) -> None:
    service = find(load_documents(DEPLOY / "k8s/sidecar/service.yaml"), "Service")
    ports = {p["port"] for p in service["spec"]["ports"]}
    for rule in find(documents, "IngressRoute")["spec"]["routes"]:
        for target in rule["services"]:
            assert target["name"] == service["metadata"]["name"]
            assert target["namespace"] == service["metadata"]["namespace"]
            assert target["port"] in ports
