"""deploy/k8s/ is valid Kubernetes: every document against the schemas of one named version
(kubernetes-validate, strict: unknown fields are errors), and wired as the README says."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

K8S_VERSION = "1.33.0"  # the oldest version still in upstream support when this was written
MANIFESTS = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
PORTS = {"gateway": 50051, "order": 50052, "payment": 50053, "notification": 50054}


def documents() -> list[dict[str, Any]]:
    return [doc for path in sorted(MANIFESTS.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in documents() if doc["kind"] == kind}


@pytest.mark.parametrize("doc", documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_manifest_is_valid_for_the_named_kubernetes_version(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises ValidationError when not


def test_a_broken_manifest_is_rejected() -> None:
    broken = copy.deepcopy(by_kind("Deployment")["order"])
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["port"] = "grpc"  # not an int
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    unknown = copy.deepcopy(by_kind("Service")["order"])
    unknown["spec"]["clusterIPs"] = "None"  # a list in the schema
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, K8S_VERSION, strict=True)


def test_each_service_has_grpc_probes_on_its_port_and_a_headless_service() -> None:
    deployments, services = by_kind("Deployment"), by_kind("Service")
    assert set(deployments) == set(PORTS)
    for name, port in PORTS.items():
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["grpc"]["port"] == container["livenessProbe"]["grpc"]["port"] == port
        assert "requests" in container["resources"] and "limits" in container["resources"]
        assert services[f"{name}-headless"]["spec"]["clusterIP"] == "None"


def test_the_configuration_points_at_a_redis_cluster_and_the_headless_services() -> None:
    data = by_kind("ConfigMap")["shop-config"]["data"]
    assert data["REDIS_CLUSTER"] == "1" and data["REDIS_URL"].startswith("redis://redis-cluster:")
    for name in ("order", "payment", "notification"):
        assert data[f"{name.upper()}_SERVICE_ADDR"] == f"dns:///{name}-headless:{PORTS[name]}"
