"""A simulator on aiohttp's test server and a small client that times what it receives."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from spark_harness.sim.server import SIMULATOR, Simulator, build_app


def proc_read_bytes() -> int:
    """Bytes this process caused to be read from block devices (/proc/self/io)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("read_bytes:"):
            return int(line.split()[1])
    raise AssertionError("no read_bytes in /proc/self/io")


def device_backed(path: Path) -> bool:
    """Whether files under ``path`` live on a block device: on tmpfs (which may accept
    O_DIRECT) reads never reach a device, so device-read assertions do not apply."""
    target = str(path.resolve())
    best, fstype = "", ""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, mount, kind = line.split()[:3]
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, fstype = mount, kind
    return fstype not in ("tmpfs", "ramfs", "devtmpfs")


def words(n: int, tag: str = "w") -> str:
    """A prompt of exactly ``n`` simulator tokens, unique to ``tag`` from its first token."""
    return " ".join(f"{tag}{i}" for i in range(n))


@dataclass
class Result:
    status: int
    ttft_s: float | None = None
    e2e_s: float | None = None
    event_offsets_s: list[float] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    error: dict[str, Any] | None = None
    body: dict[str, Any] | None = None
    role_first: bool = False

    @property
    def text(self) -> str:
        return "".join(self.texts)

    @property
    def sim(self) -> dict[str, Any]:
        assert self.usage is not None
        return self.usage["sim"]

    @property
    def cached_tokens(self) -> int:
        assert self.usage is not None
        return int(self.usage["prompt_tokens_details"]["cached_tokens"])


class SimClient:
    def __init__(self, client: TestClient, sim: Simulator, model: str) -> None:
        self.http = client
        self.sim = sim
        self.model = model

    @property
    def engine(self):  # type: ignore[no-untyped-def]
        assert self.sim.engine is not None
        return self.sim.engine

    async def generate(
        self,
        prompt: str | None = None,
        *,
        messages: list[dict] | None = None,
        max_tokens: int = 4,
        stream: bool = True,
        model: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> Result:
        body: dict[str, Any] = {
            "model": model or self.model,
            "max_tokens": max_tokens,
            "stream": stream,
            "ignore_eos": True,
            **extra,
        }
        if stream:
            body.setdefault("stream_options", {"include_usage": True})
        path = "/v1/chat/completions" if messages is not None else "/v1/completions"
        if messages is not None:
            body["messages"] = messages
        else:
            body["prompt"] = prompt
        t0 = time.perf_counter()
        resp = await self.http.post(path, json=body, headers=headers)
        res = Result(status=resp.status)
        if resp.status != 200 or not stream:
            data = await resp.json()
            res.e2e_s = time.perf_counter() - t0
            if resp.status != 200:
                res.error = data.get("error")
                return res
            res.body = data
            res.usage = data["usage"]
            choice = data["choices"][0]
            res.finish_reason = choice["finish_reason"]
            res.texts = [choice["message"]["content"] if messages is not None else choice["text"]]
            return res
        first = True
        async for raw in resp.content:
            line = raw.decode().strip()
            if not line:
                continue
            now = time.perf_counter() - t0
            assert line.startswith("data: "), line
            payload = line[6:]
            if payload == "[DONE]":
                break
            chunk = json.loads(payload)
            if "error" in chunk:
                res.error = chunk["error"]
                continue
            if chunk.get("usage"):
                assert chunk["choices"] == []
                res.usage = chunk["usage"]
                continue
            choice = chunk["choices"][0]
            if messages is not None:
                text = choice["delta"].get("content") or ""
                if first and choice["delta"].get("role") == "assistant" and not text:
                    res.role_first = True
            else:
                text = choice["text"]
            first = False
            if choice["finish_reason"] is not None:
                res.finish_reason = choice["finish_reason"]
            if text:
                if res.ttft_s is None:
                    res.ttft_s = now
                res.event_offsets_s.append(now)
                res.texts.append(text)
        res.e2e_s = time.perf_counter() - t0
        return res

    async def metrics(self) -> dict[str, float]:
        """Every sample of /metrics by sample name, summed over label sets."""
        resp = await self.http.get("/metrics")
        assert resp.status == 200
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(await resp.text()):
            for s in family.samples:
                out[s.name] = out.get(s.name, 0.0) + s.value
        return out

    async def closed_loop(
        self, prompts: list[str], seconds: float, max_tokens: int
    ) -> list[Result]:
        """One user per prompt, each re-sending its own prompt until ``seconds`` pass."""
        results: list[Result] = []
        deadline = time.perf_counter() + seconds

        async def user(prompt: str) -> None:
            while time.perf_counter() < deadline:
                results.append(await self.generate(prompt, max_tokens=max_tokens))

        await asyncio.gather(*(user(p) for p in prompts))
        return results


@contextlib.asynccontextmanager
async def running_sim(
    sim: dict[str, Any], workdir: Path, model: str = "sim"
) -> AsyncIterator[SimClient]:
    app = await build_app({"model": model, "sim": sim}, workdir)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield SimClient(client, app[SIMULATOR], model)


def run(coro: Any) -> Any:
    return asyncio.run(coro)
