"""The Redis key layout: one hash tag (one Redis Cluster slot) per seller's runs, per app key's rate
limit and per grant's refresh lock, whatever characters a seller id holds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from redis.crc import key_slot

from shopcrawl.auth.grants import Grant
from shopcrawl.auth.keeper import lock_key
from shopcrawl.distributed import keys as K

REPO = Path(__file__).resolve().parent.parent
SELLERS = ["s1", "my-shop", "a:b:c", "shop{1}", "{", "}", "}{", "{}", "%7B", "%", "店铺", "x*?[y]\\"]


def slot(key: str) -> int:
    return key_slot(key.encode())


def run_keys(seller: str, run_id: str = "run-a") -> list[str]:
    keys = K.RunKeys(seller, run_id)
    return [
        K.current_key(seller),
        *keys.named(),
        keys.heartbeat("w1"),
        keys.leases("w1"),
        K.runs_prefix(seller) + run_id + ":closed",  # the JOIN script's check
    ]


def test_the_layout_of_a_plain_seller_and_app_key():
    keys = K.RunKeys("my-shop", "my-shop-20260101T000000Z-abc123")
    assert K.current_key("my-shop") == "shopcrawl:{my-shop}:current"
    assert keys.queue == "shopcrawl:{my-shop}:run:my-shop-20260101T000000Z-abc123:queue"
    assert keys.heartbeat("w") == "shopcrawl:{my-shop}:run:my-shop-20260101T000000Z-abc123:hb:w"
    assert keys.leases("w") == "shopcrawl:{my-shop}:run:my-shop-20260101T000000Z-abc123:leases:w"
    tag = K.app_tag("app-1")
    assert K.gcra_key("app-1") == f"shopcrawl:{{app:{tag}}}:gcra"
    assert K.window_key("app-1") == f"shopcrawl:{{app:{tag}}}:window"
    assert K.ban_key("app-1", "*") == f"shopcrawl:{{app:{tag}}}:ban:*"
    assert K.calls_prefix("app-1") == f"shopcrawl:{{app:{tag}}}:calls:"
    assert K.auth_lock_key("d1g3st") == "shopcrawl:{auth:d1g3st}:lock"


@pytest.mark.parametrize("seller", SELLERS)
def test_every_key_of_a_sellers_runs_is_in_the_slot_of_its_tag(seller):
    tag = K.seller_tag(seller)
    assert tag.count("{") == tag.count("}") == 1  # braces in the id are encoded: the tag ends at its own
    assert {slot(key) for key in run_keys(seller)} == {key_slot(tag[1:-1].encode())}
    assert K.parse_run_meta_key(K.RunKeys(seller, "r:1{x}").meta) == (seller, "r:1{x}")


def test_distinct_sellers_never_share_a_key():
    per_seller = [set(run_keys(seller)) for seller in SELLERS]
    assert len(set().union(*per_seller)) == sum(len(keys) for keys in per_seller)
    assert K.seller_tag("{") != K.seller_tag("%7B")


def test_an_empty_seller_id_is_refused():
    with pytest.raises(ValueError):
        K.current_key("")


def test_only_run_meta_keys_parse():
    meta = K.RunKeys("s1", "run-a").meta
    for key in [
        meta.removesuffix("meta") + "queue",
        K.current_key("s1"),
        K.gcra_key("a"),
        "shopcrawl:run:s1:r:meta",
    ]:
        assert K.parse_run_meta_key(key) is None
    assert K.parse_run_meta_key(K.runs_prefix("s1") + ":meta") is None  # no run id


def test_every_rate_limit_key_of_an_app_key_is_in_one_slot():
    for app_key in ["app-1", "sandbox-app-key"]:
        keys = [K.gcra_key(app_key), K.window_key(app_key), K.calls_prefix(app_key) + "1767225600"]
        keys += [K.ban_key(app_key, method) for method in ("*", "taobao.item.get", "alibaba.product.get")]
        assert len({slot(key) for key in keys}) == 1
    assert slot(K.gcra_key("app-1")) != slot(K.gcra_key("app-2"))


def test_the_refresh_lock_is_named_by_a_hash_in_its_own_tag():
    grant = Grant(api="top", app_key="app-1", seller="shop{1}", access_token="t0ken", expires_at=0.0)
    key = lock_key(grant)
    assert re.fullmatch(r"shopcrawl:\{auth:[0-9a-f]{24}\}:lock", key)
    assert "app-1" not in key and "shop{1}" not in key and "t0ken" not in key


def test_no_module_but_keys_py_names_a_redis_key():
    """Every key name is built in keys.py: a literal key anywhere else escapes the layout above."""
    literal = re.compile(r"""["'{`]shopcrawl:[^\s"']""")
    found = [
        f"{path.relative_to(REPO)}:{n}"
        for path in sorted((REPO / "shopcrawl").rglob("*.py"))
        if path.name != "keys.py" or path.parent.name != "distributed"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if literal.search(line)
    ]
    assert found == []
