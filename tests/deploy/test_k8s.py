"""deploy/k8s: every manifest against the Kubernetes OpenAPI schemas (the pinned, offline
``kubernetes-validate``, strict: unknown fields are errors), and what the deployment
story needs of each one."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest

from agent_relay.cli import main, relay_server

from ..integration.test_host_cli import start_host
from ..integration.test_relay import running_relay
from .conftest import DEPLOY, K8S_FILES, ROOT, Doc, container, env_of, find, load_documents
from .test_dockerfile import final_user

KUBERNETES_VERSIONS = ["1.29.0", "1.37.0"]  # an older supported release and the newest


def validate(doc: Doc, version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", K8S_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_manifest_is_valid_kubernetes(path: Path, version: str) -> None:
    for doc in load_documents(path):
        validate(doc, version)


def test_the_validator_rejects_what_kubernetes_would() -> None:
    deployment = find(load_documents(DEPLOY / "k8s/sidecar/deployment.yaml"), "Deployment")
    typo = copy.deepcopy(deployment)
    container(typo, "relay-server")["readinessProbes"] = {}  # not a field
    wrong_type = copy.deepcopy(deployment)
    container(wrong_type, "relay-server")["ports"][0]["containerPort"] = "eight"
    for broken in (typo, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            validate(broken, KUBERNETES_VERSIONS[-1])


def test_sidecar_matches_the_reference_story() -> None:
    documents = load_documents(DEPLOY / "k8s/sidecar/deployment.yaml")
    relay = container(find(documents, "Deployment", "vk-remote"), "relay-server")
    assert relay["command"] == ["/usr/local/bin/relay-server"]
    env = env_of(relay)
    assert env["RELAY_LISTEN_ADDR"]["value"] == "0.0.0.0:8082"
    for key in ("VIBEKANBAN_REMOTE_JWT_SECRET", "POSTGRES_PASSWORD"):
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "vk-remote-secrets", "key": key}
    # Kubernetes expands $(VAR) only from variables defined earlier in the list.
    names = [entry["name"] for entry in relay["env"]]
    assert names.index("POSTGRES_PASSWORD") < names.index("SERVER_DATABASE_URL")
    assert re.fullmatch(
        r"postgresql://remote:\$\(POSTGRES_PASSWORD\)@postgres-vk:5432/remote\?sslmode=disable",
        env["SERVER_DATABASE_URL"]["value"],
    )
    assert relay["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "200m", "memory": "128Mi"},
    }
    assert relay["ports"] == [{"name": "relay", "containerPort": 8082, "protocol": "TCP"}]
    assert relay["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "relay"}
    assert relay["livenessProbe"]["httpGet"] == {"path": "/health", "port": "relay"}
    assert_locked_down(relay)
    pod = find(documents, "Deployment", "vk-remote")["spec"]["template"]["spec"]
    assert "securityContext" not in pod  # the remote API container is left as it was


def assert_locked_down(item: Doc, pod: Doc | None = None) -> None:
    context = {**(pod or {}), **item.get("securityContext", {})}
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == final_user() != 0
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def test_service_carries_8082_beside_8081() -> None:
    service = find(load_documents(DEPLOY / "k8s/sidecar/service.yaml"), "Service")
    ports = {p["port"]: p["targetPort"] for p in service["spec"]["ports"]}
    assert ports == {8081: "http", 8082: "relay"}
    deployment = find(load_documents(DEPLOY / "k8s/sidecar/deployment.yaml"), "Deployment")
    pod = deployment["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    named = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    assert set(ports.values()) <= named


def test_standalone_relay_keeps_its_state_on_a_volume() -> None:
    documents = load_documents(DEPLOY / "k8s/standalone/relay.yaml")
    deployment = find(documents, "Deployment", "agent-relay")
    spec = deployment["spec"]["template"]["spec"]
    relay = container(deployment, "relay")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    claim = find(documents, "PersistentVolumeClaim")["metadata"]["name"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in relay["volumeMounts"]}
    assert volumes[mounts["/data"]]["persistentVolumeClaim"]["claimName"] == claim
    assert relay["resources"]["limits"]["memory"] == "128Mi"
    assert_locked_down(relay, spec["securityContext"])
    assert spec["securityContext"]["fsGroup"] == final_user()
    assert_cli_accepts(relay["command"])
    service = find(documents, "Service")
    assert (
        service["spec"]["selector"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )


def test_connector_sidecar_snippet() -> None:
    documents = load_documents(DEPLOY / "k8s/host/connector-sidecar.yaml")
    deployment = find(documents, "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    connector = container(deployment, "relay-connector")
    assert env_of(connector)["VK_SHARED_RELAY_API_BASE"]["value"].startswith("https://")
    command = connector["command"]
    assert_cli_accepts(command)
    mounts = {m["name"]: m["mountPath"] for m in connector["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    token_file = Path(command[command.index("--token-file") + 1])
    secret_volume = next(n for n, v in volumes.items() if "secret" in v)
    secret = find(documents, "Secret", volumes[secret_volume]["secret"]["secretName"])
    assert token_file.parent == Path(mounts[secret_volume])
    assert token_file.name in secret["stringData"]
    # The agent container is left as it was, but for the volume group the connector needs.
    assert spec["securityContext"] == {"fsGroup": 10001, "fsGroupChangePolicy": "OnRootMismatch"}
    assert_locked_down(connector)


async def test_connector_sidecar_can_write_what_the_connector_writes(tmp_path: Path) -> None:
    """The connector of the manifest, run for real (trust mode, as deployed) until it is
    connected: every file it writes in its data dir must land on a writable mount that
    outlives the pod (its host key and paired clients; a new key means pairing again)."""
    documents = load_documents(DEPLOY / "k8s/host/connector-sidecar.yaml")
    deployment = find(documents, "Deployment")
    connector = container(deployment, "relay-connector")
    command = connector["command"]
    manifest_data_dir = Path(command[command.index("--data-dir") + 1])

    data_dir = tmp_path / "data"
    async with running_relay(f"sqlite:///{tmp_path / 'relay.sqlite3'}") as relay:
        host = await start_host(
            "--relay",
            relay.url,
            "--upstream",
            "http://127.0.0.1:9",
            "--data-dir",
            str(data_dir),
            env={"AGENT_RELAY_TOKEN": relay.token},
        )
        try:
            await host.wait_for_line(r"connected to ws://", 15)
        finally:
            host.process.terminate()
            await host.wait(10)
    written = sorted(p.relative_to(data_dir) for p in data_dir.rglob("*") if p.is_file())
    assert any(p.name.endswith(".key") for p in written), written  # the host key

    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    for relative in written:
        target = manifest_data_dir / relative
        mount = max(
            (m for m in connector["volumeMounts"] if target.is_relative_to(m["mountPath"])),
            key=lambda m: len(m["mountPath"]),
            default=None,
        )
        assert mount is not None, f"{target} is on the read-only root filesystem"
        assert not mount.get("readOnly", False), f"{target} is on a read-only mount"
        volume = volumes[mount["name"]]
        assert "persistentVolumeClaim" in volume, f"{target} would not survive the pod: {volume}"
    claim = volumes[
        next(
            m["name"]
            for m in connector["volumeMounts"]
            if Path(m["mountPath"]) == manifest_data_dir
        )
    ]
    find(documents, "PersistentVolumeClaim", claim["persistentVolumeClaim"]["claimName"])


def assert_cli_accepts(command: list[str]) -> None:
    """The command names a real entry point and only options it has."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    program = Path(command[0]).name
    assert program in scripts
    command_object = relay_server if program == "relay-server" else main.commands[command[1]]
    params = command_object.params
    known = {opt for param in params for opt in param.opts}
    for word in command[1:]:
        if word.startswith("--"):
            assert word in known, f"{word} is not an option of {' '.join(command[:2])}"


def test_no_image_floats() -> None:
    for path in K8S_FILES:
        for doc in load_documents(path):
            if doc["kind"] != "Deployment":
                continue
            for item in doc["spec"]["template"]["spec"]["containers"]:
                image = item["image"]
                assert ":" in image.rsplit("/", 1)[-1], f"{image} has no tag"
                assert not image.endswith(":latest"), image
