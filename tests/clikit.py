"""The ``axis`` command as real processes against the real broker and a real hub process.

One :class:`CliWorld` per test (or module): a vhost of its own, a hub home made by
``axis init``, agencies made with ``axis pki issue`` + ``axis agency register`` +
``axis profile create``, and ``axis serve`` started and stopped with SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika

from axis.errors import error_codes
from axis.provision import Management

REPO = Path(__file__).resolve().parents[1]
HUB_STOP_SECONDS = 10.0


def organ(tag: str) -> str:
    """A unique organ id per test, so broker accounts never collide across tests."""
    return f"{tag}.{uuid.uuid4().hex[:10].upper()}"


def with_vhost(url: str, vhost: str, *, credentials: bool = True) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc if credentials else parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, "/" + vhost, "", ""))


@dataclass(frozen=True)
class Run:
    """One finished ``axis`` process."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.stdout)
        except ValueError as exc:
            raise AssertionError(f"not JSON from {self}: {exc}") from None
        assert isinstance(data, dict), self
        return data

    def __str__(self) -> str:
        return (
            f"axis {' '.join(self.args)} → {self.returncode}\n"
            f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        )


def assert_error(run: Run, code: str, *, as_json: bool) -> dict[str, Any]:
    """A coded failure: non-zero exit; JSON shape or ``error: CODE: reason`` on stderr."""
    assert run.returncode not in (0, 2), run
    assert code in error_codes(), code
    if as_json:
        data = run.json()
        assert data["ok"] is False, run
        error = data["error"]
        assert isinstance(error, dict) and error["code"] == code, run
        assert isinstance(error["reason"], str) and error["reason"], run
        return error
    assert f"error: {code}: " in run.stderr, run
    assert "Traceback" not in run.stderr, run
    return {"code": code}


@dataclass
class AgencyFiles:
    organ_id: str
    name: str
    cert: Path
    key: Path
    registration: dict[str, Any]
    profile: Path


@dataclass
class CliWorld:
    """A vhost, a hub home and the environment every ``axis`` process of a test gets."""

    root: Path
    vhost: str
    amqp_base: str
    management: Management
    env: dict[str, str]
    agencies: dict[str, AgencyFiles] = field(default_factory=dict)
    hubs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    other_users: list[str] = field(default_factory=list)  # broker users to delete at the end

    @property
    def home(self) -> Path:
        return self.root / "hub"

    @property
    def pki(self) -> Path:
        return self.home / "pki"

    @property
    def amqp_url(self) -> str:
        """The vhost's URL with the admin credentials (what the hub uses)."""
        return with_vhost(self.amqp_base, self.vhost)

    def axis(self, *args: object, env: dict[str, str] | None = None, timeout: float = 120) -> Run:
        """Run ``python -m cli ARGS`` from the repository root; never raises on failure."""
        argv = tuple(str(a) for a in args)
        done = subprocess.run(
            [sys.executable, "-m", "cli", *argv],
            cwd=REPO,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Run(argv, done.returncode, done.stdout, done.stderr)

    def ok(self, *args: object, env: dict[str, str] | None = None) -> Run:
        run = self.axis(*args, env=env)
        assert run.returncode == 0, run
        assert "Traceback" not in run.stderr, run
        return run

    def init(self) -> dict[str, Any]:
        data = self.ok("init", self.home, "--json").json()
        config = self.home / "axis.toml"
        # Tests run hubs side by side: no fixed /metrics port.
        config.write_text(
            config.read_text(encoding="utf-8").replace("metrics_port = 9464", "metrics_port = 0"),
            encoding="utf-8",
        )
        return data

    def agency(
        self, organ_id: str, name: str, *, amqp_url: str | None = None, serves: tuple[str, ...] = ()
    ) -> AgencyFiles:
        """pki issue + agency register --json + profile create, as an operator and a clerk would."""
        self.ok("pki", "issue", self.pki, "--organ-id", organ_id, "--name", name)
        cert, key = self.pki / f"{organ_id}.pem", self.pki / f"{organ_id}.key"
        more = [arg for organ in serves for arg in ("--serves", organ)]
        run = self.ok(
            "agency", "register", organ_id, "--name", name, "--cert", cert, *more, "--json"
        )
        registration = run.json()
        reg_file = self.root / f"{organ_id}.registration.json"
        reg_file.write_text(run.stdout, encoding="utf-8")
        profile = self.root / f"{organ_id}.toml"
        url_args = ["--amqp-url", amqp_url] if amqp_url else []
        self.ok(
            "profile",
            "create",
            reg_file,
            "--key",
            key,
            "--cert",
            cert,
            "--hub-cert",
            self.pki / "hub.pem",
            "--ca",
            self.pki / "ca.pem",
            *url_args,
            "-o",
            profile,
        )
        files = AgencyFiles(organ_id, name, cert, key, registration, profile)
        self.agencies[organ_id] = files
        return files

    # -- the hub process ---------------------------------------------------------------

    def start_hub(self, *extra: object, consumers: int = 1) -> subprocess.Popen[bytes]:
        """``axis serve`` in the background; returns once ``consumers`` consume axis.submit."""
        log = (self.root / f"serve-{len(self.hubs)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--home", str(self.home), *map(str, extra)],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.hubs.append(proc)
        wait_for(
            lambda: submit_consumers(self.amqp_url) >= consumers,
            timeout=30,
            what=f"{consumers} hub consumer(s) on axis.submit",
            alive=proc,
        )
        return proc

    def stop_hub(self, proc: subprocess.Popen[bytes]) -> int:
        """SIGTERM; the hub must exit within a few seconds. Returns its exit code."""
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=HUB_STOP_SECONDS)
        self.hubs.remove(proc)
        return code

    def hub_log(self) -> str:
        return "\n".join(
            p.read_text(encoding="utf-8", errors="replace")
            for p in sorted(self.root.glob("serve-*.log"))
        )


def submit_consumers(amqp_url: str, queue: str = "axis.submit") -> int:
    """Consumers on ``queue`` now, from a passive declare (exact, unlike management stats)."""

    async def count() -> int:
        connection = await aio_pika.connect(amqp_url)
        try:
            channel = await connection.channel()
            try:
                declared = await channel.declare_queue(queue, passive=True)
            except aio_pika.exceptions.ChannelClosed:
                return 0
            result = declared.declaration_result
            return int(result.consumer_count or 0)
        finally:
            await connection.close()

    return asyncio.run(count())


def wait_for(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    alive: subprocess.Popen[bytes] | None = None,
    interval: float = 0.2,
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if alive is not None and alive.poll() is not None:
            raise AssertionError(f"process exited with {alive.returncode} while waiting: {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def base_env() -> dict[str, str]:
    """This process's environment without any AXIS_* setting that could leak into a test."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AXIS_")}


@contextlib.contextmanager
def cli_world(
    root: Path, amqp_base: str, management_base: str, vhost: str, *, create_vhost: bool = True
) -> Iterator[CliWorld]:
    """A fresh vhost (or, without ``create_vhost``, one that must not exist yet) and
    environment; afterwards every hub is killed and users and vhost removed."""
    management = Management(management_base)
    if create_vhost:
        management.ensure_vhost(vhost)
        management.set_permissions(vhost, urlsplit(amqp_base).username or "guest", ".*", ".*",
                                   ".*")  # fmt: skip
    env = {
        **base_env(),
        "AXIS_HOME": str(root / "hub"),
        "AXIS_AMQP_URL": with_vhost(amqp_base, vhost),
        "AXIS_MANAGEMENT_URL": management_base,
        "PYTHONUNBUFFERED": "1",
    }
    world = CliWorld(root, vhost, amqp_base, management, env)
    try:
        yield world
    finally:
        for proc in list(world.hubs):
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        for user in [*world.agencies, *world.other_users]:
            with contextlib.suppress(Exception):
                management.delete_user(user)
        management.delete_vhost(vhost)


def fetch_until(
    world: CliWorld,
    profile: Path,
    folder: Path,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 20,
) -> list[dict[str, Any]]:
    """``axis inbox fetch --json`` repeatedly until ``done(everything fetched so far)``."""
    fetched: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        run = world.ok("inbox", "fetch", "--to", folder, "--profile", profile, "--json")
        fetched.extend(run.json()["fetched"])
        if done(fetched):
            return fetched
        if time.monotonic() > deadline:
            raise AssertionError(f"inbox of {profile.stem} after {timeout:g} s: {fetched}")
        time.sleep(0.3)
