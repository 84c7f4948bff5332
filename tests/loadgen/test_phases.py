"""Phase windows: by time, by count, by warm-up completions, by exhaustion, with drains."""

from __future__ import annotations

import asyncio
import time

from spark_harness.clock import Clock
from spark_harness.loadgen.phases import PhasePlan, Phases


def make(plans: list[PhasePlan]) -> tuple[Phases, list[tuple[str, str]]]:
    seen: list[tuple[str, str]] = []
    return Phases(plans, Clock.start(), lambda p, what, t: seen.append((p, what))), seen


ORDINARY = [
    PhasePlan("warmup", 0.05),
    PhasePlan("load", 0.1),
    PhasePlan("cooldown", 0.05, drain=True),
]


def test_time_windows_label_requests_by_send_time_and_drain_at_the_end() -> None:
    async def main() -> None:
        ph, seen = make(ORDINARY)
        ph.start()
        assert ph.claim() == "warmup"
        await asyncio.sleep(0.07)
        assert ph.claim() == "load"
        await asyncio.sleep(0.1)
        assert ph.claim() == "cooldown"
        ph.finish("warmup")
        ph.finish("load")
        await asyncio.sleep(0.08)
        assert ph.claim() is None and ph.stopped.is_set()
        assert not ph.finished.is_set()  # the cooldown request is still in flight
        assert await ph.wait_sending() is None
        ph.finish("cooldown")
        assert ph.finished.is_set()
        assert seen == [(p, w) for p in ("warmup", "load", "cooldown") for w in ("start", "end")]
        w = ph.windows
        assert w["warmup"][1] <= w["load"][0] <= w["load"][1] <= w["cooldown"][0]
        assert 0.09 <= (w["load"][1] - w["load"][0]) / 1e9 < 0.13
        assert ph.sent == {"warmup": 1, "load": 1, "cooldown": 1}

    asyncio.run(main())


def test_claim_checks_the_deadline_itself() -> None:
    async def main() -> None:
        ph, _ = make([PhasePlan("load", 0.01), PhasePlan("cooldown", 0.0, drain=True)])
        ph.start()
        time.sleep(0.02)  # the loop is blocked: the timer cannot have fired
        assert ph.claim() is None  # load is over and the zero-length cooldown too

    asyncio.run(main())


def test_max_requests_ends_the_load_window_on_the_last_counted_request() -> None:
    async def main() -> None:
        ph, _ = make(
            [PhasePlan("load", 60.0, max_requests=3), PhasePlan("cooldown", 0.0, drain=True)]
        )
        ph.start()
        assert [ph.claim() for _ in range(4)] == ["load", "load", "load", None]
        assert ph.stopped.is_set() and ph.inflight == 3
        for _ in range(3):
            ph.finish("load")
        assert ph.finished.is_set()

    asyncio.run(main())


def test_warmup_waits_for_its_minimum_completions() -> None:
    async def main() -> None:
        ph, _ = make([PhasePlan("warmup", 0.01, min_done=2), PhasePlan("load", 0.01)])
        ph.start()
        assert ph.claim() == "warmup" and ph.claim() == "warmup" and ph.claim() == "warmup"
        await asyncio.sleep(0.03)
        assert ph.current == "warmup"  # time is up but only 0 of 2 finished
        ph.finish("warmup", warms=False)  # a request that does not count toward it
        assert ph.current == "warmup"
        ph.finish("warmup")
        assert ph.current == "warmup"
        ph.finish("warmup")
        assert ph.current == "load"

    asyncio.run(main())


def test_finite_phases_end_when_exhausted_and_drained() -> None:
    async def main() -> None:
        plans = [PhasePlan(n, drain=True) for n in ("populate", "thrash", "replay")]
        ph, seen = make(plans)
        ph.start()
        await asyncio.sleep(0.02)
        assert ph.current == "populate"  # no duration: time alone never ends it
        assert ph.claim() == "populate"
        ph.exhausted("populate")
        assert ph.current is None and ("populate", "end") not in seen
        waiter = asyncio.create_task(ph.wait_sending())
        await asyncio.sleep(0)
        assert not waiter.done()
        ph.finish("populate")
        assert await waiter == "thrash"
        ph.exhausted("populate")  # late, stale: ignored
        assert ph.current == "thrash"
        ph.exhausted("thrash")
        ph.exhausted("replay")
        assert ph.finished.is_set()
        assert [p for p, w in seen if w == "end"] == ["populate", "thrash", "replay"]

    asyncio.run(main())


def test_zero_length_warmup_sends_nothing() -> None:
    async def main() -> None:
        ph, _ = make([PhasePlan("warmup", 0.0), PhasePlan("load", 1.0)])
        ph.start()
        assert ph.claim() == "load"

    asyncio.run(main())


def test_sleep_until_wakes_early_when_sending_stops() -> None:
    async def main() -> None:
        ph, _ = make([PhasePlan("load", 0.02, drain=True)])
        ph.start()
        t0 = time.monotonic()
        assert await ph.sleep_until(time.monotonic_ns() + 5_000_000_000) is False
        assert time.monotonic() - t0 < 1.0
        assert await ph.sleep_until(0) is False

    asyncio.run(main())


def test_sleep_until_never_returns_before_the_due_time() -> None:
    """Its last millisecond yields to the loop instead of sleeping (epoll's timeout is
    whole milliseconds): never early, whatever part of a millisecond is left."""

    async def main() -> list[int]:
        ph, _ = make([PhasePlan("load", 5.0)])
        ph.start()
        early = []
        for i in range(40):
            due = time.monotonic_ns() + 100_000 * (i % 20)  # 0 to 1.9 ms ahead
            assert await ph.sleep_until(due) is True
            early.append(due - time.monotonic_ns())
        return early

    assert max(asyncio.run(main())) <= 0
