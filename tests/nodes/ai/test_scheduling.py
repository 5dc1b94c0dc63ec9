"""The scheduling strategies on their own: pure choices over candidates."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kailash_nb.nodes.ai.scheduling import (
    STRATEGIES,
    Auction,
    BestMatch,
    Broadcast,
    Candidate,
    RoundRobin,
    WeightedRoundRobin,
    default_bid,
    make_strategy,
    match_score,
    performance_weight,
    requirements_of,
)
from kailash_nb.sdk_exceptions import NodeConfigurationError

NONE = frozenset()


def candidate(agent_id: str, *capabilities: str, **fields) -> Candidate:
    return Candidate(agent_id, frozenset(capabilities), **fields)


def picks(strategy, candidates, count: int, requirements=NONE) -> Counter:
    chosen = Counter()
    for _ in range(count):
        (one,) = strategy.select({}, requirements, candidates)
        chosen[one.agent_id] += 1
    return chosen


def test_requirements_come_from_any_kailash_key_in_lower_case():
    task = {"required_capabilities": ["Analysis"], "required_skills": "SQL", "requirements": []}
    assert requirements_of(task) == {"analysis", "sql"}
    with pytest.raises(TypeError, match="strings"):
        requirements_of({"requirements": [3]})


def test_match_score_is_the_covered_part_of_the_requirements():
    assert match_score(frozenset({"a", "b"}), frozenset({"a", "c"})) == 0.5
    assert match_score(NONE, frozenset({"a"})) == 1.0


@given(
    weights=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=8),
    rounds=st.integers(min_value=1, max_value=5),
)
def test_weighted_round_robin_gives_exact_shares_over_whole_cycles(weights, rounds):
    candidates = [candidate(f"a{i}", weight=float(w)) for i, w in enumerate(weights)]
    counts = picks(WeightedRoundRobin(), candidates, rounds * sum(weights))
    assert [counts[f"a{i}"] for i in range(len(weights))] == [rounds * w for w in weights]


@given(
    weights=st.lists(st.floats(min_value=0.1, max_value=10), min_size=1, max_size=8),
    count=st.integers(min_value=1, max_value=300),
)
def test_weighted_round_robin_stays_close_to_the_weights_at_every_point(weights, count):
    candidates = [candidate(f"a{i}", weight=w) for i, w in enumerate(weights)]
    counts = picks(WeightedRoundRobin(), candidates, count)
    total = sum(weights)
    for index, weight in enumerate(weights):
        assert abs(counts[f"a{index}"] - count * weight / total) < 2


def test_weighted_round_robin_interleaves_rather_than_bursting():
    candidates = [candidate("heavy", weight=2.0), candidate("light", weight=1.0)]
    strategy = WeightedRoundRobin()
    order = [strategy.select({}, NONE, candidates)[0].agent_id for _ in range(6)]
    assert order == ["heavy", "light", "heavy"] * 2


@given(agents=st.integers(min_value=1, max_value=10), rounds=st.integers(min_value=1, max_value=10))
def test_round_robin_is_fair(agents, rounds):
    candidates = [candidate(f"a{i}") for i in range(agents)]
    counts = picks(RoundRobin(), candidates, agents * rounds)
    assert set(counts.values()) == {rounds} and len(counts) == agents


def test_round_robin_and_weighted_only_take_agents_covering_every_requirement():
    candidates = [candidate("partial", "a"), candidate("full", "a", "b")]
    for strategy in (RoundRobin(), WeightedRoundRobin()):
        assert picks(strategy, candidates, 4, frozenset({"a", "b"})) == {"full": 4}
        assert strategy.select({}, frozenset({"z"}), candidates) == []


def test_best_match_prefers_the_score_then_the_lower_load_then_the_success_rate():
    partial = candidate("partial", "a", load=0)
    busy = candidate("busy", "a", "b", load=3)
    idle = candidate("idle", "a", "b", load=1, success_rate=0.5)
    reliable = candidate("reliable", "a", "b", load=1, success_rate=0.9)
    strategy = BestMatch()
    assert strategy.select({}, frozenset({"a", "b"}), [partial, busy, idle, reliable]) == [reliable]
    assert strategy.select({}, frozenset({"a", "b"}), [partial]) == [partial]
    assert strategy.select({}, frozenset({"z"}), [partial, busy]) == []


def test_broadcast_takes_every_agent_matching_at_least_one_requirement():
    agents = [candidate("x", "a"), candidate("y", "b"), candidate("z", "c")]
    assert [c.agent_id for c in Broadcast().select({}, frozenset({"a", "b"}), agents)] == ["x", "y"]
    assert len(Broadcast().select({}, NONE, agents)) == 3


def test_auction_takes_the_lowest_bid_and_leaves_out_broken_bidders():
    def broken(task):
        raise RuntimeError("no price")

    agents = [
        candidate("cheap", "a", bid=lambda task: 1.0),
        candidate("dear", "a", bid=lambda task: 5.0),
        candidate("broken", "a", bid=broken),
        candidate("nan", "a", bid=lambda task: float("nan")),
    ]
    auction = Auction()
    assert auction.bids({}, frozenset({"a"}), agents) == {"cheap": 1.0, "dear": 5.0}
    assert auction.select({}, frozenset({"a"}), agents)[0].agent_id == "cheap"


def test_the_default_bid_rises_with_load_latency_and_missing_capabilities():
    requirements = frozenset({"a", "b"})
    base = candidate("base", "a", "b", load=0, mean_latency=1.0, reference_latency=1.0)
    assert default_bid({}, base, requirements) == 1.0
    loaded = candidate("loaded", "a", "b", load=1, mean_latency=1.0, reference_latency=1.0)
    slow = candidate("slow", "a", "b", mean_latency=2.0, reference_latency=1.0)
    partial = candidate("partial", "a", mean_latency=1.0, reference_latency=1.0)
    for worse in (loaded, slow, partial):
        assert default_bid({}, worse, requirements) > 1.0
    assert Auction().select({}, requirements, [loaded, slow, base])[0].agent_id == "base"


def test_performance_weight_favours_reliable_fast_agents_and_never_reaches_zero():
    assert performance_weight(2.0, None, None, None) == 2.0
    assert performance_weight(1.0, 1.0, 0.5, 1.0) == 2.0
    assert performance_weight(1.0, 0.5, 1.0, 1.0) == 0.5
    assert performance_weight(1.0, 0.0, 1.0, 1.0) == 0.01
    assert performance_weight(1.0, 1.0, 1.1, 1.0) == 1.0  # within the noise tolerance


def test_strategies_are_made_by_name():
    assert sorted(STRATEGIES) == [
        "auction",
        "best_match",
        "broadcast",
        "round_robin",
        "weighted_round_robin",
    ]
    assert isinstance(make_strategy("round_robin"), RoundRobin)
    with pytest.raises(NodeConfigurationError, match="weighted_round_robin"):
        make_strategy("fastest")


def test_round_robin_takes_the_next_agent_when_some_are_left_out():
    agents = [candidate(f"a{i}") for i in range(5)]
    strategy = RoundRobin()
    assert strategy.select({}, NONE, agents)[0].agent_id == "a0"
    assert strategy.select({}, NONE, agents[1:])[0].agent_id == "a1"
    assert strategy.select({}, NONE, [agents[0], *agents[2:]])[0].agent_id == "a2"
    assert strategy.select({}, NONE, agents[:2])[0].agent_id == "a0"  # wraps around
