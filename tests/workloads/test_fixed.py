"""fixed_context and shared_prefix: lengths, nonces at the start, and exactly the planted reuse."""

from __future__ import annotations

import pytest

from spark_harness import tokens
from spark_harness.workloads import Prompts, WorkloadError
from spark_harness.workloads.fixed import FixedContext, SharedPrefix


def common_prefix(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def test_each_user_resends_one_prompt_with_its_nonce_first(prompts: Prompts) -> None:
    wl = FixedContext(prompts, context_tokens=128, output_tokens=8, nonce=True)
    users = [wl.next("load", u).request for u in range(4)]
    again = [wl.next("load", u).request for u in range(4)]
    assert users == again  # same prompt on every request of a user
    toks = [tokens.text_tokens(r.prompt) for r in users]
    assert all(len(t) == 128 and r.prompt_tokens == 128 for t, r in zip(toks, users, strict=True))
    assert all(r.max_tokens == 8 and r.adapter is None for r in users)
    assert len({t[0] for t in toks}) == 4  # a distinct nonce per user ...
    assert all(t[0].startswith("id") for t in toks)
    assert all(t[1:] == toks[0][1:] for t in toks)  # ... then the shared body
    assert common_prefix(toks[0], toks[1]) == 0  # so no prefix is shared across users


def test_nonce_depends_on_the_run_seed(prompts: Prompts) -> None:
    other = Prompts(prompts.counter, prompts.api, prompts.words, seed=12)
    a = FixedContext(prompts, 16, 4, nonce=True).next("load", 0).request.prompt
    b = FixedContext(other, 16, 4, nonce=True).next("load", 0).request.prompt
    assert a.split()[0] != b.split()[0]


def test_without_nonce_all_users_share_the_prompt_from_token_zero(prompts: Prompts) -> None:
    wl = FixedContext(prompts, context_tokens=64, output_tokens=4, nonce=False)
    assert wl.next("load", 0).request.prompt == wl.next("load", 3).request.prompt
    # longer contexts extend the same body
    longer = FixedContext(prompts, 96, 4, nonce=False).next("load", 0).request.prompt
    assert longer.startswith(wl.next("load", 0).request.prompt)


def test_open_loop_arrivals_each_get_their_own_nonce(prompts: Prompts) -> None:
    wl = FixedContext(prompts, context_tokens=32, output_tokens=4, nonce=True)
    heads = {wl.next("load", None).request.prompt.split()[0] for _ in range(50)}
    assert len(heads) == 50


def test_chat_api_counts_the_role_token(chat_prompts: Prompts) -> None:
    r = FixedContext(chat_prompts, context_tokens=50, output_tokens=4, nonce=True).next("load", 0)
    assert r.request.chat and r.request.prompt_tokens == 50
    assert tokens.count_chat(r.request.prompt) == 50


def test_shared_prefix_groups_share_exactly_the_prefix(prompts: Prompts) -> None:
    wl = SharedPrefix(
        prompts, context_tokens=100, output_tokens=4, prefix_groups=3, prefix_tokens=40
    )
    reqs = [wl.next("load", u % 6).request for u in range(12)]
    toks = [tokens.text_tokens(r.prompt) for r in reqs]
    assert all(len(t) == 100 and r.prompt_tokens == 100 for t, r in zip(toks, reqs, strict=True))
    for i in range(12):
        for j in range(i + 1, 12):
            same_group = (i % 6) % 3 == (j % 6) % 3
            assert common_prefix(toks[i], toks[j]) == (40 if same_group else 0)


def test_shared_prefix_longer_than_context_is_an_error(prompts: Prompts) -> None:
    with pytest.raises(WorkloadError, match="prefix_tokens"):
        SharedPrefix(prompts, context_tokens=10, output_tokens=1, prefix_groups=1, prefix_tokens=11)


def test_output_spread_draws_lengths_in_range_reproducibly(prompts: Prompts) -> None:
    def lengths(p: Prompts) -> list[int]:
        wl = FixedContext(p, 16, 20, nonce=True, output_tokens_spread=0.5)
        return [wl.next("load", u % 3).request.max_tokens for u in range(300)]

    got = lengths(prompts)
    assert min(got) == 10 and max(got) == 30  # the whole range, nothing outside it
    assert len(set(got)) > 15
    assert got == lengths(prompts)  # same seed, same lengths
    fixed = FixedContext(prompts, 16, 20, nonce=True)
    assert {fixed.next("load", u).request.max_tokens for u in range(20)} == {20}
    with pytest.raises(WorkloadError, match="output_tokens_spread"):
        FixedContext(prompts, 16, 20, nonce=True, output_tokens_spread=1.0)


def test_per_request_nonce_makes_every_prompt_unique_from_token_zero(prompts: Prompts) -> None:
    wl = FixedContext(prompts, context_tokens=64, output_tokens=4, nonce="request")
    sent = [wl.next("load", u).request for _ in range(3) for u in range(4)]
    toks = [tokens.text_tokens(r.prompt) for r in sent]
    assert all(len(t) == 64 and r.prompt_tokens == 64 for t, r in zip(toks, sent, strict=True))
    assert len({t[0] for t in toks}) == len(sent)  # one nonce per request, users repeating
    assert all(t[1:] == toks[0][1:] for t in toks)  # the same body: the same work per request


def test_nonce_scope_rejects_unknown_values(prompts: Prompts) -> None:
    with pytest.raises(WorkloadError, match=r"workload\.nonce"):
        FixedContext(prompts, 16, 4, nonce="session")


def test_prompts_per_user_are_sent_in_turn(prompts: Prompts) -> None:
    wl = FixedContext(prompts, 32, 4, nonce=True, prompts_per_user=3)
    sent = [wl.next("load", 0).request.prompt for _ in range(7)]
    assert len(set(sent[:3])) == 3  # three distinct prompts (own nonces) ...
    assert sent[3:6] == sent[:3] and sent[6] == sent[0]  # ... re-sent in turn
    other = FixedContext(prompts, 32, 4, nonce=True, prompts_per_user=3).next("load", 1)
    assert other.request.prompt not in sent  # and none shared with another user


def test_warm_every_prompt_waits_for_each_users_prompts_once(prompts: Prompts) -> None:
    wl = FixedContext(prompts, 32, 4, nonce=True, prompts_per_user=3, warm_every_prompt=True)
    assert wl.warmup_min_requests(4) == 12  # four users' three first (full) prefills
    assert wl.warmup_min_requests(None) == 0  # open loop: no user owns a prompt
    # only first sends count: a user with cached prompts answers re-sends sooner, and
    # its answers must not end the warm-up while another's first sends are in flight
    assert [wl.next("warmup", 0).warms for _ in range(5)] == [True] * 3 + [False] * 2
    assert wl.next("warmup", 1).warms
    assert FixedContext(prompts, 32, 4, nonce=True, prompts_per_user=3).warmup_min_requests(4) == 0


def test_reuse_ratio_renews_the_tail_of_that_share_of_prompts(prompts: Prompts) -> None:
    wl = FixedContext(prompts, 128, 4, nonce=True, prompts_per_user=2, reuse_ratio=0.75)
    sent = [wl.next("load", 0).request for _ in range(2002)]
    toks = [tokens.text_tokens(r.prompt) for r in sent]
    assert all(len(t) == 128 and r.prompt_tokens == 128 for t, r in zip(toks, sent, strict=True))
    reused = sum(toks[i] == toks[i - 2] for i in range(2, len(toks)))
    assert 0.70 < reused / 2000 < 0.80  # about 3 in 4 sends find their prompt again ...
    renewed = [i for i in range(2, len(toks)) if toks[i] != toks[i - 2]]
    # ... the others keep their context and get a new question: the last 32 tokens
    assert all(common_prefix(toks[i], toks[i - 2]) == 96 for i in renewed)
    again = FixedContext(prompts, 128, 4, nonce=True, prompts_per_user=2, reuse_ratio=0.75)
    assert [again.next("load", 0).request for _ in range(50)] == sent[:50]  # seeded


def test_prompt_counts_and_ratios_are_checked(prompts: Prompts) -> None:
    with pytest.raises(WorkloadError, match="prompts_per_user"):
        FixedContext(prompts, 16, 4, nonce=True, prompts_per_user=0)
    with pytest.raises(WorkloadError, match="reuse_ratio"):
        FixedContext(prompts, 16, 4, nonce=True, reuse_ratio=1.5)
