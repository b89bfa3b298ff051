"""Quick fuzz budget for the suite (the long run is `make fuzz`, tests/fuzz/run_fuzz.py).

Hypothesis draws structured Workspace / InferenceSet / ConfigMap / kaito-gen.yaml documents (valid,
and with fields swapped, dropped or duplicated) and mutations of the real examples and golden inputs.
The property: the input renders, or every diagnostic is positioned; never an uncaught exception,
and no input takes more than 5 s (checked in-process here, with the worker guard in the long run).
"""

from __future__ import annotations

import random
import time

import fuzzlib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

QUICK = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

seeds = st.integers(min_value=0, max_value=2**32 - 1)


def _check(role: str, data: bytes) -> None:
    start = time.perf_counter()
    outcome, detail = fuzzlib.run_one(role, data)
    took = time.perf_counter() - start
    assert outcome in ("rendered", "refused"), (outcome, detail, data[:400])
    assert took < 5.0, (took, data[:400])


@QUICK
@given(kind=st.sampled_from(fuzzlib.KINDS), valid=st.booleans(), seed=seeds)
def test_structured_documents_render_or_are_refused_with_positions(kind: str, valid: bool, seed: int) -> None:
    data = fuzzlib.structured(random.Random(seed), kind, valid)
    _check("config" if kind == "Config" else "source", data)


@QUICK
@given(
    source=st.sampled_from(range(len(fuzzlib.seed_texts()))),
    mutations=st.lists(st.sampled_from(sorted(fuzzlib.MUTATIONS)), min_size=1, max_size=3),
    seed=seeds,
)
def test_mutated_examples_render_or_are_refused_with_positions(
    source: int, mutations: list[str], seed: int
) -> None:
    rng = random.Random(seed)
    data = fuzzlib.seed_texts()[source]
    for name in mutations:
        data = fuzzlib.MUTATIONS[name](data, rng)
    _check("source", data)


@QUICK
@given(seed=seeds)
def test_mutated_configs_are_refused_with_positions(seed: int) -> None:
    rng = random.Random(seed)
    _check("config", fuzzlib.mutate(fuzzlib.structured(rng, "Config", valid=True), rng, rng.randint(1, 3)))
