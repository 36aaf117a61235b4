"""The node agent's usage arithmetic (pure): Docker counters to working sets and CPU rates."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from reconcile.node import containers, stats


def test_working_set_is_usage_less_inactive_file_for_both_cgroup_versions() -> None:
    assert stats.working_set({"usage": 100_000, "stats": {"total_inactive_file": 30_000}}) == 70_000
    assert stats.working_set({"usage": 100_000, "stats": {"inactive_file": 40_000}}) == 60_000
    assert stats.working_set({"usage": 10, "stats": {"inactive_file": 40}}) == 0


def test_a_stopped_container_gives_no_sample() -> None:
    assert stats.sample_of({"cpu_stats": {}, "memory_stats": {}}, at=1.0) is None
    sample = stats.sample_of({"cpu_stats": {"cpu_usage": {"total_usage": 5}}, "memory_stats": {"usage": 7}}, at=2.0)
    assert sample == stats.Sample(at=2.0, cpu_ns=5, working_set=7)


@given(st.integers(0, 10**15), st.integers(0, 10**12), st.floats(0.01, 100))
def test_rate_is_cpu_time_over_wall_time(start: int, spent: int, elapsed: float) -> None:
    usage = stats.usage_between(stats.Sample(10.0, start, 1), stats.Sample(10.0 + elapsed, start + spent, 2))
    assert usage is not None and abs(usage.nano_cores - spent / elapsed) <= 1 and usage.working_set == 2


def test_a_restarted_counter_or_no_elapsed_time_gives_no_rate() -> None:
    assert stats.usage_between(stats.Sample(1.0, 500, 1), stats.Sample(2.0, 100, 1)) is None
    assert stats.usage_between(stats.Sample(1.0, 100, 1), stats.Sample(1.0, 200, 1)) is None


def test_summary_sums_pods_and_hides_the_infra_container() -> None:
    pod = stats.PodKey("ns", "web", "uid-1")
    usage = stats.Usage(nano_cores=250_000_000, working_set=1024, at=100.0, window=1.0)
    infra = stats.Usage(nano_cores=1_000, working_set=10, at=100.0, window=1.0)
    doc = stats.summary("n1", {(pod, "app"): usage, (pod, containers.INFRA): infra}, now=100.0)
    [entry] = doc["pods"]
    assert [c["name"] for c in entry["containers"]] == ["app"]
    assert entry["cpu"]["usageNanoCores"] == 250_001_000 and entry["memory"]["workingSetBytes"] == 1034
    assert doc["node"]["nodeName"] == "n1" and doc["node"]["cpu"]["usageNanoCores"] == 250_001_000
    empty = stats.summary("n1", {}, now=5.0)
    assert empty["pods"] == [] and empty["node"]["cpu"]["usageNanoCores"] == 0


class EngineWithOneSlowContainer:
    """Test double of DockerRuntime's list/stats: container "slow" answers stats only when released,
    as a busy engine answers a round's calls one after another on the sampler's two threads."""

    def __init__(self) -> None:
        self.cpu = {"fast": 0, "slow": 0}
        self.release = asyncio.Event()
        self.fast_answered = asyncio.Event()

    async def list(self, **_: object) -> list[dict]:
        return [{"Id": cid, "State": {"Status": "running", "Running": True},
                 "Config": {"Labels": {containers.LABEL_UID: f"uid-{cid}", containers.LABEL_NAMESPACE: "ns",
                                       containers.LABEL_NAME: cid, containers.LABEL_CONTAINER: "app"}}}
                for cid in self.cpu]

    async def stats(self, cid: str) -> dict:
        if cid == "slow":
            await self.release.wait()
        else:
            self.fast_answered.set()  # the sampler reads the time in the same step, before the test runs on
        return {"cpu_stats": {"cpu_usage": {"total_usage": self.cpu[cid]}}, "memory_stats": {"usage": 1}}


def test_a_rate_divides_by_the_time_between_a_containers_own_answers(monkeypatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(stats.time, "time", lambda: clock[0])
    engine = EngineWithOneSlowContainer()
    sampler = stats.Sampler(engine, "n1")  # type: ignore[arg-type]

    async def round_where_slow_answers_at(when: float) -> None:
        task = asyncio.ensure_future(sampler.sample_once())
        await engine.fast_answered.wait()
        clock[0] = when
        engine.release.set()
        await task
        engine.release.clear()
        engine.fast_answered.clear()

    async def scenario() -> None:
        await round_where_slow_answers_at(130.0)  # fast answered at 100
        clock[0] = 200.0
        engine.cpu = {"fast": 100 * 10**9, "slow": 100 * 10**9}
        await round_where_slow_answers_at(260.0)  # fast answered at 200

    asyncio.run(scenario())
    cores = {pod["podRef"]["name"]: pod["cpu"]["usageNanoCores"] for pod in sampler.summary()["pods"]}
    # 100 s of CPU over 100 s for "fast" (not over the 130 s between the rounds' ends), over 130 s for "slow"
    assert cores == {"fast": 10**9, "slow": int(100 * 10**9 / 130)}
