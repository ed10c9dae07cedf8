"""The hub's event loop: ``event_loop`` in axis.toml picks uvloop or asyncio's own loop."""

from __future__ import annotations

import asyncio
import inspect
import sys
from pathlib import Path

import pytest
import uvloop

from axis.errors import InvalidSettings
from axis.event_loop import loop_name, run, select_loop
from axis.settings import load_settings
from tests.clikit import CliWorld, assert_error


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def _set_event_loop(config: Path, value: str) -> None:
    config.write_text(config.read_text(encoding="utf-8") + f'event_loop = "{value}"\n',
                      encoding="utf-8")  # fmt: skip


def test_auto_runs_on_uvloop_where_it_is_installed() -> None:
    assert select_loop("auto")[0] == "uvloop"
    assert select_loop()[0] == "uvloop"
    assert isinstance(run(_running_loop()), uvloop.Loop)
    assert loop_name(run(_running_loop(), "uvloop")) == "uvloop"


def test_asyncio_forces_the_default_loop() -> None:
    assert select_loop("asyncio") == ("asyncio", None)
    loop = run(_running_loop(), "asyncio")
    assert isinstance(loop, asyncio.BaseEventLoop) and not isinstance(loop, uvloop.Loop)
    assert loop_name(loop) == "asyncio"


def test_without_uvloop_auto_falls_back_and_uvloop_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what a platform without it sees
    assert select_loop("auto") == ("asyncio", None)
    assert not isinstance(run(_running_loop()), uvloop.Loop)
    with pytest.raises(InvalidSettings, match="not installed") as caught:
        select_loop("uvloop")
    assert caught.value.code == "config.invalid"


def test_an_unknown_loop_is_a_coded_config_error(tmp_path: Path) -> None:
    for bad in ("trio", "", "UVLOOP"):
        with pytest.raises(InvalidSettings, match="event_loop must be one of") as caught:
            select_loop(bad)
        assert caught.value.code == "config.invalid"
    coroutine = _running_loop()
    with pytest.raises(InvalidSettings):
        run(coroutine, "trio")
    assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED  # no "never awaited"


def test_the_setting_defaults_to_auto_and_is_validated(tmp_path: Path) -> None:
    config = tmp_path / "axis.toml"
    config.write_text("", encoding="utf-8")
    assert load_settings(tmp_path, env={}).event_loop == "auto"
    _set_event_loop(config, "asyncio")
    assert load_settings(tmp_path, env={}).event_loop == "asyncio"
    config.write_text("event_loop = 1\n", encoding="utf-8")
    with pytest.raises(InvalidSettings, match="event_loop must be one of"):
        load_settings(tmp_path, env={})


@pytest.mark.rabbitmq
def test_axis_serve_runs_on_the_configured_loop(world: CliWorld) -> None:
    hub = world.start_hub()
    assert world.stop_hub(hub) == 0
    assert "hub worker 0 ready (event loop uvloop)" in world.hub_log()
    config = world.home / "axis.toml"
    original = config.read_text(encoding="utf-8")
    _set_event_loop(config, "asyncio")
    hub = world.start_hub()
    assert world.stop_hub(hub) == 0
    assert "hub worker 0 ready (event loop asyncio)" in world.hub_log()
    config.write_text(original, encoding="utf-8")
    _set_event_loop(config, "trio")
    assert_error(world.axis("serve", timeout=30), "config.invalid", as_json=False)
