"""A real RabbitMQ cluster (Debian's ``rabbitmq-server``, with the ``rabbitmq_mqtt`` plugin) of 1
or 3 nodes on loopback, run as the current user with everything under one directory.

Each node has its own free ports (AMQP, MQTT, Erlang distribution), its mnesia/log directories,
config file and enabled-plugins file; all nodes share one ``HOME`` (its ``.erlang.cookie``) and
one ``epmd`` on a free port, started here in the foreground (``epmd -port P``) so that it is
ours to stop: the nodes find it running and start none of their own. Node 1 starts first; the
others join it through classic peer discovery (``cluster_formation.classic_config``), started
together once node 1 answers. Quorum queues are usable once every node answers on AMQP (a node
opens its listeners only after it joined the cluster).

Each node runs in a process group of its own: without input, ``rabbitmq-server`` starts the
Erlang VM (``beam.smp``) as a background child that outlives the script, so
:meth:`RabbitCluster.kill` SIGKILLs the whole group (the VM dies without a word to its peers)
and :meth:`RabbitCluster.stop` does so for every node, then stops epmd, each wait bounded.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import free_port
from tests.support.pgroup import kill_members, members

__all__ = ["RabbitCluster", "RabbitNode", "rabbitmq_available", "rabbitmq_missing"]

SBIN = Path("/usr/lib/rabbitmq/bin")
SERVER = SBIN / "rabbitmq-server"
EPMD = shutil.which("epmd") or "/usr/bin/epmd"
START_TIMEOUT_SECS = 90.0


def _plugins_dir() -> Path | None:
    found = sorted(Path("/usr/lib/rabbitmq/lib").glob("rabbitmq_server-*/plugins"))
    return found[-1] if found else None


def rabbitmq_missing() -> str | None:
    """Why a cluster cannot start here (None: it can)."""
    if not SERVER.exists():
        return "rabbitmq-server is not installed (Debian package rabbitmq-server)"
    plugins = _plugins_dir()
    if plugins is None or not any(plugins.glob("rabbitmq_mqtt-*")):
        return "RabbitMQ's rabbitmq_mqtt plugin is not installed"
    if not Path(EPMD).exists():
        return "epmd (Erlang) is not installed"
    return None


def rabbitmq_available() -> bool:
    return rabbitmq_missing() is None


@dataclass
class RabbitNode:
    index: int  # 1-based
    name: str  # r{index}-{tag}@localhost
    amqp_port: int
    mqtt_port: int
    dist_port: int
    dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def amqp_url(self) -> str:
        return f"amqp://127.0.0.1:{self.amqp_port}"

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class RabbitCluster:
    def __init__(self, workdir: Path, size: int = 3) -> None:
        assert size in (1, 3), "a cluster of 1 or 3 nodes"
        self.workdir = workdir
        self.tag = secrets.token_hex(3)
        self.home = workdir / "home"
        self.epmd_port = free_port()
        self.epmd: subprocess.Popen[bytes] | None = None
        self.nodes = [
            RabbitNode(
                i,
                f"r{i}-{self.tag}@localhost",
                free_port(),
                free_port(),
                free_port(),
                workdir / f"node-{i}",
            )
            for i in range(1, size + 1)
        ]
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)
        for n in self.nodes:
            self._write_node(n)

    @property
    def amqp_urls(self) -> list[str]:
        return [n.amqp_url for n in self.nodes]

    @property
    def mqtt_urls(self) -> list[str]:
        return [n.mqtt_url for n in self.nodes]

    def _write_node(self, n: RabbitNode) -> None:
        for sub in ("mnesia", "log"):
            (n.dir / sub).mkdir(parents=True, exist_ok=True)
        peers = "".join(
            f"cluster_formation.classic_config.nodes.{p.index} = {p.name}\n" for p in self.nodes
        )
        (n.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{n.amqp_port}\n"
            f"mqtt.listeners.tcp.1 = 127.0.0.1:{n.mqtt_port}\n"
            "mqtt.allow_anonymous = true\n"
            "cluster_formation.peer_discovery_backend = classic_config\n"
            f"{peers}"
            "cluster_partition_handling = ignore\n"
            "log.console = false\n"
            "log.file.level = warning\n"
            # a test machine's disk may be nearly full: the default alarm (50 MB) would block
            # every publisher, which is not what these tests are about
            "disk_free_limit.absolute = 1MB\n"
            # an MQTT client's QoS 1 subscription queue as a quorum queue, replicated on the
            # cluster: a classic one lives on the node the client first connected to, and once
            # that node died the client is refused on every other node (NOT_FOUND: home node
            # down) until it is back (docs/scaling.md, "What the cluster must be set up with")
            "mqtt.durable_queue_type = quorum\n"
        )
        (n.dir / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")

    def _env(self, n: RabbitNode) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(self.home),
            ERL_EPMD_PORT=str(self.epmd_port),
            RABBITMQ_NODENAME=n.name,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(n.amqp_port),
            RABBITMQ_DIST_PORT=str(n.dist_port),
            RABBITMQ_MNESIA_BASE=str(n.dir / "mnesia"),
            RABBITMQ_LOG_BASE=str(n.dir / "log"),
            RABBITMQ_CONFIG_FILE=str(n.dir / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(n.dir / "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=str(n.dir / "rabbitmq-env.conf"),  # not /etc's
            RABBITMQ_ENABLED_PLUGINS_FILE=str(n.dir / "enabled_plugins"),
            RABBITMQ_PLUGINS_DIR=str(_plugins_dir()),
            RABBITMQ_PID_FILE=str(n.dir / "pid"),
            RABBITMQ_ALLOW_INPUT="",
        )
        return env

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT_SECS) -> RabbitCluster:
        """Start epmd, node 1, then the others together; return once every node answers on
        AMQP and MQTT. Raises (after stopping what started) when that takes over ``timeout``."""
        deadline = time.monotonic() + timeout
        try:
            self.epmd = subprocess.Popen(
                [EPMD, "-port", str(self.epmd_port)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            _wait_listening(self.epmd_port, deadline, "epmd", self.epmd)
            first, *rest = self.nodes
            self._start_node(first)
            self._wait_node(first, deadline)
            for n in rest:
                self._start_node(n)
            for n in rest:
                self._wait_node(n, deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_node(self, n: RabbitNode) -> None:
        assert n.proc is None or n.proc.poll() is not None
        (n.dir / "rabbitmq-env.conf").write_text("")
        with (n.dir / "stdout.log").open("ab") as out:
            n.proc = subprocess.Popen(
                [str(SERVER)], env=self._env(n), cwd=n.dir, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

    def _wait_node(self, n: RabbitNode, deadline: float) -> None:
        _wait_listening(n.amqp_port, deadline, f"node {n.name} (AMQP)", n.proc, self.log_of(n))
        _wait_listening(n.mqtt_port, deadline, f"node {n.name} (MQTT)", n.proc, self.log_of(n))

    def log_of(self, n: RabbitNode) -> Path:
        return n.dir / "stdout.log"

    def logs(self) -> str:
        """Every node's console output and log file (for a failing test's message)."""
        parts = []
        for n in self.nodes:
            for f in [self.log_of(n), *sorted((n.dir / "log").glob("*.log"))]:
                if f.exists():
                    parts.append(f"--- {f}\n{f.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` (1-based): its Erlang VM dies without a word to its peers."""
        self._kill(self.nodes[index - 1])

    def _kill(self, n: RabbitNode) -> None:
        """SIGKILL the node's process group: the script and the ``beam.smp`` it started in the
        background (without input, ``rabbitmq-server`` runs ``erl`` as a child, which outlives
        a killed script), and their helpers; wait (bounded) until none is left."""
        if n.proc is None:
            return
        if n.proc.poll() is None or members(n.proc.pid):
            kill_members(n.proc.pid)
        n.proc.wait(10)

    def stop(self) -> None:
        """Kill every node, then epmd; bounded waits. Also after a failed start."""
        for n in self.nodes:
            self._kill(n)
        if self.epmd is not None and self.epmd.poll() is None:
            self.epmd.kill()
            self.epmd.wait(10)


def _wait_listening(
    port: int,
    deadline: float,
    what: str,
    proc: subprocess.Popen[bytes] | None,
    log: Path | None = None,
) -> None:
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with status {proc.returncode} before listening\n"
                               f"{tail}")  # fmt: skip
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{what} not listening on 127.0.0.1:{port} in time")
