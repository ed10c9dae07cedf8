"""Running a profile hook: a shell command in the profile's folder, with the kit's environment."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path

from axis.conformance.rules import HookRun

ENV_PREFIX = "AXIS_CONFORMANCE_"
TAIL_BYTES = 2000


def hook_environment(base: Mapping[str, str], values: Mapping[str, str]) -> dict[str, str]:
    """``base`` without the caller's own Axis settings (the kit's admin URL must not leak into
    the system under test), plus ``AXIS_CONFORMANCE_<NAME>`` for each of ``values``."""
    env = {key: value for key, value in base.items() if not key.startswith("AXIS_")}
    env.update({ENV_PREFIX + name.upper(): value for name, value in values.items()})
    return env


async def run_hook(
    command: str, *, cwd: Path, env: Mapping[str, str], timeout: float, log: Path
) -> HookRun:
    """Run ``command`` with ``/bin/sh -c``; its output goes to ``log``. Killed (its whole
    process group) at ``timeout``; a command that cannot start is an exit code of 127."""
    started = time.monotonic()
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_shell(
            command, cwd=cwd, env=dict(env), stdin=asyncio.subprocess.DEVNULL, stdout=out,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            code: int | None = await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            code = None
    output = log.read_bytes()[-TAIL_BYTES:].decode("utf-8", "replace")
    return HookRun(command, code, time.monotonic() - started, output)
