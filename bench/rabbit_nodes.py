"""Private RabbitMQ nodes and a 3-node cluster on spare ports under a temporary folder.

For the fault-injection suite (and its tests): nodes of their own, started, stopped
and killed at will, never the machine's shared broker. Each node has its own Erlang
cookie (in a HOME of its own), node name ``axisfaults<N>-<run>@localhost``, data and
log folders, AMQP, management and Erlang distribution ports; ``/etc/rabbitmq``'s
environment file is not read (it names the shared node).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
CLI_PORTS = range(35672, 35683)  # RabbitMQ's CLI tools take their distribution ports here
START_SECONDS = 90.0


def spare_port(avoid: set[int]) -> int:
    """A free TCP port on 127.0.0.1 that RabbitMQ's own tools do not reserve."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in CLI_PORTS and port not in avoid and port + 20000 < 65536:
            avoid.add(port)
            return port


@dataclass
class RabbitNode:
    """One private node; ``url`` and ``management_url`` use guest (allowed off loopback: no)."""

    name: str
    folder: Path
    cookie: str
    amqp_port: int
    management_port: int
    dist_port: int
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def node(self) -> str:
        return f"{self.name}@localhost"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def management_url(self) -> str:
        return f"http://guest:guest@127.0.0.1:{self.management_port}/"

    def _env(self) -> dict[str, str]:
        home = self.folder / "home"
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))},
            "HOME": str(home),
            "RABBITMQ_CONF_ENV_FILE": str(self.folder / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_CONFIG_FILE": str(self.folder / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.folder / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.folder / "log"),
            "RABBITMQ_PID_FILE": str(self.folder / "pid"),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def prepare(self) -> None:
        """Write the node's configuration (once)."""
        home = self.folder / "home"
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(self.cookie)
            cookie.chmod(0o400)
        (self.folder / "rabbitmq-env.conf").write_text("")
        (self.folder / "enabled_plugins").write_text("[rabbitmq_management].\n")
        (self.folder / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {self.management_port}\n"
            "max_message_size = 17825792\n"
            "cluster_partition_handling = pause_minority\n"
        )

    def start(self, wait: bool = True) -> None:
        """Start the node (in the background); with ``wait``, until it serves AMQP."""
        log = (self.folder / "server.out").open("ab")
        self.process = subprocess.Popen(
            [str(RABBIT_BIN / "rabbitmq-server")], env=self._env(), stdout=log, cwd=self.folder,
            stderr=subprocess.STDOUT, start_new_session=True,  # crash dumps stay in the folder
        )  # fmt: skip
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = START_SECONDS) -> None:
        """Until the node answers the management API (it serves AMQP before that)."""
        deadline = time.monotonic() + timeout
        request = urllib.request.Request(f"http://127.0.0.1:{self.management_port}/api/overview")
        request.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")  # guest:guest
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"node {self.node} exited: see {self.folder / 'server.out'}")
            try:
                with urllib.request.urlopen(request, timeout=2):
                    return
            except OSError:
                time.sleep(0.25)
        raise RuntimeError(f"node {self.node} did not start within {timeout:g} s")

    def ctl(self, *args: str, check: bool = True) -> str:
        """Run ``rabbitmqctl -n NODE ARGS``."""
        done = subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, *args],
                              env=self._env(), capture_output=True, text=True, timeout=120,
                              check=False, cwd=self.folder)  # fmt: skip
        if check and done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {self.node}: {done.stderr}")
        return done.stdout

    def stop(self) -> None:
        """A clean shutdown of the whole node."""
        if self.process is None:
            return
        self.ctl("stop", check=False)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()
        self.process = None

    def kill(self) -> None:
        """SIGKILL the node's Erlang VM (the whole process group): a crash, no shutdown."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None


@dataclass
class RabbitCluster:
    """One to three private nodes under ``folder``; several form one cluster."""

    folder: Path
    nodes: list[RabbitNode]

    @classmethod
    def create(cls, folder: Path, size: int = 1) -> RabbitCluster:
        """Configure ``size`` nodes with one shared cookie; nothing is started yet."""
        run, cookie, taken = secrets.token_hex(3), secrets.token_hex(16).upper(), set[int]()
        nodes = [RabbitNode(f"axisfaults{n}-{run}", folder / f"node{n}", cookie,
                            spare_port(taken), spare_port(taken), spare_port(taken))
                 for n in range(1, size + 1)]  # fmt: skip
        for node in nodes:
            node.prepare()
        return cls(folder, nodes)

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def start(self) -> None:
        """Start every node; the second and later join the first."""
        for node in self.nodes:
            node.start(wait=False)
        for node in self.nodes:
            node.wait_ready()
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.node)
            node.ctl("start_app")
        for node in self.nodes:
            node.wait_ready()

    def close(self) -> None:
        """Stop every node that still runs (killing is enough: the data is thrown away)."""
        for node in self.nodes:
            node.kill()
