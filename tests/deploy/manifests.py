"""Rendering the kustomize tree and reading what it produced.

The tests judge what a cluster would receive: ``kubectl kustomize`` output,
not the files under ``deploy/k8s``. Objects are plain dicts as parsed from
YAML; the helpers here name the few paths the tests read.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "production")

Manifest = dict[str, Any]

SERVICES = ("gateway", "sessions", "context-design", "coding")
"""Kubernetes names of the four gRPC services (Deployment, Service, component label)."""
WEB = "web"
"""The web console's Deployment, Service and component label (HTTP, not gRPC)."""
ORCHESTRATORS = ("context-design", "coding")
SECRET = "specloom"
"""The Secret every Deployment reads; created by the operator, never rendered."""


def kubectl() -> str | None:
    """The kubectl on PATH, if any."""
    return shutil.which("kubectl")


def render(kubectl_path: str, directory: Path) -> list[Manifest]:
    """``kubectl kustomize directory``, parsed."""
    result = subprocess.run(
        [kubectl_path, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def key(obj: Manifest) -> str:
    """``Kind/name`` for messages."""
    return f"{obj['kind']}/{obj['metadata']['name']}"


def of_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[Manifest], kind: str, name: str) -> Manifest:
    found = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_spec(workload: Manifest) -> Manifest:
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Manifest) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def containers(workload: Manifest) -> list[Manifest]:
    found: list[Manifest] = pod_spec(workload)["containers"]
    return found


def argv(container: Manifest) -> list[str]:
    """What the container runs: command plus args."""
    return [*container.get("command", []), *container.get("args", [])]


def config_data(objects: list[Manifest]) -> dict[str, str]:
    """The data of the one generated specloom ConfigMap."""
    maps = [
        o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"].startswith("specloom-")
    ]
    assert len(maps) == 1, [key(m) for m in maps]
    data: dict[str, str] = maps[0]["data"]
    return data


def environment(objects: list[Manifest], container: Manifest) -> dict[str, str]:
    """The container's environment as the kubelet builds it: ConfigMap, then ``env``.

    Secret-backed variables map to ``secret:<name>/<key>``.
    """
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        (config,) = (o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"] == ref)
        env.update(config["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = f"secret:{ref['name']}/{ref['key']}"
    return env


def orchestrator_addresses(objects: list[Manifest]) -> list[str]:
    """``SPECLOOM_ORCHESTRATOR_ADDRESSES``, read as pydantic-settings reads it (JSON)."""
    addresses: list[str] = json.loads(config_data(objects)["SPECLOOM_ORCHESTRATOR_ADDRESSES"])
    return addresses


def dns_target(address: str) -> tuple[str, int]:
    """``dns:///name:port`` -> (name, port)."""
    assert address.startswith("dns:///"), f"{address!r} is not a dns:/// target"
    host, _, port = address.removeprefix("dns:///").rpartition(":")
    return host, int(port)


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a label selector (matchLabels and matchExpressions) matches ``labels``."""
    for name, value in selector.get("matchLabels", {}).items():
        if labels.get(name) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        present = expression["key"] in labels
        value = labels.get(expression["key"])
        operator = expression["operator"]
        if operator == "In" and value not in expression["values"]:
            return False
        if operator == "NotIn" and value in expression["values"]:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


@dataclass(frozen=True)
class Workload:
    """A pod template that NetworkPolicies apply to."""

    name: str
    labels: Mapping[str, str]


def workloads(objects: list[Manifest]) -> list[Workload]:
    """Every pod template: Deployments, StatefulSets and Jobs."""
    return [
        Workload(o["metadata"]["name"], pod_labels(o))
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet", "Job")
    ]


def policies_for(objects: list[Manifest], pod: Workload, direction: str) -> Iterator[Manifest]:
    """NetworkPolicies that select ``pod`` and govern ``direction`` (Ingress/Egress)."""
    for policy in of_kind(objects, "NetworkPolicy"):
        spec = policy["spec"]
        types = spec.get("policyTypes", ["Ingress"])
        if direction in types and selects(spec["podSelector"], pod.labels):
            yield policy


def _port_matches(rule: Manifest, port: int) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True
    return any(p.get("port") == port for p in ports)


def ingress_sources(objects: list[Manifest], pod: Workload, port: int) -> set[str]:
    """Who may open connections to ``pod`` on ``port``.

    Pods of this namespace by workload name; ``anywhere`` for a rule without
    ``from``; ``cluster`` for a namespace selector; ``ip:<cidr>`` for blocks.
    An empty set means nothing may (the pod is isolated and no rule allows it).
    """
    sources: set[str] = set()
    peers_of = workloads(objects)
    for policy in policies_for(objects, pod, "Ingress"):
        for rule in policy["spec"].get("ingress", []):
            if not _port_matches(rule, port):
                continue
            if "from" not in rule:
                sources.add("anywhere")
                continue
            for peer in rule["from"]:
                sources |= _peer_names(peer, peers_of)
    return sources


def egress_allowed(objects: list[Manifest], pod: Workload, port: int) -> set[str]:
    """Where ``pod`` may connect on ``port`` (same vocabulary as :func:`ingress_sources`)."""
    targets: set[str] = set()
    peers_of = workloads(objects)
    for policy in policies_for(objects, pod, "Egress"):
        for rule in policy["spec"].get("egress", []):
            if not _port_matches(rule, port):
                continue
            if "to" not in rule:
                targets.add("anywhere")
                continue
            for peer in rule["to"]:
                targets |= _peer_names(peer, peers_of)
    return targets


def _peer_names(peer: Manifest, pods: list[Workload]) -> set[str]:
    if "ipBlock" in peer:
        return {f"ip:{peer['ipBlock']['cidr']}"}
    if "namespaceSelector" in peer:
        return {"cluster"}
    return {p.name for p in pods if selects(peer["podSelector"], p.labels)}
