"""LoRA adapters as real files: loaded from disk on first use (cold), then resident.

At start-up every adapter named in the list file gets a file of ``lora_adapter_bytes``
(times ``byte_scale``) in the LoRA directory, fsynced and dropped from the page cache:
creating them is set-up, so the first load of each is a real device read. At most
``max_loras`` adapters stay resident (least recently used leaves first); a request for
a non-resident adapter waits for its load, which takes the measured read time. With
``lora_preload`` the first ``max_loras`` are read at start-up (set-up, like creating
them: not counted as loads), as a server that keeps its adapters resident from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from spark_harness.inputs import InputError, read_adapters
from spark_harness.sim.diskio import read_file, write_cold_file

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class LoraError(ValueError):
    """The adapter list is missing or malformed."""


def read_adapter_list(path: Path, base_model: str) -> list[str]:
    """Adapter names from the shared list format (:func:`spark_harness.inputs.read_adapters`;
    the weights are the load generator's business)."""
    try:
        names = [a.name for a in read_adapters(path)]
    except InputError as e:
        raise LoraError(f"sim.lora_adapters: {e}") from e
    for name in names:
        if not _NAME.match(name):
            raise LoraError(f"sim.lora_adapters: {path}: {name!r} is not a valid adapter name")
    if base_model in names:
        raise LoraError(f"sim.lora_adapters: {path}: {base_model!r} is the base model's name")
    return names


@dataclass(eq=False)
class AdapterLoad:
    name: str
    task: asyncio.Future[tuple[int, float]]
    seconds: float = 0.0
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.task.done()


class LoraCache:
    """Resident adapters (LRU, ``max_loras``) and the loads in flight."""

    def __init__(
        self,
        names: list[str],
        directory: Path,
        file_bytes: int,
        max_loras: int,
        min_read_s: float = 0.0,
    ) -> None:
        """``min_read_s``: the least a load lasts (``sim.max_read_mb_s``)."""
        self.names = names
        self.directory = directory
        self.file_bytes = file_bytes
        self.max_loras = max_loras
        self.min_read_s = min_read_s
        self.on_ready: Callable[[], None] = lambda: None  # a load finished
        self._resident: OrderedDict[str, None] = OrderedDict()
        self._loading: dict[str, AdapterLoad] = {}
        self._io = ThreadPoolExecutor(2, thread_name_prefix="lora-read")
        self.loads = 0
        self.bytes_read = 0
        self.observe_load: Callable[[float], None] = lambda seconds: None

    def prepare(self) -> None:
        """Create the adapter files, cold (set-up, before the server listens)."""
        for name in self.names:
            write_cold_file(self.path(name), self.file_bytes)

    def preload(self) -> None:
        """Load the first ``max_loras`` adapters now (start-up, before the server listens)."""
        for name in self.names[: self.max_loras]:
            read_file(self.path(name), self.min_read_s)  # set-up: not a request's load
            self._resident[name] = None

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.safetensors"

    def acquire(self, name: str) -> AdapterLoad | None:
        """None if ``name`` is resident (and now most recent); else its load in flight."""
        if name in self._resident:
            self._resident.move_to_end(name)
            return None
        load = self._loading.get(name)
        if load is None:
            fut = asyncio.get_running_loop().run_in_executor(
                self._io, read_file, self.path(name), self.min_read_s
            )
            load = AdapterLoad(name, fut)
            fut.add_done_callback(lambda _f: self._loaded(load))
            self._loading[name] = load
        return load

    def _loaded(self, load: AdapterLoad) -> None:
        del self._loading[load.name]
        if load.task.cancelled():
            return
        error = load.task.exception()
        if error is not None:
            load.error = f"loading LoRA adapter {load.name!r} failed: {error}"
            self.on_ready()
            return
        nbytes, load.seconds = load.task.result()
        self.loads += 1
        self.bytes_read += nbytes
        self.observe_load(load.seconds)
        self._resident[load.name] = None
        while len(self._resident) > self.max_loras:
            self._resident.popitem(last=False)
        self.on_ready()

    @property
    def resident(self) -> list[str]:
        return list(self._resident)

    def close(self) -> None:
        """Stop loading and remove the adapter files (the directory is the caller's)."""
        self._io.shutdown(wait=True, cancel_futures=True)
        for name in self.names:
            with contextlib.suppress(FileNotFoundError):
                self.path(name).unlink()
