"""The real stacks' files: valid, resolved to the commands docs/REFERENCE.md gives, per mode.

TensorRT-LLM and Dynamo + KVBM cannot run here, so these check what `spark-harness
serve` would run on a DGX Spark: the plan of config/spark.yaml, its commands printed
without running anything, the engine limit enforced before any server starts, and the
command-stack machinery (files, typed params, unset variables, port ranges, teardown).
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path
from shlex import quote as shlex_quote

import pytest
import yaml

from spark_harness.plan import Plan, PlanError, deep_merge, load_config, resolve_stack
from spark_harness.serving.command import (
    CommandStackError,
    allocate_ports,
    process_env,
    resolve,
    teardown_all,
    teardown_command,
    write_files,
)
from tests.conftest import REPO

STACKS = {
    "trtllm-uma.yaml": [None],
    "dynamo-kvbm.yaml": [None, "B0", "B1", "B2"],
    "dynamo-mocker.yaml": [None, "B0", "B1", "B2"],
    "vllm-tiered.yaml": [None, "B0", "B1", "B2"],
}


def spark_config() -> dict:
    base = load_config(REPO / "config/config.yaml")
    return deep_merge(base, load_config(REPO / "config/spark.yaml"))


def spark_plan(config: dict | None = None) -> Plan:
    return Plan(config or spark_config(), base_dir=REPO)


@pytest.mark.parametrize(("file", "variant"), [(f, v) for f, vs in STACKS.items() for v in vs])
def test_stack_files_validate_with_every_variant(file, variant):
    spec = resolve_stack(REPO / "config/stacks" / file, variant)
    assert spec["kind"] == "command" and spec["max_num_tokens"] == 8192


def test_vllm_cpu_stack_runs_the_engine_from_its_environment_in_the_checkout(tmp_path, monkeypatch):
    spec = resolve_stack(REPO / "config/stacks/vllm-cpu.yaml")
    monkeypatch.chdir(tmp_path)  # the directory snakemake runs in: {cwd}
    cmd = resolve(spec, tmp_path / "work", "127.0.0.1", 18000)
    (proc,) = cmd["processes"]
    venv_python = shlex_quote(f"{tmp_path}/.venv-vllm/bin/python")
    # the model first, then the engine pinned to its cores (core 0: the harness has 1)
    assert proc["shell"].startswith(
        f"{venv_python} -m spark_harness.serving.tiny_model "
        f"{shlex_quote(str(tmp_path / 'work' / 'model'))} --weights && exec taskset -c 0 "
        f"{venv_python} -m vllm.entrypoints.openai.api_server"
    )
    assert proc["env"]["VLLM_CPU_OMP_THREADS_BIND"] == "0"
    # vLLM's CPU attention takes blocks of 32 tokens; the KV space is whole GiB
    assert "--block-size 32" in proc["shell"] and "--port 18000" in proc["shell"]
    assert "--enable-prompt-tokens-details" in proc["shell"]  # cached_tokens per request
    assert str(proc["env"]["VLLM_CPU_KVCACHE_SPACE"]) == "1"  # GiB
    assert cmd["metrics"] == [{"url": "http://127.0.0.1:18000/metrics", "source": "vllm"}]


def test_dynamo_vllm_cpu_stack_serves_stack_as_engine_behind_the_frontend(tmp_path, monkeypatch):
    """Stack B on the CPU differs from Stack A by Dynamo's serving path only: the same
    interpreter, engine flags, KV space and cores, every process pinned, every Dynamo
    listener that has a host variable on loopback."""
    monkeypatch.chdir(tmp_path)
    a, b = (
        resolve(resolve_stack(REPO / f"config/stacks/{f}.yaml"), tmp_path / f, "127.0.0.1", 18000)
        for f in ("vllm-cpu", "dynamo-vllm-cpu")
    )
    frontend, worker = b["processes"]
    python = f"{tmp_path}/.venv-vllm/bin/python"
    assert frontend["argv"][:4] == ["taskset", "-c", "0", python]
    assert "--http-port" in frontend["argv"] and "18000" in frontend["argv"]
    assert f"exec taskset -c 0 {shlex_quote(python)} -m dynamo.vllm" in worker["shell"]
    engine_flags = "--max-model-len 4096|--max-num-seqs 64|--block-size 32|--enforce-eager"
    executor = "--distributed-executor-backend uni"  # the model in the engine-core process
    for flag in [
        *engine_flags.split("|"),
        executor,
        "--enable-prefix-caching",
        "--served-model-name",
    ]:
        assert flag in a["processes"][0]["shell"] and flag in worker["shell"], flag
    for key in (
        "VLLM_CPU_KVCACHE_SPACE",
        "VLLM_CPU_OMP_THREADS_BIND",
        "VLLM_ENABLE_V1_MULTIPROCESSING",
    ):
        assert worker["env"][key] == a["processes"][0]["env"][key]
    hosts = [k for k in worker["env"] if k.startswith("DYN_") and k.endswith("_HOST")]
    assert len(hosts) == 5 and all(worker["env"][k] == "127.0.0.1" for k in hosts)
    assert [m["source"] for m in b["metrics"]] == ["dynamo_frontend", "dynamo_worker"]


def test_vllm_tiered_modes_write_vllms_engine_file(tmp_path):
    """vLLM's tiers by mode: B2 host memory + an fs tier in the point's directory (the
    directory the sidecar watches), B1 host memory only, B0 no connector: the option is
    left out of vLLM's --config file, which would pass a null on as the string "None"."""
    stack = REPO / "config/stacks/vllm-tiered.yaml"
    engine: dict[str, dict] = {}
    for mode in ("B0", "B1", "B2"):
        r = resolve(resolve_stack(stack, mode), tmp_path / mode, "127.0.0.1", 18000)
        (path,) = write_files(r["files"])
        engine[mode] = yaml.safe_load(path.read_text())
        shell = r["processes"][0]["shell"]
        assert f"--config {tmp_path}/{mode}/vllm.yaml" in shell
        assert "if [ True = True ]; then" in shell  # the tiny model is written first
    kv = engine["B2"]["kv-transfer-config"]
    assert (kv["kv_connector"], kv["kv_role"]) == ("OffloadingConnector", "kv_both")
    extra = kv["kv_connector_extra_config"]
    assert extra["spec_name"] == "TieringOffloadingSpec"
    assert extra["cpu_bytes_to_use"] == 32 << 30  # an int, as vLLM reads it
    assert extra["secondary_tiers"] == [{"type": "fs", "root_dir": r["g3_dir"]}]
    assert r["g3_dir"] == f"{tmp_path}/B2/vllm-kv-files"
    b1 = engine["B1"]["kv-transfer-config"]["kv_connector_extra_config"]
    assert b1["spec_name"] == "CPUOffloadingSpec" and b1["cpu_bytes_to_use"] == 32 << 30
    assert "kv-transfer-config" not in engine["B0"]
    # the tiers each mode declares (vLLM exports no series for a tier it lacks); B0 and
    # B1 have no G3 directory: the sidecar watches the spool's device
    for mode, tiers, g3 in (("B0", ["g1"], None), ("B1", ["g1", "g2"], None)):
        spec = resolve_stack(stack, mode)
        assert spec["kv_tiers"] == tiers
        assert resolve(spec, tmp_path / mode, "127.0.0.1", 18000).get("g3_dir") is g3
    assert resolve_stack(stack, "B2")["kv_tiers"] == ["g1", "g2", "g3"]
    assert engine["B0"]["enable-prefix-caching"] is True
    # G1 by memory share unless a block count is given
    assert "num-gpu-blocks-override" not in engine["B2"]
    small = resolve_stack(stack, "B2", {"params": {"num_gpu_blocks": 2048}})
    (path,) = write_files(resolve(small, tmp_path / "small", "127.0.0.1", 18000)["files"])
    assert yaml.safe_load(path.read_text())["num-gpu-blocks-override"] == 2048
    # a file without omit_null keeps its nulls (TensorRT-LLM reads them)
    kvbm = resolve(
        resolve_stack(REPO / "config/stacks/dynamo-kvbm.yaml"), tmp_path / "k", "127.0.0.1", 0
    )
    (path,) = write_files(kvbm["files"])
    assert yaml.safe_load(path.read_text())["cuda_graph_config"] is None


def test_spark_vllm_plan_puts_vllms_tiers_in_stack_bs_place():
    """config/spark-vllm.yaml over the Spark plan: every stack is vLLM (A without a
    connector), serving a local checkpoint (no tiny model written), and H6 sweeps vLLM's
    own G2 size, not a KVBM param that would leave every point the same."""
    config = deep_merge(spark_config(), load_config(REPO / "config/spark-vllm.yaml"))
    p = spark_plan(config)
    runs = p.runs()
    assert {r.spec["server"]["name"] for r in runs} == {"vllm-tiered"}
    assert all(r.spec["server"]["block_tokens"] == 16 for r in runs)
    engines = [r.spec["server"]["command"]["files"]["engine"] for r in p.runs("H2A")]
    assert all(e["yaml"]["kv-transfer-config"] is None for e in engines)  # left out of the file
    h6 = p.runs("H6")
    sizes = {r.spec["server"]["params"]["cpu_cache_bytes"] for r in h6}
    assert sizes == {8 << 30, 16 << 30, 32 << 30, 64 << 30}
    shell = resolve(h6[0].spec["server"], Path("/w"), "127.0.0.1", 0)["processes"][0]["shell"]
    assert "[ False = True ]" in shell and "/models/Llama-3.1-8B-Instruct" in shell


def test_spark_plan_binds_real_stacks_at_full_length():
    p = spark_plan()
    runs = p.runs()
    assert {r.spec["server"]["name"] for r in runs} == {"trtllm-uma", "dynamo-kvbm"}
    assert all(r.spec["phases"]["load_s"] == 300 for r in runs)
    assert all(r.spec["phases"]["idle_s"] == 10 for r in runs)
    # the plan's fixed fio profiles, not the demo's latency-held one
    assert all(r.spec["qos"].get("latency_target_ms") is None for r in runs)
    closed = [r for r in runs if r.spec["load"]["kind"] == "closed"]
    assert all(not r.spec["load"].get("think_s") for r in closed)  # the demo's H2A has one
    assert {r.spec["qos"]["profile"] for r in p.runs("H4B")} == {"none", "moderate", "heavy"}
    assert {r.rep for r in runs} == {0, 1, 2}
    h9 = {r.stack: r.spec["server"] for r in p.runs("H9")}
    assert set(h9) == {"B0", "B1", "B2"}
    assert {s.get("variant") for s in h9.values()} == {"B0", "B1", "B2"}
    h6 = {r.spec["server"]["params"]["cpu_cache_gb"] for r in p.runs("H6")}
    assert h6 == {8, 16, 32, 64}


def commands(hyp: str, *configs: Path, env: dict[str, str] | None = None) -> str:
    files = [REPO / "config/config.yaml", REPO / "config/spark.yaml", *configs]
    args = [a for f in files for a in ("--configfile", str(f))]
    out = subprocess.run(
        [sys.executable, "-m", "spark_harness", "plan", *args, "--commands", "--hyp", hyp],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=env,
    )
    return out.stdout


def block(out: str, label: str) -> str:
    """The printed commands of one point (from its `# label` line to the next)."""
    start = out.index(f"# {label}\n")
    end = out.find("\n# ", start + 1)
    return out[start : end if end > 0 else None]


def test_stack_a_command_is_trtllm_serve_in_the_spark_container(tmp_path):
    # a `docker` that records any call: printing the commands must run none of them
    fake = tmp_path / "bin/docker"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/docker-called\n')
    fake.chmod(0o755)
    out = commands("H0", env={**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"})
    a = block(out, "H0/A/users-1/r0")
    assert "docker run --rm --name spark-harness-trtllm --gpus all" in a
    assert "nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:1.6.1 trtllm-serve" in a
    assert "nvidia/Llama-3.1-8B-Instruct-NVFP4" in a
    assert "--max_batch_size 64 --max_num_tokens 8192 --max_seq_len 8192" in a
    # absolute: docker -v needs it
    workdir = REPO / "results/spark/scratch/H0/A/users-1/r0/server"
    assert f"--extra_llm_api_options {workdir}/extra-llm-api-options.yaml" in a
    engine = yaml.safe_load(a.split("extra-llm-api-options.yaml]\n", 1)[1].split("\n[", 1)[0])
    kv = engine["kv_cache_config"]
    assert kv == {
        "free_gpu_memory_fraction": 0.6,
        "enable_block_reuse": True,
        "enable_partial_reuse": False,
    }
    assert engine["enable_iter_perf_stats"] is True
    assert "/metrics (trtllm)" in a and "[teardown] docker rm -f spark-harness-trtllm" in a
    assert out.count("# H0/A/") == 9 * 3  # 9 concurrency steps x 3 repetitions
    assert not (tmp_path / "docker-called").exists()


def _worker_env(text: str) -> dict[str, str]:
    line = next(ln for ln in text.splitlines() if ln.startswith("[worker]"))
    return dict(re.findall(r"(DYN_\w+)=(\S+)", line.split("docker run", 1)[0]))


def test_stack_b_modes_differ_only_in_their_kvbm_tiers():
    out = commands("H9")
    b0, b1, b2 = (block(out, f"H9/{m}/base/r0") for m in ("B0", "B1", "B2"))
    for b in (b0, b1, b2):
        assert "python3 -m dynamo.frontend" in b and "python3 -m dynamo.trtllm" in b
        assert "--discovery-backend file --request-plane tcp" in b
        assert "[teardown] docker rm -f spark-harness-dynamo-frontend" in b
        assert "free_gpu_memory_fraction: 0.2" in b  # H9's override reaches every mode
    e0, e1, e2 = _worker_env(b0), _worker_env(b1), _worker_env(b2)
    assert not any(k.startswith("DYN_KVBM_") and "CACHE_GB" in k for k in e0)
    assert "DYN_KVBM_METRICS" not in e0 and "kv_connector_config: null" in b0
    assert e1["DYN_KVBM_CPU_CACHE_GB"] == "32" and "DYN_KVBM_DISK_CACHE_GB" not in e1
    assert e2["DYN_KVBM_CPU_CACHE_GB"] == "32" and e2["DYN_KVBM_DISK_CACHE_GB"] == "256"
    assert e2["DYN_KVBM_DISABLE_DISK_OFFLOAD_FILTER"] == "true"
    assert "DynamoKVBMConnectorLeader" in b1 and "DynamoKVBMConnectorLeader" in b2
    assert "(kvbm)" in b2 and "(kvbm)" not in b0
    assert "cuda_graph_config: null" in b2


def test_prompt_over_the_engine_limit_fails_the_plan_before_anything_runs(tmp_path):
    over = tmp_path / "over.yaml"
    over.write_text(
        yaml.safe_dump(
            {"hypotheses": {"H2A": {"sweep": [{"key": "workload.context_tokens",
                                               "role": "context",
                                               "name": "ctx", "values": [4096, 9000]}]}}}
        )
    )  # fmt: skip
    with pytest.raises(subprocess.CalledProcessError) as exc:
        commands("H2A", over)
    assert (
        "hypotheses.H2A point ctx-9000 (stack A): workload.context_tokens=9000 exceeds the "
        "engine's max_num_tokens=8192" in exc.value.stderr
    )
    cfg = spark_config()
    cfg["hypotheses"]["H4B"]["workload"]["context_tokens"] = 8193
    with pytest.raises(PlanError, match=r"H4B point .* workload.context_tokens=8193 exceeds"):
        spark_plan(cfg)


def test_teardown_renders_params_and_skips_what_needs_a_running_point(tmp_path, capsys):
    kvbm = resolve_stack(REPO / "config/stacks/dynamo-kvbm.yaml", "B2")
    assert teardown_command(kvbm) == (
        "docker rm -f spark-harness-dynamo-frontend spark-harness-dynamo-worker "
        ">/dev/null 2>&1 || true"
    )
    marker = tmp_path / "ran"
    ok = {"name": "ok", "kind": "command", "model": "m", "params": {"f": str(marker)},
          "command": {"processes": [], "teardown": "echo {model} >> {params.f}"}}  # fmt: skip
    bad = copy.deepcopy(ok)
    bad["name"], bad["command"]["teardown"] = "bad", "rm -rf {workdir}"
    sim = {"name": "s", "kind": "sim", "model": "m", "sim": {}}
    assert teardown_all([ok, bad, ok, sim], tmp_path) == [f"echo m >> {marker}"]
    assert marker.read_text() == "m\n"  # once, though two points use the stack
    assert "teardown of stack 'bad' skipped: unknown placeholder" in capsys.readouterr().err


def test_files_keep_param_types_and_null_env_unsets(tmp_path, monkeypatch):
    monkeypatch.setenv("LEFT_OVER", "1")
    spec = resolve_stack(REPO / "config/stacks/dynamo-kvbm.yaml", "B1")
    spec["command"]["processes"][1]["env"]["LEFT_OVER"] = None
    r = resolve(spec, tmp_path, "127.0.0.1", 0)
    (engine,) = write_files(r["files"])
    assert engine == tmp_path / "engine.yaml"
    data = yaml.safe_load(engine.read_text())
    assert data["max_num_tokens"] == 8192  # an int, not "8192"
    assert data["kv_cache_config"]["free_gpu_memory_fraction"] == 0.6
    env = process_env(r["processes"][1])
    assert "LEFT_OVER" not in env and "DYN_KVBM_DISK_CACHE_GB" not in env
    assert env["DYN_KVBM_CPU_CACHE_GB"] == "32" and env["DYN_KVBM_METRICS"] == "true"
    assert env["DYN_SYSTEM_PORT"] == str(r["ports"]["system"])
    assert 20000 <= r["ports"]["system"] <= 32767 and 20000 <= r["ports"]["kvbm"] <= 32767
    assert r["ports"]["system"] != r["ports"]["kvbm"]
    assert r["g3_dir"] == f"{tmp_path}/kvbm-disk"
    assert f"--user {os.getuid()}:{os.getgid()}" in " ".join(r["processes"][0]["argv"])


def test_a_port_range_with_no_free_port_is_a_clear_error():
    from spark_harness.serving.process import bind_socket

    taken = bind_socket("127.0.0.1", 0)
    taken.listen()
    port = taken.getsockname()[1]
    try:
        with pytest.raises(CommandStackError, match=f"no free port for 'system' in {port}-{port}"):
            allocate_ports(["http", {"name": "system", "range": [port, port]}], "127.0.0.1", 0)
    finally:
        taken.close()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c["processes"][0].pop("argv"), "processes.0"),
        (lambda c: c.update(ports=["http", {"name": "x"}]), "ports.1"),
        (lambda c: c["metrics"][0].pop("url"), "metrics.0: 'url' is a required property"),
        (lambda c: c.update(stop_grace=3), "'stop_grace' was unexpected"),
        (lambda c: c["files"]["engine"].pop("yaml"), "files.engine"),
    ],
)
def test_command_section_errors_name_the_key(tmp_path, mutate, message):
    raw = yaml.safe_load((REPO / "config/stacks/dynamo-kvbm.yaml").read_text())
    mutate(raw["command"])
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(raw))
    with pytest.raises(PlanError, match=re.escape(message)):
        resolve_stack(f)


@pytest.mark.parametrize(
    ("prime", "message"),
    [
        ({"waves": [1, 0]}, "prime.waves.1: 0 is less than the minimum of 1"),
        ({"waves": []}, "prime.waves: [] should be non-empty"),
        ({"wave": [1]}, "prime: 'waves' is a required property"),
    ],
)
def test_a_bad_prime_names_its_key(tmp_path, prime, message):
    raw = yaml.safe_load((REPO / "config/stacks/vllm-cpu.yaml").read_text()) | {"prime": prime}
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(raw))
    with pytest.raises(PlanError, match=re.escape(message)):
        resolve_stack(f)


def test_both_cpu_engine_stacks_prime_a_lone_request_then_two():
    """The engine compiles its sampler on its first request and its first batch of two."""
    for name in ("vllm-cpu", "dynamo-vllm-cpu"):
        assert resolve_stack(REPO / f"config/stacks/{name}.yaml")["prime"]["waves"] == [1, 2]


def test_external_section_needs_a_url(tmp_path):
    f = tmp_path / "e.yaml"
    f.write_text(yaml.safe_dump({"name": "e", "kind": "external", "model": "m",
                                 "external": {"base_url": "localhost:8000"}}))  # fmt: skip
    with pytest.raises(PlanError, match=r"external\.base_url: 'localhost:8000' does not match"):
        resolve_stack(f)


def test_tiny_model_tokenizes_corpus_words_as_one_token_and_nonces_apart(tmp_path):
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    from spark_harness.serving.tiny_model import write_model_dir
    from spark_harness.workloads.corpus import load_words, nonce

    d = write_model_dir(tmp_path / "model")
    assert write_model_dir(d) == d  # idempotent
    tok = AutoTokenizer.from_pretrained(d)
    words = load_words()[:50]
    assert len(tok(" ".join(words), add_special_tokens=False)["input_ids"]) == 50
    a, b = nonce(1, "a"), nonce(1, "b")
    ids_a = tok(a, add_special_tokens=False)["input_ids"]
    assert len(ids_a) > 1  # split into pieces, never one unknown token
    assert ids_a != tok(b, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids_a
    chat = tok.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False,
                                   add_generation_prompt=True)  # fmt: skip
    assert chat.startswith("<|user|>") and chat.endswith("<|assistant|>")


def test_tiny_model_weights_are_seeded_and_load_as_a_llama(tmp_path):
    """In the engine's environment (torch, transformers), as the vllm-cpu stack runs it."""
    python = REPO / ".venv-vllm/bin/python"
    if not python.exists():
        pytest.skip("no vLLM environment (tools/install_vllm_cpu.sh)")
    for d in ("a", "b"):
        cmd = [str(python), "-m", "spark_harness.serving.tiny_model", str(tmp_path / d)]
        subprocess.run([*cmd, "--weights"], check=True, capture_output=True)
    weights = [(tmp_path / d / "model.safetensors").read_bytes() for d in ("a", "b")]
    # the same bytes on every run: the engine's numbers do not depend on a draw
    assert weights[0] == weights[1] and len(weights[0]) > 5_000_000
    load = (
        "import sys; from transformers import AutoModelForCausalLM as M; "
        "c = M.from_pretrained(sys.argv[1]).config; print(c.num_hidden_layers, c.hidden_size)"
    )
    out = subprocess.run([str(python), "-c", load, str(tmp_path / "a")], check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    assert out.split() == ["4", "256"]


def test_tiny_model_refuses_an_incomplete_directory(tmp_path):
    pytest.importorskip("transformers")
    from spark_harness.serving.tiny_model import write_model_dir

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")  # a crash's leftover
    with pytest.raises(FileExistsError, match="incomplete model directory"):
        write_model_dir(tmp_path / "model")
