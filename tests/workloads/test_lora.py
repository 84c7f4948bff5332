"""LoRA adapter lists and mixes: parsing, weights, warm and cold warm-up."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from spark_harness.inputs import Adapter, read_adapters
from spark_harness.workloads import InputError, Prompts, WorkloadError
from spark_harness.workloads.lora import AdapterMix, LoraMix


def test_the_shipped_list_parses() -> None:
    adapters = read_adapters("inputs/lora/adapters.txt")
    assert adapters[0] == Adapter("sql-lora", 4.0) and len(adapters) == 6


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a 1 2\n", r"expected `name \[weight\]`"),
        ("a x\n", "not a number"),
        ("a 0\n", "must be > 0"),
        ("# only a comment\n", "lists no adapters"),
        ("a\na 2\n", "repeat"),
    ],
)
def test_bad_lists_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "adapters.txt"
    f.write_text(text)
    with pytest.raises(InputError, match=message):
        read_adapters(str(f))


def test_missing_list_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="not found"):
        read_adapters("inputs/lora/nope.txt")


def test_mix_follows_the_weights_and_is_reproducible() -> None:
    adapters = [Adapter("a", 3), Adapter("b", 1)]
    mix = AdapterMix(adapters, seed=5)
    counts = Counter(mix.draw(0) for _ in range(20_000))
    assert counts["a"] / 20_000 == pytest.approx(0.75, abs=0.02)
    # each user's sequence depends only on (seed, user), not on other users' draws
    first, second = AdapterMix(adapters, seed=5), AdapterMix(adapters, seed=5)
    second.draw(0)
    assert [first.draw(1) for _ in range(50)] == [second.draw(1) for _ in range(50)]
    base, other = AdapterMix(adapters, seed=5), AdapterMix(adapters, seed=6)
    assert [base.draw(1) for _ in range(50)] != [other.draw(1) for _ in range(50)]


def test_warm_warmup_touches_every_adapter_first(prompts: Prompts) -> None:
    adapters = [Adapter(n) for n in "abcd"]
    wl = LoraMix(prompts, 16, 2, nonce=False, adapters=adapters, adapter_cache="warm")
    assert wl.warmup_min_requests(2) == 4
    assert [wl.next("warmup", u % 2).request.adapter for u in range(4)] == list("abcd")
    assert {wl.next("load", 0).request.adapter for _ in range(100)} == set("abcd")


def test_cold_warmup_uses_the_base_model(prompts: Prompts) -> None:
    wl = LoraMix(prompts, 16, 2, nonce=False, adapters=[Adapter("a")], adapter_cache="cold")
    assert wl.warmup_min_requests(2) == 0
    assert wl.next("warmup", 0).request.adapter is None
    assert wl.next("load", 0).request.adapter == "a"
    with pytest.raises(WorkloadError, match="adapter_cache"):
        LoraMix(prompts, 16, 2, nonce=False, adapters=[Adapter("a")], adapter_cache="hot")
