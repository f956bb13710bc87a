"""NetworkPolicies: who may talk to whom, evaluated on the rendered objects.

The evaluation follows the NetworkPolicy rules: a pod selected by any
policy of a direction is isolated in that direction, and what it may do is
the union of the rules of the policies that select it.
"""

from __future__ import annotations

from tests.deploy.manifests import (
    ORCHESTRATORS,
    SERVICES,
    WEB,
    Manifest,
    Workload,
    egress_allowed,
    ingress_sources,
    policies_for,
    workloads,
)

GRPC = 7420
HTTP = 7421
METRICS = 9090
POSTGRES = 5432
MIGRATE = "specloom-migrate"


def pod(objects: list[Manifest], name: str) -> Workload:
    (found,) = (w for w in workloads(objects) if w.name == name)
    return found


def test_every_pod_is_isolated_both_ways(overlay: list[Manifest]) -> None:
    for workload in workloads(overlay):
        for direction in ("Ingress", "Egress"):
            assert list(policies_for(overlay, workload, direction)), (
                f"{workload.name}: no {direction} policy selects it, so all traffic is allowed"
            )


def test_the_gateway_is_reachable_from_anywhere(overlay: list[Manifest]) -> None:
    assert ingress_sources(overlay, pod(overlay, "gateway"), GRPC) == {"anywhere"}


def test_the_console_is_reachable_from_anywhere_and_reaches_only_the_gateway(
    overlay: list[Manifest],
) -> None:
    web = pod(overlay, WEB)
    assert ingress_sources(overlay, web, HTTP) == {"anywhere"}
    assert not ingress_sources(overlay, web, GRPC), "its gRPC (health only) is not reachable"
    assert egress_allowed(overlay, web, GRPC) == {"gateway"}
    for workload in workloads(overlay):
        if workload.name != WEB:
            assert not ingress_sources(overlay, workload, HTTP), workload.name


def test_only_the_gateway_reaches_the_orchestrators(overlay: list[Manifest]) -> None:
    for name in ORCHESTRATORS:
        assert ingress_sources(overlay, pod(overlay, name), GRPC) == {"gateway"}, name
    for workload in workloads(overlay):
        for name in ORCHESTRATORS:
            may = name in egress_allowed(overlay, workload, GRPC)
            assert may == (workload.name == "gateway"), f"{workload.name} -> {name}"


def test_sessions_is_reached_by_the_gateway_and_orchestrators_only(
    overlay: list[Manifest],
) -> None:
    callers = {"gateway", *ORCHESTRATORS}
    assert ingress_sources(overlay, pod(overlay, "sessions"), GRPC) == callers
    for name in callers:
        assert "sessions" in egress_allowed(overlay, pod(overlay, name), GRPC), name


def test_only_sessions_and_the_migration_reach_the_database(overlay: list[Manifest]) -> None:
    for workload in workloads(overlay):
        allowed = egress_allowed(overlay, workload, POSTGRES)
        if workload.name in ("sessions", MIGRATE):
            assert allowed, f"{workload.name} cannot reach PostgreSQL"
        else:
            assert not allowed, f"{workload.name} may connect to port {POSTGRES}: {allowed}"


def test_the_dev_database_accepts_sessions_and_the_migration_only(dev: list[Manifest]) -> None:
    assert ingress_sources(dev, pod(dev, "postgres"), POSTGRES) == {"sessions", MIGRATE}


def test_metrics_are_scrapable_and_nothing_else_is_open(overlay: list[Manifest]) -> None:
    for name in (*SERVICES, WEB):
        workload = pod(overlay, name)
        assert ingress_sources(overlay, workload, METRICS) == {"cluster"}, name
        assert not ingress_sources(overlay, workload, 8080), f"{name}: an unexpected open port"
    assert not ingress_sources(overlay, pod(overlay, MIGRATE), GRPC)
