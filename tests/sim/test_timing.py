"""The step-time model and the calibration of the published profiles (docs/REFERENCE.md)."""

from __future__ import annotations

import pytest

from spark_harness.sim.profiles import ProfileError, hardware_profile, model_profile
from spark_harness.sim.timing import TimingModel

# docs/REFERENCE.md, "Published inference figures on DGX Spark"
LLAMA8B_PREFILL_TOK_S = 10_257
LLAMA8B_DECODE_TOK_S = 38.65
LLAMA70B_PREFILL_TOK_S = 1_000  # derived default
LLAMA70B_DECODE_TOK_S = (4.0, 4.2)


def timing(model: str, hardware: str = "dgx-spark") -> TimingModel:
    return TimingModel.of(model_profile(model), hardware_profile(hardware))


def test_step_is_fixed_cost_plus_prefill_plus_kv_read_plus_per_sequence() -> None:
    t = TimingModel(
        fixed_s=0.01,
        prefill_s_per_token=1e-4,
        attention_s_per_token2=1e-8,
        kv_read_s_per_token=1e-6,
        seq_s=5e-4,
    )
    assert t.prefill_s(100, 50) == pytest.approx(100 * 1e-4 + 1e-8 * 100 * (50 + 50.5))
    assert t.step_s(3, 0.02, 1000) == pytest.approx(0.01 + 0.02 + 1000e-6 + 2 * 5e-4)
    assert t.step_s(0, 0.0, 0) == 0.0


def test_llama_8b_on_spark_matches_published_isl_2048_osl_128() -> None:
    ttft, tpot = timing("llama-3.1-8b").lone_request(2048, 128)
    published_ttft = 2048 / LLAMA8B_PREFILL_TOK_S
    assert ttft == pytest.approx(published_ttft, rel=0.02)
    assert 1 / tpot == pytest.approx(LLAMA8B_DECODE_TOK_S, rel=0.02)


def test_llama_70b_on_spark_matches_published_figures() -> None:
    ttft, tpot = timing("llama-3.3-70b").lone_request(2048, 128)
    assert 2048 / ttft == pytest.approx(LLAMA70B_PREFILL_TOK_S, rel=0.05)
    assert LLAMA70B_DECODE_TOK_S[0] <= 1 / tpot <= LLAMA70B_DECODE_TOK_S[1]


def test_reloading_a_prefix_from_nvme_beats_recomputing_it_on_spark() -> None:
    # docs/REFERENCE.md: a 2,048-token fp8 prefix is ~134 MB for 8B; at ~6 GB/s that is
    # ~22 ms against ~200 ms of prefill.
    t = timing("llama-3.1-8b")
    kv_bytes = 2048 * model_profile("llama-3.1-8b").kv_bytes_per_token
    assert kv_bytes / 6e9 < t.prefill_s(2048, 0) / 5


def test_batching_amortises_the_fixed_cost() -> None:
    t = timing("llama-3.1-8b")
    one = t.step_s(1, 0.0, 2048)
    thirty_two = t.step_s(32, 0.0, 32 * 2048)
    assert 32 / thirty_two > 5 / one  # aggregate decode rate grows well beyond batch 1


def test_unknown_profiles_are_clear_errors() -> None:
    with pytest.raises(ProfileError, match="unknown model_profile 'gpt-5'"):
        model_profile("gpt-5")
    with pytest.raises(ProfileError, match="unknown hardware_profile"):
        hardware_profile("laptop")
