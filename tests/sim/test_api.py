"""The OpenAI-compatible surface: shapes, streaming, usage, limits and errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spark_harness import tokens
from spark_harness.sim.api import VOCAB

from .simclient import SimClient, run, running_sim, words

FAST = {
    "mode": "tiered",
    "g1_blocks": 256,
    "g2_blocks": 32,
    "g3_blocks": 0,
    "block_tokens": 16,
    "max_num_seqs": 16,
}


def test_completion_stream_has_exact_counts_usage_and_done(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_sim(FAST, tmp_path) as sim:
            res = await sim.generate(words(50), max_tokens=6)
            assert res.status == 200 and res.error is None
            assert len(res.texts) == 6 and res.finish_reason == "length"
            assert res.text.split() and len(res.text.split()) == 6
            assert not res.texts[0].startswith(" ") and all(
                t.startswith(" ") for t in res.texts[1:]
            )
            assert res.usage is not None
            assert res.usage["prompt_tokens"] == 50
            assert res.usage["completion_tokens"] == 6
            assert res.usage["total_tokens"] == 56
            assert res.cached_tokens == 0
            assert set(res.sim) >= {
                "g3_fetch_ms",
                "g3_onboard_blocks",
                "g2_onboard_blocks",
                "queue_ms",
                "lora_load_ms",
            }
            assert res.ttft_s is not None and res.ttft_s < res.e2e_s
            again = await sim.generate(words(50), max_tokens=6)
            assert again.text == res.text  # the same prompt gives the same answer

    run(scenario())


def test_chat_stream_starts_with_a_role_only_chunk(tmp_path: Path) -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": words(20)}]

    async def scenario() -> None:
        async with running_sim(FAST, tmp_path) as sim:
            res = await sim.generate(messages=messages, max_tokens=3)
            assert res.role_first and len(res.texts) == 3
            assert res.usage is not None
            assert res.usage["prompt_tokens"] == tokens.count_chat(messages) == 24
            with_null = await sim.generate(
                messages=[*messages, {"role": "assistant", "content": None}], max_tokens=1
            )
            assert with_null.usage is not None and with_null.usage["prompt_tokens"] == 25
            plain = await sim.generate(messages=messages, max_tokens=3, stream=False)
            assert plain.body is not None and plain.body["object"] == "chat.completion"
            assert plain.body["choices"][0]["message"]["role"] == "assistant"
            assert plain.text == res.text

    run(scenario())


def test_non_streaming_completion_and_default_max_tokens(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_sim({**FAST, "default_max_tokens": 5}, tmp_path) as sim:
            resp = await sim.http.post("/v1/completions", json={"model": "sim", "prompt": "a b c"})
            body = await resp.json()
            assert resp.status == 200 and body["object"] == "text_completion"
            assert body["usage"]["completion_tokens"] == 5
            assert len(body["choices"][0]["text"].split()) == 5

    run(scenario())


def test_tokens_per_event_groups_tokens(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_sim({**FAST, "tokens_per_event": 3}, tmp_path) as sim:
            res = await sim.generate(words(10), max_tokens=8)
            assert [len(t.split()) for t in res.texts] == [3, 3, 2]

    run(scenario())


def test_natural_stop_unless_ignore_eos(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_sim({**FAST, "natural_output_tokens": 3}, tmp_path) as sim:
            stopped = await sim.generate(words(10), max_tokens=8, ignore_eos=False)
            assert len(stopped.texts) == 3 and stopped.finish_reason == "stop"
            forced = await sim.generate(words(10), max_tokens=8)  # ignore_eos: true
            assert len(forced.texts) == 8 and forced.finish_reason == "length"

    run(scenario())


def test_models_health_and_metrics(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_sim(FAST, tmp_path, model="sim-llama") as sim:
            models = await (await sim.http.get("/v1/models")).json()
            assert [m["id"] for m in models["data"]] == ["sim-llama"]
            assert (await sim.http.get("/health")).status == 200
            assert "vllm:num_requests_running" in await sim.metrics()

    run(scenario())


def test_client_errors_get_openai_error_objects(tmp_path: Path) -> None:
    sim_cfg = {**FAST, "max_model_len": 128, "max_tokens_limit": 64, "max_request_bytes": 4096}

    async def post(
        sim: SimClient, body: object, path: str = "/v1/completions", raw: bytes | None = None
    ) -> tuple[int, dict]:
        data = raw if raw is not None else json.dumps(body).encode()
        resp = await sim.http.post(path, data=data, headers={"Content-Type": "application/json"})
        return resp.status, await resp.json()

    cases: list[tuple[object, int, str | None]] = [
        (None, 400, None),  # raw: malformed JSON (below)
        ([1, 2], 400, None),
        ({"prompt": "a"}, 400, "model"),
        ({"model": "gpt-x", "prompt": "a"}, 404, "model"),
        ({"model": "sim", "prompt": words(100), "max_tokens": 40}, 400, "prompt"),
        ({"model": "sim", "prompt": "a", "max_tokens": 65}, 400, "max_tokens"),
        ({"model": "sim", "prompt": "a", "max_tokens": 0}, 400, "max_tokens"),
        ({"model": "sim", "prompt": "a", "max_tokens": "5"}, 400, "max_tokens"),
        ({"model": "sim", "prompt": "a", "max_tokens": True}, 400, "max_tokens"),
        ({"model": "sim", "prompt": "a", "stream": "yes"}, 400, "stream"),
        ({"model": "sim", "prompt": "a", "n": 2}, 400, "n"),
        ({"model": "sim", "prompt": ""}, 400, "prompt"),
        ({"model": "sim", "prompt": [1, 2, 3]}, 400, "prompt"),
        (
            {"model": "sim", "prompt": "a", "stream_options": {"include_usage": 1}},
            400,
            "stream_options",
        ),
    ]

    async def scenario() -> None:
        async with running_sim(sim_cfg, tmp_path) as sim:
            status, body = await post(sim, None, raw=b'{"model": "sim", "prompt": ')
            assert status == 400 and "not valid JSON" in body["error"]["message"]
            for request, want, param in cases[1:]:
                status, body = await post(sim, request)
                assert status == want, (request, body)
                assert set(body["error"]) == {"message", "type", "param", "code"}
                assert body["error"]["param"] == param, (request, body)
            status, body = await post(
                sim, {"model": "sim", "messages": []}, path="/v1/chat/completions"
            )
            assert status == 400 and body["error"]["param"] == "messages"
            status, body = await post(
                sim, {"model": "sim", "messages": [{"content": "x"}]}, path="/v1/chat/completions"
            )
            assert status == 400
            status, body = await post(sim, {"model": "sim", "prompt": "a " * 5000})
            assert status == 413 and body["error"]["code"] == "request_too_large"
            resp = await sim.http.get("/v1/nothing-here")
            assert resp.status == 404 and "error" in await resp.json()
            _, ctx = await post(sim, {"model": "sim", "prompt": words(100), "max_tokens": 40})
            assert ctx["error"]["code"] == "context_length_exceeded"
            assert "maximum context length is 128 tokens" in ctx["error"]["message"]

    run(scenario())


def test_api_key_guards_the_v1_routes_only(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_sim({**FAST, "api_key": "s3cret"}, tmp_path) as sim:
            denied = await sim.generate("a b", max_tokens=1)
            assert denied.status == 401 and denied.error["code"] == "invalid_api_key"
            wrong = await sim.generate(
                "a b", max_tokens=1, headers={"Authorization": "Bearer nope"}
            )
            assert wrong.status == 401
            ok = await sim.generate("a b", max_tokens=1, headers={"Authorization": "Bearer s3cret"})
            assert ok.status == 200
            assert (await sim.http.get("/v1/models")).status == 401
            assert (await sim.http.get("/health")).status == 200
            assert (await sim.http.get("/metrics")).status == 200

    run(scenario())


def test_a_client_that_goes_away_frees_its_sequence(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_sim(FAST, tmp_path) as sim:
            resp = await sim.http.post(
                "/v1/completions",
                json={"model": "sim", "prompt": words(40), "max_tokens": 2000, "stream": True},
            )
            await resp.content.readline()  # the first token arrived
            resp.close()  # drop the connection mid-stream
            for _ in range(200):
                await asyncio.sleep(0.01)
                if not sim.engine.running and not sim.engine.waiting:
                    break
            assert not sim.engine.running and not sim.engine.waiting
            assert sim.engine.kv.pool.used() == 0

    run(scenario())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**6) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
request_bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["sim", "other"]) | json_values,
        "prompt": st.text(max_size=50) | json_values,
        "messages": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "role": st.sampled_from(["user", "system"]) | json_values,
                    "content": st.text(max_size=30) | json_values,
                },
            ),
            max_size=3,
        )
        | json_values,
        "max_tokens": st.integers(-2, 40) | json_values,
        "stream": json_values,
        "stream_options": json_values,
        "n": json_values,
        "ignore_eos": json_values,
    },
)


def test_no_client_input_causes_a_server_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_sim(
            {**FAST, "max_model_len": 64, "max_tokens_limit": 32}, tmp_path
        ) as sim:

            @settings(
                max_examples=150,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(body=request_bodies, chat=st.booleans())
            def check(body: dict, chat: bool) -> None:
                path = "/v1/chat/completions" if chat else "/v1/completions"
                status = asyncio.run_coroutine_threadsafe(
                    post_status(sim, path, body), loop
                ).result(timeout=30)
                assert status < 500, (path, body)

            loop = asyncio.get_running_loop()
            await asyncio.to_thread(check)

    async def post_status(sim: SimClient, path: str, body: dict) -> int:
        resp = await sim.http.post(path, json=body)
        await resp.read()
        return resp.status

    run(scenario())


def test_generated_words_need_no_json_escaping() -> None:
    # SSE content frames splice the text in without json.dumps (the hot path)
    assert all(json.dumps(w) == f'"{w}"' and " " not in w for w in VOCAB)
