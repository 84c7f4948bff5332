"""The CPU plan on the real engine and on the simulator, side by side.

Runs `snakemake H_all` on config/vllm-cpu.yaml twice in this session: once against vLLM
on the CPU (Stack A: config/stacks/vllm-cpu.yaml; Stack B: the same engine behind
Dynamo's frontend, config/stacks/dynamo-vllm-cpu.yaml), once with the stacks switched to
the embedded simulator (config/stacks/sim-uma.yaml and sim-tiered.yaml; the plan's
`server.params.max_num_seqs` becomes `server.sim.max_num_seqs`), everything else equal.
It prints, per hypothesis, stack and point,
TTFT p50/p99 (median over repetitions), TPOT, requests in the window, the verdicts, and
the wall time per point and per plan: where the two agree, and where the simulator's
assumptions differ from a real scheduler's.

    python benchmarks/bench_real_engine.py [--out DIR] [--only engine|sim] [--reps N]

Needs the engine's environment (tools/install_vllm_cpu.sh).
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import yaml

REPO = Path(__file__).resolve().parents[1]
PLAN = REPO / "config/vllm-cpu.yaml"
SIM_STACKS = {"A": "config/stacks/sim-uma.yaml", "B": "config/stacks/sim-tiered.yaml"}


def sim_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """The same plan with its stacks on the simulator; engine params become sim keys."""
    out = copy.deepcopy(plan)
    out["stacks"] = {s: {"file": SIM_STACKS[s]} for s in out["stacks"]}
    for cfg in [out["defaults"], *out["hypotheses"].values()]:
        server = cfg.get("server")
        if server and "params" in server:
            params = server.pop("params")
            if "max_num_seqs" in params:
                server.setdefault("sim", {})["max_num_seqs"] = params["max_num_seqs"]
            if not server:
                cfg.pop("server")
    return out


def run(name: str, plan: dict[str, Any], out: Path) -> float:
    """One `snakemake H_all` of ``plan`` into ``out/name``; its wall seconds."""
    plan = {**plan, "results_dir": str(out / name)}
    cfg = out / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump(plan, sort_keys=False))
    t0 = time.monotonic()
    log = out / f"{name}.log"
    with log.open("w") as fh:
        rc = subprocess.call(
            [sys.executable, "-m", "snakemake", "--cores", "1", "H_all", "--configfile", str(cfg)],
            cwd=REPO,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    if rc != 0:
        raise SystemExit(f"{name}: snakemake failed (rc {rc}); see {log}")
    return time.monotonic() - t0


def points(results: Path) -> pl.DataFrame:
    """Per hypothesis, stack and point: medians over repetitions of the window's TTFT and
    TPOT."""
    frames = []
    for f in sorted(results.glob("ingest/*/*/requests.parquet")):
        req = pl.read_parquet(f).filter(pl.col("phase") == "load")
        per_rep = req.group_by("hyp", "stack", "point", "rep").agg(
            n=pl.len(),
            p50=pl.col("ttft_ms").quantile(0.5),
            p99=pl.col("ttft_ms").quantile(0.99),
            tpot=pl.col("tpot_ms").median(),
        )
        frames.append(
            per_rep.group_by("hyp", "stack", "point").agg(
                pl.col("n").median(), pl.col("p50").median(), pl.col("p99").median(),
                pl.col("tpot").median(),
            )
        )  # fmt: skip
    return pl.concat(frames).sort("hyp", "stack", "point")


def point_seconds(results: Path) -> tuple[float, float]:
    """Median seconds of a point's server start-up and of its phases (run.json)."""
    startup, phases = [], []
    for f in results.glob("raw/*/*/*/*/run.json"):
        info = json.loads(f.read_text())
        startup.append(info["server_startup_s"])
        phases.append((info["phases"]["cooldown"][1] - info["phases"]["idle"][0]) / 1e9)
    return float(pl.Series(startup).median()), float(pl.Series(phases).median())


def verdicts(results: Path) -> dict[str, str]:
    table = pl.read_csv(results / "summary/verdicts.csv")
    return dict(zip(table["hypothesis"], table["status"], strict=True))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_real_engine"))
    ap.add_argument("--only", choices=["engine", "sim"])
    ap.add_argument("--reps", type=int, help="repetitions (default: the plan's)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    plan = yaml.safe_load(PLAN.read_text())
    if args.reps:
        plan["defaults"]["repetitions"] = args.reps
    plans = {"engine": plan, "sim": sim_plan(plan)}
    wall = {}
    for name, p in plans.items():
        if args.only in (None, name):
            wall[name] = run(name, p, args.out)
            print(f"{name}: H_all in {wall[name]:.0f} s", flush=True)
    names = [n for n in plans if (args.out / n / "summary/verdicts.csv").exists()]
    keys = ["hyp", "stack", "point"]
    tables = [points(args.out / n).rename(lambda c, n=n: c if c in keys else f"{c}_{n}")
              for n in names]  # fmt: skip
    joined = tables[0]
    for t in tables[1:]:
        joined = joined.join(t, on=keys, how="full", coalesce=True)
    with pl.Config(tbl_rows=50, tbl_cols=20, float_precision=1, tbl_width_chars=200):
        print(joined)
    for n in names:
        startup, phases = point_seconds(args.out / n)
        print(f"{n}: a point's start-up {startup:.1f} s + phases {phases:.1f} s (medians)")
        print(f"{n}: verdicts {verdicts(args.out / n)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
