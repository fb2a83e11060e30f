"""Static checks of the deployment files (compose, Prometheus, Grafana, Kubernetes, Dockerfile).

Nothing here builds or runs a container: the checks catch drift between these files and the
code they deploy. Metric names must exist in the worker's registry, ``BULLFLAG_*`` variables
must be real settings with valid values, topics and ports must agree across files.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import fields
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from consumer.cli import build_parser
from consumer.config import Settings, env_name, load_settings
from consumer.ops.http_server import HealthServer
from consumer.ops.metrics import WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "bullflag.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "dashboards.yml"
K8S = DEPLOY / "k8s"
SECRET_EXAMPLE = K8S / "secret.example.yaml"

YAML_FILES = sorted({COMPOSE, *DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml")})
SETTING_ENV_VARS = frozenset(env_name(f.name) for f in fields(Settings))
ENV_VAR_REF = re.compile(r"\bBULLFLAG_[A-Z0-9_]+")
METRIC_REF = re.compile(r"(?<![\w:])bullflag_[A-Za-z0-9_:]*")
PROMQL_STRING = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'""")
SEVERITIES = frozenset({"critical", "warning", "info"})
# KEDA's names for the worker's SASL mechanisms.
KEDA_SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}
# Panels the dashboard must keep: one metric per concern the ops team asked to see.
DASHBOARD_METRICS = frozenset(
    {
        "bullflag_records_consumed_total",
        "bullflag_outputs_published_total",
        "bullflag_consumer_lag",
        "bullflag_bar_close_to_publish_seconds_bucket",
        "bullflag_scoring_batch_size_bucket",
        "bullflag_scoring_batch_seconds_bucket",
        "bullflag_signals_total",
        "bullflag_gradcam_maps_total",
        "bullflag_records_dead_lettered_total",
        "bullflag_warm_symbols",
        "bullflag_symbols",
        "bullflag_model_info",
        "bullflag_ready",
        "bullflag_paused",
        "bullflag_commit_failures_total",
        "bullflag_broker_errors_total",
    }
)


# ---------------------------------------------------------------------------------------------
# loading


def load_all(path: Path) -> list[Any]:
    """Every non-empty YAML document of ``path``."""
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


@cache
def compose() -> dict[str, Any]:
    (doc,) = load_all(COMPOSE)
    return doc


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def environment(svc: dict[str, Any]) -> dict[str, str]:
    """A compose service's environment as a mapping (both compose spellings), values as text."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def worker_settings() -> Settings:
    return load_settings(env=environment(service("worker")))


@cache
def k8s_objects() -> dict[str, list[dict[str, Any]]]:
    """The listed Kubernetes manifests plus the secret example, by kind."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in load_all(path):
            by_kind.setdefault(doc["kind"], []).append(doc)
    return by_kind


def k8s(kind: str) -> dict[str, Any]:
    (obj,) = k8s_objects()[kind]
    return obj


def configmap_settings() -> Settings:
    return load_settings(env=k8s("ConfigMap")["data"])


def worker_container() -> dict[str, Any]:
    (container,) = k8s("Deployment")["spec"]["template"]["spec"]["containers"]
    return container


@cache
def known_metric_names() -> frozenset[str]:
    """Series names a running worker's metrics server exports (scraped from its /metrics)."""

    async def scrape() -> str:
        async with HealthServer(
            "127.0.0.1", 0, WorkerMetrics(model_version="m", threshold=0.5), bool, bool
        ) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            await writer.drain()
            response = await reader.read()
            writer.close()
            await writer.wait_closed()
        return response.split(b"\r\n\r\n", 1)[1].decode()

    names: set[str] = set()
    for family in text_string_to_metric_families(asyncio.run(scrape())):
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return frozenset(names)


def metric_refs(expr: str) -> set[str]:
    """``bullflag_*`` names in a PromQL expression, ignoring string literals (label values)."""
    return set(METRIC_REF.findall(PROMQL_STRING.sub('""', expr)))


def alert_rules() -> list[dict[str, Any]]:
    (doc,) = load_all(ALERTS)
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def dashboard_queries(node: Any) -> Iterator[str]:
    """Every PromQL text in the dashboard: panel targets and template-variable queries."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition", "query") and isinstance(value, str):
                yield value
            else:
                yield from dashboard_queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_queries(item)


def datasource_uid() -> str:
    (doc,) = load_all(DATASOURCES)
    (source,) = [s for s in doc["datasources"] if s["type"] == "prometheus"]
    return source["uid"]


def mounts(svc: dict[str, Any]) -> dict[str, Path]:
    """Bind mounts of a compose service: container path -> host path (named volumes left out)."""
    result: dict[str, Path] = {}
    for volume in svc.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            result[target] = (ROOT / source).resolve()
    return result


def dockerfile_instructions(keyword: str) -> list[str]:
    """Arguments of each ``keyword`` instruction, with line continuations joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    pattern = re.compile(rf"^{keyword}\s+(.*)$", re.MULTILINE)
    return [match.group(1).strip() for match in pattern.finditer(text)]


# ---------------------------------------------------------------------------------------------
# every file parses


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_file_parses(path: Path) -> None:
    assert load_all(path), f"{path} has no YAML document"


def test_grafana_dashboard_is_valid() -> None:
    board = dashboard()
    assert board["uid"] and board["title"]
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36
    uid = datasource_uid()
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    occupied: dict[tuple[int, int], str] = {}
    for panel in board["panels"]:
        assert panel["type"] in {"row", "timeseries", "stat"}, panel["title"]
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in "hwxy"), panel["title"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in occupied, f"{panel['title']} overlaps {occupied[(x, y)]}"
                occupied[(x, y)] = panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["refId"] and target["expr"], panel["title"]
            assert target["datasource"]["uid"] == uid, panel["title"]


# ---------------------------------------------------------------------------------------------
# metric names


def test_dashboard_metrics_exist() -> None:
    used = set().union(*(metric_refs(q) for q in dashboard_queries(dashboard())))
    unknown = used - known_metric_names()
    assert not unknown, f"not exported by the worker: {sorted(unknown)}"
    assert not DASHBOARD_METRICS - used, f"missing from the dashboard: {sorted(DASHBOARD_METRICS - used)}"


def test_alert_metrics_exist() -> None:
    for rule in alert_rules():
        used = metric_refs(rule["expr"])
        assert used or "up{" in rule["expr"], f"{rule['alert']} watches no worker metric"
        unknown = used - known_metric_names()
        assert not unknown, f"{rule['alert']} uses metrics the worker does not export: {sorted(unknown)}"


def test_alert_rules_are_complete() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]


def test_prometheus_scrapes_the_worker_and_loads_the_rules() -> None:
    (config,) = load_all(PROMETHEUS)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    # The availability alerts select job="bullflag".
    assert 'job="bullflag"' in ALERTS.read_text(encoding="utf-8")
    (discovery,) = jobs["bullflag"]["dns_sd_configs"]
    assert discovery["names"] == ["worker"] and "worker" in compose()["services"]
    assert discovery["port"] == worker_settings().metrics_port
    # Rule files resolve next to the config file inside the container, to this repository's file.
    volumes = mounts(service("prometheus"))
    config_dir = next(PurePosixPath(t).parent for t, src in volumes.items() if src == PROMETHEUS.resolve())
    for rule_file in config["rule_files"]:
        assert volumes[str(config_dir / rule_file)] == ALERTS.resolve()


# ---------------------------------------------------------------------------------------------
# settings


@pytest.mark.parametrize(
    "path",
    [COMPOSE, DOCKERFILE, DEPLOY / "README.md", *sorted(K8S.glob("*.yaml"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_env_vars_are_settings(path: Path) -> None:
    unknown = set(ENV_VAR_REF.findall(path.read_text(encoding="utf-8"))) - SETTING_ENV_VARS
    assert not unknown, f"{path.name} names variables that are no setting: {sorted(unknown)}"


def test_compose_worker_settings_are_valid() -> None:
    env = environment(service("worker"))
    assert set(env) <= SETTING_ENV_VARS
    settings = load_settings(env=env)
    assert settings.bootstrap_servers.split(":")[0] in compose()["services"]


def test_configmap_settings_are_valid() -> None:
    data = k8s("ConfigMap")["data"]
    assert set(data) <= SETTING_ENV_VARS
    # ConfigMap values must be strings; a bare 9108 or true fails `kubectl apply`.
    assert all(isinstance(value, str) for value in data.values())
    load_settings(env=data)


def test_deployment_env_and_secret_refs() -> None:
    container = worker_container()
    configmap, secret = k8s("ConfigMap"), k8s("Secret")
    assert [ref["configMapRef"]["name"] for ref in container["envFrom"]] == [configmap["metadata"]["name"]]
    secret_keys = set(secret["stringData"])
    refs = 0
    for var in container["env"]:
        assert var["name"] in SETTING_ENV_VARS, var["name"]
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            refs += 1
            assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret_keys, var["name"]
    assert refs == len(secret_keys) == 2
    assert {"BULLFLAG_SASL_USERNAME", "BULLFLAG_SASL_PASSWORD"} == secret_keys


# ---------------------------------------------------------------------------------------------
# compose topics and commands


def created_topics() -> dict[str, dict[str, Any]]:
    """Topics the compose ``topic-init`` script creates: name -> partitions and configs."""
    init = service("topic-init")
    env = environment(init)
    command = init["command"]
    script = "\n".join(command) if isinstance(command, list) else command

    def resolve(value: str) -> int:
        var = re.fullmatch(r"\$\$\{?(\w+)\}?", value)
        if var:
            value = env[var.group(1)]
        default = re.fullmatch(r"\$\{\w+:-(\d+)\}", value)
        return int(default.group(1) if default else value)

    topics: dict[str, dict[str, Any]] = {}
    for line in script.splitlines():
        words = shlex.split(line.strip())
        if not words or words[0] != "create":
            continue
        options: dict[str, Any] = {"config": {}}
        for flag, value in zip(words[1::2], words[2::2], strict=True):
            if flag == "--config":
                key, _, val = value.partition("=")
                options["config"][key] = val
            else:
                options[flag.lstrip("-")] = value
        topics[options["topic"]] = {"partitions": resolve(options["partitions"]), "config": options["config"]}
    return topics


def test_compose_creates_every_topic_the_worker_uses() -> None:
    settings = worker_settings()
    topics = created_topics()
    wanted = {settings.ticks_topic, settings.signals_topic, settings.dlq_topic, settings.state_topic}
    assert wanted <= set(topics)


def test_state_topic_has_the_ticks_partition_count() -> None:
    settings = worker_settings()
    topics = created_topics()
    state, ticks = topics[settings.state_topic], topics[settings.ticks_topic]
    assert state["partitions"] == ticks["partitions"]
    assert state["config"]["cleanup.policy"] == "compact"


def dockerfile_cmd() -> list[str]:
    (cmd,) = dockerfile_instructions("CMD")
    return json.loads(cmd)


def subcommands(parser: argparse.ArgumentParser) -> set[str]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(action.choices)


@pytest.mark.parametrize("name", ["worker", "replay"])
def test_compose_commands_parse(name: str) -> None:
    svc = service(name)
    assert svc["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
    argv = [str(arg) for arg in svc.get("command", dockerfile_cmd())]
    parser = build_parser()
    if argv[0] not in subcommands(parser):
        pytest.skip(f"`bullflag {argv[0]}` is not a subcommand yet")
    try:
        parser.parse_args(argv)
    except SystemExit:
        pytest.fail(f"`bullflag {shlex.join(argv)}` does not parse")


def test_compose_worker_starts_after_topics_and_probes_healthz() -> None:
    worker = service("worker")
    assert worker["depends_on"]["topic-init"]["condition"] == "service_completed_successfully"
    probe = " ".join(worker["healthcheck"]["test"])
    port = re.search(r":(\d+)/healthz", probe)
    assert port and int(port.group(1)) == worker_settings().metrics_port


def test_grafana_provisioning_matches_compose() -> None:
    grafana = service("grafana")
    volumes = mounts(grafana)
    (providers,) = load_all(DASHBOARD_PROVIDERS)
    (provider,) = providers["providers"]
    assert volumes[provider["options"]["path"]] == DASHBOARD.parent.resolve()
    assert volumes["/etc/grafana/provisioning"] == (GRAFANA / "provisioning").resolve()
    home = PurePosixPath(environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert str(home.parent) == provider["options"]["path"] and home.name == DASHBOARD.name
    (sources,) = load_all(DATASOURCES)
    host = re.match(r"https?://([^:/]+)", sources["datasources"][0]["url"])
    assert host and host.group(1) in compose()["services"]


# ---------------------------------------------------------------------------------------------
# Dockerfile


def test_dockerfile_runs_the_worker_as_non_root() -> None:
    assert json.loads(dockerfile_instructions("ENTRYPOINT")[-1]) == ["bullflag"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "bullflag" in pyproject["project"]["scripts"]
    assert dockerfile_cmd() == ["run"]
    assert dockerfile_instructions("EXPOSE") == [str(Settings().metrics_port)]
    user = dockerfile_instructions("USER")[-1].split(":")[0]
    assert user not in {"root", "0"}
    (healthcheck,) = dockerfile_instructions("HEALTHCHECK")
    assert "/healthz" in healthcheck and "urllib" in healthcheck


def test_dockerfile_installs_the_serving_extra_and_no_torch() -> None:
    installs = [run for run in dockerfile_instructions("RUN") if "pip install" in run and '"."' not in run]
    own = [run for run in installs if '".[' in run]
    assert own, "the image installs the project"
    assert all('".[serve]"' in run.split("pip install", 1)[1].split("&&")[0] for run in own)
    assert not any("torch" in run.split("pip install", 1)[1].split("&&")[0] for run in installs)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    serving = project["dependencies"] + project["optional-dependencies"]["serve"]
    assert not any("torch" in dep for dep in serving)


def test_dockerignore_keeps_what_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = {
        source.rstrip("/")
        for args in dockerfile_instructions("COPY")
        if not args.startswith("--from")
        for source in args.split()[:-1]
    }
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["readme"] in copied
    if "*" in patterns:
        assert copied <= allowed, f"excluded from the build context: {sorted(copied - allowed)}"
    assert not any("weights" in p or p.endswith(".pt") for p in patterns)


# ---------------------------------------------------------------------------------------------
# Kubernetes


def resolve_port(port: int | str, ports: dict[str, int]) -> int:
    return ports[port] if isinstance(port, str) else port


def test_k8s_probes_use_the_metrics_port() -> None:
    settings = configmap_settings()
    container = worker_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == settings.metrics_port
    expected = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert resolve_port(get["port"], ports) == settings.metrics_port, probe
    template = k8s("Deployment")["spec"]["template"]
    assert template["metadata"]["annotations"]["prometheus.io/port"] == str(settings.metrics_port)
    svc = k8s("Service")
    assert svc["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    (svc_port,) = svc["spec"]["ports"]
    assert resolve_port(svc_port["targetPort"], ports) == settings.metrics_port


def test_k8s_pod_is_locked_down() -> None:
    pod = k8s("Deployment")["spec"]["template"]["spec"]
    container = worker_container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    volume = next(v for v in pod["volumes"] if v["name"] == tmp["name"])
    assert "emptyDir" in volume
    assert pod["terminationGracePeriodSeconds"] >= 30
    assert {"requests", "limits"} <= set(container["resources"])


def test_keda_scales_on_the_workers_group() -> None:
    settings = configmap_settings()
    scaled = k8s("ScaledObject")
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == k8s("Deployment")["metadata"]["name"]
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    # KEDA's CRD types trigger metadata as map[string]string.
    assert all(isinstance(value, str) for value in meta.values())
    assert meta["bootstrapServers"] == settings.bootstrap_servers
    assert meta["consumerGroup"] == settings.group_id
    assert meta["topic"] == settings.ticks_topic
    assert int(meta["lagThreshold"]) > 0
    # The worker's consumer starts a new group at the earliest offset.
    assert meta["offsetResetPolicy"] == "earliest"
    # More replicas than partitions would only sit idle.
    assert meta.get("allowIdleConsumers", "false") == "false"
    if settings.security_protocol.startswith("SASL"):
        assert meta["sasl"] == KEDA_SASL[settings.sasl_mechanism]
        assert "authenticationRef" in trigger
    else:
        assert meta.get("sasl", "none") == "none"
    uses_tls = settings.security_protocol in ("SSL", "SASL_SSL")
    assert (meta.get("tls", "disable") == "enable") == uses_tls


def test_kustomization_lists_the_manifests() -> None:
    (kustomization,) = load_all(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed <= present
    # The example secret holds a placeholder password: it must never be applied by -k.
    assert present - listed == {SECRET_EXAMPLE.name}
    namespace = kustomization["namespace"]
    assert all(
        obj["metadata"].get("namespace", namespace) == namespace
        for objs in k8s_objects().values()
        for obj in objs
        if obj["kind"] != "Namespace"
    )
