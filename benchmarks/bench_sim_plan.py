"""What the demo plan will see: the shipped sim stacks under the plan's workloads.

    python benchmarks/bench_sim_plan.py                 # H0 H2A H2B H5 H6 H9
    python benchmarks/bench_sim_plan.py H2B --seconds 3

For each point of a hypothesis (values and durations from config/config.yaml) it starts
the simulator from the shipped stack file in its own process (``python -m
spark_harness.sim``), drives it with a minimal closed-loop client that follows the
agreed workload semantics (fixed context: each user re-sends its own nonce-prefixed
prompt; rehydrate: populate, thrash, replay; H4's QoS profiles as fio jobs on the same
filesystem), and prints TTFT percentiles next to the
mechanism evidence the analysis will look for: G2/G3 onboards, G3 fetch share of TTFT,
preemptions and the server process's device reads (``/proc/<pid>/io``).

This is not the load generator (``spark_harness.loadgen``): it is a check, runnable
alone, that the simulator's settings make each mechanism visible inside the sweeps.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from spark_harness.plan import deep_merge, resolve_stack

ROOT = Path(__file__).resolve().parents[1]
#: Scratch (G3 files) on the repository's device, under the git-ignored results/.
WORK = ROOT / "results" / "bench-sim"


@dataclass
class Rec:
    phase: str
    ttft_ms: float
    e2e_ms: float
    cached: int
    g3_blocks: int
    g3_ms: float
    g2_blocks: int


@dataclass
class Server:
    proc: subprocess.Popen[str]
    base: str
    pid: int
    info: dict[str, Any] = field(default_factory=dict)

    def read_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/io").read_text().splitlines():
            if line.startswith("read_bytes:"):
                return int(line.split()[1])
        return 0


@contextmanager
def server(stack: dict[str, Any]) -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="bench-sim-", dir=WORK) as wd:
        stack_path = Path(wd) / "stack.yaml"
        stack_path.write_text(yaml.safe_dump(stack))
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "spark_harness.sim",
                "--stack",
                str(stack_path),
                "--workdir",
                str(Path(wd) / "work"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        try:
            assert proc.stdout is not None
            info = json.loads(proc.stdout.readline())
            yield Server(proc, f"http://127.0.0.1:{info['port']}", proc.pid, info)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


async def ready(session: aiohttp.ClientSession, base: str) -> None:
    for _ in range(400):
        try:
            async with session.get(base + "/health") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError("simulator did not become ready")


async def request(
    session: aiohttp.ClientSession, base: str, model: str, prompt: str, max_tokens: int, phase: str
) -> Rec:
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "stream": True,
        "ignore_eos": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.perf_counter()
    ttft = None
    usage: dict[str, Any] = {}
    async with session.post(base + "/v1/completions", json=body) as resp:
        assert resp.status == 200, await resp.text()
        async for raw in resp.content:
            line = raw.strip()
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage = chunk["usage"]
            elif ttft is None and chunk["choices"] and chunk["choices"][0].get("text"):
                ttft = time.perf_counter() - t0
    e2e = time.perf_counter() - t0
    sim = usage["sim"]
    return Rec(
        phase,
        (ttft or e2e) * 1e3,
        e2e * 1e3,
        usage["prompt_tokens_details"]["cached_tokens"],
        sim["g3_onboard_blocks"],
        sim["g3_fetch_ms"],
        sim["g2_onboard_blocks"],
    )


def body_words(n: int, start: int = 0) -> str:
    return " ".join(f"w{i}" for i in range(start, start + n))


async def closed_loop(
    srv: Server, model: str, prompts: list[str], max_tokens: int, warmup_s: float, load_s: float
) -> list[Rec]:
    recs: list[Rec] = []
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn, read_bufsize=2**20) as session:
        await ready(session, srv.base)
        t0 = time.perf_counter()
        t_load, t_end = t0 + warmup_s, t0 + warmup_s + load_s

        async def user(prompt: str) -> None:
            while (now := time.perf_counter()) < t_end:
                phase = "load" if now >= t_load else "warmup"
                recs.append(await request(session, srv.base, model, prompt, max_tokens, phase))

        await asyncio.gather(*(user(p) for p in prompts))
    return [r for r in recs if r.phase == "load"]


async def rehydrate(srv: Server, model: str, w: dict[str, Any], users: int) -> list[Rec]:
    """H9: populate sessions, thrash with unique ones, replay the first (measured)."""
    ctx, out = w["context_tokens"], w["output_tokens"]
    sessions = [f"s{i} " + body_words(ctx - 1) for i in range(w["sessions"])]
    thrash = [f"t{i} " + body_words(ctx - 1) for i in range(w["thrash_sessions"])]
    replay = [s + " " + body_words(16, start=ctx) for s in sessions]
    recs: list[Rec] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await ready(session, srv.base)
        for phase, prompts in (("populate", sessions), ("thrash", thrash), ("replay", replay)):
            queue = list(prompts)

            async def user(phase: str = phase, queue: list[str] = queue) -> None:
                while queue:
                    recs.append(await request(session, srv.base, model, queue.pop(0), out, phase))

            await asyncio.gather(*(user() for _ in range(users)))
    return [r for r in recs if r.phase == "replay"]


async def chat(
    srv: Server, model: str, w: dict[str, Any], users: int, warmup_s: float, load_s: float
) -> list[Rec]:
    """H5: sessions x turns with growing history, turns taken round-robin over sessions
    (so every session's history is live at once), ``think_s`` between a user's turns."""
    out, turn_tokens, turns = w["output_tokens"], w["turn_tokens"], w["turns"]
    history = {s: f"session-{s}" for s in range(w["sessions"])}
    next_turn = dict.fromkeys(history, 0)
    order = [s for _ in range(turns) for s in history]  # turn t of every session, then t+1
    recs: list[Rec] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await ready(session, srv.base)
        t0 = time.perf_counter()
        t_load, t_end = t0 + warmup_s, t0 + warmup_s + load_s
        busy: set[int] = set()

        async def user() -> None:
            while (now := time.perf_counter()) < t_end and order:
                s = next((x for x in order if x not in busy), None)
                if s is None:
                    await asyncio.sleep(0.001)
                    continue
                order.remove(s)
                busy.add(s)
                t = next_turn[s]
                prompt = history[s] + " " + body_words(turn_tokens, start=1000 * t)
                phase = "load" if now >= t_load else "warmup"
                rec = await request(session, srv.base, model, prompt, out, phase)
                history[s] = prompt + " " + " ".join(f"o{t}-{i}" for i in range(out))
                next_turn[s] = t + 1
                busy.discard(s)
                if t + 1 < turns:
                    order.append(s)
                recs.append(rec)
                await asyncio.sleep(w.get("think_s", 0.0))

        await asyncio.gather(*(user() for _ in range(users)))
    return [r for r in recs if r.phase == "load"]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def report(
    hyp: str, label: str, recs: list[Rec], read_mb: float, metrics: dict[str, float]
) -> None:
    ttft = [r.ttft_ms for r in recs]
    fetch = [r.g3_ms for r in recs]
    g3 = sum(r.g3_blocks for r in recs)
    blocks = sum(r.g2_blocks for r in recs)
    print(
        f"{hyp:4} {label:30} n={len(recs):4d} ttft p50={pct(ttft, 50):7.1f} "
        f"p95={pct(ttft, 95):7.1f} p99={pct(ttft, 99):7.1f} ms | g2={blocks:5d} "
        f"g3={g3:5d} fetch/ttft p95={pct(fetch, 95) / pct(ttft, 95):4.2f} | "
        f"preempt={metrics.get('vllm:num_preemptions_total', 0):4.0f} "
        f"read={read_mb:7.1f} MB step={metrics.get('ratio', 0):.3f}",
        flush=True,
    )


async def scrape(base: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    async with aiohttp.ClientSession() as s, s.get(base + "/metrics") as r:
        text = await r.text()
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            out[smp.name] = out.get(smp.name, 0.0) + smp.value
    modeled = out.get("sim_engine_step_modeled_seconds_total", 0.0)
    out["ratio"] = out.get("sim_engine_step_actual_seconds_total", 0.0) / modeled if modeled else 0
    return out


#: fio jobs standing in for the QoS profiles of H4 (the telemetry package runs the real
#: ones); both hit the filesystem the G3 file lives on.
FIO = {
    "moderate": ["--rw=randread", "--bs=64k", "--iodepth=8", "--numjobs=2", "--size=256M"],
    "heavy": ["--rw=randrw", "--bs=256k", "--iodepth=32", "--numjobs=4", "--size=512M"],
}


@contextmanager
def contention(profile: str) -> Iterator[None]:
    """Run the profile's fio job on the G3 filesystem for the duration of a point."""
    if profile not in FIO:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="fio-", dir=WORK) as wd:
        proc = subprocess.Popen(
            [
                "fio",
                "--name=qos",
                f"--directory={wd}",
                "--direct=1",
                "--ioengine=libaio",
                "--time_based",
                "--runtime=600",
                "--group_reporting",
                *FIO[profile],
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1.0)  # fio lays out its files first
            yield
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def run_point(
    hyp: str,
    label: str,
    stack: dict[str, Any],
    workload: dict[str, Any],
    users: int,
    phases: dict[str, float],
    seed: int,
    qos: str = "none",
) -> list[Rec]:
    with server(stack) as srv, contention(qos):
        model = stack["model"]
        before = srv.read_bytes()
        if workload["kind"] == "rehydrate":
            recs = asyncio.run(rehydrate(srv, model, workload, users))
        elif workload["kind"] == "chat":
            recs = asyncio.run(
                chat(srv, model, workload, users, phases["warmup_s"], phases["load_s"])
            )
        else:
            ctx = workload["context_tokens"]
            # a per-user nonce; the plan's per-request one (``nonce: request``) is
            # replayed as per-user too: fixed prompts cannot change between requests
            nonce = bool(workload.get("nonce", True))
            prompts = [
                (f"nonce-{seed}-{u} " if nonce else "") + body_words(ctx - nonce)
                for u in range(users)
            ]
            recs = asyncio.run(
                closed_loop(
                    srv,
                    model,
                    prompts,
                    workload["output_tokens"],
                    phases["warmup_s"],
                    phases["load_s"],
                )
            )
        read_mb = (srv.read_bytes() - before) / 1e6
        metrics = asyncio.run(scrape(srv.base))
    report(hyp, label, recs, read_mb, metrics)
    return recs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("hyps", nargs="*", default=["H0", "H2A", "H2B", "H4B", "H5", "H6", "H9"])
    parser.add_argument("--config", default=str(ROOT / "config/config.yaml"))
    parser.add_argument("--seconds", type=float, help="override load_s")
    parser.add_argument("--users", type=int, help="users for u_work points (default: 8)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="STACK.KEY=VALUE",
        help="override a sim key of a plan stack, e.g. B.g1_blocks=400",
    )
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    cfg = yaml.safe_load(Path(args.config).read_text())
    defaults = cfg["defaults"]
    for hyp in args.hyps:
        h = cfg["hypotheses"][hyp]
        phases = deep_merge(defaults["phases"], h.get("phases", {}))
        if args.seconds:
            phases["load_s"] = args.seconds
        workload = dict(h.get("workload", defaults["workload"]))
        load = deep_merge(defaults["load"], h.get("load", {}))
        axes = h.get("sweep", [])
        combos: list[dict[str, Any]] = [{}]
        for ax in axes:
            combos = [c | {ax["key"]: v} for c in combos for v in ax["values"]]
        for stack_name in h["stacks"]:
            ref = cfg["stacks"][stack_name]
            for combo in combos:
                w = dict(workload)
                users = load["users"]
                qos = "none"
                # the hypothesis's own server keys (H0's idle wait, H2B's tiers), then the axis
                server_over = deep_merge({}, h.get("server", {}))
                for key, value in combo.items():
                    section, _, rest = key.partition(".")
                    if section == "workload":
                        w[rest] = value
                    elif section == "load" and rest == "users":
                        users = value
                    elif key == "qos.profile":
                        qos = value
                    elif section == "server":
                        node = server_over
                        *parents, leaf = rest.split(".")
                        for p in parents:
                            node = node.setdefault(p, {})
                        node[leaf] = value
                if users == "u_work":
                    users = args.users or 8
                for item in args.set:
                    key, _, value = item.partition("=")
                    name, _, sim_key = key.partition(".")
                    if name == stack_name:
                        server_over.setdefault("sim", {})[sim_key] = yaml.safe_load(value)
                stack = resolve_stack(ROOT / ref["file"], ref.get("variant"), server_over)
                label = f"{stack_name} " + " ".join(
                    f"{k.split('.')[-1]}={v}" for k, v in combo.items()
                )
                run_point(
                    hyp,
                    label + f" u={users}",
                    stack,
                    w,
                    users,
                    phases,
                    defaults.get("seed", 0),
                    qos,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
