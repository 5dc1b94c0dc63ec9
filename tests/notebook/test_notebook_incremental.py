"""Incremental fingerprints: defining a node recomputes only what it can affect, and
what a run reuses is still exactly what is unchanged.

Cells are imitated by compiling source into one shared namespace (a notebook's
globals); each node function records its calls in ``CALLS`` (fingerprinted by
identity, see ``test_notebook_cache``).
"""

import dataclasses

import pytest
from _calls import Calls

import kailash_nb as kn
from kailash_nb.notebook.composition import compose
from kailash_nb.notebook.definitions import NodeDefinition
from kailash_nb.notebook.fingerprint import (
    fingerprint_function,
    function_dependencies,
    global_reads,
    rebound,
)
from kailash_nb.notebook.run_plan import shape_keys
from kailash_nb.sdk_exceptions import KailashException


@pytest.fixture(autouse=True)
def fresh_notebook():
    kn.reset()
    yield
    kn.reset()


@pytest.fixture
def cells():
    """Run source as a notebook cell: ``cells("def f(): ...")``; ``cells.ns`` is the
    notebook's namespace."""
    namespace = {"kn": kn, "CALLS": Calls()}
    counter = iter(range(10_000))

    def run(source: str) -> None:
        exec(compile(source, f"<cell {next(counter)}>", "exec"), namespace)

    run.ns = namespace
    return run


def _chain_cell(index: int, step: int = 1) -> str:
    if index == 0:
        return "@kn.node\ndef n0():\n    CALLS.append('n0')\n    return 0\n"
    return (
        f"@kn.node\ndef n{index}(n{index - 1}):\n"
        f"    CALLS.append('n{index}')\n    return n{index - 1} + {step}\n"
    )


def _states(session) -> dict[str, str]:
    return {node_id: session.node_info(node_id)["state"] for node_id in session.node_ids()}


def _assert_matches_full_recompute(session) -> None:
    """The session's incrementally kept wiring and shape keys equal a recomputation
    from scratch."""
    composition = compose(session.definitions, session._manual)
    assert session.edges() == [(s, t, f"{o} -> {i}") for s, o, t, i in composition.connections]
    assert session._wiring.wiring.dangling == composition.dangling
    # Copies of the definitions have no reused fingerprints: everything is digested.
    fresh = {node_id: dataclasses.replace(d) for node_id, d in session.definitions.items()}
    assert all(copy._digested is None for copy in fresh.values())
    assert session._wiring.shapes == shape_keys(fresh, composition)


# -- runs ------------------------------------------------------------------------------------
def test_editing_a_node_in_the_middle_reruns_only_its_downstream(cells):
    for index in range(10):
        cells(_chain_cell(index))
    calls = cells.ns["CALLS"]
    assert kn.run().value("n9") == 9
    calls.clear()
    assert set(kn.run().states.values()) == {"cached"} and calls == []

    cells(_chain_cell(5, step=10))
    session = kn.current()
    states = _states(session)
    assert {n for n, s in states.items() if s == "stale"} == {f"n{i}" for i in range(5, 10)}
    assert {states[f"n{i}"] for i in range(5)} == {"cached"}
    _assert_matches_full_recompute(session)

    result = kn.run()
    assert calls == [f"n{i}" for i in range(5, 10)]
    assert result.value("n9") == 18
    calls.clear()
    cells(_chain_cell(5, step=10))  # the same cell again: nothing changes
    assert kn.run().value("n9") == 18 and calls == []


def test_rebinding_a_global_a_node_reads_invalidates_it_and_its_downstream(cells):
    cells("SCALE = 2")
    cells("@kn.node\ndef base():\n    CALLS.append('base')\n    return 1\n")
    cells("@kn.node\ndef scaled(base):\n    CALLS.append('scaled')\n    return base * SCALE\n")
    cells("@kn.node\ndef after(scaled):\n    CALLS.append('after')\n    return scaled + 1\n")
    cells("@kn.node\ndef apart(base):\n    CALLS.append('apart')\n    return -base\n")
    calls = cells.ns["CALLS"]
    kn.run()
    calls.clear()

    cells("SCALE = 3")
    result = kn.run()
    assert sorted(calls) == ["after", "scaled"]
    assert result.value("after") == 4

    # Rebinding it and then defining an unrelated node marks its readers stale at once.
    kn.run()
    cells("SCALE = 4")
    cells("@kn.node\ndef other():\n    return 0\n")
    states = _states(kn.current())
    assert states["scaled"] == states["after"] == "stale"
    assert states["base"] == states["apart"] == "cached"
    _assert_matches_full_recompute(kn.current())


def test_mutating_a_global_in_place_invalidates_the_node_reading_it(cells):
    cells("ROWS = [1, 2]")
    cells("@kn.node\ndef total():\n    CALLS.append('total')\n    return sum(ROWS)\n")
    calls = cells.ns["CALLS"]
    assert kn.run().value("total") == 3
    calls.clear()
    assert kn.run().value("total") == 3 and calls == []
    cells("ROWS.append(3)")
    assert kn.run().value("total") == 6 and calls == ["total"]


def test_a_node_reading_a_mutated_global_is_not_stale_after_an_unchanged_redefinition(cells):
    cells("ROWS = [1]")
    cells("@kn.node\ndef source():\n    return 1\n")
    cells("@kn.node\ndef reads(source):\n    return source + sum(ROWS)\n")
    kn.run()
    cells("ROWS.append(2)")
    assert kn.run().states == {"source": "cached", "reads": "completed"}
    cells("@kn.node\ndef source():\n    return 1\n")  # the same cell run again
    assert _states(kn.current()) == {"source": "cached", "reads": "completed"}
    _assert_matches_full_recompute(kn.current())


def test_redefining_a_helper_or_changing_a_parameter_invalidates_the_callers(cells):
    cells("def helper(x):\n    return x + 1\n")
    cells("@kn.node\ndef uses(n=1):\n    CALLS.append('uses')\n    return helper(n)\n")
    calls = cells.ns["CALLS"]
    assert kn.run().value("uses") == 2
    cells("def helper(x):\n    return x + 100\n")
    calls.clear()
    assert kn.run().value("uses") == 101 and calls == ["uses"]
    calls.clear()
    assert kn.run(n=5).value("uses") == 105 and calls == ["uses"]
    calls.clear()
    assert kn.run(n=5).value("uses") == 105 and calls == []


# -- wiring kept incrementally ----------------------------------------------------------
def test_incremental_wiring_equals_a_full_composition(cells):
    session = kn.current()
    cells("@kn.node\ndef load():\n    return [1, 2, 3]\n")
    cells("@kn.node\ndef missing(load):\n    return load\n")
    cells("@kn.node(inputs={'rows': 'missing'})\ndef early(rows=None):\n    return rows\n")
    _assert_matches_full_recompute(session)
    kn.remove("missing")  # early's input dangles
    _assert_matches_full_recompute(session)
    cells("@kn.node(output='rows')\ndef missing(load):\n    return load\n")  # wired again
    _assert_matches_full_recompute(session)
    cells("@kn.node\ndef total(load, extra=0):\n    return sum(load) + extra\n")
    kn.connect("missing.rows -> total.extra")
    _assert_matches_full_recompute(session)
    cells("@kn.node(output='values')\ndef load():\n    return [4]\n")  # output renamed
    _assert_matches_full_recompute(session)
    kn.add_node("PythonCodeNode", "typed", {"code": "result = 1"})
    cells("@kn.node\ndef uses_typed(typed):\n    return typed\n")
    _assert_matches_full_recompute(session)
    kn.remove("missing")
    _assert_matches_full_recompute(session)
    cells("@kn.node\ndef missing(total):\n    return total\n")
    _assert_matches_full_recompute(session)
    assert kn.run().value("uses_typed") == 1


def test_a_refused_definition_leaves_the_wiring_as_it_was(cells):
    session = kn.current()
    cells("@kn.node\ndef a():\n    return 1\n")
    cells("@kn.node\ndef b(a):\n    return a\n")
    before = (session.edges(), dict(session._wiring.shapes))
    with pytest.raises(KailashException):
        cells("@kn.node\ndef a(b):\n    return b\n")  # a cycle
    assert (session.edges(), session._wiring.shapes) == before
    with pytest.raises(KailashException):
        kn.add_node("NoSuchNode", "c", inputs={"x": "a"})
    assert (session.edges(), session._wiring.shapes) == before
    _assert_matches_full_recompute(session)
    assert kn.run().value("b") == 1


# -- fingerprints reused ------------------------------------------------------------------
def test_dependencies_list_what_the_fingerprint_reads_unless_it_can_mutate(cells):
    cells("LIMIT = 3\nNAMES = ('a', 'b')\nROWS = [1]\n")
    cells("def reads_constants(x=LIMIT):\n    return NAMES[x]\n")
    cells("def reads_list():\n    return ROWS\n")
    cells("class Label(str):\n    pass\nTAG = Label('t')\n")
    cells("def reads_subclass():\n    return TAG\n")
    cells("def reads_bound_method():\n    return ROWS_APPEND\n")
    cells.ns["ROWS_APPEND"] = cells.ns["ROWS"].append
    ns = cells.ns
    dependencies = function_dependencies(ns["reads_constants"])
    assert dependencies is not None and ns["NAMES"] in dependencies
    assert function_dependencies(ns["reads_list"]) is None
    assert function_dependencies(ns["reads_subclass"]) is None
    assert function_dependencies(ns["reads_bound_method"]) is None
    reads = global_reads(ns["reads_constants"])
    assert {name for _, name, _ in reads} == {"NAMES"}
    assert not rebound(reads)
    cells("NAMES = ('a', 'b')")  # an equal value, but another object
    assert rebound(reads)


def test_a_reused_digest_equals_a_fresh_one(cells):
    cells("FACTOR = 2\ndef helper(x):\n    return x * FACTOR\n")
    cells("def node_function(x):\n    return helper(x)\n")
    definition = NodeDefinition.for_function(cells.ns["node_function"])
    first = definition.digest({})
    assert definition.digest({}) == first
    for source in ("FACTOR = 3", "def helper(x):\n    return x * FACTOR + 1\n", "FACTOR = 2"):
        cells(source)
        fresh = NodeDefinition.for_function(cells.ns["node_function"]).digest({})
        assert definition.digest({}) == fresh
    assert fingerprint_function(cells.ns["node_function"]) != fingerprint_function(
        cells.ns["helper"]
    )


def test_a_run_reuses_the_built_workflow_only_while_nothing_changed(cells):
    session = kn.current()
    cells("@kn.node\ndef a():\n    return 1\n")
    cells("@kn.node\ndef b(a):\n    return a + 1\n")
    build = session._wiring.build
    first = build(session.definitions, session.name)
    assert build(session.definitions, session.name) is first
    assert build(session.definitions, session.name, {"a"}) is not first
    cells("@kn.node\ndef b(a):\n    return a + 2\n")
    second = build(session.definitions, session.name)
    assert second is not first and second.nodes["a"] is first.nodes["a"]
    assert kn.run().value("b") == 3
    kn.add_node("PythonCodeNode", "typed", {"code": "result = 1"})
    typed = build(session.definitions, session.name)
    again = build(session.definitions, session.name)
    assert again is not typed and again.nodes["typed"] is not typed.nodes["typed"]


def test_random_edits_keep_the_wiring_equal_to_a_full_recompute(cells):
    """Random definitions, redefinitions, connections, removals and rebound globals:
    after each change made through the session, the incremental state equals a
    recomputation from scratch (a rebound global alone changes nothing until then)."""
    import random

    chooser = random.Random(10)
    names = [f"v{i}" for i in range(8)]
    session = kn.current()
    cells("K0 = 0\nK1 = 1\n")
    for _ in range(150):
        defined = session.node_ids()
        action = chooser.random()
        try:
            if action < 0.6:
                node_id = chooser.choice(names)
                parameters = chooser.sample(names, chooser.randint(0, 3))
                constant = chooser.choice(["K0", "K1", "0"])
                output = chooser.choice([None, None, "out"])
                inputs = {}
                if defined and chooser.random() < 0.3:
                    source = chooser.choice(defined)
                    inputs = {"extra": source}
                    parameters = [*parameters, "extra"]
                arguments = ", ".join(f"{p}=None" for p in dict.fromkeys(parameters))
                decorator = f"@kn.node(inputs={inputs!r}, output={output!r})"
                cells(f"{decorator}\ndef {node_id}({arguments}):\n    return {constant}\n")
            elif action < 0.7 and defined:
                kn.remove(chooser.choice(defined))
            elif action < 0.8 and len(defined) > 1:
                source, target = chooser.sample(defined, 2)
                before = session.edges()
                kn.connect(f"{source} -> {target}.extra")
                if session.edges() == before:
                    continue  # connected already: a no-op, nothing recomputed
            else:
                cells(f"K{chooser.randint(0, 1)} = {chooser.randint(0, 3)}")
                continue
        except (KailashException, kn.NotebookError):
            continue  # refused (a cycle, an unknown input): nothing changed
        _assert_matches_full_recompute(session)
        if chooser.random() < 0.2 and session.node_ids() and not session._wiring.wiring.dangling:
            result = kn.run()
            assert {n: result.value(n) for n in result} == {
                n: cells.ns[d.function.__name__]() for n, d in session.definitions.items()
            }
