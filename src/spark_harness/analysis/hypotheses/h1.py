"""H1: cold LoRA adapters raise TTFT; KV does not drive these tails (stack A).

Rule (docs/PLAN.md): TTFT distributions cold vs warm; cold excess explained by adapter
bytes read. Criteria: the cold excess p99 cold / warm - 1 (two-sample ratio CI) is
material: supported when its CI lies above MATERIAL_P99_CHANGE (10 %), refuted when
below (adapters that load in a fraction of a request's time do not "raise TTFT"), the
absolute excess p99 cold - warm reported beside it; bytes read (server processes, else
the watched devices) cold - warm > 0 (CI); the server's share of the cold windows'
device reads (server / device read bytes, mean over cold repetitions, t CI) above
H1_SERVER_READ_SHARE (an excess that other processes' reads after the page-cache drop
cause is not explained by adapter bytes); no KV tier traffic (G2/G3 onboards) in the
window. The TTFT distributions per cache state go to ``fig_ttft_cold_vs_warm.csv``.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from spark_harness.analysis import axes, stats
from spark_harness.analysis import thresholds as T
from spark_harness.analysis.criteria import TAIL, complete, difference, per_run, ratio, resolve
from spark_harness.analysis.evidence import (
    Context,
    PointStats,
    Stat,
    no_tier_traffic,
    rows,
    verdict,
)
from spark_harness.analysis.stats import percentile
from spark_harness.analysis.verdict import INF, Criterion, Verdict

SOURCE = "docs/PLAN.md H1: TTFT cold vs warm; cold excess explained by adapter bytes read"
#: Quantiles of the distribution table (1 % steps).
GRID = [round(q / 100, 2) for q in range(1, 101)]


def distribution(ctx: Context, ps: PointStats, state: dict[str, tuple]) -> pl.DataFrame:
    """TTFT quantiles per cache state, pooled over repetitions (for a CDF plot)."""
    out = []
    for name, lab in state.items():
        ids = ps.point_runs(lab)["run_id"].to_list()
        pooled = np.sort(np.concatenate([ctx.data.ttft[r] for r in ids]))
        out += [{"cache": name, "q": q, "ttft_ms": percentile(pooled, q)} for q in GRID]
    return pl.DataFrame(out)


def server_share(ps: PointStats, cold: tuple) -> Criterion:
    """What share of the cold windows' device reads the server's own reads are."""
    name, statistic = "cold_reads_are_the_servers", "server / device read bytes, cold windows"
    share = T.H1_SERVER_READ_SHARE
    if not complete(ps, "server_read_bytes", "read_bytes"):
        return Criterion.missing(
            name, statistic, SOURCE, "no_server_read_bytes", threshold=share, op=">"
        )
    members = ps.members(cold)
    server = per_run(ps, "server_read_bytes")[0][members]
    device = per_run(ps, "read_bytes")[0][members]
    runs = server / np.maximum(device, 1.0)
    s = Stat.of(float(runs.mean()), stats.mean_replicates(runs))
    return Criterion.judged(
        name,
        statistic,
        s.value,
        s.ci,
        threshold=share,
        op=">",
        source=SOURCE,
        supported=[(share, INF)],
        refuted=[(-INF, share)],
        unit="share",
        rows=rows(ps.runs.filter(pl.Series(members))),
        details={"server_read_bytes": server.tolist(), "device_read_bytes": device.tolist()},
    )


def evaluate(ctx: Context) -> Verdict:
    used = ctx.used(hyp=ctx.hyp)
    gates = ctx.gates(used)
    axis = axes.require(ctx.hyp, ctx.config, "adapter_cache")
    if axis not in used.columns or not {"cold", "warm"} <= set(used[axis]):
        c = Criterion.missing(
            "cold_p99_excess", "p99 cold - warm", SOURCE, "no_cold_and_warm_points"
        )
        return verdict(ctx, [c], gates, used)
    ps = PointStats(ctx.data, used)
    state = {
        s: next(lab for lab in ps.labels if ps.point_runs(lab)[axis][0] == s)
        for s in ("cold", "warm")
    }
    d = difference(ps, TAIL, state["cold"], state["warm"])
    r = ratio(ps, TAIL, state["cold"], state["warm"])
    excess = T.MATERIAL_P99_CHANGE
    criteria = [
        Criterion.judged(
            "cold_p99_excess",
            f"{resolve(ps, TAIL)} TTFT cold / warm - 1",
            None if r.value is None else r.value - 1,
            None if r.ci is None else (r.ci[0] - 1, r.ci[1] - 1),
            threshold=excess,
            op=">",
            source=SOURCE,
            supported=[(excess, INF)],
            refuted=[(-INF, excess)],
            unit="share",
            rows=rows(used),
            details={
                "tail_excess_ms": d.__dict__,
                "p50_excess_ms": difference(ps, "p50", state["cold"], state["warm"]).__dict__,
            },
        )
    ]
    column = next((c for c in ("server_read_bytes", "read_bytes") if complete(ps, c)), None)
    if column is None:
        criteria.append(
            Criterion.missing(
                "cold_bytes_read",
                "bytes read cold - warm",
                SOURCE,
                "no_read_byte_counters",
                threshold=0.0,
                op=">",
            )
        )
    else:
        b = difference(ps, column, state["cold"], state["warm"])
        criteria.append(
            Criterion.positive(
                "cold_bytes_read",
                f"{column} cold - warm (window)",
                b.value,
                b.ci,
                source=SOURCE,
                unit="bytes",
                rows=rows(used),
                details={"counter": column},
            )
        )
    criteria.append(server_share(ps, state["cold"]))
    criteria.append(
        no_tier_traffic(
            used, "any", "no_kv_tier_traffic", "docs/PLAN.md H1: KV does not drive these tails"
        )
    )
    ctx.write_table("fig_ttft_cold_vs_warm.csv", distribution(ctx, ps, state))
    return verdict(ctx, criteria, gates, used)
