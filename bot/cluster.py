"""``make cluster``: the assistant as several replicas on this machine, behind nginx.

``python -m bot.cluster`` starts two replicas, each a rasa server and an action server
(started by :func:`bot.launcher.running`), the first with the website chat's page, the
staff console and the worker; and nginx (``deploy/nginx/cluster.conf.template``) as the
one public port, in front of both rasa servers, and in front of both action servers for
the rasa servers. State lives where every replica
sees it: the app database and the tracker store in PostgreSQL (``DATABASE_URL``), locks,
rate limits, LINE redeliveries and socket.io rooms in Redis (``REDIS_URL``).
:func:`cluster_running` also starts the first replica alone behind the same nginx
(``replicas=1``): the baseline ``make bench-cluster`` (bench/cluster.py) measures two
replicas against.

The rasa servers reach the action servers through nginx too, on a loopback listener
of their own, as compose's rasa services reach its ``actions`` service: an action
server that dies alone would otherwise leave its rasa server answering every turn with
nothing (Rasa drops a failed custom action and goes on). nginx passes a call on to the
other action server only when the dead one refused the connection, so nothing was
sent; a call that reached an action server is never sent twice (actions are not
idempotent: they open cases and send codes).

Ctrl-C stops everything it started.
"""

from __future__ import annotations

import os
import string
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import redis
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from bot.launcher import (
    RunningAssistant,
    _print_how_to_talk,
    check_configuration,
    exit_code_of,
    has_staff_account,
    port_in_use,
    running,
    serve_until_interrupted,
    stop,
    train_if_needed,
    wait_until_up,
)
from bot.settings import (
    PROJECT_ROOT,
    Settings,
    SettingsError,
    ensure_action_secret,
    ensure_rasa_token,
    ensure_secret,
    load_settings,
)

NGINX = "/usr/sbin/nginx"
TEMPLATE = PROJECT_ROOT / "deploy" / "nginx" / "cluster.conf.template"
# A database and a Redis db of the cluster's own, so that `make run`'s SQLite data and
# other users of the local servers are left alone.
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/privacy_cluster"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/3"
DEFAULT_PORT = 8000


@dataclass
class RunningCluster:
    """The replicas and nginx of a running cluster."""

    url: str  # nginx: the one public address, e.g. http://127.0.0.1:8000
    replicas: list[RunningAssistant]
    nginx: subprocess.Popen[bytes]

    @property
    def rest_url(self) -> str:
        """The REST channel through nginx (answers only with the HTTP API token)."""
        return f"{self.url}/webhooks/rest/webhook"

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        """Every process of the cluster, nginx last."""
        return [p for replica in self.replicas for p in replica.processes] + [self.nginx]


def cluster_settings(settings: Settings, environ: dict[str, str] | None = None) -> Settings:
    """The settings of a cluster: PostgreSQL and Redis, whatever ``make run`` uses.

    ``DATABASE_URL`` and ``REDIS_URL`` are taken when set; otherwise the cluster's own
    database and Redis db on this machine (:data:`DEFAULT_DATABASE_URL`,
    :data:`DEFAULT_REDIS_URL`).

    Raises:
        SettingsError: If ``DATABASE_URL`` is SQLite, a file that replicas on several
            machines cannot share.
    """
    env = os.environ if environ is None else environ
    database_url = env.get("DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL
    if make_url(database_url).get_backend_name() != "postgresql":
        raise SettingsError(
            "make cluster は PostgreSQL を使います。DATABASE_URL に postgresql:// の URL を"
            f"指定するか、未設定にしてください（既定: {DEFAULT_DATABASE_URL}）"
        )
    return replace(
        settings,
        database_url=database_url,
        redis_url=settings.redis_url or DEFAULT_REDIS_URL,
    )


def _shown(url: str) -> str:
    """A URL for messages: the password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def ensure_postgres(database_url: str) -> None:
    """Check that PostgreSQL answers; create the database when only it is missing.

    Raises:
        SettingsError: If the server cannot be reached or the database not created.
    """
    url = make_url(database_url)
    try:
        _connect(url)
        return
    except sa.exc.OperationalError as error:
        if "does not exist" not in str(error.orig):
            raise SettingsError(
                f"PostgreSQL（{_shown(database_url)}）に接続できません。"
                "サーバーが起動しているか、DATABASE_URL が正しいか確認してください"
            ) from error
    # The server answers but the database is missing: create it from the maintenance db.
    try:
        engine = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
        engine.dispose()
        print(f"データベース {url.database} を作成しました", flush=True)
    except sa.exc.SQLAlchemyError as error:
        raise SettingsError(
            f"データベース {url.database} がなく、作成もできませんでした"
            f"（{_shown(database_url)}）。作成してから再度お試しください"
        ) from error


def _connect(url: URL) -> None:
    engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    finally:
        engine.dispose()


def ensure_redis(redis_url: str) -> None:
    """Check that Redis answers.

    Raises:
        SettingsError: If it does not (not running, wrong URL or password).
    """
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as error:
        raise SettingsError(
            f"Redis（{_shown(redis_url)}）に接続できません。"
            "サーバーが起動しているか、REDIS_URL が正しいか確認してください"
        ) from error
    finally:
        client.close()


def nginx_config(
    prefix: Path,
    listen: str,
    rasa: list[str],
    webchat: str,
    actions: list[str],
    actions_at: str,
    line_intake: str,
) -> str:
    """``deploy/nginx/cluster.conf.template`` for this run's addresses.

    Args:
        prefix: nginx's prefix (its pid file, logs and temporary files).
        listen: the public address, as nginx's ``listen`` takes it.
        rasa: each rasa server's ``host:port``, one ``server`` line each in both of
            its upstreams.
        webchat: the website chat page's ``host:port``.
        actions: each action server's ``host:port``.
        actions_at: the loopback ``host:port`` where the rasa servers reach them.
        line_intake: LINE's intake's ``host:port``.
    """
    return string.Template(TEMPLATE.read_text("utf-8")).safe_substitute(
        CLUSTER_PREFIX=str(prefix),
        CLUSTER_LISTEN=listen,
        CLUSTER_RASA_SERVERS=_servers(rasa),
        CLUSTER_WEBCHAT=webchat,
        # Never marked down: a refused connection on loopback costs next to nothing,
        # while an action server marked down for a while, when the other one dies too
        # (replaced one after the other), would leave no upstream to try at all.
        CLUSTER_ACTION_SERVERS="\n        ".join(f"server {a} max_fails=0;" for a in actions),
        CLUSTER_ACTIONS_LISTEN=actions_at,
        CLUSTER_LINE_INTAKE=line_intake,
    )


def _servers(addresses: list[str]) -> str:
    # A server that failed once is left alone for 10 s, so that a dead one costs each
    # request one refused connection at most every 10 s.
    return "\n        ".join(
        f"server {address} max_fails=1 fail_timeout=10s;" for address in addresses
    )


def start_nginx(prefix: Path, config: str) -> subprocess.Popen[bytes]:
    """Check ``config`` and run nginx on it in the foreground, as this user.

    Raises:
        SettingsError: If nginx is missing or rejects the configuration.
    """
    if not os.path.exists(NGINX):
        raise SettingsError(
            "nginx がありません（root で make cluster を実行すると導入されます。"
            "または apt-get install nginx）"
        )
    (prefix / "temp").mkdir(parents=True, exist_ok=True)
    path = prefix / "nginx.conf"
    path.write_text(config, "utf-8")
    command = [NGINX, "-p", str(prefix), "-c", str(path), "-e", str(prefix / "error.log")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True)
    if checked.returncode != 0:
        raise SettingsError(f"nginx の設定が誤っています: {checked.stderr.strip()}")
    return subprocess.Popen(
        [*command, "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@contextmanager
def cluster_running(
    settings: Settings,
    model: Path,
    public_port: int = DEFAULT_PORT,
    public_host: str = "127.0.0.1",
    second_ports: tuple[int, int] | None = None,
    startup_s: float = 240,
    replicas: int = 2,
    actions_port: int | None = None,
    intake_port: int | None = None,
) -> Iterator[RunningCluster]:
    """Start the replicas (two) and nginx in front of them; stop them all on exit.

    Args:
        settings: the cluster's settings (:func:`cluster_settings`); the first replica
            takes its ports, and the website chat's page, the console and the worker.
        model: the trained model both rasa servers load.
        public_port: nginx's port, the only one meant to be reached from outside.
        public_host: the address nginx listens on (loopback unless asked otherwise).
        second_ports: the second replica's (rasa, action) ports; by default the first
            replica's ports plus one.
        startup_s: how long each server may take to answer.
        replicas: 2 (``make cluster``), or 1: the first replica alone behind the same
            nginx, the baseline ``make bench-cluster`` compares two replicas with.
        actions_port: the loopback port of nginx's listener through which the rasa
            servers reach the action servers; by default the second replica's action
            port plus one.
        intake_port: the loopback port of LINE's intake (``bot.channels.line.intake``,
            started with the first replica); by default ``actions_port`` plus one.

    Raises:
        ValueError: If ``replicas`` is neither 1 nor 2.
        SettingsError: If PostgreSQL or Redis cannot be reached, a port is taken, or
            nginx is missing or rejects its configuration.
    """
    if replicas not in (1, 2):
        raise ValueError(f"a cluster has 1 or 2 replicas, not {replicas}")
    ensure_postgres(settings.database_url)
    if settings.redis_url:
        ensure_redis(settings.redis_url)
    if port_in_use(public_port):
        raise SettingsError(f"CLUSTER_PORT {public_port} は別のプログラムが使用中です")
    rasa_2, action_2 = second_ports or (settings.rasa_port + 1, settings.action_port + 1)
    actions_port = actions_port or action_2 + 1
    if port_in_use(actions_port):
        raise SettingsError(f"ポート {actions_port}（アクションサーバーへの中継）は使用中です")
    intake_port = intake_port or actions_port + 1
    if port_in_use(intake_port):
        raise SettingsError(f"ポート {intake_port}（LINE の受付）は使用中です")
    listen = (
        f"[{public_host}]:{public_port}" if ":" in public_host else f"{public_host}:{public_port}"
    )
    public_url = (
        f"http://{'localhost' if public_host.startswith('127.') else public_host}:{public_port}"
    )
    # Every replica signs, hashes and authenticates with the same secrets, and the
    # website chat's page sends browsers to nginx, not to a rasa server.
    first = replace(
        settings,
        bind_host="127.0.0.1",  # the servers are internal: nginx is the public face
        rasa_token=ensure_rasa_token(settings),
        action_secret=ensure_action_secret(settings),
        secret=ensure_secret(settings),
        outbox_file=settings.outbox_path,
        webchat_rasa_url=settings.webchat_rasa_url or public_url,
        action_endpoint=f"http://127.0.0.1:{actions_port}/webhook",
        line_intake_port=intake_port,
    )
    second = replace(
        first, var_dir=settings.var_dir / "replica-2", rasa_port=rasa_2, action_port=action_2
    )
    logs = settings.var_dir / "logs"
    with ExitStack() as stack:
        started = [
            stack.enter_context(
                running(
                    first,
                    model,
                    logs / "replica-1",
                    startup_s,
                    webchat=True,
                    console=True,
                    worker=True,
                    line_intake=True,
                    turn_nice=settings.cluster_turn_nice,
                )
            )
        ]
        if replicas == 2:
            started.append(
                stack.enter_context(
                    running(
                        second,
                        model,
                        logs / "replica-2",
                        startup_s,
                        worker=False,
                        turn_nice=settings.cluster_turn_nice,
                    )
                )
            )
        prefix = settings.var_dir / "nginx"
        config = nginx_config(
            prefix,
            listen,
            [f"127.0.0.1:{replica.settings.rasa_port}" for replica in started],
            f"127.0.0.1:{first.webchat_port}",
            [f"127.0.0.1:{replica.settings.action_port}" for replica in started],
            f"127.0.0.1:{actions_port}",
            f"127.0.0.1:{intake_port}",
        )
        nginx = start_nginx(prefix, config)
        stack.callback(stop, [nginx])
        wait_until_up(f"http://127.0.0.1:{public_port}/health", 20, nginx)
        yield RunningCluster(public_url, started, nginx)


def run(settings: Settings, public_port: int, public_host: str) -> None:
    """Train if needed, start the cluster, print where to chat, and wait for Ctrl-C."""
    check_configuration(settings)
    model = train_if_needed()
    print("クラスター（rasa 2台・アクション 2台・nginx）を起動しています…", flush=True)
    with cluster_running(settings, model, public_port, public_host) as cluster:
        first = replace(cluster.replicas[0], webchat_url=f"{cluster.url}/")
        _print_how_to_talk(first.settings, first, has_staff_account(settings))
        rasa = ", ".join(r.rasa_url for r in cluster.replicas)
        print(
            f"クラスター:        nginx {cluster.url}（公開ポートはこれだけです）\n"
            f"                   rasa サーバー {rasa}（アクションサーバー 2台へ nginx 経由）\n"
            f"                   PostgreSQL {_shown(settings.database_url)}、"
            f"Redis {_shown(settings.redis_url or '')}\n",
            flush=True,
        )
        serve_until_interrupted(cluster.processes)


def main() -> int:
    """Command-line entry point (``make cluster``)."""
    port_text = os.environ.get("CLUSTER_PORT") or str(DEFAULT_PORT)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        print("設定エラー: CLUSTER_PORT はポート番号で指定してください", file=sys.stderr)
        return 2
    host = os.environ.get("CLUSTER_HOST") or "127.0.0.1"
    return exit_code_of(lambda: run(cluster_settings(load_settings()), int(port_text), host))


if __name__ == "__main__":
    sys.exit(main())
