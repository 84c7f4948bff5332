"""How long one engine step takes: the modeled (compute) half of the simulator.

A step runs every scheduled sequence once: prefill chunks and one decode token each
for the others. Its duration is

    fixed                       weights streamed once per step, plus per-step overhead
  + sum over prefill chunks     n / prefill rate + attention over the chunk's context
  + sum over decoding seqs      KV bytes of the context / memory bandwidth
  + seq_cost * (sequences - 1)  per-sequence work (sampling, bookkeeping)

which is the decode roofline of ``docs/REFERENCE.md`` (fixed cost + KV bytes read at 80 %
of peak bandwidth + a per-sequence cost) with a prefill rate and a quadratic attention
term. Storage is *not* here: G3 reads are real and measured (see ``diskio``).
"""

from __future__ import annotations

from dataclasses import dataclass

from spark_harness.sim.profiles import HardwareProfile, ModelProfile


@dataclass(frozen=True)
class TimingModel:
    """Step costs in seconds, precomputed from a model and a hardware profile."""

    fixed_s: float
    prefill_s_per_token: float
    attention_s_per_token2: float
    kv_read_s_per_token: float
    seq_s: float

    @classmethod
    def of(cls, model: ModelProfile, hardware: HardwareProfile) -> TimingModel:
        bw = hardware.effective_bytes_per_s
        return cls(
            fixed_s=model.weight_bytes / bw + model.step_overhead_ms / 1e3,
            prefill_s_per_token=1.0 / model.prefill_tokens_per_s,
            attention_s_per_token2=model.attention_ns_per_token2 * 1e-9,
            kv_read_s_per_token=model.kv_bytes_per_token / bw,
            seq_s=model.seq_cost_ms / 1e3,
        )

    def prefill_s(self, new_tokens: int, context_tokens: int) -> float:
        """Compute for ``new_tokens`` prompt tokens after ``context_tokens`` already in KV."""
        attention_pairs = new_tokens * (context_tokens + (new_tokens + 1) / 2)
        return new_tokens * self.prefill_s_per_token + attention_pairs * self.attention_s_per_token2

    def step_s(self, sequences: int, prefill_s: float, decode_context_tokens: int) -> float:
        """One step: ``prefill_s`` summed over chunks, decode contexts summed in tokens."""
        if sequences <= 0:
            return 0.0
        return (
            self.fixed_s
            + prefill_s
            + decode_context_tokens * self.kv_read_s_per_token
            + (sequences - 1) * self.seq_s
        )

    def lone_request(self, prompt_tokens: int, output_tokens: int) -> tuple[float, float]:
        """(TTFT, mean time per output token) of one request alone, prefilled in one step.

        Used to document and test calibration against published figures.
        """
        ttft = self.step_s(1, self.prefill_s(prompt_tokens, 0), 0)
        if output_tokens <= 1:
            return ttft, 0.0
        # decode step k computes the KV of token prompt + k - 1 over a context of prompt + k
        decode = sum(self.step_s(1, 0.0, prompt_tokens + k) for k in range(1, output_tokens))
        return ttft, decode / (output_tokens - 1)
