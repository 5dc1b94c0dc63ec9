"""What keeping the notebook's cached outputs safe from in-place changes costs.

A cached output must never reach a later run changed by a node (or a cell) that
mutated it in place. Three ways to guarantee it, measured here on the same outputs:

- digest (what the notebook does): ``content_digest`` of the outputs when the node
  completes, again before they are reused; a changed output runs its node again;
- copies: a deep copy when the node completes (the cache's snapshot) and a deep copy
  for every run that reuses it;
- freezing: converting the outputs to read-only types (dict -> ``MappingProxyType``,
  list -> tuple) when the node completes.

Two parts:

1. per output shape: milliseconds of each approach for one output (median of 5);
2. the example notebooks (``notebooks/*.ipynb``, run cell by cell in an in-process IPython
   shell; the publish cells of 04 are left out, they start a server): time spent in
   ``kn.run``/``%kailash run`` and, at the same points, in digests (really done), deep
   copies and freezing (done aside, on the same outputs, to compare).

Run: ``python benchmarks/bench_cache_guard.py``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from timing import median_time

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# Cells of 04-publish that start a preview server and call it over HTTP.
SKIPPED_CELLS = ("publish", "httpx", "response")


def median_ms(action: Callable[[], Any], runs: int = 5) -> float:
    """Median milliseconds of ``action`` over ``runs`` runs after one warm-up."""
    return median_time(action, runs) * 1000


def freeze(value: Any) -> Any:
    """``value`` with dicts and lists turned read-only, recursively."""
    if isinstance(value, dict):
        return types.MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item) for item in value)
    return value


def shapes() -> dict[str, Any]:
    """Typical node outputs, small to large."""
    rows = [{"id": i, "name": f"n{i}", "amount": i * 1.5, "ok": True} for i in range(100_000)]
    found: dict[str, Any] = {
        "scalar {'result': 42}": {"result": 42},
        "1,000 rows (dicts of 4 fields)": {"result": rows[:1000]},
        "100,000 rows (dicts of 4 fields)": {"result": rows},
        "list of 1,000,000 floats": {"result": [float(i) for i in range(1_000_000)]},
    }
    with contextlib.suppress(ImportError):
        import numpy

        found["numpy array, 10,000,000 float64"] = {"result": numpy.arange(10_000_000.0)}
    with contextlib.suppress(ImportError):
        import pandas

        found["pandas DataFrame, 1,000,000 x 4"] = {"result": pandas.DataFrame(rows * 10)}
    return found


def per_shape() -> None:
    from kailash_nb.notebook.fingerprint import content_digest

    print(f"{'one output':<36} {'digest':>9} {'deepcopy':>9} {'freeze':>9}   (ms)")
    for name, value in shapes().items():
        digest = median_ms(lambda value=value: content_digest(value))
        copied = median_ms(lambda value=value: copy.deepcopy(value))
        frozen = median_ms(lambda value=value: freeze(value))
        print(f"{name:<36} {digest:>9.3f} {copied:>9.3f} {frozen:>9.3f}")


class Meter:
    """Seconds spent in runs, digests, and (aside) copies and freezing."""

    def __init__(self) -> None:
        self.run = self.digest = self.copy = self.freeze = 0.0
        self.digests = 0


def instrument(meter: Meter) -> None:
    """Wrap the session's and the cache's digests and ``WorkflowSession.run``."""
    from kailash_nb.notebook import cache, session

    real = session.content_digest

    def measured(value: Any) -> str | None:
        started = time.perf_counter()
        digest = real(value)
        meter.digest += time.perf_counter() - started
        meter.digests += 1
        started = time.perf_counter()
        with contextlib.suppress(Exception):  # uncopyable: a copy could not protect it
            copy.deepcopy(value)
        meter.copy += time.perf_counter() - started
        started = time.perf_counter()
        freeze(value)
        meter.freeze += time.perf_counter() - started
        return digest

    session.content_digest = measured
    cache.content_digest = measured
    run = session.WorkflowSession.run

    def timed_run(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return run(self, *args, **kwargs)
        finally:
            meter.run += time.perf_counter() - started

    session.WorkflowSession.run = timed_run  # type: ignore[method-assign]


def notebooks() -> None:
    from IPython.core.interactiveshell import InteractiveShell

    import kailash_nb as kn

    meter = Meter()
    instrument(meter)
    shell = InteractiveShell.instance()
    print(
        f"\n{'notebook (all runs)':<28} {'runs ms':>9} {'digests':>8} {'digest ms':>10} "
        f"{'deepcopy ms':>12} {'freeze ms':>10}"
    )
    for path in NOTEBOOKS:
        kn.reset()
        shell.reset(new_session=True)
        before = (meter.run, meter.digest, meter.copy, meter.freeze, meter.digests)
        cwd = os.getcwd()
        os.chdir(path.parent)
        try:
            for cell in json.loads(path.read_text())["cells"]:
                source = "".join(cell["source"])
                if cell["cell_type"] != "code" or any(s in source for s in SKIPPED_CELLS):
                    continue
                with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                    shell.run_cell(source, store_history=True)
        finally:
            os.chdir(cwd)
        run, digest, copied, frozen, count = (
            now - then
            for now, then in zip(
                (meter.run, meter.digest, meter.copy, meter.freeze, meter.digests),
                before,
                strict=True,
            )
        )
        print(
            f"{path.stem:<28} {run * 1000:>9.2f} {count:>8} {digest * 1000:>10.3f} "
            f"{copied * 1000:>12.3f} {frozen * 1000:>10.3f}"
        )


def main() -> None:
    """Print both tables."""
    sys.path.insert(0, str(ROOT))
    per_shape()
    notebooks()


if __name__ == "__main__":
    main()
