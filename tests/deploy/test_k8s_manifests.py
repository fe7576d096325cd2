"""deploy/k8s/ is valid Kubernetes: every document against the schemas of one named version
(kubernetes-validate, strict: unknown fields are errors), and wired as docs/operations.md (Kubernetes) says."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shoplib.process.health import LIVENESS

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


def container_of(deployment: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return found


def test_each_service_has_grpc_probes_on_its_port_and_a_headless_service() -> None:
    deployments, services = by_kind("Deployment"), by_kind("Service")
    assert set(deployments) == set(PORTS)
    for name, port in PORTS.items():
        container = container_of(deployments[name])
        probes = [container[p]["grpc"] for p in ("startupProbe", "readinessProbe", "livenessProbe")]
        assert {probe["port"] for probe in probes} == {port}
        assert "requests" in container["resources"] and "limits" in container["resources"]
        assert services[f"{name}-headless"]["spec"]["clusterIP"] == "None"


def test_liveness_reads_its_own_health_name_so_an_outage_never_restarts_a_pod() -> None:
    """Readiness reads "" (NOT_SERVING while Redis or a callee is away); startup and liveness read
    `liveness` (shoplib.process.health.LIVENESS: SERVING for as long as the process answers)."""
    for name, deployment in by_kind("Deployment").items():
        container = container_of(deployment)
        assert container["livenessProbe"]["grpc"].get("service") == LIVENESS, name
        assert container["startupProbe"]["grpc"].get("service") == LIVENESS, name
        assert container["readinessProbe"]["grpc"].get("service", "") == "", name


def test_every_pod_runs_unprivileged_on_a_read_only_root_filesystem() -> None:
    for name, deployment in by_kind("Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        container = container_of(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0, name
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"]["drop"] == ["ALL"], name
        assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}, name  # the one writable place


def test_each_deployment_has_a_disruption_budget_that_keeps_one_pod() -> None:
    budgets = by_kind("PodDisruptionBudget")
    for name, deployment in by_kind("Deployment").items():
        budget = budgets[name]["spec"]
        assert budget["selector"] == deployment["spec"]["selector"], name
        assert 1 <= budget["minAvailable"] < deployment["spec"]["replicas"], name  # a drain can still evict one


def test_prometheus_finds_each_pod_by_its_annotations_on_its_metrics_port() -> None:
    for name, deployment in by_kind("Deployment").items():
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        ports = {p["name"]: p["containerPort"] for p in container_of(deployment)["ports"]}
        assert annotations["prometheus.io/scrape"] == "true", name
        assert annotations["prometheus.io/port"] == str(ports["metrics"]), name
    config = yaml.safe_load((MANIFESTS.parent / "prometheus-kubernetes.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    kept = {tuple(r["source_labels"]): r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    assert kept[("__meta_kubernetes_pod_annotation_prometheus_io_scrape",)] == "true"


def test_the_configuration_points_at_a_redis_cluster_and_the_headless_services() -> None:
    data = by_kind("ConfigMap")["shop-config"]["data"]
    assert data["REDIS_CLUSTER"] == "1" and data["REDIS_URL"].startswith("redis://redis-cluster:")
    for name in ("order", "payment", "notification"):
        assert data[f"{name.upper()}_SERVICE_ADDR"] == f"dns:///{name}-headless:{PORTS[name]}"


DASHBOARD = MANIFESTS.parent / "grafana" / "shop.json"


def test_the_dashboard_reads_only_families_the_services_declare_and_compares_the_modes() -> None:
    import json
    import re

    from prometheus_client import REGISTRY

    from shoplib.observability import metrics  # noqa: F401  # declares the families in the default registry

    declared = {name for family in REGISTRY.collect() for name in
                (family.name, f"{family.name}_total", f"{family.name}_bucket", f"{family.name}_count")}
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    used = {name for expr in exprs for name in re.findall(r"\bshop_[a-z_]+", expr)}
    assert used <= declared, f"the dashboard reads families nobody declares: {sorted(used - declared)}"
    by_mode = [e for e in exprs if "shop_order_place_duration_seconds" in e and re.search(r"by \([^)]*\bmode\b", e)]
    assert len(by_mode) >= 3 and any(p["type"] == "row" and "mode" in p["title"] for p in panels)
