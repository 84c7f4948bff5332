"""Chat sessions: growing history, think time, replacement, reuse ratio."""

from __future__ import annotations

from itertools import pairwise

from spark_harness import tokens
from spark_harness.workloads import Prompts
from spark_harness.workloads.chat import ChatSessions


def drive(wl: ChatSessions, n: int, reply: str | None = "r1 r2 r3", now: int = 0) -> list:
    """Take and finish ``n`` jobs one at a time (a single user)."""
    jobs = []
    for _ in range(n):
        job = wl.next("load", 0)
        jobs.append(job)
        wl.finished(job, reply, now)
    return jobs


def test_history_grows_with_each_turn_and_the_real_reply(chat_prompts: Prompts) -> None:
    wl = ChatSessions(chat_prompts, sessions=1, turns=3, turn_tokens=6, output_tokens=3)
    jobs = drive(wl, 4)
    reqs = [j.request for j in jobs]
    assert [(r.session_id, r.turn) for r in reqs] == [("s0", 0), ("s0", 1), ("s0", 2), ("s1", 0)]
    assert [len(r.prompt) for r in reqs] == [1, 3, 5, 1]
    assert reqs[1].prompt[1] == {"role": "assistant", "content": "r1 r2 r3"}
    assert reqs[2].prompt[:3] == reqs[1].prompt  # the history is a prefix of the next turn
    assert [r.prompt_tokens for r in reqs] == [6, 6 + 4 + 6, 6 + 2 * (4 + 6), 6]
    assert all(r.prompt_tokens == tokens.count_chat(r.prompt) for r in reqs)
    nonce = reqs[0].prompt[0]["content"].split()[0]
    assert nonce.startswith("id") and reqs[3].prompt[0]["content"].split()[0] != nonce


def test_first_message_size_and_completions_api(prompts: Prompts) -> None:
    wl = ChatSessions(
        prompts, sessions=1, turns=2, turn_tokens=4, output_tokens=2, context_tokens=20
    )
    a, b = (j.request for j in drive(wl, 2, reply="x y"))
    assert isinstance(a.prompt, str) and a.prompt_tokens == 20
    assert b.prompt.startswith(a.prompt + " x y ") and b.prompt_tokens == 20 + 2 + 4


def test_a_failed_turn_keeps_the_history_shape(chat_prompts: Prompts) -> None:
    wl = ChatSessions(chat_prompts, sessions=1, turns=2, turn_tokens=4, output_tokens=3)
    jobs = drive(wl, 2, reply=None)
    assert len(jobs[1].request.prompt[1]["content"].split()) == 3  # a stand-in reply


def test_think_time_and_the_earliest_due_session_first(chat_prompts: Prompts) -> None:
    wl = ChatSessions(
        chat_prompts, sessions=2, turns=5, turn_tokens=4, output_tokens=1, think_s=0.5
    )
    a = wl.next("load", 0)
    b = wl.next("load", 1)
    assert {a.request.session_id, b.request.session_id} == {"s0", "s1"}
    wl.finished(b, "x", now_ns=1_000)
    wl.finished(a, "x", now_ns=2_000)
    nxt = wl.next("load", 0)
    assert nxt.request.session_id == b.request.session_id
    assert nxt.due_ns == 1_000 + 500_000_000
    assert wl.max_users == 2


def test_reuse_ratio_zero_changes_the_nonce_but_not_the_length(chat_prompts: Prompts) -> None:
    reuse = ChatSessions(chat_prompts, 1, 3, 5, 2, reuse_ratio=1.0)
    fresh = ChatSessions(chat_prompts, 1, 3, 5, 2, reuse_ratio=0.0)
    r_jobs, f_jobs = drive(reuse, 3), drive(fresh, 3)
    for r, f in zip(r_jobs, f_jobs, strict=True):
        assert r.request.prompt_tokens == f.request.prompt_tokens
    heads = [j.request.prompt[0]["content"].split()[0] for j in f_jobs]
    assert len(set(heads)) == 3  # every follow-up lost its reusable prefix
    heads = [j.request.prompt[0]["content"].split()[0] for j in r_jobs]
    assert len(set(heads)) == 1


def test_partial_reuse_ratio_breaks_about_that_share(chat_prompts: Prompts) -> None:
    wl = ChatSessions(chat_prompts, 1, 1000, 2, 1, reuse_ratio=0.7)
    jobs = drive(wl, 400, reply="x")
    heads = [j.request.prompt[0]["content"].split()[0] for j in jobs]
    kept = sum(a == b for a, b in pairwise(heads)) / (len(heads) - 1)
    assert 0.62 < kept < 0.78
