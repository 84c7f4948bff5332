"""Evaluators of the legacy v2.5 plan (config/plan_v2.5.yaml, docs/LEGACY.md).

v2.5 numbers its hypotheses H0..H8 with meanings of its own; which function evaluates
which is stated in :data:`spark_harness.legacy.HYPOTHESES`. H0 (queue knee, U_work) and
H1 (cold vs warm LoRA) are the v3 rules unchanged.
"""
