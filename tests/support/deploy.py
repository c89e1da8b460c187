"""What the deployment tests read of deploy/: paths, YAML documents, the Dockerfile's final
stage, and the CLI options a manifest may use."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import click
import yaml
from dockerfile_parse import DockerfileParser

from agent_relay.cli import main, relay_server

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


DOCKERFILE = DEPLOY / "Dockerfile"


@cache
def instructions() -> list[dict[str, Any]]:
    parser = DockerfileParser(path=str(DOCKERFILE), env_replace=False)
    result: list[dict[str, Any]] = parser.structure
    return result


def stages() -> list[list[dict[str, Any]]]:
    result: list[list[dict[str, Any]]] = []
    for item in instructions():
        if item["instruction"] == "FROM":
            result.append([])
        if result:
            result[-1].append(item)
    return result


def final(instruction: str) -> list[str]:
    return [i["value"] for i in stages()[-1] if i["instruction"] == instruction]


def final_user() -> int:
    """The runtime stage's USER, as a number (Kubernetes' runAsNonRoot needs one)."""
    (user,) = final("USER")
    return int(user.split(":")[0])


def assert_cli_accepts(command: list[str]) -> None:
    """The command names a real entry point and only options it has."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    program = Path(command[0]).name
    assert program in scripts
    if program == "relay-server":
        command_object: click.Command | None = relay_server
    else:
        command_object = main.get_command(click.Context(main), command[1])
    assert command_object is not None, f"no command {command[1]}"
    params = command_object.params
    known = {opt for param in params for opt in param.opts}
    for word in command[1:]:
        if word.startswith("--"):
            assert word in known, f"{word} is not an option of {' '.join(command[:2])}"
