"""The node agent's usage arithmetic (pure): Docker counters to working sets and CPU rates."""

from __future__ import annotations

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
