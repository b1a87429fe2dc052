"""flowc.targets.base.json_text writes exactly what json.dumps(indent=2) writes."""

from __future__ import annotations

import json
import random

import pytest

from flowc.targets.base import json_text

HOSTILE = {
    "z": [1, 2.5, -0.0, 1e300, 1e-7, float("nan"), float("inf"), float("-inf"), 10**30],
    "a": {"": "", "nested": {"empty_list": [], "empty_dict": {}, "t": (1, "x", ())}},
    'quotes " and \\ ': "line\nbreak\r\ttab \x00 \x7f \u2028 é 日本 \U0001f600 \ud800",
    "bools": [True, False, None],
    "deep": [[[{"k": [{}]}]]],
    "ümlaut key": "ascii? no",
}


@pytest.mark.parametrize("sort_keys", [False, True])
@pytest.mark.parametrize("ensure_ascii", [False, True])
def test_same_text_as_json_dumps(sort_keys: bool, ensure_ascii: bool) -> None:
    for value in (HOSTILE, [], {}, "s", 1, 1.5, None, True, [HOSTILE, [HOSTILE]]):
        want = json.dumps(value, indent=2, sort_keys=sort_keys, ensure_ascii=ensure_ascii)
        assert json_text(value, sort_keys=sort_keys, ensure_ascii=ensure_ascii) == want


def test_non_string_keys_coerced_as_json_does() -> None:
    for value in ({1: "a", 2: {3: []}}, {1.5: 0, float("inf"): 1}, {True: 1, False: 2}, {None: 2}):
        for sort_keys in (False, True):
            want = json.dumps(value, indent=2, sort_keys=sort_keys)
            assert json_text(value, sort_keys=sort_keys) == want
    with pytest.raises(TypeError):
        json_text({(1, 2): 0})


def test_not_json_able_fails_like_json() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        json_text({"a": [object()]})


def test_random_documents() -> None:
    rng = random.Random(7)
    atoms = ["", "x", 'ü\n"', 0, -3, 2.25, 1e20, None, True, False]

    def make(depth: int) -> object:
        r = rng.random()
        if depth > 4 or r < 0.4:
            return rng.choice(atoms)
        if r < 0.7:
            return [make(depth + 1) for _ in range(rng.randrange(4))]
        return {rng.choice(["k", "b", "é", "a b", ""]) + str(i): make(depth + 1) for i in range(4)}

    for _ in range(300):
        doc = make(0)
        for sort_keys in (False, True):
            for ensure_ascii in (False, True):
                want = json.dumps(doc, indent=2, sort_keys=sort_keys, ensure_ascii=ensure_ascii)
                assert json_text(doc, sort_keys=sort_keys, ensure_ascii=ensure_ascii) == want
