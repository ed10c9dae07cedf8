"""A private PostgreSQL cluster on a spare port in a temporary folder: for the fault suite
and for tests that stop and start a database or change its authentication (never the
machine's shared one)."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def postgres_bin() -> Path | None:
    """The folder of the newest installed PostgreSQL server binaries, if any."""
    root = Path("/usr/lib/postgresql")
    found = sorted(root.glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]) if
                   p.parts[-3].isdigit() else 0)  # fmt: skip
    return found[-1].parent if found else None


def spare_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PrivatePostgres:
    """``initdb`` + ``pg_ctl`` on ``port``, listening on 127.0.0.1 and a socket in ``data``.

    Trust authentication by default; ``stock_auth=True`` makes ``pg_hba.conf`` what a stock
    Debian server has: peer for the socket, scram-sha-256 for 127.0.0.1 (the superuser
    ``postgres`` then comes in only as the ``postgres`` OS user, over the socket).
    """

    bin: Path
    data: Path
    port: int

    @property
    def socket_dir(self) -> Path:
        return self.data

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def create(cls, folder: Path, *, stock_auth: bool = False) -> PrivatePostgres:
        binaries = postgres_bin()
        if binaries is None:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
        folder.mkdir(parents=True, exist_ok=True)
        node = cls(binaries, folder / "data", spare_port())
        if os.geteuid() == 0:  # the server refuses to run as root
            shutil.chown(folder, "postgres", "postgres")
        auth = ["-A", "trust"]
        if stock_auth:  # initdb wants a superuser password for password authentication
            secret = folder / "superuser.pw"
            secret.write_text(secrets.token_hex(16))
            if os.geteuid() == 0:
                shutil.chown(secret, "postgres", "postgres")
            auth = ["--auth-local=peer", "--auth-host=scram-sha-256", f"--pwfile={secret}"]
        node._run("initdb", "-D", str(node.data), *auth, "-U", "postgres", "--no-sync")
        return node

    def set_hba(self, lines: str) -> None:
        """Replace this cluster's ``pg_hba.conf`` and reload it."""
        (self.data / "pg_hba.conf").write_text(lines)
        self._run("pg_ctl", "-D", str(self.data), "reload")
        time.sleep(0.5)  # the server reads it on the signal, after pg_ctl returns

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-w", "-l",
                  str(self.data.parent / "server.log"), "start")  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL did not listen on {self.port}")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)
