"""Scheduling strategies: which agent(s) get a task.

Each strategy is a small class with one method, ``select(task, requirements,
candidates) -> list[Candidate]``: pure (no I/O, no clock), deterministic, and stateful
only where the strategy is (round robin's cursor, smooth weighted round robin's
current weights), so it can be tested on its own. The coordinator serializes calls.

- ``best_match``: the highest capability score (covered requirements over
  requirements, > 0), ties broken by lower load, then higher success rate, then order.
- ``round_robin``: agents covering every requirement, in turn.
- ``weighted_round_robin``: smooth weighted round robin (nginx's) over agents covering
  every requirement; over ``n`` picks each agent's count is within one of
  ``n * weight / total`` (the coordinator passes static weights, or weights from
  observed success rate and latency: :func:`performance_weight`).
- ``broadcast``: every agent with a capability score > 0 (all agents if the task
  requires nothing).
- ``auction``: agents with a capability score > 0 bid; the lowest bid wins, ties by
  order. An agent may bring its own ``bid(task)``; :func:`default_bid` otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from kailash_nb.sdk_exceptions import NodeConfigurationError

__all__ = [
    "STRATEGIES",
    "Auction",
    "BestMatch",
    "Broadcast",
    "Candidate",
    "RoundRobin",
    "Strategy",
    "WeightedRoundRobin",
    "default_bid",
    "make_strategy",
    "match_score",
    "performance_weight",
    "requirements_of",
]

#: Relative latency difference below which ``performance_weight`` treats agents as equally fast.
LATENCY_TOLERANCE = 0.25
#: The task keys naming required capabilities (Kailash uses all three).
REQUIREMENT_KEYS = ("required_capabilities", "required_skills", "requirements")


@dataclass(slots=True)
class Candidate:
    """What a strategy knows of an agent: its id, capabilities, load (tasks in flight),
    weight (static or from performance), observed success rate and mean latency
    (``None`` without data), the pool's reference latency, and its bid function."""

    agent_id: str
    capabilities: frozenset[str]
    load: int = 0
    weight: float = 1.0
    success_rate: float | None = None
    mean_latency: float | None = None
    reference_latency: float | None = None
    bid: Callable[[dict[str, Any]], float] | None = None


def requirements_of(task: dict[str, Any]) -> frozenset[str]:
    """The capabilities ``task`` requires (lower case), from any of ``REQUIREMENT_KEYS``.

    Raises:
        TypeError: a requirement that is not a string.
    """
    names: set[str] = set()
    for key in REQUIREMENT_KEYS:
        value = task.get(key)
        if value is None:
            continue
        for name in [value] if isinstance(value, str) else value:
            if not isinstance(name, str):
                raise TypeError(f"task {key!r} must hold strings, got {name!r}")
            if name.strip():
                names.add(name.strip().lower())
    return frozenset(names)


def match_score(requirements: frozenset[str], capabilities: frozenset[str]) -> float:
    """The part of ``requirements`` that ``capabilities`` covers (1.0 if none required)."""
    if not requirements:
        return 1.0
    return len(requirements & capabilities) / len(requirements)


def performance_weight(
    static_weight: float,
    success_rate: float | None,
    mean_latency: float | None,
    reference_latency: float | None,
) -> float:
    """An agent's weight from what was observed: ``static_weight`` times its success
    rate times how much faster than the reference latency (the median of the agents'
    mean latencies) it is; the static weight alone where there is no data yet.

    Latencies within ``LATENCY_TOLERANCE`` of the reference count as equal, so agents
    that are equally fast keep equal shares instead of chasing measurement noise (with
    agents that run one task at a time, a few percent more tasks for one agent is a few
    percent more wall time for all). Never below 1 % of the static weight, so a bad
    agent still gets the odd task and can show it recovered."""
    weight = static_weight
    if success_rate is not None:
        weight *= success_rate
    if mean_latency and reference_latency:
        speed = reference_latency / mean_latency
        if abs(speed - 1) > LATENCY_TOLERANCE:
            weight *= speed
    return max(weight, static_weight * 0.01)


def default_bid(task: dict[str, Any], candidate: Candidate, requirements: frozenset[str]) -> float:
    """An agent's price when it brings no bid function: ``(1 + load) x latency factor
    x (2 - capability score)``, the latency factor being its mean latency over the
    reference latency (1 without data). A lower bid wins."""
    latency_factor = 1.0
    if candidate.mean_latency and candidate.reference_latency:
        latency_factor = candidate.mean_latency / candidate.reference_latency
    return (
        (1 + candidate.load)
        * latency_factor
        * (2 - match_score(requirements, candidate.capabilities))
    )


class Strategy:
    """Base of the strategies: ``select`` returns the agents chosen for a task, in
    order of preference (one agent, or every recipient for a fan-out strategy); an
    empty list when no candidate fits."""

    name: ClassVar[str]
    #: True when every selected agent runs the task (``broadcast``).
    fan_out: ClassVar[bool] = False

    def select(
        self, task: dict[str, Any], requirements: frozenset[str], candidates: Sequence[Candidate]
    ) -> list[Candidate]:
        """Choose among ``candidates`` (healthy agents, in registration order)."""
        raise NotImplementedError


def covering(requirements: frozenset[str], candidates: Iterable[Candidate]) -> list[Candidate]:
    """The candidates that have every required capability."""
    return [c for c in candidates if requirements <= c.capabilities]


def matching(requirements: frozenset[str], candidates: Iterable[Candidate]) -> list[Candidate]:
    """The candidates with at least one required capability (all if none is required)."""
    if not requirements:
        return list(candidates)
    return [c for c in candidates if requirements & c.capabilities]


class BestMatch(Strategy):
    """The best capability score; ties by lower load, higher success rate, then order."""

    name = "best_match"

    def select(
        self, task: dict[str, Any], requirements: frozenset[str], candidates: Sequence[Candidate]
    ) -> list[Candidate]:
        """See the class docstring."""
        best: tuple[float, float, float, int] | None = None
        chosen: Candidate | None = None
        for position, candidate in enumerate(candidates):
            score = match_score(requirements, candidate.capabilities)
            if score <= 0:
                continue
            rate = 1.0 if candidate.success_rate is None else candidate.success_rate
            key = (score, -candidate.load, rate, -position)
            if best is None or key > best:
                best, chosen = key, candidate
        return [] if chosen is None else [chosen]


class RoundRobin(Strategy):
    """Agents covering every requirement, each in turn: the next one after the agent
    picked last, in the order agents were first seen (so leaving an agent out for a
    retry or while it is unhealthy does not skip the others)."""

    name = "round_robin"

    def __init__(self) -> None:
        self._order: dict[str, int] = {}
        self._last = -1

    def select(
        self, task: dict[str, Any], requirements: frozenset[str], candidates: Sequence[Candidate]
    ) -> list[Candidate]:
        """See the class docstring."""
        eligible = covering(requirements, candidates)
        if not eligible:
            return []
        order = self._order
        for candidate in eligible:
            order.setdefault(candidate.agent_id, len(order))
        following = [c for c in eligible if order[c.agent_id] > self._last]
        chosen = min(following or eligible, key=lambda c: order[c.agent_id])
        self._last = order[chosen.agent_id]
        return [chosen]


class WeightedRoundRobin(Strategy):
    """Smooth weighted round robin over agents covering every requirement: each pick
    adds every eligible agent's weight to its current weight, takes the largest (first
    in order on a tie) and subtracts the total from it, which spreads each agent's
    picks evenly instead of in bursts."""

    name = "weighted_round_robin"

    def __init__(self) -> None:
        self._current: dict[str, float] = {}

    def select(
        self, task: dict[str, Any], requirements: frozenset[str], candidates: Sequence[Candidate]
    ) -> list[Candidate]:
        """See the class docstring."""
        eligible = covering(requirements, candidates)
        if not eligible:
            return []
        current = self._current
        total = 0.0
        chosen: Candidate | None = None
        highest = -math.inf
        for candidate in eligible:
            weight = candidate.weight
            total += weight
            value = current.get(candidate.agent_id, 0.0) + weight
            current[candidate.agent_id] = value
            if value > highest:
                highest, chosen = value, candidate
        assert chosen is not None
        current[chosen.agent_id] -= total
        return [chosen]

    def forget(self, agent_id: str) -> None:
        """Drop the state kept for an agent that left the pool."""
        self._current.pop(agent_id, None)


class Broadcast(Strategy):
    """Every agent with at least one required capability (all if none is required)."""

    name = "broadcast"
    fan_out = True

    def select(
        self, task: dict[str, Any], requirements: frozenset[str], candidates: Sequence[Candidate]
    ) -> list[Candidate]:
        """See the class docstring."""
        return matching(requirements, candidates)


class Auction(Strategy):
    """Agents with at least one required capability bid; the lowest bid wins (ties by
    order). A bid that raises or is not a finite number leaves that agent out."""

    name = "auction"

    def bids(
        self, task: dict[str, Any], requirements: frozenset[str], candidates: Sequence[Candidate]
    ) -> dict[str, float]:
        """Each bidding agent's price for ``task``."""
        prices: dict[str, float] = {}
        for candidate in matching(requirements, candidates):
            try:
                if candidate.bid is not None:
                    price = float(candidate.bid(task))
                else:
                    price = default_bid(task, candidate, requirements)
            except Exception:  # a broken bid only loses the auction
                price = math.nan
            if math.isfinite(price):
                prices[candidate.agent_id] = price
        return prices

    def select(
        self, task: dict[str, Any], requirements: frozenset[str], candidates: Sequence[Candidate]
    ) -> list[Candidate]:
        """See the class docstring."""
        prices = self.bids(task, requirements, candidates)
        if not prices:
            return []
        winner = min(prices, key=prices.__getitem__)  # first in order on a tie
        return [c for c in candidates if c.agent_id == winner]


#: Strategy classes by name.
STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (BestMatch, RoundRobin, WeightedRoundRobin, Broadcast, Auction)
}


def make_strategy(name: str) -> Strategy:
    """A new strategy named ``name``.

    Raises:
        NodeConfigurationError: an unknown name (the message lists the known ones).
    """
    cls = STRATEGIES.get(name)
    if cls is None:
        raise NodeConfigurationError(
            f"unknown coordination_strategy {name!r}; choose one of {sorted(STRATEGIES)}"
        )
    return cls()
