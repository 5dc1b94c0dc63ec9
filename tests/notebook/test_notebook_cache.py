"""The notebook cache: fingerprints of definitions, keys chained downstream, reuse.

Node functions here record their calls in ``Calls`` lists. A plain list would not do:
a node reads it as a global, so appending to it would change the node's own
fingerprint; ``Calls`` cannot be pickled and is therefore fingerprinted by identity.
"""

import asyncio
import functools

import pytest
from _calls import Calls

import kailash_nb as kn
from kailash_nb.notebook.cache import OutputCache, chain_keys
from kailash_nb.notebook.failures import NodeRunError
from kailash_nb.notebook.fingerprint import (
    content_digest,
    fingerprint_function,
    fingerprint_value,
    global_names,
)


@pytest.fixture(autouse=True)
def fresh_notebook():
    kn.reset()
    yield
    kn.reset()


def _source_function(source: str, name: str, namespace: dict | None = None):
    """Define ``name`` from ``source`` like a notebook cell does (source readable)."""
    import linecache

    filename = f"<cell {abs(hash(source))}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {} if namespace is None else namespace
    exec(compile(source, filename, "exec"), namespace)
    return namespace[name]


# -- fingerprints ---------------------------------------------------------------------------
def test_same_source_in_a_new_object_has_the_same_fingerprint():
    source = "def double(x):\n    return x * 2\n"
    assert fingerprint_function(_source_function(source, "double")) == fingerprint_function(
        _source_function(source, "double")
    )


def test_edited_source_changes_the_fingerprint():
    before = _source_function("def f(x):\n    return x * 2\n", "f")
    after = _source_function("def f(x):\n    return x * 3\n", "f")
    assert fingerprint_function(before) != fingerprint_function(after)


def test_globals_closures_defaults_and_helpers_are_covered():
    namespace = {"SCALE": 2}
    source = "def helper(x):\n    return x + 1\n\ndef f(x, y=1):\n    return helper(x) * SCALE\n"
    f = _source_function(source, "f", namespace)
    base = fingerprint_function(f)
    namespace["SCALE"] = 3
    assert fingerprint_function(f) != base
    namespace["SCALE"] = 2
    assert fingerprint_function(f) == base
    _source_function("def helper(x):\n    return x + 2\n", "helper", namespace)
    assert fingerprint_function(f) != base

    def make(offset):
        def add(x):
            return x + offset

        return add

    assert fingerprint_function(make(1)) != fingerprint_function(make(2))
    assert fingerprint_function(make(1)) == fingerprint_function(make(1))
    f.__defaults__ = (5,)
    assert fingerprint_function(f) != base


def test_global_names_sees_nested_code_and_skips_attributes():
    def f(rows):
        return [helper(row) for row in rows if row.helper_flag]  # noqa: F821

    assert global_names(f.__code__) == ["helper"]


def test_values_digest_by_content_and_fall_back_to_identity():
    assert fingerprint_value({"a": [1, 2]}) == fingerprint_value({"a": [1, 2]})
    assert fingerprint_value({"a": [1, 2]}) != fingerprint_value({"a": [1, 3]})
    log = Calls()
    assert fingerprint_value(log) == fingerprint_value(log)
    assert fingerprint_value(log) != fingerprint_value(Calls())
    assert fingerprint_value(functools.partial(max, 1)) == fingerprint_value(
        functools.partial(max, 1)
    )


def test_pandas_frames_digest_by_content():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert fingerprint_value(frame) == fingerprint_value(frame.copy())
    changed = frame.copy()
    changed.loc[0, "a"] = 5
    assert fingerprint_value(frame) != fingerprint_value(changed)


def test_chain_keys_propagate_downstream_only():
    incoming = {"b": [("x", "a", "result")], "c": [("y", "b", "result")]}
    base = chain_keys({"a": "1", "b": "2", "c": "3", "d": "4"}, incoming)
    edited = chain_keys({"a": "1", "b": "2*", "c": "3", "d": "4"}, incoming)
    assert base["a"] == edited["a"] and base["d"] == edited["d"]
    assert base["b"] != edited["b"] and base["c"] != edited["c"]


def test_output_cache_matches_keys():
    cache = OutputCache()
    cache.store("a", "k1", {"result": 1})
    assert cache.lookup("a", "k1") == {"result": 1}
    assert cache.lookup("a", "k2") is None
    cache.invalidate(["a"])
    assert "a" not in cache and len(cache) == 0


# -- caching in runs -------------------------------------------------------------------------
def _pipeline(calls: Calls, factor: int = 10):
    @kn.node
    def load(n=3):
        calls.append("load")
        return list(range(n))

    @kn.node
    def scale(load):
        calls.append("scale")
        return [value * factor for value in load]

    @kn.node
    def total(scale):
        calls.append("total")
        return sum(scale)

    @kn.node
    def count(load):
        calls.append("count")
        return len(load)


def test_unchanged_workflow_executes_nothing_and_an_edit_reruns_only_downstream():
    calls = Calls()
    _pipeline(calls)
    first = kn.run()
    assert sorted(calls) == ["count", "load", "scale", "total"]
    assert first.value("total") == 30

    calls.clear()
    second = kn.run()
    assert calls == []
    assert set(second.states.values()) == {"cached"}
    assert second.value("total") == 30

    calls.clear()
    _pipeline(calls, factor=100)  # every node redefined; only `scale` changed (closure)
    third = kn.run()
    assert sorted(calls) == ["scale", "total"]
    assert third.states == {
        "load": "cached",
        "scale": "completed",
        "total": "completed",
        "count": "cached",
    }
    assert third.value("total") == 300


def test_cached_nodes_emit_cached_events():
    _pipeline(Calls())
    kn.run()
    events = []
    with kn.current().events.subscribe(lambda e: events.append((e.node_id, e.state)), runs=False):
        kn.run()
    assert ("load", "cached") in events
    assert not [event for event in events if event[1] == "started"]


def test_parameters_invalidate_only_the_nodes_that_receive_them():
    calls = Calls()
    _pipeline(calls)
    kn.run()
    calls.clear()
    kn.run(n=4)
    assert sorted(calls) == ["count", "load", "scale", "total"]
    calls.clear()
    kn.run(n=4)
    assert calls == []
    calls.clear()
    kn.run(load={"n": 4})  # the same value, node-keyed: the same key
    assert calls == []


def test_no_cache_and_invalidate_force_execution():
    calls = Calls()
    _pipeline(calls)
    kn.run()
    calls.clear()
    kn.run(no_cache=True)
    assert sorted(calls) == ["count", "load", "scale", "total"]

    calls.clear()
    kn.invalidate("scale")
    assert kn.current().node_info("scale")["state"] == "stale"
    assert kn.current().node_info("total")["state"] == "stale"
    assert kn.current().node_info("load")["state"] == "completed"
    kn.run()
    assert sorted(calls) == ["scale", "total"]

    calls.clear()
    kn.invalidate()
    kn.run()
    assert len(calls) == 4


class Outcomes:
    """Hands out queued outcomes (an exception to raise, or a value); identity-only."""

    def __init__(self, *outcomes):
        self._outcomes = list(outcomes)

    def __reduce_ex__(self, protocol):
        raise TypeError("identity only")

    def next(self):
        outcome = self._outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def test_a_failed_node_is_never_cached_and_its_downstream_waits():
    calls = Calls()
    outcomes = Outcomes(ValueError("not yet"), 7)

    @kn.node
    def fetch():
        calls.append("fetch")
        return outcomes.next()

    @kn.node
    def use(fetch):
        calls.append("use")
        return fetch + 1

    with pytest.raises(NodeRunError, match=r"node 'fetch'.* failed: ValueError: not yet") as caught:
        kn.run()
    assert caught.value.result.states == {"fetch": "failed", "use": "not run"}
    assert "fetch" not in kn.current().cache
    assert kn.current().node_info("fetch")["state"] == "failed"
    assert kn.current().node_info("fetch")["error"] == "ValueError: not yet"
    # Same definition, same key: the failure was not cached, so fetch executes again.
    assert kn.run().value("use") == 8
    assert calls == ["fetch", "fetch", "use"]


def test_a_failed_leaf_does_not_stop_the_others_but_the_run_raises():
    calls = Calls()
    _pipeline(calls)

    @kn.node
    def broken(load):
        return 1 / 0

    with pytest.raises(NodeRunError) as caught:
        kn.run()
    result = caught.value.result
    assert result.states["broken"] == "failed" and result.states["total"] == "completed"
    assert result.value("total") == 30 and "broken" not in result
    calls.clear()
    with pytest.raises(NodeRunError):
        kn.run()
    assert calls == []  # everything else came from the cache


def test_partial_run_caches_what_it_ran():
    calls = Calls()
    _pipeline(calls)
    result = kn.run("total")
    assert sorted(calls) == ["load", "scale", "total"]
    assert set(result.states) == {"load", "scale", "total"}
    calls.clear()
    kn.run()
    assert calls == ["count"]


def test_async_runs_use_the_same_cache():
    calls = Calls()
    _pipeline(calls)
    asyncio.run(kn.run_async())
    calls.clear()
    result = asyncio.run(kn.run_async())
    assert calls == [] and set(result.states.values()) == {"cached"}


# -- outputs changed in place ---------------------------------------------------------------
def _mutating_pipeline(calls):
    @kn.node
    def load():
        calls.append("load")
        return [{"v": 1}, {"v": 2}]

    @kn.node
    def scale(load, factor=3):
        calls.append("scale")
        for r in load:
            r["v"] *= factor
        return [r["v"] for r in load]


def test_a_node_mutating_its_input_never_changes_the_cached_output():
    calls = Calls()
    _mutating_pipeline(calls)
    for factor in (3, 3, 3, 2, 3, 3):
        assert kn.run(factor=factor).value("scale") == [factor, 2 * factor]
    # load runs again after each run in which scale changed its rows in place.
    assert calls == ["load", "scale", "load", "scale", "load", "scale", "load"]

    @kn.node
    def scale(load, factor=3):  # redefined: only its downstream reruns, on intact rows
        for r in load:
            r["v"] *= factor
        return [r["v"] for r in load]

    assert kn.run().value("scale") == [3, 6]
    assert kn.run(no_cache=True).value("scale") == [3, 6]


def test_run_async_keeps_the_cache_intact_too():
    calls = Calls()
    _mutating_pipeline(calls)
    for factor in (3, 2, 3):
        result = asyncio.run(kn.run_async(factor=factor))
        assert result.value("scale") == [factor, 2 * factor]


def test_a_result_changed_in_a_cell_is_not_reused():
    calls = Calls()

    @kn.node
    def rows():
        calls.append("rows")
        return [1, 2]

    first = kn.run()
    assert kn.run().states == {"rows": "cached"}
    first.value("rows").append(99)
    again = kn.run()
    assert again.states == {"rows": "completed"} and again.value("rows") == [1, 2]
    assert calls == ["rows", "rows"]


def test_outputs_that_cannot_be_digested_are_not_reused():
    import threading

    @kn.node
    def lock():
        return threading.Lock()

    assert kn.run().states == {"lock": "completed"}
    assert kn.run().states == {"lock": "completed"}


def test_large_arrays_are_digested_by_content():
    numpy = pytest.importorskip("numpy")
    array = numpy.arange(1_000_000.0)  # pickled as an out-of-band buffer
    digest = content_digest({"result": array})
    assert digest is not None and digest == content_digest({"result": array.copy()})
    array[5] = -1
    assert content_digest({"result": array}) != digest


def test_data_frames_are_digested_by_content():
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame({"id": range(1000), "name": [f"n{i}" for i in range(1000)]})
    digest = content_digest({"result": frame})
    assert digest is not None and digest == content_digest({"result": frame.copy()})
    frame.loc[3, "name"] = "changed"
    assert content_digest({"result": frame}) != digest


def test_the_cache_drops_an_entry_changed_after_it_was_stored():
    cache = OutputCache()
    outputs = {"result": [1, 2]}
    cache.store("n", "k", outputs)
    assert cache.lookup("n", "k") is outputs
    outputs["result"].append(3)
    assert cache.lookup("n", "k") is None and "n" not in cache
    cache.store("n", "k", {"result": 1}, digest=None)  # could not be digested
    assert cache.lookup("n", "k") is None
