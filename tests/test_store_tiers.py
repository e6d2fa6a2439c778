"""1688 price tiers in every store (test_store_contract.py style: SQLite, and MongoDB in both item write
shapes): the item keeps its tiers and minimum order; each tier is observed once per run, in the same
write as the item; the SQLite schema gains ``tier_observations`` on 3 -> 4 and on an older version-4 file."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import replace

import pytest

from shopcrawl.items import PriceTier
from shopcrawl.stores import SqliteStore
from shopcrawl.stores.null import NullStore
from shopcrawl.stores.sqlite import SCHEMA_VERSION
from tests.test_store_sqlite import T0, make_item

TIERS = [PriceTier(2, "12.5", 1250), PriceTier(10, "11.8", 1180), PriceTier(100, "9.9", 990)]


def tiered(num_iid: int, run_id: str = "run-1"):
    return replace(make_item(num_iid, run_id), platform="1688", price_tiers=list(TIERS), min_order_quantity=2)


def test_tiers_round_trip_and_are_observed_once_per_run(store, clock):
    batch = [tiered(1), tiered(2), make_item(3)]  # a Taobao item has no tiers
    store.write_items(batch)
    store.write_items(batch)  # the same run writing again observes nothing new
    (one, _two, three) = sorted(store.iter_items("s1"), key=lambda item: item.num_iid)
    assert one.price_tiers == TIERS and one.min_order_quantity == 2
    assert three.price_tiers == [] and three.min_order_quantity is None
    observed = store.tier_observations_for_run("run-1")
    assert [(o.num_iid, o.start_quantity, o.price, o.price_fen) for o in observed] == [
        (n, t.start_quantity, t.price, t.price_fen) for n in (1, 2) for t in TIERS
    ]
    assert {type(o.price_fen) for o in observed} == {int}
    assert {o.platform for o in observed} == {"1688"} and observed[0].observed_at == T0
    clock.now = T0.replace(hour=9)
    cheaper = replace(tiered(1, "run-2"), price_tiers=[PriceTier(2, "12", 1200)])
    store.write_items([cheaper])
    assert [(o.start_quantity, o.price_fen) for o in store.tier_observations_for_run("run-2")] == [(2, 1200)]
    assert len(store.tier_observations_for_run("run-1")) == 6
    (latest,) = [item for item in store.iter_items("s1") if item.num_iid == 1]
    assert latest.price_tiers == [PriceTier(2, "12", 1200)]


def test_null_store_keeps_no_tiers():
    store = NullStore()
    store.write_items([tiered(1)])
    assert store.tier_observations_for_run("run-1") == []


def _tables(path) -> set[str]:
    with closing(sqlite3.connect(path)) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


@pytest.mark.parametrize("version", [3, SCHEMA_VERSION])
def test_sqlite_adds_the_table_to_an_older_file(tmp_path, version):
    path = tmp_path / "old.db"
    store = SqliteStore(path)
    store.open()
    store.close()
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("DROP TABLE tier_observations")
        if version == 3:
            conn.execute("ALTER TABLE items DROP COLUMN price_tiers")
            conn.execute("ALTER TABLE items DROP COLUMN min_order_quantity")
        conn.execute(f"PRAGMA user_version = {version}")
        conn.commit()
    assert "tier_observations" not in _tables(path)
    store = SqliteStore(path)
    store.open()
    store.write_items([tiered(1)])
    assert len(store.tier_observations_for_run("run-1")) == 3
    store.close()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_sqlite_writes_tiers_in_the_item_transaction(tmp_path):
    """A tier row that cannot be written (a fractional fen) rolls the item back with it."""
    store = SqliteStore(tmp_path / "shop.db")
    store.open()
    bad = replace(tiered(1), price_tiers=[PriceTier(2, "12.5", 1250.5)])  # type: ignore[arg-type]
    with pytest.raises(Exception, match=r"CHECK|price_fen"):
        store.write_items([bad])
    assert store.count_items() == 0
    assert store.observations_for_run("run-1") == []
    store.close()
