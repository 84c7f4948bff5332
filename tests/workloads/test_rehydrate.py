"""The H9 scenario's request lists."""

from __future__ import annotations

from spark_harness import tokens
from spark_harness.workloads import Prompts
from spark_harness.workloads.rehydrate import Rehydrate


def take_all(wl: Rehydrate, phase: str) -> list:
    out = []
    while (job := wl.next(phase, 0)) is not None:
        out.append(job.request)
    return out


def test_populate_thrash_replay(prompts: Prompts) -> None:
    wl = Rehydrate(
        prompts, sessions=3, context_tokens=50, output_tokens=4, thrash_sessions=4, turn_tokens=8
    )
    assert wl.phases == ("populate", "thrash", "replay") and wl.finite_phases
    pop, thr, rep = (take_all(wl, p) for p in wl.phases)
    assert [r.session_id for r in pop] == ["s0", "s1", "s2"]
    assert [r.session_id for r in thr] == ["t0", "t1", "t2", "t3"]
    assert [(r.session_id, r.turn) for r in rep] == [("s0", 1), ("s1", 1), ("s2", 1)]
    assert all(r.prompt_tokens == 50 == tokens.count_text(r.prompt) for r in pop + thr)
    for p, r in zip(pop, rep, strict=True):
        assert r.prompt.startswith(p.prompt + " ")  # same prompt, then the new turn
        assert r.prompt_tokens == 58 == tokens.count_text(r.prompt)
    heads = {r.prompt.split()[0] for r in pop + thr}
    assert len(heads) == 7  # every session unique from its first token
    assert wl.next("populate", 0) is None


def test_defaults_and_chat_api(chat_prompts: Prompts) -> None:
    wl = Rehydrate(chat_prompts, sessions=2, context_tokens=20, output_tokens=2)
    assert len(take_all(wl, "populate")) == 2 and len(take_all(wl, "thrash")) == 8
    rep = take_all(wl, "replay")
    assert rep[0].chat and len(rep[0].prompt) == 2 and rep[0].prompt_tokens == 20 + 16
