"""One simulator: configuration, engine, storage and HTTP app, with a clean lifecycle.

``run_server`` is what ``spark-harness serve`` calls for a ``kind: sim`` stack: it
serves on an already bound socket until SIGTERM/SIGINT, then ends every open stream,
waits for in-flight I/O and removes what it created (the G3 file, LoRA adapter files
and the directories it made for them). ``build_app`` gives tests the same app on
aiohttp's test server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from pathlib import Path
from typing import Any

from aiohttp import web

from spark_harness.sim.api import SimApi
from spark_harness.sim.config import sim_config
from spark_harness.sim.engine import Engine
from spark_harness.sim.kvcache import KVCache
from spark_harness.sim.lora import LoraCache, read_adapter_list
from spark_harness.sim.metrics import SimMetrics
from spark_harness.sim.paging import Pager
from spark_harness.sim.timing import TimingModel

log = logging.getLogger(__name__)

#: Seconds aiohttp waits for handlers at shutdown; streams are ended before that.
SHUTDOWN_TIMEOUT_S = 5.0

# the type named, not passed: Simulator is defined below (aiohttp only shows it in repr)
SIMULATOR: web.AppKey[Simulator] = web.AppKey("simulator", "Simulator")  # type: ignore[arg-type]


class Simulator:
    """The parts of one simulator and the order they start and stop in."""

    def __init__(self, spec: dict[str, Any], workdir: Path) -> None:
        model = spec.get("model")
        if not isinstance(model, str) or not model:
            raise ValueError("stack spec: 'model' must name the served model")
        self.model = model
        self.cfg = sim_config(spec)
        self.workdir = workdir
        self._made: list[Path] = []  # directories this simulator created
        self.engine: Engine | None = None
        self.api: SimApi | None = None

    def _mkdir(self, path: Path) -> Path:
        missing = [p for p in (path, *path.parents) if not p.exists()]
        path.mkdir(parents=True, exist_ok=True)
        self._made.extend(missing)  # deepest first: removed in this order
        return path

    async def start(self) -> None:
        """Create storage (set-up, not measured) and start the engine loop."""
        cfg = self.cfg
        adapters: list[str] = []
        lora: LoraCache | None = None
        kv: KVCache | None = None
        pager: Pager | None = None
        try:
            g3_dir = cfg.g3_path(self.workdir)
            if g3_dir is not None:
                self._mkdir(g3_dir)
            kv = KVCache(cfg, g3_dir)
            lora_dir = cfg.lora_path(self.workdir)
            if lora_dir is not None:
                assert cfg.lora_adapters is not None
                adapters = read_adapter_list(Path(cfg.lora_adapters), self.model)
                lora = LoraCache(
                    adapters,
                    self._mkdir(lora_dir),
                    cfg.lora_file_bytes,
                    cfg.max_loras,
                    cfg.read_floor_s(cfg.lora_file_bytes),
                )
                await asyncio.get_running_loop().run_in_executor(None, lora.prepare)
                if cfg.lora_preload:
                    await asyncio.get_running_loop().run_in_executor(None, lora.preload)
            swap_dir = cfg.swap_path(self.workdir)
            if swap_dir is not None:
                pager = Pager(
                    self._mkdir(swap_dir) / "swap",
                    cfg.g1_blocks,
                    cfg.resident_blocks,
                    cfg.block_bytes,
                )
        except BaseException:
            if pager is not None:
                pager.close()
            if kv is not None:
                await kv.close()
            if lora is not None:
                lora.close()
            self._remove_dirs()
            raise
        engine = Engine(cfg, kv, TimingModel.of(cfg.model, cfg.hardware), lora, pager)
        metrics = SimMetrics(engine, self.model)
        self.engine = engine
        self.api = SimApi(cfg, engine, metrics, self.model, adapters)
        engine.start()

    async def stop_streams(self) -> None:
        """End the engine: every open request finishes with an error at once."""
        if self.engine is not None:
            await self.engine.close()

    async def close(self) -> None:
        """Wait for in-flight I/O and remove the files and directories created."""
        if self.engine is None:
            return
        await self.engine.close()
        await self.engine.kv.close()
        if self.engine.lora is not None:
            self.engine.lora.close()
        if self.engine.pager is not None:
            self.engine.pager.close()
        self._remove_dirs()
        self.engine = None

    def _remove_dirs(self) -> None:
        for path in self._made:
            with contextlib.suppress(OSError):
                path.rmdir()  # only if empty: never deletes what others put there
        self._made.clear()


async def build_app(spec: dict[str, Any], workdir: Path) -> web.Application:
    """The simulator as an aiohttp application that starts and stops with its runner."""
    sim = Simulator(spec, workdir)
    await sim.start()
    assert sim.api is not None
    app = sim.api.app()

    async def on_shutdown(app: web.Application) -> None:
        await sim.stop_streams()

    async def on_cleanup(app: web.Application) -> None:
        await sim.close()

    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    app[SIMULATOR] = sim
    return app


async def serve(
    sock: socket.socket, spec: dict[str, Any], workdir: Path, stop: asyncio.Event
) -> None:
    """Serve on ``sock`` until ``stop`` is set, then shut down cleanly."""
    app = await build_app(spec, workdir)
    # handler_cancellation: a client that goes away frees its sequence at once;
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        handler_cancellation=True,
        # an idle or slow-header connection is closed (aiohttp's default waits an hour)
        keepalive_timeout=app[SIMULATOR].cfg.idle_timeout_s,
    )
    try:
        await runner.setup()
        await web.SockSite(runner, sock).start()
        log.info("simulator listening on %s", sock.getsockname())
        await stop.wait()
    finally:
        await runner.cleanup()
        await app[SIMULATOR].close()  # no-op after a normal cleanup


def run_server(sock: socket.socket, spec: dict[str, Any], workdir: Path) -> None:
    """Serve ``spec`` on the bound ``sock`` until SIGTERM or SIGINT; clean up; return."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await serve(sock, spec, workdir, stop)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    asyncio.run(main())
