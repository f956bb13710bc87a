"""The rendered overlays: schema-valid, and the properties an install relies on."""

from __future__ import annotations

import re
import tomllib

import kubernetes_validate
import pytest

from specloom.host import HostSettings
from specloom_web.config import WebSettings
from tests.deploy.dockerfile import DOCKERFILE, stages
from tests.deploy.manifests import (
    ORCHESTRATORS,
    ROOT,
    SECRET,
    SERVICES,
    WEB,
    Manifest,
    argv,
    config_data,
    containers,
    dns_target,
    environment,
    key,
    named,
    of_kind,
    orchestrator_addresses,
    pod_labels,
    pod_spec,
    selects,
)

KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")
"""The oldest release the manifests support (gRPC probes, matchLabelKeys and
autoscaling/v2 are all on by default there) and the newest with schemas."""

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SERVICE_MODULES = PYPROJECT["project"]["entry-points"]["specloom.services"]
GRPC_PORT = 7420
WEB_PORT = 7421
METRICS_PORT = 9090


def image_user() -> int:
    user = stages(DOCKERFILE.read_text())[-1].last("USER")
    assert user is not None
    return int(user.arguments.partition(":")[0])


def quantity(value: str | int) -> float:
    """A Kubernetes quantity (``500m``, ``1``, ``256Mi``, ``1Gi``) as a number."""
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    return float(text)


def deployments(objects: list[Manifest]) -> dict[str, Manifest]:
    return {d["metadata"]["name"]: d for d in of_kind(objects, "Deployment")}


def specloom_workloads(objects: list[Manifest]) -> list[Manifest]:
    """Deployments and Jobs running the specloom image."""
    return [o for o in objects if o["kind"] in ("Deployment", "Job")]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("tree", ["base", "dev", "production"])
def test_every_rendered_object_passes_strict_schema_validation(
    rendered: dict[str, list[Manifest]], tree: str, version: str
) -> None:
    problems = []
    for obj in rendered[tree]:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{key(obj)}: {error.message} at {list(error.path)}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{key(obj)}: no schema ({error})")
    assert not problems, "\n".join(problems)


def test_one_deployment_per_service_running_specloom_serve(overlay: list[Manifest]) -> None:
    found = deployments(overlay)
    assert set(found) == {*SERVICES, WEB}
    assert "specloom" in PYPROJECT["project"]["scripts"]
    for name, deployment in found.items():
        (container,) = containers(deployment)
        assert argv(container) == ["specloom", "serve", name.replace("-", "_")]
        assert argv(container)[2] in SERVICE_MODULES
        assert pod_labels(deployment)["app.kubernetes.io/component"] == name


def test_every_deployment_has_probes_on_the_grpc_port(overlay: list[Manifest]) -> None:
    for deployment in of_kind(overlay, "Deployment"):
        if deployment["metadata"]["name"] == WEB:
            continue  # HTTP: the next test
        (container,) = containers(deployment)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"grpc": GRPC_PORT, "metrics": METRICS_PORT}, key(deployment)
        tls = "SPECLOOM_TLS_CERT_FILE" in environment(overlay, container)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            handler = container[probe]
            # The kubelet's gRPC probe speaks plaintext only: with TLS, a TCP connect.
            kind = "tcpSocket" if tls else "grpc"
            assert kind in handler, f"{key(deployment)} {probe}: {handler}"
            assert handler[kind]["port"] == GRPC_PORT, f"{key(deployment)} {probe}"
            assert "service" not in handler.get("grpc", {}), "probe the server as a whole"


def test_the_console_serves_http_probed_at_healthz_and_keeps_grpc_private(
    overlay: list[Manifest], production: list[Manifest]
) -> None:
    for objects in (overlay, production):
        web = named(objects, "Deployment", WEB)
        (container,) = containers(web)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"http": WEB_PORT, "metrics": METRICS_PORT}
        env = environment(objects, container)
        assert env["SPECLOOM_WEB_LISTEN"] == f"0.0.0.0:{WEB_PORT}"
        # Its own gRPC server holds only health: loopback, never the pod network.
        assert env["SPECLOOM_LISTEN"].startswith("127.0.0.1:")
        name, port = env["SPECLOOM_WEB_GATEWAY_ADDRESS"].rsplit(":", 1)
        assert (name, int(port)) == ("gateway", GRPC_PORT)
        tls = "SPECLOOM_WEB_TLS_CERT_FILE" in env
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            handler = container[probe]["httpGet"]
            assert handler["path"] == "/healthz"
            assert handler["port"] == "http"
            assert handler.get("scheme", "HTTP") == ("HTTPS" if tls else "HTTP")
        service = named(objects, "Service", WEB)
        assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels(web))


def test_every_container_has_requests_and_limits(overlay: list[Manifest]) -> None:
    for workload in (o for o in overlay if o["kind"] in ("Deployment", "StatefulSet", "Job")):
        for container in containers(workload):
            resources = container["resources"]
            for resource in ("cpu", "memory"):
                request = quantity(resources["requests"][resource])
                limit = quantity(resources["limits"][resource])
                assert 0 < request <= limit, f"{key(workload)} {resource}"


def test_every_pod_runs_non_root_read_only_without_capabilities(overlay: list[Manifest]) -> None:
    for workload in (o for o in overlay if o["kind"] in ("Deployment", "StatefulSet", "Job")):
        spec = pod_spec(workload)
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, key(workload)
        assert pod["runAsUser"] != 0, key(workload)
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", key(workload)
        assert spec["automountServiceAccountToken"] is False, key(workload)
        named(overlay, "ServiceAccount", spec["serviceAccountName"])
        mounts = set()
        for container in containers(workload):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, key(workload)
            assert context["readOnlyRootFilesystem"] is True, key(workload)
            assert context["capabilities"]["drop"] == ["ALL"], key(workload)
            assert "add" not in context["capabilities"], key(workload)
            mounts |= {m["mountPath"] for m in container.get("volumeMounts", [])}
        assert "/tmp" in mounts, f"{key(workload)}: a read-only root needs a writable /tmp"


def test_specloom_pods_run_as_the_image_user(overlay: list[Manifest]) -> None:
    uid = image_user()
    for workload in specloom_workloads(overlay):
        assert pod_spec(workload)["securityContext"]["runAsUser"] == uid, key(workload)


def test_shutdown_drains_within_the_termination_grace_period(overlay: list[Manifest]) -> None:
    for deployment in of_kind(overlay, "Deployment"):
        (container,) = containers(deployment)
        grace = float(environment(overlay, container)["SPECLOOM_GRACE_SECONDS"])
        pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
        assert pre_stop[0] == "sleep"
        budget = pod_spec(deployment)["terminationGracePeriodSeconds"]
        # SIGTERM comes after preStop; the drain must end before SIGKILL.
        assert budget >= float(pre_stop[1]) + grace + 5, key(deployment)


def test_services_reach_each_other_through_headless_services(overlay: list[Manifest]) -> None:
    data = config_data(overlay)
    assert data["SPECLOOM_LISTEN"] == f"0.0.0.0:{GRPC_PORT}"
    assert data["SPECLOOM_METRICS_PORT"] == str(METRICS_PORT)
    targets = [data["SPECLOOM_SESSIONS_ADDRESS"], *orchestrator_addresses(overlay)]
    called = {dns_target(address)[0] for address in targets}
    assert called == {"sessions", *ORCHESTRATORS}
    for address in targets:
        name, port = dns_target(address)
        service = named(overlay, "Service", name)
        # Headless: DNS returns every pod, the channel round-robins over them.
        assert service["spec"]["clusterIP"] == "None", key(service)
        assert port in {p["port"] for p in service["spec"]["ports"]}
        assert selects(
            {"matchLabels": service["spec"]["selector"]}, pod_labels(deployments(overlay)[name])
        )


def test_only_the_gateway_and_the_console_are_exposed(overlay: list[Manifest]) -> None:
    for service in of_kind(overlay, "Service"):
        if service["metadata"]["name"] not in ("gateway", WEB):
            assert service["spec"].get("type", "ClusterIP") == "ClusterIP", key(service)
    gateway = named(overlay, "Service", "gateway")
    assert gateway["spec"].get("clusterIP") != "None", "clients dial one stable address"
    assert selects(
        {"matchLabels": gateway["spec"]["selector"]}, pod_labels(deployments(overlay)["gateway"])
    )


def test_secrets_are_referenced_never_rendered(overlay: list[Manifest]) -> None:
    assert not of_kind(overlay, "Secret"), "secrets are created by the operator (docs/deploy.md)"
    wanted = {
        "sessions": {"SPECLOOM_DATABASE_URL", "SPECLOOM_TOKEN_PEPPER", "SPECLOOM_INTERNAL_SECRET"},
        "gateway": {"SPECLOOM_INTERNAL_SECRET"},
        "context-design": {"SPECLOOM_INTERNAL_SECRET"},
        "coding": {"SPECLOOM_INTERNAL_SECRET"},
        # The console holds no credential: it acts with each person's token.
        WEB: set(),
        "specloom-migrate": {"SPECLOOM_DATABASE_URL"},
    }
    for workload in specloom_workloads(overlay):
        (container,) = containers(workload)
        from_secret = {
            name: value.removeprefix("secret:")
            for name, value in environment(overlay, container).items()
            if value.startswith("secret:")
        }
        assert set(from_secret) == wanted[workload["metadata"]["name"]], key(workload)
        for name, ref in from_secret.items():
            assert ref == f"{SECRET}/{name}", f"{key(workload)} {name} <- {ref}"


def test_every_setting_the_manifests_set_is_a_host_setting(overlay: list[Manifest]) -> None:
    known = {
        f"SPECLOOM_{field.upper()}"
        for field in (*HostSettings.model_fields, *WebSettings.model_fields)
    }
    for workload in specloom_workloads(overlay):
        for container in containers(workload):
            names = {n for n in environment(overlay, container) if n.startswith("SPECLOOM_")}
            assert names <= known, f"{key(workload)}: unknown {sorted(names - known)}"
    # The list must parse the way pydantic-settings parses it.
    settings = HostSettings.model_validate(
        {"orchestrator_addresses": orchestrator_addresses(overlay)}
    )
    assert settings.orchestrator_addresses == orchestrator_addresses(overlay)


def test_gateway_and_orchestrators_autoscale_and_every_service_has_a_budget(
    overlay: list[Manifest],
) -> None:
    scaled = {
        hpa["spec"]["scaleTargetRef"]["name"] for hpa in of_kind(overlay, "HorizontalPodAutoscaler")
    }
    assert scaled == {"gateway", *ORCHESTRATORS}
    for hpa in of_kind(overlay, "HorizontalPodAutoscaler"):
        spec = hpa["spec"]
        assert spec["scaleTargetRef"]["kind"] == "Deployment"
        assert 1 <= spec["minReplicas"] <= spec["maxReplicas"], key(hpa)
    for name, deployment in deployments(overlay).items():
        # An HPA-managed Deployment leaves replicas alone, or each apply resets it.
        assert ("replicas" in deployment["spec"]) == (name not in scaled), key(deployment)
        budgets = [
            pdb
            for pdb in of_kind(overlay, "PodDisruptionBudget")
            if selects(pdb["spec"]["selector"], pod_labels(deployment))
        ]
        assert len(budgets) == 1, key(deployment)


def test_the_migration_job_runs_specloom_migrate(overlay: list[Manifest]) -> None:
    job = named(overlay, "Job", "specloom-migrate")
    (container,) = containers(job)
    assert argv(container) == ["specloom", "migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert environment(overlay, container)["SPECLOOM_DATABASE_URL"].startswith("secret:")


def test_images_are_pinned(overlay: list[Manifest]) -> None:
    for workload in (o for o in overlay if o["kind"] in ("Deployment", "StatefulSet", "Job")):
        for container in containers(workload):
            image = container["image"]
            assert re.fullmatch(r"[^:@]+(:[\w.-]+|@sha256:[0-9a-f]{64})", image.split("/")[-1])
            assert not image.endswith(":latest"), image


def test_dev_runs_one_postgresql_with_its_own_volume(dev: list[Manifest]) -> None:
    (database,) = of_kind(dev, "StatefulSet")
    assert database["spec"]["replicas"] == 1
    (container,) = containers(database)
    assert container["image"].startswith("postgres:")
    assert container["readinessProbe"]["exec"]["command"][0] == "pg_isready"
    (claim,) = database["spec"]["volumeClaimTemplates"]
    mounted = {m["name"] for m in container["volumeMounts"]}
    assert claim["metadata"]["name"] in mounted
    service = named(dev, "Service", database["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels(database))
    assert named(dev, "Deployment", "sessions")["spec"]["replicas"] == 1


def test_production_uses_an_external_database_and_more_replicas(
    production: list[Manifest], dev: list[Manifest]
) -> None:
    assert not of_kind(production, "StatefulSet")
    images = [
        c["image"] for o in production if o["kind"] in ("Deployment", "Job") for c in containers(o)
    ]
    assert not [i for i in images if "postgres" in i]
    assert not [s for s in of_kind(production, "Service") if s["metadata"]["name"] == "postgres"]

    def floor(objects: list[Manifest], name: str) -> int:
        deployment = named(objects, "Deployment", name)
        if "replicas" in deployment["spec"]:
            count: int = deployment["spec"]["replicas"]
            return count
        minimum: int = named(objects, "HorizontalPodAutoscaler", name)["spec"]["minReplicas"]
        return minimum

    for name in (*SERVICES, WEB):
        assert floor(production, name) >= 3, name
        assert floor(production, name) > floor(dev, name), name


def test_production_pods_get_guaranteed_resources(production: list[Manifest]) -> None:
    for workload in specloom_workloads(production):
        for container in containers(workload):
            resources = container["resources"]
            assert resources["requests"] == resources["limits"], key(workload)


def test_production_gateway_is_a_load_balancer_serving_tls(production: list[Manifest]) -> None:
    service = named(production, "Service", "gateway")
    assert service["spec"]["type"] == "LoadBalancer"
    (container,) = containers(named(production, "Deployment", "gateway"))
    env = environment(production, container)
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    for variable in ("SPECLOOM_TLS_CERT_FILE", "SPECLOOM_TLS_KEY_FILE"):
        assert env[variable].rsplit("/", 1)[0] in mounts
    volumes = {
        v["name"]: v for v in pod_spec(named(production, "Deployment", "gateway"))["volumes"]
    }
    assert volumes["tls"]["secret"]["secretName"] == "specloom-gateway-tls"


def test_production_console_is_a_load_balancer_serving_https_and_dials_the_gateway_with_tls(
    production: list[Manifest],
) -> None:
    assert named(production, "Service", WEB)["spec"]["type"] == "LoadBalancer"
    web = named(production, "Deployment", WEB)
    (container,) = containers(web)
    env = environment(production, container)
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    for variable in ("SPECLOOM_WEB_TLS_CERT_FILE", "SPECLOOM_WEB_TLS_KEY_FILE"):
        assert env[variable].rsplit("/", 1)[0] in mounts
    volumes = {v["name"]: v for v in pod_spec(web)["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "specloom-web-tls"
    # The gateway serves TLS there, so the console speaks TLS to it.
    assert env["SPECLOOM_WEB_GATEWAY_TLS"] == "true"
    assert env["SPECLOOM_WEB_GATEWAY_SERVER_NAME"]
    settings = WebSettings.model_validate({"web_gateway_tls": env["SPECLOOM_WEB_GATEWAY_TLS"]})
    assert settings.web_gateway_tls is True


def test_the_deploy_guide_documents_every_variable_and_secret_key(
    overlay: list[Manifest],
) -> None:
    guide = (ROOT / "docs" / "deploy.md").read_text()
    for workload in specloom_workloads(overlay):
        for container in containers(workload):
            for name in environment(overlay, container):
                assert f"`{name}`" in guide, f"docs/deploy.md does not describe {name}"
