"""deploy/k8s: every manifest against the Kubernetes OpenAPI schemas (the pinned, offline
``kubernetes-validate``, strict: unknown fields are errors), and what the deployment
story needs of each one."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import kubernetes_validate
import pytest

from tests.support.cli import start_host
from tests.support.deploy import (
    DEPLOY,
    K8S_FILES,
    Doc,
    assert_cli_accepts,
    container,
    env_of,
    final_user,
    find,
    load_documents,
)
from tests.support.relay import running_relay

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


def test_no_image_floats() -> None:
    for path in K8S_FILES:
        for doc in load_documents(path):
            if doc["kind"] != "Deployment":
                continue
            for item in doc["spec"]["template"]["spec"]["containers"]:
                image = item["image"]
                assert ":" in image.rsplit("/", 1)[-1], f"{image} has no tag"
                assert not image.endswith(":latest"), image


def test_replicas_deployment_finds_and_drains_its_peers() -> None:
    """deploy/k8s/replicas: three replicas on the shared database, the pod IP as the link
    address, a disruption budget, readiness on /ready (false while draining), the link
    port closed to all but the replicas, and Traefik's routing left as it is."""
    documents = load_documents(DEPLOY / "k8s/replicas/deployment.yaml")
    services = load_documents(DEPLOY / "k8s/replicas/service.yaml")
    deployment = find(documents, "Deployment", "agent-relay")
    pod = deployment["spec"]["template"]
    relay = container(deployment, "relay-server")
    assert deployment["spec"]["replicas"] == 3
    assert_cli_accepts(relay["command"])
    env = env_of(relay)
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    names = [entry["name"] for entry in relay["env"]]
    assert names.index("POD_IP") < names.index("AGENT_RELAY_REPLICA_ADDRESS")
    assert env["AGENT_RELAY_REPLICA_ADDRESS"]["value"] == "$(POD_IP):8083"
    assert env["AGENT_RELAY_REPLICA_LISTEN"]["value"] == "0.0.0.0:8083"
    assert env["SERVER_DATABASE_URL"]["value"].startswith("postgresql://")
    ports = {p["name"]: p["containerPort"] for p in relay["ports"]}
    assert ports == {"relay": 8082, "replica-link": 8083}
    assert relay["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "relay"}
    assert relay["livenessProbe"]["httpGet"] == {"path": "/health", "port": "relay"}
    assert pod["spec"]["terminationGracePeriodSeconds"] > 25  # > --shutdown-timeout
    assert_locked_down(relay, pod["spec"]["securityContext"])

    budget = find(documents, "PodDisruptionBudget", "agent-relay")
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert 0 < budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]

    headless = find(services, "Service", "agent-relay-replicas")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert [p["targetPort"] for p in headless["spec"]["ports"]] == ["replica-link"]

    # Traefik still sends /v1/relay/* to vk-remote:8082, which now reaches the replicas.
    ingress = load_documents(DEPLOY / "traefik/ingressroute.yaml")
    route = find(ingress, "IngressRoute")["spec"]["routes"][0]
    assert "PathPrefix(`/v1/relay`)" in route["match"]
    target = route["services"][0]
    public = find(services, "Service", target["name"])
    assert public["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    by_port = {p["port"]: p["targetPort"] for p in public["spec"]["ports"]}
    assert by_port[target["port"]] == "relay"
    assert 8083 not in by_port  # the link is never behind the public route

    policy = find(services, "NetworkPolicy")
    link_rules = [
        rule
        for rule in policy["spec"]["ingress"]
        if {"port": 8083, "protocol": "TCP"} in rule["ports"]
    ]
    assert link_rules
    for rule in link_rules:
        assert rule["from"] == [
            {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "agent-relay"}}}
        ]


def test_replicas_migrate_job_runs_a_real_command() -> None:
    job = find(load_documents(DEPLOY / "k8s/replicas/migrate-job.yaml"), "Job")
    migrate = job["spec"]["template"]["spec"]["containers"][0]
    assert_cli_accepts(migrate["command"])
    assert "SERVER_DATABASE_URL" in env_of(migrate)
