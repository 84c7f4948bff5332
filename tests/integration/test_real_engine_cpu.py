"""A real inference engine end to end: vLLM on the CPU through the workflow's rules.

The CPU plan (config/vllm-cpu.yaml), shortened to one repetition of three points, runs
against vLLM serving the project's tiny model: H0 at one and two users, then H2A at
H0's U_work. What must hold is what no simulator can show: requests measured against a
real scheduler (TTFT from the first streamed token, the server's token counts), the
engine's own ``vllm:*`` series in the telemetry, a verdict from real data, the plan's
tier hypotheses reported as not applicable with their reason, no process left behind.

Needs the engine's environment: ``tools/install_vllm_cpu.sh`` (``.venv-vllm`` in the
checkout; ``SPARK_HARNESS_VLLM_PYTHON`` names another interpreter).

Not named ``test_vllm_*.py``: ai-dynamo 1.6.1 installs a pytest plugin
(``dynamo.vllm.tests.conftest``) that silently ignores every such file wherever vLLM does
not import, and vLLM lives in the engine's environment, not in the harness's.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest
import yaml

from tests.conftest import REPO, copy_workflow
from tests.workflow import smk

PYTHON = Path(os.environ.get("SPARK_HARNESS_VLLM_PYTHON", REPO / ".venv-vllm/bin/python"))

pytestmark = [
    pytest.mark.workflow,
    pytest.mark.slow,
    pytest.mark.skipif(
        not PYTHON.exists(), reason=f"no vLLM environment at {PYTHON} (tools/install_vllm_cpu.sh)"
    ),
]


def short_plan() -> dict:
    """config/vllm-cpu.yaml with one repetition, H0 at 1 and 2 users, H2A at one context."""
    plan = yaml.safe_load((REPO / "config/vllm-cpu.yaml").read_text())
    plan["results_dir"] = "results"
    plan["defaults"]["repetitions"] = 1
    plan["defaults"]["phases"] = {"idle_s": 0.5, "warmup_s": 1.0, "load_s": 3.0, "cooldown_s": 0.2}
    plan["defaults"].setdefault("server", {})["params"] = {"python": str(PYTHON)}
    hyps = plan["hypotheses"]
    hyps["H0"].update(stacks=["A"], repetitions=1)
    hyps["H0"]["sweep"][0]["values"] = [1, 2]
    hyps["H2A"]["phases"] = plan["defaults"]["phases"]
    hyps["H2A"]["sweep"][0]["values"] = [256]
    for h in [h for h in hyps if h not in ("H0", "H2A")]:
        del hyps[h]
    plan["stacks"] = {"A": plan["stacks"]["A"]}
    return plan


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_workflow(tmp_path_factory.mktemp("vllm"))
    smk.write_config(root, short_plan())
    result = smk.snakemake(root, "H_all", timeout=600)
    assert result.returncode == 0, result.out[-6000:]
    return root


def test_every_point_measured_against_the_engine(ran):
    infos = smk.run_infos(ran)
    assert len(infos) == 3  # H0: 1 and 2 users; H2A: one context
    assert [(i["outcome"], i["endpoint"]["kind"]) for i in infos] == [("ok", "command")] * 3, infos
    req = pl.read_parquet(ran / "results/ingest/H0/A/requests.parquet")
    load = req.filter(pl.col("phase") == "load")
    assert load.height > 10 and load["error"].is_null().all()
    # the prompt as the engine counted it: the tiny model's tokenizer makes each corpus
    # word one token, and a per-request nonce adds a few characters
    assert load["prompt_tokens"].min() >= 64
    # the engine's own count (usage): replies of 4 to 12 tokens (8, spread 0.5), each
    # exactly as long as asked (ignore_eos); a streamed event may carry no text (a
    # word-piece held back by the detokenizer), so the client's count is not compared
    assert load["completion_tokens"].is_between(4, 12).all()
    # a per-request nonce: the engine's prefix cache finds nothing to reuse
    assert (load["cached_tokens"] < 64).all()
    # a real prefill of 64+ tokens and a real decode step take milliseconds on a CPU
    assert load["ttft_ms"].min() > 1.0 and load["tpot_ms"].drop_nulls().min() > 0.5


def test_telemetry_holds_the_engines_series(ran):
    samples = smk.telemetry_samples(ran)
    fields = set().union(*(r.keys() for r in samples))
    # vllm:num_requests_running/_waiting, vllm:kv_cache_usage_perc, the prefix cache's
    # counters and the engine's own TTFT histogram (telemetry/mapping.py)
    engine = {"kv_running", "kv_waiting", "kv_g1_usage", "kv_prefix_queries_tokens"}
    assert engine | {"server_ttft_seconds_count"} <= fields, sorted(fields)
    assert max(r.get("server_ttft_seconds_count", 0) for r in samples) > 0
    assert max(r.get("kv_prefix_queries_tokens", 0) for r in samples) > 0


def test_verdicts_and_not_applicable_rows(ran):
    assert set(smk.verdict_statuses(ran, "H0", "H2A").values()) <= smk.VERDICT_STATUSES
    table = (ran / "results/summary/verdicts.csv").read_text()
    plan = yaml.safe_load((REPO / "config/vllm-cpu.yaml").read_text())
    for hyp, reason in plan["not_applicable"].items():
        assert f"{hyp},".lower() in table.lower() and "not applicable" in table
        assert reason.split(":")[0][:30] in table
    # a not-applicable hypothesis's target says why instead of running anything
    hyp, reason = next(iter(plan["not_applicable"].items()))
    result = smk.snakemake(ran, hyp, "--dry-run", timeout=120)
    assert result.returncode != 0 and "not applicable" in result.out


def test_no_process_left(ran):
    assert smk.wait_no_orphans(ran) == []
