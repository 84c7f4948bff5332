"""Every point the shipped plan expands to is a spec run_load accepts and can build."""

from __future__ import annotations

import copy

from spark_harness.loadgen import LoadSettings, phase_plans
from spark_harness.plan import Plan, load_config
from spark_harness.workloads import build_workload


def test_every_planned_point_builds() -> None:
    plan = Plan(load_config("config/config.yaml"))
    kinds = set()
    for run in plan.runs():
        spec = copy.deepcopy(run.spec)
        if plan.needs_u_work(run):
            spec["load"]["users"] = 2  # measure.py resolves it from H0's file
        settings = LoadSettings.from_spec(spec)
        workload, _ = build_workload(spec, server_is_sim=True)
        plans = phase_plans(settings, workload)
        assert [p.name for p in plans] == list(workload.phases)
        job = workload.next(plans[0].name, 0)
        assert job is not None and job.request.prompt_tokens > 0
        kinds.add(spec["workload"]["kind"])
    assert {"fixed_context", "lora", "chat", "rehydrate"} <= kinds
