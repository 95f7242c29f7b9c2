"""The Helm chart (deploy/helm/pcm-monitoring) lints, renders, and every manifest it renders is a
valid Kubernetes object of a current release, checked in strict mode (an unknown field fails).

helm is built by `make helm` into .stack/tools/bin (go install, no prebuilt download); the API
schemas come from the kubernetes-validate package (dev extra). Two value sets are rendered: the
defaults, and a production-like one (TLS, catalogue override, 3 replicas, NetworkPolicy).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from pcm_benchmark.settings import BenchmarkSettings
from pcm_complaints.settings import ComplaintsSettings
from pcm_indicators.settings import IndicatorsSettings
from pcm_intake.settings import IntakeSettings
from pcm_processor.settings import ProcessorSettings
from pcm_surveys.settings import SurveysSettings

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "pcm-monitoring"
CATALOGUES = REPO / "catalogues"
HELM = Path(os.environ.get("PCM_HELM", REPO / ".stack" / "tools" / "bin" / "helm"))
KUBE_VERSION = "1.31.0"
RELEASE = "pcm"
NAMESPACE = "pcm"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|PEPPER|TOKEN|_KEY$", re.IGNORECASE)

Manifest = dict[str, Any]


def catalogue_files() -> dict[str, str]:
    return {
        path.relative_to(CATALOGUES).as_posix(): path.read_text()
        for path in sorted(CATALOGUES.rglob("*"))
        if path.is_file() and path.suffix in {".csv", ".yaml"}
    }


# TLS, a catalogue override with the repository's own catalogues, 3 replicas, network policies.
PRODUCTION_VALUES: dict[str, Any] = {
    "image": {"repository": "registry.invalid/pcm/pcm-monitoring", "tag": "0.1.0"},
    "imagePullSecrets": [{"name": "registry-credentials"}],
    "kafka": {"bootstrap": "kafka-0.kafka:9092,kafka-1.kafka:9092,kafka-2.kafka:9092"},
    "clickhouse": {"host": "clickhouse.data.svc", "existingSecret": "ch-credentials"},
    "postgres": {"host": "postgres.data.svc", "existingSecret": "pg-credentials"},
    "tokens": {"existingSecret": "intake-tokens"},
    "config": {"topicPrefix": "prod.", "extraEnv": {"PCM_INTAKE_RATE_LIMIT_EVENTS_PER_S": 5000}},
    "catalogues": {"files": catalogue_files()},
    "intake": {
        "replicaCount": 3,
        "tls": {"enabled": True, "existingSecret": "pcm-intake-tls"},
        "service": {
            "type": "LoadBalancer",
            "loadBalancerSourceRanges": ["190.0.0.0/8"],
            "externalTrafficPolicy": "Local",
        },
        "priorityClassName": "high-priority",
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "pcm"}],
    },
    "processor": {"replicaCount": 3},
    "complaints": {
        "replicaCount": 3,
        "tls": {"enabled": True, "existingSecret": "pcm-complaints-tls"},
        "service": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["190.0.0.0/8"]},
    },
    "complaintsWorker": {"replicaCount": 3},
    "indicators": {
        "replicaCount": 3,
        "tls": {"enabled": True, "existingSecret": "pcm-indicators-tls"},
        "service": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["190.0.0.0/8"]},
    },
    "indicatorsWorker": {"replicaCount": 3},
    "surveys": {
        "replicaCount": 3,
        "tls": {"enabled": True, "existingSecret": "pcm-surveys-tls"},
        "service": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["190.0.0.0/8"]},
    },
    "surveysWorker": {"replicaCount": 3},
    "benchmark": {
        "replicaCount": 3,
        "tls": {"enabled": True, "existingSecret": "pcm-benchmark-tls"},
        "service": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["190.0.0.0/8"]},
    },
    "benchmarkWorker": {"token": {"existingSecret": "benchmark-national-token", "key": "token"}},
    "benchmarkWeb": {
        "replicaCount": 2,
        "tls": {"enabled": True, "existingSecret": "pcm-dashboard-tls"},
        "service": {
            "type": "LoadBalancer",
            "port": 443,
            "loadBalancerSourceRanges": ["190.0.0.0/8"],
            "externalTrafficPolicy": "Local",
        },
    },
    "networkPolicy": {
        "enabled": True,
        "webFrom": [{"ipBlock": {"cidr": "190.0.0.0/8"}}],
        "metricsFrom": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ],
        "egress": {
            "enabled": True,
            "to": [
                {
                    "to": [{"namespaceSelector": {"matchLabels": {"name": "kafka"}}}],
                    "ports": [{"port": 9092, "protocol": "TCP"}],
                }
            ],
        },
    },
}
VALUE_SETS: dict[str, dict[str, Any]] = {"default": {}, "production": PRODUCTION_VALUES}
COMPONENTS = (
    "intake",
    "processor",
    "complaints",
    "complaints-worker",
    "indicators",
    "indicators-worker",
    "surveys",
    "surveys-worker",
    "benchmark",
    "benchmark-worker",
)
# The benchmark dashboard: a Deployment without a metrics port (it serves no /metrics).
WEB = "benchmark-web"


# --- running helm ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if not (HELM.is_file() and os.access(HELM, os.X_OK)):
        pytest.fail(f"{HELM} missing: run `make helm` (builds helm with Go)", pytrace=False)
    home = tmp_path_factory.mktemp("helm-home")
    # helm keeps no state between tests, and never touches the user's ~/.config or ~/.cache.
    return {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


@pytest.fixture(scope="session")
def values_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm-values")


def helm(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HELM), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def values_args(values_dir: Path, name: str, values: dict[str, Any]) -> list[str]:
    if not values:
        return []
    path = values_dir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return ["--values", str(path)]


def template(
    env: dict[str, str], extra: list[str], chart: Path = CHART
) -> subprocess.CompletedProcess[str]:
    return helm(
        env,
        "template",
        RELEASE,
        str(chart),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
        *extra,
    )


def render(env: dict[str, str], extra: list[str]) -> list[Manifest]:
    result = template(env, extra)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered(helm_env: dict[str, str], values_dir: Path) -> dict[str, list[Manifest]]:
    return {
        name: render(helm_env, values_args(values_dir, name, values))
        for name, values in VALUE_SETS.items()
    }


@pytest.fixture()
def default(rendered: dict[str, list[Manifest]]) -> list[Manifest]:
    return copy.deepcopy(rendered["default"])


@pytest.fixture()
def production(rendered: dict[str, list[Manifest]]) -> list[Manifest]:
    return copy.deepcopy(rendered["production"])


# --- reading manifests -------------------------------------------------------------------------


def kinds(manifests: list[Manifest]) -> list[str]:
    return sorted(m["kind"] for m in manifests)


def one(manifests: list[Manifest], kind: str, component: str | None = None) -> Manifest:
    found = [
        m
        for m in manifests
        if m["kind"] == kind
        and (
            component is None
            or m["metadata"]["labels"].get("app.kubernetes.io/component") == component
        )
    ]
    assert len(found) == 1, f"expected one {kind} {component or ''}, got {len(found)}"
    return found[0]


def config_map(manifests: list[Manifest]) -> Manifest:
    return next(
        m
        for m in manifests
        if m["kind"] == "ConfigMap" and "app.kubernetes.io/component" not in m["metadata"]["labels"]
    )


def pod_specs(manifests: list[Manifest]) -> Iterator[tuple[str, dict[str, Any]]]:
    for m in manifests:
        if m["kind"] in {"Deployment", "Job"}:
            yield f"{m['kind']}/{m['metadata']['name']}", m["spec"]["template"]["spec"]


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def schema_errors(manifest: Manifest) -> str | None:
    try:
        kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return f"{manifest['kind']}/{manifest['metadata']['name']}: {error.message}"
    return None


# --- lint and schema validation ----------------------------------------------------------------


@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_lint_strict(helm_env: dict[str, str], values_dir: Path, name: str) -> None:
    result = helm(
        helm_env,
        "lint",
        "--strict",
        str(CHART),
        "--kube-version",
        KUBE_VERSION,
        *values_args(values_dir, name, VALUE_SETS[name]),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_manifest_is_valid_for_kubernetes(
    rendered: dict[str, list[Manifest]], name: str
) -> None:
    manifests = rendered[name]
    assert manifests
    errors = [e for e in map(schema_errors, manifests) if e]
    assert errors == []


def test_validator_rejects_an_unknown_field(default: list[Manifest]) -> None:
    deployment = one(default, "Deployment", "intake")
    assert schema_errors(deployment) is None
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProb"] = {
        "grpc": {"port": 50051}
    }
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessProb"):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)


def test_validator_rejects_a_wrong_type(default: list[Manifest]) -> None:
    deployment = one(default, "Deployment", "processor")
    deployment["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError, match="three"):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)


def test_validator_rejects_a_named_port_in_a_grpc_probe(default: list[Manifest]) -> None:
    # The kubelet's gRPC probe takes a number only (unlike httpGet/tcpSocket): a real trap.
    deployment = one(default, "Deployment", "intake")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["grpc"]["port"] = (
        "grpc"
    )
    assert schema_errors(deployment) is not None


def test_values_schema_rejects_a_misspelt_value(helm_env: dict[str, str]) -> None:
    result = helm(helm_env, "lint", "--strict", str(CHART), "--set", "intake.replicas=3")
    assert result.returncode != 0
    assert "replicas" in result.stdout + result.stderr


def test_secret_looking_extra_env_is_refused(helm_env: dict[str, str]) -> None:
    result = template(helm_env, ["--set", "config.extraEnv.PCM_CLICKHOUSE_PASSWORD=hunter2"])
    assert result.returncode != 0
    assert "PCM_CLICKHOUSE_PASSWORD" in result.stderr


def test_tls_without_its_secret_is_refused(helm_env: dict[str, str]) -> None:
    result = template(helm_env, ["--set", "intake.tls.enabled=true"])
    assert result.returncode != 0
    assert "intake.tls.existingSecret is required" in result.stderr


# --- what the chart renders --------------------------------------------------------------------


def test_default_objects(default: list[Manifest]) -> None:
    assert kinds(default) == [
        # settings, Grafana dashboards
        *["ConfigMap"] * 2,
        # intake, processor, complaints, complaints-worker, indicators, indicators-worker,
        # surveys, surveys-worker, benchmark, benchmark-worker, benchmark-web
        *["Deployment"] * 11,
        "Job",
        *["PodDisruptionBudget"] * 11,
        # intake, complaints, indicators, surveys, benchmark (gRPC) and benchmark-web (HTTP); the
        # workers have no inbound port
        *["Service"] * 6,
        "ServiceAccount",
    ]


def test_production_objects(production: list[Manifest]) -> None:
    assert kinds(production).count("NetworkPolicy") == 11
    assert kinds(production).count("ConfigMap") == 3  # settings, catalogues, Grafana dashboards
    assert one(production, "Deployment", "intake")["spec"]["replicas"] == 3
    assert one(production, "Deployment", "processor")["spec"]["replicas"] == 3
    assert one(production, "Deployment", "complaints")["spec"]["replicas"] == 3
    assert one(production, "Deployment", "complaints-worker")["spec"]["replicas"] == 3
    assert one(production, "Deployment", "indicators")["spec"]["replicas"] == 3
    assert one(production, "Deployment", "indicators-worker")["spec"]["replicas"] == 3
    assert one(production, "Deployment", "surveys")["spec"]["replicas"] == 3
    assert one(production, "Deployment", "surveys-worker")["spec"]["replicas"] == 3
    assert one(production, "Deployment", "benchmark")["spec"]["replicas"] == 3
    assert one(production, "Deployment", "benchmark-worker")["spec"]["replicas"] == 2
    assert one(production, "Deployment", WEB)["spec"]["replicas"] == 2


@pytest.mark.parametrize("name", VALUE_SETS)
def test_no_secret_value_is_rendered(rendered: dict[str, list[Manifest]], name: str) -> None:
    manifests = rendered[name]
    assert "Secret" not in kinds(manifests)
    assert not [key for key in config_map(manifests)["data"] if SECRET_NAME.search(key)]
    for where, pod in pod_specs(manifests):
        secret_mounts = {
            mount["mountPath"]
            for container in containers(pod)
            for mount in container.get("volumeMounts", [])
            if any(v["name"] == mount["name"] and "secret" in v for v in pod.get("volumes", []))
        }
        for container in containers(pod):
            for name_, entry in env_of(container).items():
                if not SECRET_NAME.search(name_):
                    continue
                if "valueFrom" in entry:
                    assert "secretKeyRef" in entry["valueFrom"], f"{where}: {name_}"
                else:  # a path (token store, TLS key): it must lie in a mounted Secret
                    assert any(entry["value"].startswith(p + "/") for p in secret_mounts), (
                        f"{where}: {name_}={entry['value']!r} is not a file of a mounted Secret"
                    )


def test_values_file_names_secrets_but_holds_none() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["tokens"]["existingSecret"]
    assert values["clickhouse"]["existingSecret"]
    assert "password" not in values["clickhouse"]
    assert values["postgres"]["existingSecret"]
    assert "password" not in values["postgres"]
    assert set(values["benchmarkWorker"]["token"]) == {"existingSecret", "key"}


def test_env_names_are_platform_settings(
    rendered: dict[str, list[Manifest]],
) -> None:
    fields = {
        *IntakeSettings.model_fields,
        *ProcessorSettings.model_fields,
        *ComplaintsSettings.model_fields,
        *IndicatorsSettings.model_fields,
        *SurveysSettings.model_fields,
        *BenchmarkSettings.model_fields,
    }
    known = {f"PCM_{field.upper()}" for field in fields}
    for manifests in rendered.values():
        names = set(config_map(manifests)["data"])
        for _, pod in pod_specs(manifests):
            for container in containers(pod):
                names |= set(env_of(container))
        unknown = {n for n in names if n.startswith("PCM_")} - known
        assert unknown == set(), "settings that no service reads (typo?)"


# --- intake ------------------------------------------------------------------------------------


def intake_container(manifests: list[Manifest]) -> dict[str, Any]:
    container: dict[str, Any] = one(manifests, "Deployment", "intake")["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


def test_intake_probes_ask_the_grpc_health_service(default: list[Manifest]) -> None:
    container = intake_container(default)
    assert container["command"] == ["pcm-intake", "serve"]
    grpc_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": grpc_port}, probe
    assert env_of(container)["PCM_INTAKE_ADDRESS"]["value"] == f"0.0.0.0:{grpc_port}"


def test_intake_reaches_the_external_postgres(production: list[Manifest]) -> None:
    settings = config_map(production)["data"]
    assert settings["PCM_POSTGRES_HOST"] == "postgres.data.svc"
    assert settings["PCM_POSTGRES_PORT"] == "5432"
    assert (settings["PCM_POSTGRES_USER"], settings["PCM_POSTGRES_DATABASE"]) == ("pcm", "pcm")
    password = env_of(intake_container(production))["PCM_POSTGRES_PASSWORD"]["valueFrom"]
    assert password["secretKeyRef"] == {"name": "pg-credentials", "key": "password"}


def test_postgres_without_its_secret_is_refused(helm_env: dict[str, str]) -> None:
    result = template(helm_env, ["--set", "postgres.existingSecret="])
    assert result.returncode != 0
    assert "postgres.existingSecret" in result.stderr  # values.schema.json refuses it first


def test_intake_tls_from_a_secret(production: list[Manifest]) -> None:
    pod = one(production, "Deployment", "intake")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    tls = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert tls["secret"]["secretName"] == "pcm-intake-tls"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "tls")
    env = env_of(container)
    assert env["PCM_INTAKE_TLS_CERT"]["value"] == mount["mountPath"] + "/tls.crt"
    assert env["PCM_INTAKE_TLS_KEY"]["value"] == mount["mountPath"] + "/tls.key"
    # The kubelet's gRPC probe speaks no TLS: the probes check the port instead.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert "grpc" not in container[probe]
        assert container[probe]["tcpSocket"] == {"port": "grpc"}


def test_token_store_is_a_mounted_secret_folder(production: list[Manifest]) -> None:
    pod = one(production, "Deployment", "intake")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    volume = next(v for v in pod["volumes"] if v["name"] == "tokens")
    assert volume["secret"]["secretName"] == "intake-tokens"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "tokens")
    # No subPath: an updated Secret (a revocation) must reach the running pod.
    assert "subPath" not in mount
    assert env_of(container)["PCM_TOKEN_FILE"]["value"] == mount["mountPath"] + "/tokens.json"


@pytest.mark.parametrize("name", VALUE_SETS)
def test_intake_service_carries_grpc_only(rendered: dict[str, list[Manifest]], name: str) -> None:
    # /metrics has per-entity series: never on a Service that may face outside the cluster.
    service = one(rendered[name], "Service", "intake")
    deployment = one(rendered[name], "Deployment", "intake")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    container_ports = {
        p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert container_ports == {"grpc", "metrics"}  # the pod still serves /metrics
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("grpc", 50051, "grpc")
    ]


def test_intake_service_is_a_restricted_load_balancer(production: list[Manifest]) -> None:
    service = one(production, "Service", "intake")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["loadBalancerSourceRanges"] == ["190.0.0.0/8"]
    assert service["spec"]["externalTrafficPolicy"] == "Local"


# --- processor, migrations, catalogues ---------------------------------------------------------


def test_processor_runs_the_worker_with_a_pdb(default: list[Manifest]) -> None:
    deployment = one(default, "Deployment", "processor")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["pcm-processor", "worker"]
    assert env_of(container)["PCM_PROCESSOR_METRICS_PORT"]["value"] == "9102"
    assert "secretKeyRef" in env_of(container)["PCM_CLICKHOUSE_PASSWORD"]["valueFrom"]
    assert "PCM_POSTGRES_PASSWORD" not in env_of(container)  # it keeps no state in PostgreSQL
    pdb = one(default, "PodDisruptionBudget", "processor")
    assert pdb["spec"]["maxUnavailable"] == 1
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("name", VALUE_SETS)
def test_pods_are_hardened(rendered: dict[str, list[Manifest]], name: str) -> None:
    for where, pod in pod_specs(rendered[name]):
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["automountServiceAccountToken"] is False, where
        assert pod["enableServiceLinks"] is False, where
        for container in containers(pod):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert {"requests", "limits"} <= container["resources"].keys(), where
            assert container["resources"]["limits"]["memory"], where
            assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"]), where


@pytest.mark.parametrize("component", COMPONENTS)
def test_prometheus_scrapes_the_metrics_port(default: list[Manifest], component: str) -> None:
    template_ = one(default, "Deployment", component)["spec"]["template"]
    annotations = template_["metadata"]["annotations"]
    metrics = next(
        p["containerPort"]
        for p in template_["spec"]["containers"][0]["ports"]
        if p["name"] == "metrics"
    )
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(metrics)
    assert annotations["prometheus.io/path"] == "/metrics"
    assert config_map(default)["data"]["PCM_METRICS_HOST"] == "0.0.0.0"


def test_migration_hook_creates_topics_then_migrates(default: list[Manifest]) -> None:
    job = one(default, "Job", "migrations")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert [c["command"] for c in containers(pod)] == [
        ["pcm-topics", "create"],
        ["pcm-migrate", "apply", "--store", "clickhouse"],
        ["pcm-migrate", "apply", "--store", "postgres"],
    ]
    # A pre-install hook runs before the release's ConfigMap and ServiceAccount exist.
    assert "serviceAccountName" not in pod
    settings = config_map(default)["data"]
    for container in containers(pod):
        assert "envFrom" not in container
        env = env_of(container)
        for key in ("PCM_KAFKA_BOOTSTRAP", "PCM_KAFKA_REPLICATION_FACTOR", "PCM_TOPIC_PREFIX"):
            assert env[key]["value"] == settings[key]
    # Each step holds only the password of its own store.
    topics, clickhouse, postgres = containers(pod)
    assert not {"PCM_CLICKHOUSE_PASSWORD", "PCM_POSTGRES_PASSWORD"} & env_of(topics).keys()
    assert "secretKeyRef" in env_of(clickhouse)["PCM_CLICKHOUSE_PASSWORD"]["valueFrom"]
    assert "PCM_POSTGRES_PASSWORD" not in env_of(clickhouse)
    assert "secretKeyRef" in env_of(postgres)["PCM_POSTGRES_PASSWORD"]["valueFrom"]
    assert "PCM_CLICKHOUSE_PASSWORD" not in env_of(postgres)
    for key in ("PCM_POSTGRES_HOST", "PCM_POSTGRES_PORT", "PCM_POSTGRES_DATABASE"):
        assert env_of(postgres)[key]["value"] == settings[key]


def test_catalogue_override_is_mounted_where_the_settings_point(
    production: list[Manifest],
) -> None:
    directory = config_map(production)["data"]["PCM_CATALOGUE_DIR"]
    catalogues = one(production, "ConfigMap", "catalogues")
    for component in (*COMPONENTS, WEB):
        pod = one(production, "Deployment", component)["spec"]["template"]["spec"]
        volume = next(v for v in pod["volumes"] if v["name"] == "catalogues")
        assert volume["configMap"]["name"] == catalogues["metadata"]["name"]
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "catalogues")
        assert mount["mountPath"] == directory
        # Every file, sub-folders included, lands at its own path with its own content.
        mounted = {
            item["path"]: catalogues["data"][item["key"]] for item in volume["configMap"]["items"]
        }
        assert mounted == PRODUCTION_VALUES["catalogues"]["files"]
    assert "calendar/non_working_days.csv" in PRODUCTION_VALUES["catalogues"]["files"]


def test_default_uses_the_catalogues_of_the_image(default: list[Manifest]) -> None:
    assert "PCM_CATALOGUE_DIR" not in config_map(default)["data"]


def test_config_change_rolls_the_pods(helm_env: dict[str, str]) -> None:
    def checksum(extra: list[str]) -> str:
        deployment = one(render(helm_env, extra), "Deployment", "intake")
        value: str = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return value

    assert checksum([]) != checksum(["--set", "kafka.bootstrap=other:9092"])


# --- complaints ------------------------------------------------------------------------------


def complaints_container(manifests: list[Manifest], component: str) -> dict[str, Any]:
    container: dict[str, Any] = one(manifests, "Deployment", component)["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


def test_complaints_serve_like_the_intake(default: list[Manifest]) -> None:
    container = complaints_container(default, "complaints")
    assert container["command"] == ["pcm-complaints", "serve"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 50052, "metrics": 9103}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": 50052}, probe
    env = env_of(container)
    assert env["PCM_COMPLAINTS_ADDRESS"]["value"] == "0.0.0.0:50052"
    assert env["PCM_COMPLAINTS_METRICS_PORT"]["value"] == "9103"
    assert env["PCM_POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "pcm-postgres",
        "key": "password",
    }
    assert "PCM_CLICKHOUSE_PASSWORD" not in env  # the complaint book is in PostgreSQL only
    mount = next(m for m in container["volumeMounts"] if m["name"] == "tokens")
    assert env["PCM_TOKEN_FILE"]["value"] == mount["mountPath"] + "/tokens.json"
    assert one(default, "PodDisruptionBudget", "complaints")["spec"]["maxUnavailable"] == 1


def test_complaints_worker_relays_with_a_standby(default: list[Manifest]) -> None:
    deployment = one(default, "Deployment", "complaints-worker")
    assert deployment["spec"]["replicas"] == 2  # one leads, one waits on the advisory lock
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["pcm-complaints", "work"]
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("metrics", 9104)]
    env = env_of(container)
    assert env["PCM_COMPLAINTS_WORKER_METRICS_PORT"]["value"] == "9104"
    assert "secretKeyRef" in env["PCM_POSTGRES_PASSWORD"]["valueFrom"]
    assert not {"PCM_CLICKHOUSE_PASSWORD", "PCM_TOKEN_FILE"} & env.keys()
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}, probe
    pdb = one(default, "PodDisruptionBudget", "complaints-worker")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert not [
        m
        for m in default
        if m["kind"] == "Service"
        and m["metadata"]["labels"]["app.kubernetes.io/component"] == "complaints-worker"
    ]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_complaints_service_carries_grpc_only(
    rendered: dict[str, list[Manifest]], name: str
) -> None:
    # /metrics has per-entity series: never on a Service that may face outside the cluster.
    service = one(rendered[name], "Service", "complaints")
    deployment = one(rendered[name], "Deployment", "complaints")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("grpc", 50052, "grpc")
    ]


def test_complaints_tls_from_a_secret(production: list[Manifest]) -> None:
    pod = one(production, "Deployment", "complaints")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    tls = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert tls["secret"]["secretName"] == "pcm-complaints-tls"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "tls")
    env = env_of(container)
    assert env["PCM_COMPLAINTS_TLS_CERT"]["value"] == mount["mountPath"] + "/tls.crt"
    assert env["PCM_COMPLAINTS_TLS_KEY"]["value"] == mount["mountPath"] + "/tls.key"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["tcpSocket"] == {"port": "grpc"}
    assert one(production, "Service", "complaints")["spec"]["type"] == "LoadBalancer"


def ingress_by_port(policy: Manifest) -> dict[str, list[dict[str, Any]] | None]:
    return {
        port["port"]: rule.get("from")
        for rule in policy["spec"]["ingress"]
        for port in rule["ports"]
    }


def test_complaints_metrics_only_from_the_cluster(helm_env: dict[str, str]) -> None:
    manifests = render(helm_env, ["--set", "networkPolicy.enabled=true"])
    # Every pod of every namespace, nothing from outside the cluster.
    in_cluster: list[dict[str, Any]] = [{"namespaceSelector": {}}]
    assert ingress_by_port(one(manifests, "NetworkPolicy", "complaints")) == {
        "grpc": None,  # entities push from anywhere, like to the intake
        "metrics": in_cluster,
    }
    assert ingress_by_port(one(manifests, "NetworkPolicy", "complaints-worker")) == {
        "metrics": in_cluster
    }


def test_complaints_metrics_from_the_given_peers(production: list[Manifest]) -> None:
    peers = PRODUCTION_VALUES["networkPolicy"]["metricsFrom"]
    for component in ("complaints", "complaints-worker"):
        policy = one(production, "NetworkPolicy", component)
        assert ingress_by_port(policy)["metrics"] == peers, component
        assert "Egress" in policy["spec"]["policyTypes"]


def test_complaints_tls_without_its_secret_is_refused(helm_env: dict[str, str]) -> None:
    result = template(helm_env, ["--set", "complaints.tls.enabled=true"])
    assert result.returncode != 0
    assert "complaints.tls.existingSecret is required" in result.stderr


# --- indicators ------------------------------------------------------------------------------


def test_indicators_serve_like_the_complaints_service(default: list[Manifest]) -> None:
    container = complaints_container(default, "indicators")
    assert container["command"] == ["pcm-indicators", "serve"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 50053, "metrics": 9105}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": 50053}, probe
    env = env_of(container)
    assert env["PCM_INDICATORS_ADDRESS"]["value"] == "0.0.0.0:50053"
    assert env["PCM_INDICATORS_METRICS_PORT"]["value"] == "9105"
    assert env["PCM_POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "pcm-postgres",
        "key": "password",
    }
    # ListKpis reads kpi_values from ClickHouse, with the processor's password.
    assert env["PCM_CLICKHOUSE_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "pcm-clickhouse",
        "key": "password",
    }
    mount = next(m for m in container["volumeMounts"] if m["name"] == "tokens")
    assert env["PCM_TOKEN_FILE"]["value"] == mount["mountPath"] + "/tokens.json"
    assert one(default, "PodDisruptionBudget", "indicators")["spec"]["maxUnavailable"] == 1


def test_indicators_worker_relays_with_a_standby(default: list[Manifest]) -> None:
    deployment = one(default, "Deployment", "indicators-worker")
    assert deployment["spec"]["replicas"] == 2  # one leads, one waits on the advisory lock
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["pcm-indicators", "work"]
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("metrics", 9106)]
    env = env_of(container)
    assert env["PCM_INDICATORS_WORKER_METRICS_PORT"]["value"] == "9106"
    assert "secretKeyRef" in env["PCM_POSTGRES_PASSWORD"]["valueFrom"]
    assert not {"PCM_CLICKHOUSE_PASSWORD", "PCM_TOKEN_FILE"} & env.keys()
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}, probe
    pdb = one(default, "PodDisruptionBudget", "indicators-worker")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert not [
        m
        for m in default
        if m["kind"] == "Service"
        and m["metadata"]["labels"]["app.kubernetes.io/component"] == "indicators-worker"
    ]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_indicators_service_carries_grpc_only(
    rendered: dict[str, list[Manifest]], name: str
) -> None:
    service = one(rendered[name], "Service", "indicators")
    deployment = one(rendered[name], "Deployment", "indicators")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("grpc", 50053, "grpc")
    ]


def test_indicators_tls_from_a_secret(production: list[Manifest]) -> None:
    pod = one(production, "Deployment", "indicators")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    tls = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert tls["secret"]["secretName"] == "pcm-indicators-tls"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "tls")
    env = env_of(container)
    assert env["PCM_INDICATORS_TLS_CERT"]["value"] == mount["mountPath"] + "/tls.crt"
    assert env["PCM_INDICATORS_TLS_KEY"]["value"] == mount["mountPath"] + "/tls.key"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["tcpSocket"] == {"port": "grpc"}
    assert one(production, "Service", "indicators")["spec"]["type"] == "LoadBalancer"


def test_indicators_metrics_only_from_the_cluster(helm_env: dict[str, str]) -> None:
    manifests = render(helm_env, ["--set", "networkPolicy.enabled=true"])
    in_cluster: list[dict[str, Any]] = [{"namespaceSelector": {}}]
    assert ingress_by_port(one(manifests, "NetworkPolicy", "indicators")) == {
        "grpc": None,
        "metrics": in_cluster,
    }
    assert ingress_by_port(one(manifests, "NetworkPolicy", "indicators-worker")) == {
        "metrics": in_cluster
    }


def test_indicators_metrics_from_the_given_peers(production: list[Manifest]) -> None:
    peers = PRODUCTION_VALUES["networkPolicy"]["metricsFrom"]
    for component in ("indicators", "indicators-worker"):
        policy = one(production, "NetworkPolicy", component)
        assert ingress_by_port(policy)["metrics"] == peers, component
        assert "Egress" in policy["spec"]["policyTypes"]


def test_indicators_tls_without_its_secret_is_refused(helm_env: dict[str, str]) -> None:
    result = template(helm_env, ["--set", "indicators.tls.enabled=true"])
    assert result.returncode != 0
    assert "indicators.tls.existingSecret is required" in result.stderr


# --- surveys ---------------------------------------------------------------------------------


def test_surveys_serve_like_the_indicators_service(default: list[Manifest]) -> None:
    container = complaints_container(default, "surveys")
    assert container["command"] == ["pcm-surveys", "serve"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 50054, "metrics": 9107}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": 50054}, probe
    env = env_of(container)
    assert env["PCM_SURVEYS_ADDRESS"]["value"] == "0.0.0.0:50054"
    assert env["PCM_SURVEYS_METRICS_PORT"]["value"] == "9107"
    assert env["PCM_POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "pcm-postgres",
        "key": "password",
    }
    # The survey book is all it stores to: no ClickHouse password.
    assert "PCM_CLICKHOUSE_PASSWORD" not in env
    mount = next(m for m in container["volumeMounts"] if m["name"] == "tokens")
    assert env["PCM_TOKEN_FILE"]["value"] == mount["mountPath"] + "/tokens.json"
    assert one(default, "PodDisruptionBudget", "surveys")["spec"]["maxUnavailable"] == 1


def test_surveys_worker_relays_with_a_standby(default: list[Manifest]) -> None:
    deployment = one(default, "Deployment", "surveys-worker")
    assert deployment["spec"]["replicas"] == 2  # per relay one leads, one waits on its lock
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["pcm-surveys", "work"]
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("metrics", 9108)]
    env = env_of(container)
    assert env["PCM_SURVEYS_WORKER_METRICS_PORT"]["value"] == "9108"
    assert "secretKeyRef" in env["PCM_POSTGRES_PASSWORD"]["valueFrom"]
    assert not {"PCM_CLICKHOUSE_PASSWORD", "PCM_TOKEN_FILE"} & env.keys()
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}, probe
    pdb = one(default, "PodDisruptionBudget", "surveys-worker")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert not [
        m
        for m in default
        if m["kind"] == "Service"
        and m["metadata"]["labels"]["app.kubernetes.io/component"] == "surveys-worker"
    ]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_surveys_service_carries_grpc_only(rendered: dict[str, list[Manifest]], name: str) -> None:
    service = one(rendered[name], "Service", "surveys")
    deployment = one(rendered[name], "Deployment", "surveys")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("grpc", 50054, "grpc")
    ]


def test_surveys_tls_from_a_secret(production: list[Manifest]) -> None:
    pod = one(production, "Deployment", "surveys")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    tls = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert tls["secret"]["secretName"] == "pcm-surveys-tls"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "tls")
    env = env_of(container)
    assert env["PCM_SURVEYS_TLS_CERT"]["value"] == mount["mountPath"] + "/tls.crt"
    assert env["PCM_SURVEYS_TLS_KEY"]["value"] == mount["mountPath"] + "/tls.key"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["tcpSocket"] == {"port": "grpc"}
    assert one(production, "Service", "surveys")["spec"]["type"] == "LoadBalancer"


def test_surveys_metrics_only_from_the_cluster(helm_env: dict[str, str]) -> None:
    manifests = render(helm_env, ["--set", "networkPolicy.enabled=true"])
    in_cluster: list[dict[str, Any]] = [{"namespaceSelector": {}}]
    assert ingress_by_port(one(manifests, "NetworkPolicy", "surveys")) == {
        "grpc": None,
        "metrics": in_cluster,
    }
    assert ingress_by_port(one(manifests, "NetworkPolicy", "surveys-worker")) == {
        "metrics": in_cluster
    }


def test_surveys_tls_without_its_secret_is_refused(helm_env: dict[str, str]) -> None:
    result = template(helm_env, ["--set", "surveys.tls.enabled=true"])
    assert result.returncode != 0
    assert "surveys.tls.existingSecret is required" in result.stderr


# --- benchmark -------------------------------------------------------------------------------


def test_benchmark_serve_like_the_indicators_service(default: list[Manifest]) -> None:
    container = complaints_container(default, "benchmark")
    assert container["command"] == ["pcm-benchmark", "serve"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 50055, "metrics": 9109}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": 50055}, probe
    env = env_of(container)
    assert env["PCM_BENCHMARK_ADDRESS"]["value"] == "0.0.0.0:50055"
    assert env["PCM_BENCHMARK_METRICS_PORT"]["value"] == "9109"
    # The improvement plans in PostgreSQL, the results and KPIs in ClickHouse.
    assert env["PCM_POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "pcm-postgres",
        "key": "password",
    }
    assert env["PCM_CLICKHOUSE_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "pcm-clickhouse",
        "key": "password",
    }
    assert "PCM_BENCHMARK_TOKEN" not in env  # the worker's credential only
    mount = next(m for m in container["volumeMounts"] if m["name"] == "tokens")
    assert env["PCM_TOKEN_FILE"]["value"] == mount["mountPath"] + "/tokens.json"
    assert one(default, "PodDisruptionBudget", "benchmark")["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("name", VALUE_SETS)
def test_benchmark_service_carries_grpc_only(
    rendered: dict[str, list[Manifest]], name: str
) -> None:
    service = one(rendered[name], "Service", "benchmark")
    deployment = one(rendered[name], "Deployment", "benchmark")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("grpc", 50055, "grpc")
    ]


def test_benchmark_tls_from_a_secret(production: list[Manifest]) -> None:
    pod = one(production, "Deployment", "benchmark")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    tls = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert tls["secret"]["secretName"] == "pcm-benchmark-tls"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "tls")
    env = env_of(container)
    assert env["PCM_BENCHMARK_TLS_CERT"]["value"] == mount["mountPath"] + "/tls.crt"
    assert env["PCM_BENCHMARK_TLS_KEY"]["value"] == mount["mountPath"] + "/tls.key"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["tcpSocket"] == {"port": "grpc"}


def test_benchmark_worker_runs_a_leader_and_a_standby_with_a_national_token(
    default: list[Manifest],
) -> None:
    deployment = one(default, "Deployment", "benchmark-worker")
    # A leader and a standby (the lock in PostgreSQL).
    assert deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["pcm-benchmark", "work"]
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("metrics", 9110)]
    env = env_of(container)
    assert env["PCM_BENCHMARK_WORKER_METRICS_PORT"]["value"] == "9110"
    assert env["PCM_BENCHMARK_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "pcm-benchmark-token",
        "key": "token",
    }
    assert "secretKeyRef" in env["PCM_CLICKHOUSE_PASSWORD"]["valueFrom"]
    # PostgreSQL for the leader lock; no token store (it holds a token, it checks none).
    assert "secretKeyRef" in env["PCM_POSTGRES_PASSWORD"]["valueFrom"]
    assert "PCM_TOKEN_FILE" not in env
    # The indicators service of the same release, on its gRPC port.
    indicators = one(default, "Service", "indicators")
    host, port = env["PCM_BENCHMARK_INDICATORS_TARGET"]["value"].rsplit(":", 1)
    assert host == indicators["metadata"]["name"]
    assert int(port) in {p["port"] for p in indicators["spec"]["ports"] if p["name"] == "grpc"}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}, probe
    assert not [
        m
        for m in default
        if m["kind"] == "Service"
        and m["metadata"]["labels"]["app.kubernetes.io/component"] == "benchmark-worker"
    ]


def test_benchmark_worker_token_from_the_named_secret(production: list[Manifest]) -> None:
    container = complaints_container(production, "benchmark-worker")
    assert env_of(container)["PCM_BENCHMARK_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "benchmark-national-token",
        "key": "token",
    }


def test_benchmark_worker_indicators_target_can_be_set(helm_env: dict[str, str]) -> None:
    manifests = render(
        helm_env, ["--set", "benchmarkWorker.indicatorsTarget=indicators.other.svc:50053"]
    )
    env = env_of(complaints_container(manifests, "benchmark-worker"))
    assert env["PCM_BENCHMARK_INDICATORS_TARGET"]["value"] == "indicators.other.svc:50053"


def test_benchmark_worker_refuses_a_negative_replica_count(helm_env: dict[str, str]) -> None:
    result = template(helm_env, ["--set", "benchmarkWorker.replicaCount=-1"])
    assert result.returncode != 0
    assert "benchmarkWorker.replicaCount" in result.stderr


def test_benchmark_worker_without_its_token_secret_is_refused(helm_env: dict[str, str]) -> None:
    result = template(helm_env, ["--set", "benchmarkWorker.token.existingSecret="])
    assert result.returncode != 0
    assert "benchmarkWorker.token.existingSecret" in result.stderr


def test_benchmark_web_serves_the_dashboard(default: list[Manifest]) -> None:
    deployment = one(default, "Deployment", WEB)
    assert deployment["spec"]["replicas"] == 1  # sessions live in the process
    template_ = deployment["spec"]["template"]
    container = template_["spec"]["containers"][0]
    assert container["command"] == ["pcm-benchmark", "web"]
    # HTTP only: the dashboard serves no /metrics, so nothing to scrape or annotate.
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("http", 8088)]
    assert not [key for key in template_["metadata"]["annotations"] if key.startswith("prometheus")]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/salud", "port": "http", "scheme": "HTTP"}
    env = env_of(container)
    assert env["PCM_BENCHMARK_WEB_ADDRESS"]["value"] == "0.0.0.0:8088"
    assert env["PCM_BENCHMARK_WEB_BEHIND_TLS_PROXY"]["value"] == "false"
    assert "secretKeyRef" in env["PCM_CLICKHOUSE_PASSWORD"]["valueFrom"]
    assert "secretKeyRef" in env["PCM_POSTGRES_PASSWORD"]["valueFrom"]
    assert "PCM_BENCHMARK_TOKEN" not in env
    mount = next(m for m in container["volumeMounts"] if m["name"] == "tokens")
    assert "subPath" not in mount  # a revoked token ends its sessions without a restart
    assert env["PCM_TOKEN_FILE"]["value"] == mount["mountPath"] + "/tokens.json"
    service = one(default, "Service", WEB)
    assert service["spec"]["selector"].items() <= template_["metadata"]["labels"].items()
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["sessionAffinity"] == "ClientIP"
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("http", 8088, "http")
    ]


def test_benchmark_web_tls_from_a_secret(production: list[Manifest]) -> None:
    pod = one(production, "Deployment", WEB)["spec"]["template"]["spec"]
    container = pod["containers"][0]
    tls = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert tls["secret"]["secretName"] == "pcm-dashboard-tls"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "tls")
    env = env_of(container)
    assert env["PCM_BENCHMARK_WEB_TLS_CERT"]["value"] == mount["mountPath"] + "/tls.crt"
    assert env["PCM_BENCHMARK_WEB_TLS_KEY"]["value"] == mount["mountPath"] + "/tls.key"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS", probe
    service = one(production, "Service", WEB)
    assert service["spec"]["externalTrafficPolicy"] == "Local"
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(443, "http")]


def test_benchmark_web_behind_a_tls_proxy(helm_env: dict[str, str]) -> None:
    manifests = render(helm_env, ["--set", "benchmarkWeb.behindTlsProxy=true"])
    env = env_of(complaints_container(manifests, WEB))
    assert env["PCM_BENCHMARK_WEB_BEHIND_TLS_PROXY"]["value"] == "true"


def test_benchmark_network_policies(helm_env: dict[str, str], production: list[Manifest]) -> None:
    manifests = render(helm_env, ["--set", "networkPolicy.enabled=true"])
    in_cluster: list[dict[str, Any]] = [{"namespaceSelector": {}}]
    assert ingress_by_port(one(manifests, "NetworkPolicy", "benchmark")) == {
        "grpc": None,
        "metrics": in_cluster,
    }
    assert ingress_by_port(one(manifests, "NetworkPolicy", "benchmark-worker")) == {
        "metrics": in_cluster
    }
    assert ingress_by_port(one(manifests, "NetworkPolicy", WEB)) == {"http": None}
    web = one(production, "NetworkPolicy", WEB)
    assert ingress_by_port(web) == {"http": PRODUCTION_VALUES["networkPolicy"]["webFrom"]}


@pytest.mark.parametrize("component", ["benchmark", "benchmarkWeb"])
def test_benchmark_tls_without_its_secret_is_refused(
    helm_env: dict[str, str], component: str
) -> None:
    result = template(helm_env, ["--set", f"{component}.tls.enabled=true"])
    assert result.returncode != 0
    assert f"{component}.tls.existingSecret is required" in result.stderr


# --- metrics stay inside the cluster -----------------------------------------------------------


def metrics_ports(manifests: list[Manifest]) -> set[int]:
    """Every metrics port the pods of the chart serve, by number."""
    return {
        port["containerPort"]
        for _, pod in pod_specs(manifests)
        for container in containers(pod)
        for port in container.get("ports", [])
        if port["name"] == "metrics"
    }


@pytest.mark.parametrize("name", VALUE_SETS)
def test_no_service_exposes_a_metrics_port(rendered: dict[str, list[Manifest]], name: str) -> None:
    manifests = rendered[name]
    metrics = metrics_ports(manifests)
    assert len(metrics) == len(COMPONENTS)  # one metrics port per component, all served
    services = [m for m in manifests if m["kind"] == "Service"]
    assert services
    for service in services:
        where = service["metadata"]["name"]
        for port in service["spec"]["ports"]:
            assert port["name"] != "metrics", where
            assert port["targetPort"] != "metrics", where
            assert port["port"] not in metrics, where
            assert port["targetPort"] not in metrics, where


def test_load_balancers_expose_grpc_ports_only(production: list[Manifest]) -> None:
    # Only what entities push to faces outside the cluster, from the allowed ranges.
    balancers = {
        m["metadata"]["labels"]["app.kubernetes.io/component"]: m
        for m in production
        if m["kind"] == "Service" and m["spec"]["type"] == "LoadBalancer"
    }
    assert set(balancers) == {"intake", "complaints", "indicators", "surveys", "benchmark", WEB}
    for component, service in balancers.items():
        assert service["spec"]["loadBalancerSourceRanges"] == ["190.0.0.0/8"], component
        ports = [(p["name"], p["targetPort"], p["appProtocol"]) for p in service["spec"]["ports"]]
        if component == WEB:  # the dashboard, the one user-facing HTTP port (HTTPS here)
            assert ports == [("http", "http", "https")]
        else:
            assert ports == [("grpc", "grpc", "grpc")], component


def test_metrics_only_from_the_cluster_by_default(helm_env: dict[str, str]) -> None:
    # Without metricsFrom: every pod of every namespace, nothing from outside the cluster (a rule
    # without `from` would admit every source).
    manifests = render(helm_env, ["--set", "networkPolicy.enabled=true"])
    in_cluster: list[dict[str, Any]] = [{"namespaceSelector": {}}]
    policies = {
        m["metadata"]["labels"]["app.kubernetes.io/component"]: m
        for m in manifests
        if m["kind"] == "NetworkPolicy"
    }
    assert set(policies) == {*COMPONENTS, WEB}
    for component in COMPONENTS:
        assert ingress_by_port(policies[component])["metrics"] == in_cluster, component
    assert ingress_by_port(policies[WEB]) == {"http": None}  # no metrics port to admit
    assert ingress_by_port(policies["intake"]) == {
        "grpc": None,  # entities push from anywhere
        "metrics": in_cluster,
    }
    assert ingress_by_port(policies["processor"]) == {"metrics": in_cluster}


@pytest.mark.parametrize("component", COMPONENTS)
def test_metrics_from_the_given_peers(production: list[Manifest], component: str) -> None:
    peers = PRODUCTION_VALUES["networkPolicy"]["metricsFrom"]
    policy = one(production, "NetworkPolicy", component)
    assert ingress_by_port(policy)["metrics"] == peers
    assert "Egress" in policy["spec"]["policyTypes"]


# --- NOTES.txt ---------------------------------------------------------------------------------


def render_notes(env: dict[str, str], tmp_path: Path, extra: list[str]) -> str:
    """NOTES.txt as `helm install` would print it (helm template does not render it)."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    notes = chart / "templates" / "NOTES.txt"
    (chart / "templates" / "_notes.tpl").write_text(
        '{{- define "notes" }}' + notes.read_text() + "{{- end }}"
    )
    notes.unlink()
    (chart / "templates" / "notes.yaml").write_text('notes: {{ include "notes" . | quote }}\n')
    result = template(env, [*extra, "--show-only", "templates/notes.yaml"], chart=chart)
    assert result.returncode == 0, result.stderr
    text: str = yaml.safe_load(result.stdout)["notes"]
    return text


def test_notes_explain_the_secrets_and_warn(helm_env: dict[str, str], tmp_path: Path) -> None:
    notes = render_notes(helm_env, tmp_path, ["--set", "processor.replicaCount=8"])
    assert "create secret generic pcm-tokens" in notes
    assert "create secret generic pcm-clickhouse" in notes
    assert "create secret generic pcm-postgres" in notes
    assert "`pcm-migrate apply --store postgres`" in notes
    assert "WARNING: processor.replicaCount (8) exceeds" in notes
    assert "plaintext gRPC" in notes
    assert "the complaints service serves plaintext gRPC" in notes
    assert "pcm-pcm-monitoring-complaints.pcm.svc:50052" in notes
    assert "the indicators service serves plaintext gRPC" in notes
    assert "pcm-pcm-monitoring-indicators.pcm.svc:50053" in notes
    assert "the surveys service serves plaintext gRPC" in notes
    assert "pcm-pcm-monitoring-surveys.pcm.svc:50054" in notes


def test_notes_warn_about_a_complaints_worker_without_standby(
    helm_env: dict[str, str], tmp_path: Path
) -> None:
    notes = render_notes(helm_env, tmp_path, ["--set", "complaintsWorker.replicaCount=1"])
    assert "no standby takes over the outbox relay" in notes


def test_notes_warn_about_an_indicators_worker_without_standby(
    helm_env: dict[str, str], tmp_path: Path
) -> None:
    notes = render_notes(helm_env, tmp_path, ["--set", "indicatorsWorker.replicaCount=1"])
    assert "indicatorsWorker.replicaCount is 1" in notes
    assert "complaintsWorker.replicaCount" not in notes
    notes = render_notes(helm_env, tmp_path / "none", ["--set", "indicatorsWorker.replicaCount=0"])
    assert "WARNING: indicatorsWorker.replicaCount is 0: no indicator value reaches Kafka" in notes


def test_notes_warn_about_a_surveys_worker_without_standby(
    helm_env: dict[str, str], tmp_path: Path
) -> None:
    notes = render_notes(helm_env, tmp_path, ["--set", "surveysWorker.replicaCount=1"])
    assert "surveysWorker.replicaCount is 1" in notes
    assert "indicatorsWorker.replicaCount" not in notes
    notes = render_notes(helm_env, tmp_path / "none", ["--set", "surveysWorker.replicaCount=0"])
    assert (
        "WARNING: surveysWorker.replicaCount is 0: no survey collection or response reaches Kafka"
        in notes
    )


def test_notes_explain_the_benchmark(helm_env: dict[str, str], tmp_path: Path) -> None:
    notes = render_notes(helm_env, tmp_path, [])
    assert "need four Secrets" in notes
    assert "create secret generic pcm-benchmark-token" in notes
    assert "--from-literal=token=" in notes
    assert "pcm-pcm-monitoring-benchmark.pcm.svc:50055" in notes
    assert "the benchmark service serves plaintext gRPC" in notes
    assert "port-forward svc/pcm-pcm-monitoring-benchmark-web 8088:8088" in notes
    assert "the benchmark dashboard serves plain HTTP" in notes
    assert "benchmarkWorker.replicaCount" not in notes
    notes = render_notes(
        helm_env,
        tmp_path / "proxy",
        ["--set", "benchmarkWeb.behindTlsProxy=true", "--set", "benchmarkWeb.replicaCount=2"],
    )
    assert "the benchmark dashboard serves plain HTTP" not in notes
    assert "benchmarkWeb.replicaCount is 2: dashboard sessions live in each replica" in notes


def test_notes_warn_about_the_benchmark_worker(helm_env: dict[str, str], tmp_path: Path) -> None:
    notes = render_notes(helm_env, tmp_path, ["--set", "benchmarkWorker.replicaCount=0"])
    assert "WARNING: benchmarkWorker.replicaCount is 0: benchmark results no longer" in notes
    assert "need three Secrets" in notes
    assert "pcm-benchmark-token" not in notes
    tls = ["--set", "indicators.tls.enabled=true", "--set", "indicators.tls.existingSecret=x"]
    notes = render_notes(helm_env, tmp_path / "tls", tls)
    assert "the benchmark worker speaks plaintext gRPC to the indicators service" in notes
    notes = render_notes(
        helm_env,
        tmp_path / "target",
        [*tls, "--set", "benchmarkWorker.indicatorsTarget=indicators-plain:50053"],
    )
    assert "speaks plaintext gRPC to the indicators service" not in notes


# --- Grafana dashboards --------------------------------------------------------------------------

GRAFANA_DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"


def dashboards_config_map(manifests: list[Manifest]) -> Manifest:
    return one(manifests, "ConfigMap", "grafana-dashboards")


@pytest.mark.parametrize("name", VALUE_SETS)
def test_grafana_dashboards_for_the_sidecar(rendered: dict[str, list[Manifest]], name: str) -> None:
    config_map_ = dashboards_config_map(rendered[name])
    assert config_map_["metadata"]["name"] == f"{RELEASE}-pcm-monitoring-grafana-dashboards"
    # The label kube-prometheus-stack's Grafana sidecar loads dashboards by.
    assert config_map_["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert "namespace" not in config_map_["metadata"]  # the release's
    data = config_map_["data"]
    files = sorted(GRAFANA_DASHBOARDS.glob("*.json"))
    assert sorted(data) == [path.name for path in files]
    for path in files:  # .Files.Get of the chart's copies: the very text of the dashboards
        assert data[path.name] == path.read_text(encoding="utf-8"), path.name
    # Within a ConfigMap's 1 MiB, and the 256 KiB of annotations a client-side
    # `kubectl apply` (last-applied-configuration) would need.
    assert sum(len(text.encode()) for text in data.values()) < 256 * 1024


def test_grafana_dashboards_can_be_turned_off(helm_env: dict[str, str]) -> None:
    result = template(helm_env, ["--set", "grafanaDashboards.enabled=false"])
    assert result.returncode == 0, result.stderr
    manifests = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert not [
        m
        for m in manifests
        if m["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        == "grafana-dashboards"
    ]


def test_grafana_dashboards_in_the_sidecars_namespace_and_folder(
    helm_env: dict[str, str], values_dir: Path
) -> None:
    values = {
        "grafanaDashboards": {
            "namespace": "monitoring",
            "label": "grafana.example.org/dashboard",
            "labelValue": "pcm",
            "annotations": {"grafana_folder": "PCM"},
        }
    }
    manifests = render(helm_env, values_args(values_dir, "grafana", values))
    config_map_ = dashboards_config_map(manifests)
    assert config_map_["metadata"]["namespace"] == "monitoring"
    assert config_map_["metadata"]["labels"]["grafana.example.org/dashboard"] == "pcm"
    assert "grafana_dashboard" not in config_map_["metadata"]["labels"]
    assert config_map_["metadata"]["annotations"] == {"grafana_folder": "PCM"}
    assert schema_errors(config_map_) is None


@pytest.mark.parametrize(
    "setting",
    ["grafanaDashboards.enable=true", "grafanaDashboards.labelValue=not a label value"],
)
def test_values_schema_refuses_bad_grafana_dashboards_values(
    helm_env: dict[str, str], setting: str
) -> None:
    result = helm(helm_env, "lint", "--strict", str(CHART), "--set", setting)
    assert result.returncode != 0
    assert "grafanaDashboards" in result.stdout + result.stderr


def test_notes_name_the_dashboards_config_map(helm_env: dict[str, str], tmp_path: Path) -> None:
    notes = render_notes(helm_env, tmp_path / "on", [])
    assert f"{RELEASE}-pcm-monitoring-grafana-dashboards in namespace {NAMESPACE}" in notes
    assert 'labelled grafana_dashboard="1"' in notes
    off = render_notes(helm_env, tmp_path / "off", ["--set", "grafanaDashboards.enabled=false"])
    assert "grafana-dashboards" not in off
