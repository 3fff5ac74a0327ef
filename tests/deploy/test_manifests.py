"""deploy/: the compose file and the Kubernetes manifests, checked without a cluster.

No Docker daemon or cluster runs in CI, so the files are checked offline against the
schemas their tools use: ``deploy/compose.yaml`` against the Compose Specification's
JSON schema (vendored in deploy/schemas/), every manifest in ``deploy/k8s/`` against
Kubernetes' own schemas with ``kubernetes-validate`` in strict mode (an unknown field is
an error, as a misspelled probe would otherwise be dropped silently). Then what matters
for running several replicas: every setting the processes read in production is given
under bot/settings.py's names, the rasa servers are at least two with SQL tracker and
Redis lock stores, socket.io is sticky, LINE's webhook reaches LINE's intake (with a
rasa server behind it where the edge can fall back), every long-running container has a
health check on a route the process really serves, only the edge is published, and no
secret is committed.
"""

from __future__ import annotations

import copy
import http.server
import importlib.util
import json
import os
import re
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from bot.action_server import OPEN_PATHS
from bot.channels.line import intake
from bot.channels.line.webhook import INTAKE_FALLBACK_HEADER
from bot.channels.webpage import HEALTH_PATH, SOCKET_IO_CLIENT
from bot.launcher import REDACTING_STORE
from bot.settings import ENVIRONMENT, PROJECT_ROOT, SECRETS, SettingsError, load_settings

DEPLOY = PROJECT_ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_SCHEMA = DEPLOY / "schemas" / "compose-spec.json"
EDGE_TEMPLATE = DEPLOY / "nginx" / "compose.conf.template"
CLUSTER_TEMPLATE = DEPLOY / "nginx" / "cluster.conf.template"
K8S = DEPLOY / "k8s"
APP_ENV_EXAMPLE = DEPLOY / "env" / "app.env.example"
KUBERNETES_VERSION = "1.28.0"
APP_IMAGE = "privacy-assistant"
PLACEHOLDER = "change-me"

# Read only by deploy/docker/entrypoint.py: bot/settings.py assumes one machine.
DEPLOY_ONLY = {"ACTION_ENDPOINT_URL", "RASA_URL"}
# Read by bot/ outside Settings: the LINE channel (credentials.yml) and Redis, which
# another part of issue 23 adds to the settings.
READ_OUTSIDE_SETTINGS = {"LINE_CHANNEL_SECRET", "REDIS_URL"}
KNOWN = set(ENVIRONMENT.values()) | set(SECRETS.values()) | READ_OUTSIDE_SETTINGS | DEPLOY_ONLY
# What a deployment must set rather than leave at the one-machine default.
PRODUCTION = {
    "PRIVACY_BOT_ORG",
    "PRIVACY_BOT_BIND_HOST",
    "DATABASE_URL",
    "TRACKER_STORE_URL",
    "REDIS_URL",
    "LOCK_STORE_URL",
    "WEBCHAT_RASA_URL",
    "CONSOLE_SECURE_COOKIE",
    "CONSOLE_TRUSTED_PROXIES",
    "SMS_BACKEND",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM",
    "LINE_CHANNEL_SECRET",
    "LINE_CHANNEL_ACCESS_TOKEN",
    *SECRETS.values(),
    *DEPLOY_ONLY,
}
# The chat page reads no secret and gets only what shapes the page.
PAGE_SETTINGS = {"PRIVACY_BOT_ORG", "PRIVACY_BOT_BIND_HOST", "WEBCHAT_RASA_URL"}
# LINE's intake: Redis and the LINE channel (on only with both of its values), nothing
# of the shared secrets or the databases.
INTAKE_SECRETS = {"REDIS_URL", "LINE_CHANNEL_SECRET", "LINE_CHANNEL_ACCESS_TOKEN"}
INTAKE_SETTINGS = {"PRIVACY_BOT_BIND_HOST", *INTAKE_SECRETS}
PROCESSES = {"rasa", "actions", "console", "webchat", "worker", "migrate", "line-intake"}
# Values that are secrets, or URLs that may carry one.
SECRET_NAMES = {
    *SECRETS.values(),
    "DATABASE_URL",
    "TRACKER_STORE_URL",
    "REDIS_URL",
    "LOCK_STORE_URL",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "LINE_CHANNEL_SECRET",
    "LINE_CHANNEL_ACCESS_TOKEN",
    "POSTGRES_PASSWORD",
}
# The port each process serves its health route on, and the route.
HEALTH = {
    "rasa": (5005, "/"),
    "actions": (5055, "/health"),
    "console": (5002, "/health"),
    "webchat": (8080, "/health"),
    "line-intake": (load_settings({}).line_intake_port, intake.HEALTH_PATH),
}


def load_entrypoint() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "deploy_entrypoint", DEPLOY / "docker" / "entrypoint.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def interpolated(value: Any) -> Any:
    """``value`` as compose reads it when the operator set none of its variables:
    ``${NAME:-default}`` is the default, ``$$`` a dollar sign."""
    if isinstance(value, dict):
        return {key: interpolated(item) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolated(item) for item in value]
    if isinstance(value, str):
        value = re.sub(r"(?<!\$)\$\{\w+(?::?-([^}]*))?\}", lambda m: m.group(1) or "", value)
        return value.replace("$$", "$")
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return interpolated(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                documents.append(document)
    return documents


def app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services running the assistant's image, by name."""
    return {
        name: service
        for name, service in compose["services"].items()
        if service.get("image") == f"{APP_IMAGE}:local"
    }


def process_of(service: dict[str, Any]) -> str:
    return str(service["command"][0])


def compose_environment(service: dict[str, Any]) -> dict[str, str]:
    """What a compose service's processes see: its env files (from their examples) and
    its environment."""
    names: dict[str, str] = {}
    for entry in service.get("env_file", []):
        path = entry["path"] if isinstance(entry, dict) else entry
        names.update(env_file(DEPLOY / f"{path}.example"))
    names.update({key: str(value) for key, value in service.get("environment", {}).items()})
    return names


def pod_containers(manifests: list[dict[str, Any]]) -> Iterator[tuple[dict, dict]]:
    for document in manifests:
        if document["kind"] in ("Deployment", "Job"):
            for container in document["spec"]["template"]["spec"]["containers"]:
                yield document, container


def k8s_environment(manifests: list[dict[str, Any]], container: dict) -> dict[str, str]:
    """What a container sees: its ConfigMaps' data, its Secret's keys (the Secret is made
    from deploy/env/app.env, whose example lists them and stands in for its values) and
    its own env entries."""
    config_maps = {
        document["metadata"]["name"]: document["data"]
        for document in manifests
        if document["kind"] == "ConfigMap"
    }
    names: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            names.update(config_maps[source["configMapRef"]["name"]])
        if "secretRef" in source:
            assert source["secretRef"]["name"] == "privacy-assistant-secrets"
            names.update(env_file(APP_ENV_EXAMPLE))
    for entry in container.get("env", []):
        reference = entry.get("valueFrom", {}).get("secretKeyRef")
        if reference is not None:
            assert reference["name"] == "privacy-assistant-secrets"
            names[entry["name"]] = env_file(APP_ENV_EXAMPLE).get(reference["key"], "")
        else:
            names[entry["name"]] = entry.get("value", "")
    return names


# --- the validators ------------------------------------------------------------------


def compose_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    # The schema says draft 2020-12 but uses nothing past draft 7 (see its README).
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'/'.join(map(str, error.path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_the_compose_file_matches_the_compose_specification(compose):
    assert compose_errors(compose) == []


def test_the_compose_check_catches_a_misspelled_key(compose):
    broken = copy.deepcopy(compose)
    broken["services"]["worker"]["helthcheck"] = broken["services"]["worker"].pop("healthcheck")
    assert any("helthcheck" in error for error in compose_errors(broken))


def test_every_kubernetes_manifest_validates_strictly(manifests):
    assert {document["kind"] for document in manifests} >= {
        "Deployment",
        "Service",
        "Ingress",
        "ConfigMap",
        "Job",
    }
    for document in manifests:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_kubernetes_check_catches_a_misspelled_probe(manifests):
    rasa = copy.deepcopy(next(d for d in manifests if d["metadata"]["name"] == "rasa"))
    container = rasa["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(rasa, KUBERNETES_VERSION, strict=True)


def test_the_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    files = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert [image["name"] for image in kustomization["images"]] == [APP_IMAGE]


# --- settings ------------------------------------------------------------------------


def test_every_production_setting_is_one_the_app_reads():
    assert PRODUCTION <= KNOWN
    # The stores a replica shares with the others are among them.
    assert {"DATABASE_URL", "TRACKER_STORE_URL", "LOCK_STORE_URL"} <= set(ENVIRONMENT.values())


def needed_settings(process: str) -> set[str]:
    """What a process must be given in production."""
    return {"webchat": PAGE_SETTINGS, "line-intake": INTAKE_SETTINGS}.get(process, PRODUCTION)


def test_compose_gives_every_process_its_production_settings_by_their_names(compose):
    services = app_services(compose)
    assert {process_of(s) for s in services.values()} == PROCESSES
    for name, service in services.items():
        environment = compose_environment(service)
        unknown = set(environment) - KNOWN
        assert not unknown, f"{name}: {unknown} is no setting of bot/settings.py"
        needed = needed_settings(process_of(service))
        assert needed <= set(environment), f"{name} lacks {needed - set(environment)}"
        if process_of(service) == "webchat":
            assert not set(environment) & SECRET_NAMES, "the chat page needs no secret"


def test_kubernetes_gives_every_container_its_production_settings(manifests):
    containers = list(pod_containers(manifests))
    assert {c["args"][0] for _, c in containers} == PROCESSES
    for document, container in containers:
        environment = k8s_environment(manifests, container)
        unknown = set(environment) - KNOWN
        assert not unknown, f"{document['metadata']['name']}: {unknown} is no setting"
        missing = needed_settings(container["args"][0]) - set(environment)
        assert not missing, f"{document['metadata']['name']} lacks {missing}"


def test_lines_intake_gets_redis_and_line_from_the_secret_and_nothing_else(manifests):
    document, container = next(
        (d, c) for d, c in pod_containers(manifests) if c["args"] == ["line-intake"]
    )
    # Key by key, not the whole Secret: the shared secrets and the database URLs stay
    # out of the one process that reads LINE's requests before anything else does.
    assert all("secretRef" not in source for source in container.get("envFrom", []))
    environment = k8s_environment(manifests, container)
    assert set(environment) & SECRET_NAMES == INTAKE_SECRETS
    secret_keys = set(env_file(APP_ENV_EXAMPLE))
    for entry in container["env"]:
        if entry["name"] in SECRET_NAMES:
            reference = entry["valueFrom"]["secretKeyRef"]
            assert reference["name"] == "privacy-assistant-secrets"
            assert reference["key"] == entry["name"] and reference["key"] in secret_keys
            # Without LINE its keys may be left out of the Secret: the intake starts, off.
            assert reference.get("optional", False) == (entry["name"] != "REDIS_URL")
    # It listens where its Service and probes look.
    settings = load_settings(environment)
    assert [port["containerPort"] for port in container["ports"]] == [settings.line_intake_port]
    # ingress-nginx cannot fall back to a rasa server: two of them, never both away.
    assert document["spec"]["replicas"] >= 2
    assert document["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    budgets = [d for d in manifests if d["kind"] == "PodDisruptionBudget"]
    labels = document["spec"]["selector"]["matchLabels"]
    assert any(
        b["spec"]["selector"]["matchLabels"] == labels and b["spec"]["minAvailable"] >= 1
        for b in budgets
    )


def test_every_process_starts_with_the_settings_it_is_given(compose, manifests):
    # The entry point loads the settings before anything else: a process given a
    # combination they refuse (SMS_BACKEND=twilio without Twilio's values) never starts.
    given = [(name, compose_environment(s)) for name, s in app_services(compose).items()]
    given += [
        (f"k8s {document['metadata']['name']}", k8s_environment(manifests, container))
        for document, container in pod_containers(manifests)
    ]
    for name, environment in given:
        try:
            load_settings(environment)
        except SettingsError as error:
            pytest.fail(f"{name}: {error}")


def test_the_example_settings_load_and_point_at_postgresql_and_redis(compose):
    environment = compose_environment(app_services(compose)["rasa-1"])
    settings = load_settings(environment)
    assert settings.database_url.startswith("postgresql://")
    assert settings.tracker_url.startswith("postgresql://")
    assert settings.sms_backend == "twilio"
    assert settings.bind_host == "0.0.0.0"
    assert settings.console_secure_cookie is True
    for name in ("REDIS_URL", "LOCK_STORE_URL"):
        assert urlsplit(environment[name]).scheme == "redis"


# --- replicas, stores, stickiness ----------------------------------------------------


def test_there_are_at_least_two_rasa_servers(compose, manifests):
    rasa_services = [n for n, s in app_services(compose).items() if process_of(s) == "rasa"]
    assert len(rasa_services) >= 2
    rasa = next(
        d for d in manifests if d["kind"] == "Deployment" and d["metadata"]["name"] == "rasa"
    )
    assert rasa["spec"]["replicas"] >= 2
    # A rolling update never takes a server away before its successor is ready.
    assert rasa["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_a_rasa_replica_gets_the_sql_tracker_store_and_the_redis_lock_store(
    compose, tmp_path, monkeypatch
):
    from rasa.core.lock_store import LockStore, RedisLockStore
    from rasa.utils.endpoints import read_endpoint_config

    entrypoint = load_entrypoint()
    environment = {
        **compose_environment(app_services(compose)["rasa-1"]),
        "PRIVACY_BOT_VAR_DIR": str(tmp_path),
        "LOCK_STORE_URL": os.environ.get("PRIVACY_BOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/5"),
    }
    settings = load_settings(environment)
    args = entrypoint.rasa_args(settings, environment, ["--model", "given.tar.gz"])
    endpoints_file = Path(args[args.index("--endpoints") + 1])
    assert stat.S_IMODE(endpoints_file.stat().st_mode) == 0o600  # it holds the secret
    assert args[:2] == ["-m", "bot.rasa_server"] and "given.tar.gz" in args

    action = read_endpoint_config(str(endpoints_file), "action_endpoint")
    assert action is not None and action.url == "http://actions:5055/webhook"
    assert action.headers == {"Authorization": f"Bearer {environment['ACTION_SERVER_SECRET']}"}
    tracker = read_endpoint_config(str(endpoints_file), "tracker_store")
    assert tracker is not None and tracker.type == REDACTING_STORE
    assert tracker.kwargs["dialect"] == "postgresql" and tracker.url == "postgres"
    store = LockStore.create(read_endpoint_config(str(endpoints_file), "lock_store"))
    assert isinstance(store, RedisLockStore)


def test_a_rasa_replica_refuses_to_start_with_its_locks_in_memory(tmp_path):
    entrypoint = load_entrypoint()
    environment = {
        "PRIVACY_BOT_VAR_DIR": str(tmp_path),
        "ACTION_SERVER_SECRET": "s",
        "ACTION_ENDPOINT_URL": "http://actions:5055/webhook",
    }
    with pytest.raises(entrypoint.SettingsError, match="LOCK_STORE_URL or REDIS_URL"):
        entrypoint.endpoints(load_settings(environment), environment)
    # REDIS_URL alone is enough: Rasa's locks go there.
    environment["REDIS_URL"] = "redis://cache:6379/0"
    config = entrypoint.endpoints(load_settings(environment), environment)
    assert config["lock_store"]["url"] == "cache"


def test_a_process_without_the_shared_secrets_refuses_to_start(tmp_path):
    entrypoint = load_entrypoint()
    environment = {"PRIVACY_BOT_VAR_DIR": str(tmp_path), "RASA_TOKEN": "t"}
    result = subprocess.run(
        [sys.executable, str(DEPLOY / "docker" / "entrypoint.py"), "actions"],
        env={
            **os.environ,
            **environment,
            "PYTHONPATH": str(PROJECT_ROOT),
            "ACTION_SERVER_SECRET": "",
            "PRIVACY_BOT_SECRET": "",
        },
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 2
    named = result.stderr.split(" must ")[0]
    assert "ACTION_SERVER_SECRET" in named and "PRIVACY_BOT_SECRET" in named
    assert "RASA_TOKEN" not in named
    # Given as files in the var dir (a mounted Secret), they count.
    for name in ("action_secret", "secret"):
        (tmp_path / name).write_text("x", encoding="utf-8")
    assert entrypoint.missing_secrets(load_settings(environment), environment) == []


def test_the_image_starts_lines_intake_without_the_shared_secrets(tmp_path):
    entrypoint = load_entrypoint()
    assert entrypoint.COMMANDS["line-intake"] == ["-m", intake.__name__]
    assert "line-intake" not in entrypoint.NEEDS_SECRETS
    # Started with none of them and no REDIS_URL, it gets as far as the intake itself,
    # which stops for Redis.
    result = subprocess.run(
        [sys.executable, str(DEPLOY / "docker" / "entrypoint.py"), "line-intake"],
        env={
            **{k: v for k, v in os.environ.items() if k not in (*SECRETS.values(), "REDIS_URL")},
            "PYTHONPATH": str(PROJECT_ROOT),
            "PRIVACY_BOT_VAR_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 2
    assert "REDIS_URL" in result.stderr and "must be given" not in result.stderr


def upstream_blocks(conf: str) -> dict[str, str]:
    return dict(re.findall(r"upstream (\w+) \{(.*?)\}", conf, flags=re.S))


def location(conf: str, path: str) -> str:
    found = re.search(rf"location {re.escape(path)} \{{(.*?)\n    \}}", conf, flags=re.S)
    assert found, f"no location {path}"
    return found.group(1)


def test_the_compose_edge_keeps_each_browser_on_one_rasa_server(compose):
    conf = EDGE_TEMPLATE.read_text(encoding="utf-8")
    upstreams = upstream_blocks(conf)
    socket_io = location(conf, "/socket.io/")
    upstream = re.search(r"proxy_pass http://(\w+);", socket_io)
    assert upstream
    # Hashed on the edge's own cookie, which the response sets.
    assert "hash $privacy_route consistent;" in upstreams[upstream.group(1)]
    assert re.search(r"map \$cookie_privacy_route \$privacy_route", conf)
    assert 'add_header Set-Cookie "privacy_route=$privacy_route;' in socket_io
    # Websockets: the upgrade is passed on over HTTP/1.1.
    assert "proxy_http_version 1.1;" in socket_io
    assert "proxy_set_header Upgrade $http_upgrade;" in socket_io
    # Every rasa server of compose.yaml is in both rasa upstreams, and nothing else.
    rasa = {f"{n}:5005" for n, s in app_services(compose).items() if process_of(s) == "rasa"}
    for name in (upstream.group(1), "privacy_rasa"):
        assert set(re.findall(r"server (\S+?)[ ;]", upstreams[name])) == rasa


def block_lines(conf: str, head: str) -> list[str]:
    """The stripped lines of the block that starts with ``head {``, at any indentation."""
    found = re.search(rf"\n[ ]*{re.escape(head)} \{{\n(.*?)\n[ ]*\}}\n", conf, flags=re.S)
    assert found, f"no {head}"
    return [line.strip() for line in found.group(1).splitlines()]


def test_the_compose_edge_sends_line_to_the_intake_and_falls_back_to_a_rasa_server(compose):
    conf = EDGE_TEMPLATE.read_text(encoding="utf-8")
    upstreams = upstream_blocks(conf)
    line = location(conf, f"= {intake.WEBHOOK_PATH}")
    upstream = re.search(r"proxy_pass http://(\w+);", line)
    assert upstream
    # The intake: every compose service running it, on its port.
    port = HEALTH["line-intake"][0]
    intakes = {
        f"{name}:{port}"
        for name, service in app_services(compose).items()
        if process_of(service) == "line-intake"
    }
    assert set(re.findall(r"server (\S+?)[ ;]", upstreams[upstream.group(1)])) == intakes
    # Down (502) or Redis did not take the body (503): a rasa server, any of them.
    assert "proxy_intercept_errors on;" in line
    assert "error_page 502 503 504 = @line_direct;" in line
    assert "proxy_pass http://privacy_rasa;" in location(conf, "@line_direct")
    assert f"proxy_set_header {INTAKE_FALLBACK_HEADER} 1;" in location(conf, "@line_direct")
    # As make cluster's edge does it, line for line.
    cluster = CLUSTER_TEMPLATE.read_text(encoding="utf-8")
    for head in (f"location = {intake.WEBHOOK_PATH}", "location @line_direct"):
        assert block_lines(conf, head) == block_lines(cluster, head), head


def test_the_ingress_keeps_socket_io_sticky_by_cookie_and_nothing_reaches_the_actions(
    manifests,
):
    ingresses = [d for d in manifests if d["kind"] == "Ingress"]
    routes = {
        (rule["host"], path["path"]): (ingress, path["backend"]["service"]["name"])
        for ingress in ingresses
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    ingress, service = routes[("chat.example.jp", "/socket.io/")]
    assert service == "rasa"
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert annotations["nginx.ingress.kubernetes.io/session-cookie-path"] == "/socket.io/"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 60
    assert routes[("chat.example.jp", intake.WEBHOOK_PATH)][1] == "line-intake"
    assert routes[("console.example.jp", "/")][1] == "console"
    assert "actions" not in {service for _, service in routes.values()}
    assert all(ingress["spec"]["tls"] for ingress in ingresses)


# --- health checks -------------------------------------------------------------------


def test_the_health_routes_are_the_ones_the_processes_serve():
    assert HEALTH["actions"][1] in OPEN_PATHS
    # The intake's, from its application (the Redis client connects on first use).
    from bot.channels.line.config import LineConfig
    from bot.channels.line.inbox import LineInbox
    from bot.channels.shared_state import connect

    app = intake.create_app(LineConfig("", ""), LineInbox(connect("redis://127.0.0.1:1/0")))
    routes = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
    }
    assert ("GET", HEALTH["line-intake"][1]) in routes
    assert ("POST", intake.WEBHOOK_PATH) in routes
    assert HEALTH["webchat"][1] == HEALTH_PATH
    console_app = (PROJECT_ROOT / "bot" / "console" / "app.py").read_text(encoding="utf-8")
    assert 'add_get("/health", health)' in console_app
    # Rasa's root route, read from its source (importing rasa.server takes seconds).
    rasa_spec = importlib.util.find_spec("rasa")
    assert rasa_spec is not None and rasa_spec.origin is not None
    rasa_server = Path(rasa_spec.origin).with_name("server.py").read_text(encoding="utf-8")
    assert '@app.get("/")' in rasa_server


def one_shot(compose: dict[str, Any], name: str) -> bool:
    """A job others wait on to complete, not a service that keeps running."""
    return compose["services"][name].get("restart") == "no" and any(
        (service.get("depends_on") or {}).get(name, {}).get("condition")
        == "service_completed_successfully"
        for service in compose["services"].values()
    )


def test_every_compose_service_has_a_health_check_on_its_real_route(compose):
    for name, service in compose["services"].items():
        if one_shot(compose, name):
            continue
        check = service.get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no health check"
        if name in app_services(compose):
            process = process_of(service)
            target = check["test"][-1]
            if process == "worker":
                assert target == "deps"
            else:
                port, path = HEALTH[process]
                assert target == f"http://127.0.0.1:{port}{path}", name


def test_nginx_waits_for_every_service_it_proxies_to(compose):
    # nginx resolves its upstreams' names when it starts: each service it names must be
    # up first, and nginx restarted when one is recreated.
    conf = EDGE_TEMPLATE.read_text(encoding="utf-8")
    named = {
        server.split(":")[0]
        for block in upstream_blocks(conf).values()
        for server in re.findall(r"server (\S+?)[ ;]", block)
    }
    depends_on = compose["services"]["nginx"]["depends_on"]
    assert set(depends_on) == named
    for name in named:
        assert depends_on[name] == {"condition": "service_healthy", "restart": True}, name


def test_lines_intake_waits_for_redis_alone(compose):
    intakes = [s for s in app_services(compose).values() if process_of(s) == "line-intake"]
    assert intakes
    for service in intakes:
        # No database and no migration: Redis is all it needs to take deliveries.
        assert service["depends_on"] == {"redis": {"condition": "service_healthy"}}
        assert not service.get("ports")


def test_every_long_running_container_has_probes_on_its_real_route(manifests):
    for document, container in pod_containers(manifests):
        if document["kind"] == "Job":
            continue
        process = container["args"][0]
        for probe in ("readinessProbe", "livenessProbe"):
            assert probe in container, f"{process} has no {probe}"
            if process == "worker":
                assert container[probe]["exec"]["command"][-1] == "deps"
                continue
            port, path = HEALTH[process]
            assert container[probe]["httpGet"]["path"] == path
            named = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert named[container[probe]["httpGet"]["port"]] == port
        requests = container["resources"]["requests"]
        assert requests["cpu"] and requests["memory"], f"{process} has no resource requests"


def _wait_healthy(url: str, process: subprocess.Popen[bytes], deadline_s: float) -> int:
    """The health check's exit status once it passes, the process dies, or time is up."""
    deadline = time.monotonic() + deadline_s
    status = 1
    while time.monotonic() < deadline and process.poll() is None:
        status = run_healthcheck(url)
        if status == 0:
            break
        time.sleep(0.5)
    return status


@pytest.mark.parametrize("process", ["actions", "console", "webchat"])
def test_each_process_started_as_the_image_starts_it_passes_its_health_check(
    process, migrated_url, tmp_path
):
    if process == "webchat" and not SOCKET_IO_CLIENT.exists():
        pytest.skip("web/node_modules is missing (make install runs npm ci)")
    port = _free_port()
    variable = {"actions": "ACTION_PORT", "console": "CONSOLE_PORT", "webchat": "WEBCHAT_PORT"}
    environment = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "PRIVACY_BOT_VAR_DIR": str(tmp_path),
        "PRIVACY_BOT_BIND_HOST": "127.0.0.1",
        "DATABASE_URL": migrated_url,
        "RASA_TOKEN": "t",
        "ACTION_SERVER_SECRET": "a",
        "PRIVACY_BOT_SECRET": "s",
        "RASA_URL": f"http://127.0.0.1:{_free_port()}",
        variable[process]: str(port),
    }
    log = tmp_path / f"{process}.log"
    with open(log, "wb") as output:
        server = subprocess.Popen(
            [sys.executable, str(DEPLOY / "docker" / "entrypoint.py"), process],
            env=environment,
            cwd=PROJECT_ROOT,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}{HEALTH[process][1]}"
        status = _wait_healthy(url, server, 120)
        assert status == 0, log.read_text(encoding="utf-8", errors="replace")[-2000:]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_lines_intake_started_as_the_image_starts_it_passes_its_health_check_and_queues(
    tmp_path,
):
    import redis

    from bot.channels.line.inbox import LineInbox, encode
    from bot.channels.line.signature import sign
    from bot.channels.shared_state import connect

    redis_url = os.environ.get("PRIVACY_BOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        client.close()
        pytest.skip(f"Redis not reachable at {redis_url}: {type(error).__name__}")
    port, channel_secret = _free_port(), "intake-test-secret"
    environment = {
        # None of the shared secrets, no database: Redis and LINE only.
        **{k: v for k, v in os.environ.items() if k not in SECRETS.values()},
        "PYTHONPATH": str(PROJECT_ROOT),
        "PRIVACY_BOT_VAR_DIR": str(tmp_path),
        "PRIVACY_BOT_BIND_HOST": "127.0.0.1",
        "REDIS_URL": redis_url,
        "LINE_CHANNEL_SECRET": channel_secret,
        "LINE_CHANNEL_ACCESS_TOKEN": "intake-test-token",
        "LINE_INTAKE_PORT": str(port),
    }
    log = tmp_path / "line-intake.log"
    with open(log, "wb") as output:
        server = subprocess.Popen(
            [sys.executable, str(DEPLOY / "docker" / "entrypoint.py"), "line-intake"],
            env=environment,
            cwd=PROJECT_ROOT,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
    body = json.dumps(
        {"destination": "U0", "events": [{"type": "unfollow", "webhookEventId": str(port)}]}
    ).encode()
    signature = sign(channel_secret, body)
    try:
        base = f"http://127.0.0.1:{port}"
        status = _wait_healthy(f"{base}{HEALTH['line-intake'][1]}", server, 60)
        assert status == 0, log.read_text(encoding="utf-8", errors="replace")[-2000:]
        with urllib.request.urlopen(f"{base}{HEALTH['line-intake'][1]}", timeout=5) as answer:
            assert json.load(answer) == {"status": "ok"}
        request = urllib.request.Request(
            f"{base}{intake.WEBHOOK_PATH}", data=body, headers={"X-Line-Signature": signature}
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.status == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
        # The body waits in the inbox for the rasa servers: taken back here.
        key = LineInbox(connect(redis_url)).key
        taken = client.lrem(key, 1, encode(body, signature))
        client.close()
    assert taken == 1


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def run_healthcheck(*args: str, env: dict[str, str] | None = None) -> int:
    return subprocess.run(
        [sys.executable, str(DEPLOY / "docker" / "healthcheck.py"), *args],
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **(env or {})},
        capture_output=True,
        timeout=60,
        cwd=PROJECT_ROOT,
    ).returncode


def test_the_http_health_check_passes_on_200_only():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert run_healthcheck(f"{base}/health") == 0
        assert run_healthcheck(f"{base}/other") == 1
    finally:
        server.shutdown()
        server.server_close()
    assert run_healthcheck(f"{base}/health") == 1  # nothing listens any more


def test_the_worker_health_check_needs_the_database_and_redis(migrated_url):
    redis_url = os.environ.get("PRIVACY_BOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
    import redis

    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        pytest.skip(f"Redis not reachable at {redis_url}: {type(error).__name__}")
    assert run_healthcheck("deps", env={"DATABASE_URL": migrated_url, "REDIS_URL": redis_url}) == 0
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{closed.getsockname()[1]}/0"  # bound, never listening
        assert run_healthcheck("deps", env={"DATABASE_URL": migrated_url, "REDIS_URL": dead}) == 1


# --- exposure and secrets ------------------------------------------------------------


def test_only_the_edge_publishes_a_port(compose, manifests):
    published = {name for name, s in compose["services"].items() if s.get("ports")}
    assert published == {"nginx"}
    assert not any("network_mode" in s for s in compose["services"].values())
    for document in manifests:
        if document["kind"] == "Service":
            assert document["spec"].get("type", "ClusterIP") == "ClusterIP"
    for document, container in pod_containers(manifests):
        assert not document["spec"]["template"]["spec"].get("hostNetwork")
        assert all("hostPort" not in port for port in container.get("ports", []))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def committed_value_problem(name: str, value: str) -> str | None:
    if name not in SECRET_NAMES or value in ("", PLACEHOLDER):
        return None
    if "://" in value:
        password = urlsplit(value).password
        return None if password in (None, PLACEHOLDER) else f"{name} has a password"
    return f"{name} has a value"


def test_no_secret_value_is_committed(compose, manifests):
    assert not [d for d in manifests if d["kind"] == "Secret"], "Secrets are referenced only"
    for document in manifests:
        if document["kind"] == "ConfigMap":
            assert not set(document["data"]) & SECRET_NAMES
    for _, container in pod_containers(manifests):
        for entry in container.get("env", []):
            assert entry["name"] not in SECRET_NAMES or "valueFrom" in entry
    for name, service in compose["services"].items():
        literal = set(service.get("environment", {})) & SECRET_NAMES
        assert not literal, f"{name} sets {literal} in compose.yaml: env files only"
    examples = sorted((DEPLOY / "env").glob("*.env.example"))
    assert examples
    for example in examples:
        for name, value in env_file(example).items():
            assert committed_value_problem(name, value) is None, example.name
    tracked = subprocess.run(
        ["git", "ls-files", "deploy"], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT
    ).stdout.split()
    assert not [path for path in tracked if path.endswith(".env") or "/certs/" in path]
    ignored = (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()
    assert {"env/*.env", "certs/"} <= set(ignored)


def test_the_secret_check_catches_a_committed_password():
    assert committed_value_problem("DATABASE_URL", "postgresql://u:hunter2@db/x")
    assert committed_value_problem("RASA_TOKEN", "abc")
    assert committed_value_problem("DATABASE_URL", f"postgresql://u:{PLACEHOLDER}@db/x") is None


# --- the image -----------------------------------------------------------------------


def test_the_image_is_built_from_files_that_exist_and_runs_unprivileged():
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM (\S+) AS (\w+)$", dockerfile, flags=re.M)
    assert ("python:3.10-slim", "app") in stages
    assert stages[-1] == ("app", "release"), "the default target is the app with its model"
    assert "COPY --from=model /app/models /app/models" in dockerfile
    # Installed as `make install` does: the pinned pip, then the project in editable mode.
    assert 'pip install --quiet "pip==24.0"' in dockerfile
    assert "pip install --quiet -e ." in dockerfile
    assert "RUN python -m bot.launcher train" in dockerfile
    for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, flags=re.M):
        for source in line.split()[:-1]:
            assert (PROJECT_ROOT / source).exists(), f"COPY {source}: no such file"
    app_stage = dockerfile.split("AS app\n")[1].split("\nFROM ")[0]
    assert re.search(r"^USER 10001$", app_stage, flags=re.M)
    assert 'ENTRYPOINT ["python", "/app/deploy/docker/entrypoint.py"]' in app_stage
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    assert {".env", "deploy/env/*.env", "deploy/certs", "**/.venv"} <= set(ignored)


def test_composes_line_intake_runs_without_the_settings_it_does_not_use(
    compose, tmp_path, monkeypatch
):
    entrypoint = load_entrypoint()
    given = {
        **compose_environment(app_services(compose)["line-intake"]),  # app.env's example
        "PRIVACY_BOT_VAR_DIR": str(tmp_path),
        "PATH": os.environ.get("PATH", ""),
    }
    sensitive = {"DATABASE_URL", "RASA_TOKEN", "ACTION_SERVER_SECRET", "PRIVACY_BOT_SECRET"}
    assert sensitive <= set(given)
    ran: list[tuple[list[str], dict[str, str]]] = []
    monkeypatch.setattr(entrypoint.os, "environ", given)
    monkeypatch.setattr(entrypoint.os, "execve", lambda _, args, env: ran.append((args, env)))
    entrypoint.main(["line-intake"])
    [(args, env)] = ran
    assert args[1:] == ["-m", "bot.channels.line.intake"]
    # The database URLs, the shared secrets, Twilio's token: none reaches the intake.
    assert set(env) & KNOWN == set(given) & INTAKE_SETTINGS
    assert not set(env) & (sensitive | {"PRIVACY_BOT_VAR_DIR", "TWILIO_AUTH_TOKEN"})
    assert {"REDIS_URL", "LINE_CHANNEL_SECRET"} <= set(env)
    assert env["PATH"] == given["PATH"]
    # The other processes get everything they were given.
    entrypoint.main(["worker"])
    assert ran[1][1] == given
