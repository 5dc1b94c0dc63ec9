"""k8s/production/: every manifest against the Kubernetes schemas, and what production needs."""

from __future__ import annotations

import copy
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from _dockerfile_rules import env_values, parse

from kailash_nb.cli.serve_env import SERVE_ENV

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "k8s" / "production").glob("*.yaml"))
# A Kubernetes release whose schemas kubernetes-validate bundles (checked offline, strict:
# an unknown field such as a misspelt probe is an error).
KUBERNETES = "1.33"
SECRET = "kailash-nb-secrets"


def documents(path: Path) -> list[dict]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


RESOURCES = {(doc["kind"], doc["metadata"]["name"]): doc for p in MANIFESTS for doc in documents(p)}
DEPLOYMENT = RESOURCES["Deployment", "kailash-nb"]
POD = DEPLOYMENT["spec"]["template"]["spec"]
(CONTAINER,) = POD["containers"]
_, STAGES = parse((ROOT / "Dockerfile").read_text())
IMAGE_ENV = env_values(STAGES[-1])


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_each_manifest_is_valid_against_the_kubernetes_schemas(path):
    for document in documents(path):
        kubernetes_validate.validate(document, KUBERNETES, strict=True)


def test_the_validation_refuses_a_misspelt_field():
    broken = copy.deepcopy(DEPLOYMENT)
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_production_has_every_resource_kind():
    kinds = {kind for kind, _ in RESOURCES}
    assert kinds == {
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
    }
    assert "Secret" not in kinds  # secrets are never committed (docs/deployment.md)


def test_probes_check_ready_and_health_on_the_served_port():
    (port,) = CONTAINER["ports"]
    assert port["containerPort"] == int(IMAGE_ENV["KAILASH_NB_PORT"])
    assert CONTAINER["readinessProbe"]["httpGet"] == {"path": "/ready", "port": port["name"]}
    assert CONTAINER["livenessProbe"]["httpGet"] == {"path": "/health", "port": port["name"]}
    assert CONTAINER["startupProbe"]["httpGet"]["path"] == "/health"


def test_resources_are_requested_and_limited():
    resources = CONTAINER["resources"]
    for kind in ("cpu", "memory"):
        assert resources["requests"][kind] and resources["limits"][kind], kind


def test_the_pod_runs_non_root_on_a_read_only_root():
    pod = POD["securityContext"]
    container = CONTAINER["securityContext"]
    assert pod["runAsNonRoot"] is True and container["runAsNonRoot"] is True
    assert pod["runAsUser"] == container["runAsUser"] == 10001  # the Dockerfile's USER
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]
    assert pod["seccompProfile"]["type"] == "RuntimeDefault"
    assert POD["automountServiceAccountToken"] is False
    # The image's only writable places are volumes: IPython's directory and HOME.
    mounts = {mount["mountPath"] for mount in CONTAINER["volumeMounts"]}
    assert {IMAGE_ENV["HOME"], str(Path(IMAGE_ENV["IPYTHONDIR"]).parent)} <= mounts


def test_the_jwt_secret_and_database_url_come_from_the_secret():
    from_secret = {
        item["name"]: item["valueFrom"]["secretKeyRef"]
        for item in CONTAINER["env"]
        if "secretKeyRef" in item.get("valueFrom", {})
    }
    assert {name: ref["name"] for name, ref in from_secret.items()} == {
        "KAILASH_NB_JWT_SECRET": SECRET,
        "KAILASH_NB_DATABASE_URL": SECRET,
    }
    assert all("value" not in item for item in CONTAINER["env"])  # no literal values


def test_the_configmap_holds_the_redis_url_and_serve_options_only():
    (source,) = CONTAINER["envFrom"]
    config = RESOURCES["ConfigMap", source["configMapRef"]["name"]]["data"]
    assert set(config) == {*SERVE_ENV.values(), "KAILASH_NB_REDIS_URL"}
    assert config["KAILASH_NB_REDIS_URL"].startswith("redis://")
    assert config["KAILASH_NB_PORT"] == IMAGE_ENV["KAILASH_NB_PORT"]
    assert config["KAILASH_NB_NOTEBOOK"] == IMAGE_ENV["KAILASH_NB_NOTEBOOK"]


def test_service_autoscaler_budget_and_policy_select_the_deployment():
    labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    assert DEPLOYMENT["spec"]["selector"]["matchLabels"] == labels
    service = RESOURCES["Service", "kailash-nb"]["spec"]
    assert service["selector"] == labels
    assert service["ports"][0]["targetPort"] == CONTAINER["ports"][0]["name"]
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        selector = RESOURCES[kind, "kailash-nb"]["spec"]
        selector = selector.get("selector") or selector["podSelector"]
        assert selector["matchLabels"] == labels, kind
    target = RESOURCES["HorizontalPodAutoscaler", "kailash-nb"]["spec"]
    assert target["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "kailash-nb",
    }
    budget = RESOURCES["PodDisruptionBudget", "kailash-nb"]["spec"]["minAvailable"]
    assert target["minReplicas"] > budget  # a voluntary eviction never takes the last pod


def test_the_network_policy_opens_only_the_served_port_and_the_backing_services():
    policy = RESOURCES["NetworkPolicy", "kailash-nb"]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    ingress_ports = {port["port"] for rule in policy["ingress"] for port in rule["ports"]}
    assert ingress_ports == {CONTAINER["ports"][0]["containerPort"]}
    egress_ports = {port["port"] for rule in policy["egress"] for port in rule["ports"]}
    assert egress_ports == {53, 5432, 6379}
