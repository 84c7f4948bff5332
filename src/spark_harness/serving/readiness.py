"""Is the server ready? Polled by the consumer, bounded by the stack's start-up timeout.

Ready means: the health URL answers 200 (when the stack has one) and ``/v1/models``
lists the served model on two consecutive polls (a Dynamo worker can register and
unregister while it starts). A server process that exits while we wait, or a timeout,
raises :class:`ServerNotReady` with the tail of the server's log.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from spark_harness.contract import Endpoint
from spark_harness.secrets import endpoint_api_key
from spark_harness.serving.process import pid_alive

LOG_TAIL_LINES = 30


class ServerNotReady(RuntimeError):
    """The server did not become ready; the message carries the log tail."""


def log_tail(paths: Iterable[str | Path | None], lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of each existing log, headed by its path."""
    out = []
    for p in paths:
        if not p:
            continue
        path = Path(p)
        if not path.exists():
            out.append(f"--- {path}: (no log written)")
            continue
        text = path.read_text(errors="replace").splitlines()[-lines:]
        out.append(f"--- last {len(text)} lines of {path}:\n" + "\n".join(text))
    return "\n".join(out) or "(no server log)"


def endpoint_logs(ep: Endpoint) -> list[str]:
    logs = [ep.log] if ep.log else []
    logs += list((ep.extra or {}).get("logs", {}).values())
    return [str(p) for p in logs]


def _get(url: str, timeout: float, api_key: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url)
    if api_key:
        req.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def model_listed(body: bytes, model: str) -> bool:
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return False
    return any(m.get("id") == model for m in data.get("data", []) if isinstance(m, dict))


def wait_ready(
    ep: Endpoint,
    timeout_s: float | None = None,
    poll_s: float = 0.05,
    api_key: str | None = None,
) -> float:
    """Block until ``ep`` is ready; return seconds waited. Raise ServerNotReady otherwise.

    A keyed server is polled with its key: ``api_key``, else the one the endpoint names.
    """
    if api_key is None:
        api_key = endpoint_api_key(ep.extra)
    timeout_s = ep.startup_timeout_s if timeout_s is None else timeout_s
    start = time.monotonic()
    deadline = start + timeout_s
    consecutive = 0
    last = "no answer yet"
    local_pids = [ep.pid, *ep.pids] if ep.kind != "external" else []
    while True:
        dead = [p for p in local_pids if not pid_alive(p)]
        if dead:
            raise ServerNotReady(
                f"server process {dead[0]} of stack {ep.stack} exited before it was ready\n"
                + log_tail(endpoint_logs(ep))
            )
        try:
            healthy = True
            if ep.health_url:
                status, _ = _get(ep.health_url, timeout=2.0, api_key=api_key)
                healthy = status == 200
                last = f"health {status}"
            if healthy:
                status, body = _get(ep.base_url.rstrip("/") + "/v1/models", 2.0, api_key)
                listed = status == 200 and model_listed(body, ep.model)
                last = f"/v1/models {status}" + ("" if listed else f", {ep.model!r} not listed")
                consecutive = consecutive + 1 if listed else 0
                if consecutive >= 2:
                    return time.monotonic() - start
            else:
                consecutive = 0
        except (OSError, urllib.error.URLError) as e:
            consecutive = 0
            last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
        if time.monotonic() >= deadline:
            raise ServerNotReady(
                f"server of stack {ep.stack} at {ep.base_url} not ready after {timeout_s:.0f} s"
                f" (last: {last})\n" + log_tail(endpoint_logs(ep))
            )
        time.sleep(poll_s)
