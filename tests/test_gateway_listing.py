"""The gateway listing plans, driven against a small in-memory item_search_shop (sorts, price bands,
depth cap), processing pages in shuffled order as distributed workers would."""

from __future__ import annotations

import json
import math
import random
from decimal import Decimal
from pathlib import Path

import pytest

from shopcrawl.platforms.base import Call, EnvelopeError
from shopcrawl.platforms.gateway.listing import PriceWalk, SortUnion

FIXTURES = Path(__file__).parent / "fixtures" / "gateway"


class Gateway:
    """Items (id, price, sales); page_size x max_pages per query; answers as the dialect decodes them."""

    def __init__(self, items: list[tuple[int, str, int]], page_size: int, max_pages: int) -> None:
        self.items, self.page_size, self.max_pages = items, page_size, max_pages
        self.calls = 0

    def answer(self, call: Call) -> dict:
        self.calls += 1
        sort = call.params["sort"]
        key = {
            "bid": lambda i: (Decimal(i[1]), i[0]),
            "_bid": lambda i: (Decimal(i[1]), i[0]),
            "sale": lambda i: (i[2], i[0]),
            "_sale": lambda i: (i[2], i[0]),
            "new": lambda i: (i[0] * 7919 % 10007, i[0]),
        }[sort]
        found = sorted(self.items, key=key, reverse=sort.startswith("_"))
        if "start_price" in call.params:
            found = [i for i in found if Decimal(i[1]) >= Decimal(call.params["start_price"])]
        page, size = int(call.params["page"]), self.page_size
        page_count = min(self.max_pages, math.ceil(len(found) / size))
        if page > page_count:
            return {"items": {"item": []}, "no_result": True}
        rows = [{"num_iid": str(i[0]), "price": i[1]} for i in found[(page - 1) * size : page * size]]
        items = {
            "page": str(page),
            "page_size": size,
            "total_results": str(len(found)),
            "page_count": page_count,
        }
        return {"items": {**items, "item": rows}}


def run(lister, gateway: Gateway, seed: int = 0, limit: int = 1000):
    """Process every planned call in a shuffled order; the ledger counts each item once."""
    rng = random.Random(seed)
    queue, listed, declared, gaps, keys = [lister.first()], set(), None, [], []
    while queue:
        assert len(keys) < limit
        call = queue.pop(rng.randrange(len(queue)))
        page = lister.on_page(call, gateway.answer(call), len(listed))
        keys.append(page.page_key)
        declared = page.declared_total if page.declared_total is not None else declared
        listed |= {int(row["num_iid"]) for row in page.rows}
        queue += page.follow
        gaps += [page.gap] if page.gap else []
    return declared, listed, gaps, keys


def shop(n: int, seed: int = 1, prices: int = 10_000) -> list[tuple[int, str, int]]:
    rng = random.Random(seed)
    return [
        (1000 + k, f"{rng.randrange(1, prices)}.{rng.randrange(100):02d}", rng.randrange(50))
        for k in range(n)
    ]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_1688_walks_the_price_axis_to_every_item_within_the_budget(seed):
    gateway = Gateway(shop(1000, seed), page_size=20, max_pages=10)  # 5x the depth cap of 200
    declared, listed, gaps, keys = run(PriceWalk("s"), gateway, seed)
    assert declared == 1000 and len(listed) == 1000 and gaps == []
    assert gateway.calls <= 1.2 * math.ceil(1000 / 20) + 5
    assert len(keys) == len(set(keys))  # one page key per (query, page)


def test_1688_items_at_one_boundary_price_are_listed_by_both_windows():
    items = [(1000 + k, "5.00" if 190 <= k < 230 else f"{k}.00", 0) for k in range(400)]
    declared, listed, gaps, _ = run(PriceWalk("s"), Gateway(items, 20, 10))
    assert declared == 400 and len(listed) == 400 and gaps == []


def test_1688_more_items_at_one_price_than_the_cap_skips_past_it_loudly(caplog):
    items = [(1000 + k, "9.99", 0) for k in range(250)] + [(5000 + k, f"{20 + k}.00", 0) for k in range(50)]
    declared, listed, gaps, _ = run(PriceWalk("s"), Gateway(items, 20, 10))
    assert declared == 300 and len(listed) == 250  # 50 items at 9.99 cannot be paged
    assert gaps and "9.99" in gaps[0]
    assert "coverage will show the gap" in caplog.text


def test_1688_a_small_shop_takes_its_pages_and_nothing_more():
    gateway = Gateway(shop(45), 20, 10)
    declared, listed, _, _ = run(PriceWalk("s"), gateway)
    assert (declared, len(listed), gateway.calls) == (45, 45, 3)


@pytest.mark.parametrize(("n", "calls"), [(400, 20), (300, 15 + 1), (200, 10), (250, 10 + 3 + 1)])
def test_taobao_bid_and_its_reverse_reach_twice_the_cap(n, calls):
    gateway = Gateway(shop(n), page_size=20, max_pages=10)
    declared, listed, gaps, _ = run(SortUnion("s"), gateway)
    assert declared == n and len(listed) == n and gaps == []
    assert gateway.calls == min(calls, 20) if n == 400 else gateway.calls <= calls


def test_taobao_past_twice_the_cap_adds_orders_until_they_bring_nothing_and_states_the_gap():
    gateway = Gateway(shop(800), page_size=20, max_pages=10)
    declared, listed, gaps, _ = run(SortUnion("s"), gateway)
    assert declared == 800 and 400 < len(listed) < 800
    assert gaps == ["the gateway's depth cap (10 pages of 20 items per query) and its sort orders "
                    "(bid, _bid, new, sale, _sale)"]  # fmt: skip
    assert gateway.calls <= 20 + 3 * 10 + 1


def test_taobao_other_orders_stop_as_soon_as_the_distinct_items_reach_the_total():
    gateway = Gateway(shop(430), page_size=20, max_pages=10)
    declared, listed, _, _ = run(SortUnion("s"), gateway, seed=3)
    assert declared == 430 and len(listed) > 400
    lister = SortUnion("s")
    extra = lister.call("sale", 2, seen=400, total=430)
    answer = gateway.answer(extra)
    assert lister.on_page(extra, answer, 430).follow == []  # reached: nothing more
    assert [c.params["page"] for c in lister.on_page(extra, answer, 401).follow] == ["3"]


def test_taobao_an_order_that_brings_nothing_for_three_pages_gives_way_to_the_next():
    gateway = Gateway(shop(430), page_size=20, max_pages=10)
    lister = SortUnion("s")
    extra = lister.call("new", 4, seen=410, total=430, idle=2)
    [follow] = lister.on_page(extra, gateway.answer(extra), 410).follow
    assert (follow.params["sort"], follow.params["page"]) == ("sale", "1")


def test_a_page_processed_twice_plans_the_same_calls():
    gateway = Gateway(shop(1000), 20, 10)
    lister = PriceWalk("s")
    first = lister.first()
    one, two = (
        lister.on_page(first, gateway.answer(first), 0),
        lister.on_page(first, gateway.answer(first), 5),
    )
    assert (one.page_key, one.follow, one.declared_total) == (two.page_key, two.follow, two.declared_total)
    json.dumps([call.meta for call in one.follow])  # the plan rides in the distributed queue


def test_the_page_size_is_read_from_each_answer():
    gateway = Gateway(shop(100), page_size=7, max_pages=50)
    declared, listed, _, _ = run(SortUnion("s"), gateway)
    assert (declared, len(listed), gateway.calls) == (100, 100, 15)


@pytest.mark.parametrize("name", ["bad_total", "bad_items_shape"])
def test_a_listing_body_of_another_shape_is_an_envelope_error(name):
    payload = json.loads((FIXTURES / f"{name}.json").read_text())
    with pytest.raises(EnvelopeError):
        SortUnion("s").on_page(SortUnion("s").first(), payload, 0)


def test_a_page_count_above_50_is_still_capped_at_50_pages():
    from shopcrawl.platforms.gateway.listing import Answer

    rows = [{"num_iid": str(k), "price": "1.00"} for k in range(18)]
    answer = Answer({"items": {"page_size": 18, "total_results": "3041", "page_count": 153, "item": rows}})
    assert (answer.reach, answer.capped) == (50, True)
    answer = Answer({"items": {"page_size": "18", "total_results": 40, "item": rows}})  # no page_count
    assert (answer.reach, answer.capped) == (3, False)
