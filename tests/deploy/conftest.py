"""Fixtures for the deployment files in deploy/: their paths, their YAML documents, and
the third-party schemas fetched (pinned) by scripts/deploy-schemas.sh."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S_FILES = sorted((DEPLOY / "k8s").rglob("*.yaml"))
INGRESS_FILE = DEPLOY / "traefik" / "ingressroute.yaml"
COMPOSE_FILE = DEPLOY / "compose.yaml"

Doc = dict[str, Any]


def load_documents(path: Path) -> list[Doc]:
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert documents, f"{path} holds no document"
    return documents


def find(documents: list[Doc], kind: str, name: str | None = None) -> Doc:
    for doc in documents:
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name):
            return doc
    raise AssertionError(f"no {kind} {name or ''} in the documents")


def container(deployment: Doc, name: str) -> Doc:
    for item in deployment["spec"]["template"]["spec"]["containers"]:
        if item["name"] == name:
            result: Doc = item
            return result
    raise AssertionError(f"no container {name} in {deployment['metadata']['name']}")


def env_of(item: Doc) -> dict[str, Doc]:
    return {entry["name"]: entry for entry in item.get("env", [])}


@pytest.fixture(scope="session")
def schema_dir() -> Path:
    """Traefik's CRDs, fetched by scripts/deploy-schemas.sh (scripts/test.sh runs it
    first; run here too, so these tests also work alone)."""
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "deploy-schemas.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"scripts/deploy-schemas.sh failed:\n{result.stderr}")
    return Path(result.stdout.strip().splitlines()[-1])
