"""Every hypothesis the harness knows, in one place: one :class:`Hypothesis` entry each.

An entry names what the rest of the project derives from it: the workflow's target and
figures job (``workflow/rules/hypotheses.smk``), the figure files and their report
captions (``plots``), the evaluator (``analysis.summarize``), the figure tables and the
report category. Code is named by ``"module:attribute"`` strings and imported only when
it runs, so the workflow's parse reads this module without importing matplotlib or
polars.

More hypotheses come from plugins: a module named by an entry point of the group
``spark_harness.hypotheses`` defines ``HYPOTHESES``, a sequence of entries
(docs/ARCHITECTURE.md, "How to add a hypothesis"). Entry points are found in every
process (the workflow, its scripts, the CLI) without any configuration.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from spark_harness.verdict_contract import figure_table

#: The entry-point group of hypothesis plugins.
PLUGIN_GROUP = "spark_harness.hypotheses"
#: The A-vs-B comparisons' report category and figure folder (``results/figures/compare``).
COMPARE = "compare"


class RegistryError(ValueError):
    """An entry or a hypothesis module is malformed, or an id is unknown."""


def resolve(ref: str) -> Any:
    """The object a ``"module:attribute"`` reference names (imported now)."""
    module, _, attr = ref.partition(":")
    if not module or not attr:
        raise RegistryError(f"{ref!r}: not a 'module:attribute' reference")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise RegistryError(f"{ref!r}: {e}") from e


@dataclass(frozen=True)
class Figure:
    """One evidence figure: ``draw(summary) -> (figure, table plotted)``."""

    name: str  # file stem under results/figures/{hyp}/
    draw: str  # "module:function"
    #: the analysis table it draws from (``fig_{name}.csv`` unless named)
    table: str = ""
    #: its report caption, an RST file (Jinja allowed, as Snakemake renders it); unless
    #: given: ``workflow/report/figures/{hyp}/{name}.rst``, else the generic caption
    caption: str = ""

    @property
    def source_table(self) -> str:
        return self.table or figure_table(self.name)


@dataclass(frozen=True)
class Hypothesis:
    """One hypothesis of the plan (docs/PLAN.md) and everything derived from it."""

    id: str
    title: str  # the claim; a plan's ``title`` overrides it in the verdict
    stacks: tuple[str, ...]  # the stacks the claim is about (A, B, or the modes of B)
    evaluator: str  # "module:function": Context -> analysis.verdict.Verdict
    figures: tuple[Figure, ...] = ()
    #: further tables the evaluator writes for readers other than the figures
    extra_tables: tuple[str, ...] = ()
    #: the report category its figures are filed under (default: its id)
    category: str = ""

    @property
    def tables(self) -> tuple[str, ...]:
        """Every ``fig_*.csv`` table the evaluator writes (docs/ANALYSIS.md)."""
        return tuple(dict.fromkeys([*(f.source_table for f in self.figures), *self.extra_tables]))

    @property
    def figure_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.figures)

    @property
    def report_category(self) -> str:
        return self.category or self.id

    def evaluate(self) -> Callable[..., Any]:
        return resolve(self.evaluator)


@dataclass(frozen=True)
class Comparison:
    """Stack A against Stack B on one chart, where the plan compares the stacks."""

    name: str  # file stem under results/figures/compare/
    of: tuple[str, str]  # the A and the B hypothesis
    table: str  # the table both evaluators write
    x: str
    y: str
    what: str  # what the chart shows (its title line)
    x_label: str = ""
    y_label: str = ""
    curve: bool = False  # one point per sweep value (a line), else one per run
    log2_x: bool = False  # a sweep in powers of two (context): one tick per value


A = "spark_harness.analysis.hypotheses"
P = "spark_harness.plots.hypotheses"

BUILTIN: tuple[Hypothesis, ...] = (
    Hypothesis(
        "H0",
        "Queueing sets the usable concurrency U_work",
        ("A", "B"),
        f"{A}.h0:evaluate",
        (Figure("latency_vs_concurrency", f"{P}.h0:latency_vs_concurrency"),),
    ),
    Hypothesis(
        "H1",
        "Cold LoRA adapters raise TTFT; KV does not drive these tails",
        ("A",),
        f"{A}.h1:evaluate",
        (Figure("ttft_cold_vs_warm", f"{P}.h1:ttft_cold_vs_warm"),),
    ),
    Hypothesis(
        "H2A",
        "More context and concurrency create no KV storage traffic on Stack A",
        ("A",),
        f"{A}.h2:evaluate_a",
        (Figure("p99_vs_context", f"{P}.h2:p99_vs_context_a"),),
    ),
    Hypothesis(
        "H2B",
        "Overflowing G1+G2 sends fetches to NVMe and creates a storage knee",
        ("B",),
        f"{A}.h2:evaluate_b",
        (
            Figure("p99_vs_context", f"{P}.h2:p99_vs_context_b"),
            Figure("tier_hit_shares", f"{P}.h2:tier_hit_shares"),
        ),
    ),
    Hypothesis(
        "H3",
        "OS memory counters explain A but not B; KV telemetry is needed for B",
        ("A", "B"),
        f"{A}.h3:evaluate",
        (
            Figure("p99_vs_context", f"{P}.h3:p99_vs_context"),
            Figure("p99_vs_counters", f"{P}.h3:p99_vs_counters"),
        ),
    ),
    Hypothesis(
        "H4A",
        "Degraded NVMe QoS barely moves Stack A's p99",
        ("A",),
        f"{A}.h4:evaluate_a",
        (Figure("p99_vs_read_await", f"{P}.h4:p99_vs_read_await_a"),),
    ),
    Hypothesis(
        "H4B",
        "Degraded NVMe QoS raises Stack B's TTFT p99 roughly in proportion",
        ("B",),
        f"{A}.h4:evaluate_b",
        (Figure("p99_vs_read_await", f"{P}.h4:p99_vs_read_await_b"),),
    ),
    Hypothesis(
        "H5",
        "Larger KV working sets worsen p95/p99 at fixed compute",
        ("B",),
        f"{A}.h5:evaluate",
        (Figure("p99_vs_working_set", f"{P}.h5:p99_vs_working_set"),),
    ),
    Hypothesis(
        "H6",
        "Larger G1+G2 or a better eviction policy shifts the knee",
        ("B",),
        f"{A}.h6:evaluate",
        (Figure("knee_vs_capacity", f"{P}.h6:knee_vs_capacity"),),
    ),
    Hypothesis(
        "H7",
        "KV telemetry predicts NVMe traffic and explains p99",
        ("B",),
        f"{A}.h7:evaluate",
        (
            Figure("predicted_vs_observed_reads", f"{P}.h7:predicted_vs_observed_reads"),
            Figure("p99_vs_g3_fetch_p95", f"{P}.h7:p99_vs_g3_fetch_p95"),
        ),
    ),
    Hypothesis(
        "H8A",
        "CPU iowait stays flat while Stack A is queue-bound",
        ("A",),
        f"{A}.h8:evaluate_a",
        (Figure("iowait_vs_p99", f"{P}.h8:iowait_vs_p99_a"),),
    ),
    Hypothesis(
        "H8B",
        "iowait and read await track p95/p99 once NVMe is engaged",
        ("B",),
        f"{A}.h8:evaluate_b",
        (Figure("iowait_vs_p99", f"{P}.h8:iowait_vs_p99_b"),),
    ),
    Hypothesis(
        "H9",
        "Re-hydrating session KV from NVMe beats recomputing it",
        ("B0", "B1", "B2"),
        f"{A}.h9:evaluate",
        (Figure("replay_ttft_by_mode", f"{P}.h9:replay_ttft_by_mode"),),
        extra_tables=("fig_replay_pairs.csv",),
    ),
)

#: Stack A against Stack B on one chart (docs/PLAN.md compares the stacks in H2, H4, H8).
COMPARISONS: tuple[Comparison, ...] = (
    Comparison(
        "H2_p99_vs_context",
        ("H2A", "H2B"),
        figure_table("p99_vs_context"),
        x="workload.context_tokens",
        y="ttft_p99_ms",
        what="TTFT p99 vs context at U_work: Stack A (H2A) against Stack B (H2B)",
        x_label="context (prompt tokens)",
        y_label="TTFT p99 (ms)",
        curve=True,
        log2_x=True,
    ),
    Comparison(
        "H4_p99_vs_read_await",
        ("H4A", "H4B"),
        figure_table("p99_vs_read_await"),
        x="read_await_ms",
        y="ttft_p99",
        what="TTFT p99 per run vs device read await under fio: Stack A (H4A) against B (H4B)",
        x_label="device read await in the load window (ms)",
        y_label="TTFT p99 per run (ms)",
    ),
    Comparison(
        "H8_iowait_vs_p99",
        ("H8A", "H8B"),
        figure_table("iowait_vs_p99"),
        x="ttft_p99",
        y="iowait_pct",
        what="CPU iowait per run vs TTFT p99: Stack A (H8A) against Stack B (H8B)",
        x_label="TTFT p99 per run (ms)",
        y_label="CPU iowait (% of all CPUs)",
    ),
)


#: The plan tracks (``Plan.track``): v3 is this registry with its plugins; v2.5 is the
#: legacy plan, whose entries live behind the :mod:`spark_harness.legacy` boundary.
TRACKS = ("v3", "v2.5")
LEGACY = "spark_harness.legacy:HYPOTHESES"


@functools.cache
def load(track: str = "v3") -> dict[str, Hypothesis]:
    """Every entry of a plan track: for v3 the built-in entries plus each plugin's
    ``HYPOTHESES``.

    A plugin may not redefine an id: two entries for one hypothesis would make its
    targets, evaluator and figures ambiguous."""
    if track not in TRACKS:
        raise RegistryError(f"unknown plan track {track!r} (have: {', '.join(TRACKS)})")
    if track == "v2.5":
        return {h.id: h for h in resolve(LEGACY)}
    out = {h.id: h for h in BUILTIN}
    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            entries = ep.load().HYPOTHESES
        except (ImportError, AttributeError) as e:
            raise RegistryError(f"hypothesis plugin {ep.name} ({ep.value}): {e}") from e
        for h in entries:
            if not isinstance(h, Hypothesis):
                raise RegistryError(f"plugin {ep.name}: {h!r} is not a registry.Hypothesis")
            if h.id in out:
                raise RegistryError(f"plugin {ep.name}: hypothesis {h.id} is already registered")
            out[h.id] = h
    return out


def lookup(hyp: str, track: str = "v3") -> Hypothesis:
    """One entry; an unknown id is an error naming the known ones."""
    known = load(track)
    if hyp not in known:
        raise RegistryError(
            f"no hypothesis {hyp!r} in the {track} plan (known: {', '.join(known)})"
        )
    return known[hyp]


def comparisons(hyps: Iterable[str]) -> list[Comparison]:
    """The A-vs-B charts whose two hypotheses are both in ``hyps``."""
    have = set(hyps)
    return [c for c in COMPARISONS if set(c.of) <= have]
