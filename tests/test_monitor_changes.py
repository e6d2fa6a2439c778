"""The changes between two runs, on observations built by hand: every kind, and what is not a change."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shopcrawl.monitor.changes import Change, ReportError, diff, percent, pick_runs
from shopcrawl.stores.base import RunRecord
from shopcrawl.stores.sqlite import Observation, TierObservation

AT = datetime(2026, 11, 1, tzinfo=UTC)


def obs(num_iid: int, sku_id: int, price: str, quantity: int, run: str = "r") -> Observation:
    fen = int(price.replace(".", "")) if "." in price else int(price) * 100
    return Observation(run, "taobao", "s", num_iid, sku_id, price, fen, quantity, None, AT)


def shop(*rows: Observation) -> dict[int, dict[int, Observation]]:
    out: dict[int, dict[int, Observation]] = {}
    for row in rows:
        out.setdefault(row.num_iid, {})[row.sku_id] = row
    return out


def kinds(changes: list[Change]) -> list[tuple]:
    return [(c.kind, c.num_iid, c.sku_id, c.old, c.new, c.pct) for c in changes]


def test_every_kind_once_and_nothing_for_what_did_not_change():
    base = shop(
        obs(1, 0, "10.00", 5),  # price drop, item without SKUs
        obs(2, 21, "20.00", 3), obs(2, 22, "30.00", 4),  # one SKU rises
        obs(3, 0, "9.90", 2),  # sells out
        obs(4, 41, "5.00", 0), obs(4, 42, "5.00", 0),  # restocked (one SKU)
        obs(5, 51, "8.00", 1), obs(5, 52, "8.00", 6),  # one SKU sells out, the item still has stock
        obs(6, 0, "1.00", 1),  # delisted
        obs(7, 0, "7.00", 7),  # unchanged
    )  # fmt: skip
    current = shop(
        obs(1, 0, "9.00", 5),
        obs(2, 21, "20.00", 3), obs(2, 22, "33.00", 4),
        obs(3, 0, "9.90", 0),
        obs(4, 41, "5.00", 0), obs(4, 42, "5.00", 9),
        obs(5, 51, "8.00", 0), obs(5, 52, "8.00", 6),
        obs(7, 0, "7.00", 7),
        obs(8, 0, "2.00", 1),  # new
        obs(9, 0, "3.00", 1),  # relisted: seen by an earlier complete run
    )  # fmt: skip
    found = diff("taobao", "s", "run-2", base=base, current=current, seen_before={9}, titles={1: "一号"})
    assert kinds(found) == [
        ("new", 8, None, None, None, None),
        ("relisted", 9, None, None, None, None),
        ("delisted", 6, None, None, None, None),
        ("price_drop", 1, None, "10.00", "9.00", -10.0),
        ("price_rise", 2, 22, "30.00", "33.00", 10.0),
        ("sold_out", 3, None, 2, 0, None),
        ("restocked", 4, None, 0, 9, None),
        ("sold_out", 5, 51, 1, 0, None),
    ]
    assert found[3].title == "一号" and all(c.run_id == "run-2" for c in found)
    assert found[3].as_dict() == {
        "kind": "price_drop", "platform": "taobao", "seller_id": "s", "num_iid": 1, "title": "一号",
        "run_id": "run-2", "old": "10.00", "new": "9.00", "pct": -10.0,
    }  # fmt: skip


def test_1688_tiers_change_on_their_own():
    tier = lambda q, price, fen: TierObservation("r", "1688", "s", 1, q, price, fen, AT)  # noqa: E731
    base = shop(obs(1, 0, "19.90", 10))
    found = diff(
        "1688", "s", "run-2", base=base, current=base, seen_before=set(),
        base_tiers={1: {2: tier(2, "19.9", 1990), 10: tier(10, "18", 1800)}},
        current_tiers={1: {2: tier(2, "19.9", 1990), 10: tier(10, "17.1", 1710)}},
    )  # fmt: skip
    assert [(c.kind, c.start_quantity, c.old, c.new, c.pct) for c in found] == [
        ("price_drop", 10, "18", "17.1", -5.0)
    ]


def test_a_change_has_a_stable_key_that_names_its_run_and_place():
    one = Change("price_drop", "taobao", "s", 1, "t", "run-2", sku_id=5, old="2", new="1", pct=-50.0)
    same = Change(
        "price_drop", "taobao", "s", 1, "other title", "run-2", sku_id=5, old="2", new="1", pct=-50.0
    )
    assert one.key == same.key == "taobao|s|run-2|price_drop|1|5|"
    assert one.key != Change("price_drop", "taobao", "s", 1, "t", "run-3", sku_id=5).key


def test_percent_is_exact_to_two_decimals():
    assert percent(300, 200) == -33.33 and percent(300, 400) == 33.33 and percent(0, 5) is None
    assert percent(1990, 1991) == 0.05


def run(run_id: str, day: int) -> RunRecord:
    return RunRecord(run_id, "taobao", "s", datetime(2026, 11, day, tzinfo=UTC), status="complete")


def test_runs_compared_are_the_last_two_or_the_one_since_names():
    runs = [run("a", 1), run("b", 3), run("c", 5)]
    assert [r.run_id for r in pick_runs(runs, None)] == ["b", "c"]
    assert [r.run_id for r in pick_runs(runs, "a")] == ["a", "c"]
    assert [r.run_id for r in pick_runs(runs, "2026-11-04T00:00:00+00:00")] == ["b", "c"]
    with pytest.raises(ReportError, match="only one complete run"):
        pick_runs(runs[:1], None)
    with pytest.raises(ReportError, match="no complete run"):
        pick_runs([], None)
    with pytest.raises(ReportError, match="neither a complete run"):
        pick_runs(runs, "yesterday")
    with pytest.raises(ReportError, match="latest complete run itself"):
        pick_runs(runs, "c")


def test_report_csv_cells_are_never_formulas_and_numbers_stay_numbers():
    import csv
    import io

    from shopcrawl.monitor.report import write_csv

    hostile = Change(
        "price_drop", "taobao", "s", 1, "=cmd|'/C calc'!A0", "run-2", old="10.00", new="9.00", pct=-10.0
    )
    out = io.StringIO()
    write_csv([hostile], out)
    (row,) = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert row["title"] == "'=cmd|'/C calc'!A0" and row["pct"] == "-10.0" and row["old"] == "10.00"
