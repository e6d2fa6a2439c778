"""LocalLedger, the listing ledger of a single-process crawl: an item listed twice is claimed once,
the same page claims its items again, and past its memory bound it keeps its owners on disk."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from shopcrawl.ledger import LocalLedger


@pytest.fixture(params=["in-memory", "spilled"])
def ledger(request):
    ledger = LocalLedger() if request.param == "in-memory" else LocalLedger(memory_items=0)
    yield ledger
    ledger.close()


def test_an_item_listed_by_two_pages_is_claimed_once_by_the_first(ledger):
    assert ledger.claim("w1|100", [1, 2, 3]) == {1, 2, 3}
    assert ledger.claim("w2|1", [3, 4]) == {4}  # 3 sits on the window boundary: w1|100 has it
    assert ledger.listed_count() == 4
    assert ledger.spilled is (ledger._memory_items == 0)


def test_the_same_page_processed_again_claims_the_same_items(ledger):
    ledger.claim("p1", [1, 2])
    ledger.claim("p2", [2, 3])
    assert ledger.claim("p1", [1, 2]) == {1, 2}
    assert ledger.claim("p2", [3, 2, 3]) == {3}  # a repeated id counts once
    assert ledger.listed_count() == 3


def test_past_its_bound_the_ledger_moves_to_disk_and_keeps_every_claim():
    ledger = LocalLedger(memory_items=250)
    owned = [ledger.claim(f"page|{p}", range(p * 100, p * 100 + 100)) for p in range(2)]
    assert not ledger.spilled and ledger.listed_count() == 200
    owned.append(ledger.claim("page|2", range(150, 300)))  # crosses the bound; 150..199 are page 1's
    assert ledger.spilled
    assert owned[2] == set(range(200, 300))
    assert ledger.claim("page|0", range(0, 100)) == set(range(100))  # claims made in memory survive
    assert ledger.claim("page|1", [150, 199, 300]) == {150, 199, 300}
    assert ledger.listed_count() == 301
    ledger.close()
    assert ledger.listed_count() == 301  # the run's final record reads it after the spider closed


def test_memory_stays_bounded_however_many_items_are_listed():
    """200,000 listed ids: a dict of them would hold ~20 MiB; the spilled ledger holds its dict of at
    most 1,000 and SQLite's page cache (outside Python's heap, 2 MiB)."""
    ledger = LocalLedger(memory_items=1_000)
    gc.collect()
    tracemalloc.start()
    try:
        for page in range(1_000):
            first = 10**11 + page * 200
            assert len(ledger.claim(f"None|{page}", range(first, first + 200))) == 200
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert ledger.spilled and ledger.listed_count() == 200_000
    assert held < 1024 * 1024
    ledger.close()
