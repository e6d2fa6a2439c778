"""Key escaping for MongoDB: literal stored forms, depth, counts, and the escape marker itself.

The exhaustive round trip over short keys lives in test_store_mongo.py; these pin the stored form."""

from __future__ import annotations

import copy

import pytest

from shopcrawl.sandbox.synth import HOSTILE_EXTRAS
from shopcrawl.stores.keys import escape_key, escape_keys, unescape_key, unescape_keys


def unsafe_keys(value) -> list[str]:
    """Keys MongoDB would refuse or read as an operator or a dotted path."""
    if isinstance(value, dict):
        own = [k for k in value if k.startswith("$") or "." in k or "\x00" in k]
        return own + [k for v in value.values() for k in unsafe_keys(v)]
    if isinstance(value, list | tuple):
        return [k for v in value for k in unsafe_keys(v)]
    return []


@pytest.mark.parametrize(
    ("key", "stored"),
    [
        ("颜色分类", "颜色分类"),
        ("price$", "price$"),  # a $ that does not start the key is legal
        ("$set", "＄set"),
        ("$", "＄"),
        ("$$x", "＄$x"),
        ("a.b", "a．b"),
        ("1.5L", "1．5L"),
        ("...", "．．．"),
        ("nul\x00key", "nul␀key"),
        # a seller's own fullwidth characters get the marker, so they come back as they were
        ("a．b", "a＼．b"),
        ("＄set", "＼＄set"),
        ("a＄b", "a＄b"),  # only a leading ＄ could be mistaken for an escaped $
        ("␀", "＼␀"),
        ("back＼slash", "back＼＼slash"),
        ("＼", "＼＼"),
        ("$a.b\x00", "＄a．b␀"),
    ],
)
def test_stored_form_of_a_key(key, stored):
    assert escape_key(key) == stored
    assert unescape_key(stored) == key


def test_a_trailing_marker_in_a_stored_key_is_read_as_itself():
    assert unescape_key("abc＼") == "abc＼"


def test_escaped_and_literal_keys_never_collide():
    keys = ["a.b", "a．b", "a＼．b", "$x", "＄x", "＼＄x"]
    assert len({escape_key(k) for k in keys}) == len(keys)


def test_round_trip_at_depth():
    value: object = {"leaf.key": "$value.stays"}
    for depth in range(60):
        value = {f"${depth}.lvl": [value, ({"x\x00": depth},)]}
    stored, count = escape_keys(value)
    assert unsafe_keys(stored) == []
    assert count == 1 + 60 * 2
    assert unescape_keys(stored) == value


def test_count_is_the_number_of_keys_changed_including_repeats():
    value = {"ok": 1, "a.b": [{"a.b": 1}, {"a.b": 2}], "$set": {"fine": 1}, "also": {"a．b": 3}}
    stored, count = escape_keys(value)
    assert count == 5
    assert stored == {
        "ok": 1,
        "a．b": [{"a．b": 1}, {"a．b": 2}],
        "＄set": {"fine": 1},
        "also": {"a＼．b": 3},
    }


def test_nothing_to_escape_counts_zero_and_gives_an_equal_copy():
    value = {"颜色分类": "黑色", "尺码": ["XL", {"库存": 5}]}
    stored, count = escape_keys(value)
    assert (stored, count) == (value, 0)
    stored["尺码"][1]["库存"] = 0
    assert value["尺码"][1]["库存"] == 5  # a copy: the caller's data is not changed


def test_values_are_never_changed():
    stored, _ = escape_keys({"k": "$set a.b \x00 ＼", "l": ["$x", "y.z"]})
    assert stored == {"k": "$set a.b \x00 ＼", "l": ["$x", "y.z"]}


def test_non_string_keys_become_strings():
    stored, count = escape_keys({7: {None: 1, 1.5: 2}})
    assert stored == {"7": {"None": 1, "1．5": 2}}
    assert count == 1


def test_hostile_extras_are_stored_safely_and_come_back_exactly():
    original = copy.deepcopy(HOSTILE_EXTRAS)
    stored, count = escape_keys(HOSTILE_EXTRAS)
    assert unsafe_keys(stored) == []
    assert count == 6  # $set, $where, a.b, nul key, and $inc, x.y under props
    assert unescape_keys(stored) == original
    assert original == HOSTILE_EXTRAS
