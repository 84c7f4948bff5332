"""build_workload: every kind from a spec, defaults, and clear errors."""

from __future__ import annotations

import pytest

from spark_harness.workloads import InputError, WorkloadError, build_workload
from spark_harness.workloads.chat import ChatSessions
from spark_harness.workloads.counting import SimCounter, WordCounter
from spark_harness.workloads.fixed import FixedContext, SharedPrefix
from spark_harness.workloads.lora import LoraMix
from spark_harness.workloads.rehydrate import Rehydrate
from spark_harness.workloads.trace import TraceReplay


@pytest.mark.parametrize(
    ("workload", "cls"),
    [
        ({"kind": "fixed_context"}, FixedContext),
        ({"kind": "shared_prefix", "prefix_groups": 2, "prefix_tokens": 8}, SharedPrefix),
        ({"kind": "lora"}, LoraMix),
        ({"kind": "chat", "sessions": 2, "turns": 2, "turn_tokens": 4}, ChatSessions),
        ({"kind": "trace", "trace": "inputs/traces/mooncake_small.jsonl"}, TraceReplay),
        ({"kind": "rehydrate", "sessions": 2}, Rehydrate),
    ],
)
def test_every_kind_builds_and_sends(workload: dict, cls: type) -> None:
    wl, counter = build_workload({"workload": workload, "seed": 1}, server_is_sim=True)
    assert isinstance(wl, cls) and isinstance(counter, SimCounter)
    job = wl.next(wl.phases[0], 0)
    assert job is not None and job.request.max_tokens >= 1
    assert job.request.chat == (workload["kind"] == "chat")


def test_defaults_and_approximate_counter() -> None:
    wl, counter = build_workload({"workload": {"kind": "fixed_context"}}, server_is_sim=False)
    assert type(counter) is WordCounter
    r = wl.next("load", 0).request
    assert (r.prompt_tokens, r.max_tokens) == (256, 16)


@pytest.mark.parametrize(
    ("workload", "error", "message"),
    [
        (
            {"kind": "chat", "sessions": 2, "turns": 2},
            WorkloadError,
            "workload.turn_tokens is required",
        ),
        ({"kind": "teleport"}, WorkloadError, "unknown kind"),
        ({"kind": "trace", "trace": "inputs/none.jsonl"}, InputError, "not found"),
        ({"kind": "fixed_context", "corpus": "inputs/none.txt"}, InputError, "not found"),
    ],
)
def test_errors_name_the_key_or_file(workload: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        build_workload({"workload": workload}, server_is_sim=True)


def test_relative_inputs_resolve_from_another_directory(monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    wl, _ = build_workload({"workload": {"kind": "lora"}}, server_is_sim=True)
    assert wl.next("load", 0).request.adapter


def test_a_lora_mix_spreads_output_lengths_as_fixed_context_does() -> None:
    spec = {"workload": {"kind": "lora", "output_tokens": 20, "output_tokens_spread": 0.5}}
    wl, _ = build_workload({**spec, "seed": 1}, server_is_sim=True)
    lengths = {wl.next("load", u % 2).request.max_tokens for u in range(200)}
    assert min(lengths) == 10 and max(lengths) == 30 and len(lengths) > 10
