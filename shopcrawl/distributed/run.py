"""One worker's view of a distributed run: join, heartbeat, leases, the listing ledger, the end.

A request handed to a worker is leased, not deleted. The lease is acknowledged once the
response's callback has finished and every item or reject it produced has been written to the
store. A worker whose heartbeat expires loses its leases: any worker moves them back to the queue.
The run is over when nothing is queued and nothing is leased anywhere; the first worker to see
that closes the run record, once.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any
from weakref import WeakKeyDictionary

import redis

from shopcrawl.distributed import keys as K
from shopcrawl.distributed import lua

logger = logging.getLogger(__name__)

HEARTBEAT_TTL_MS = 10_000  # a worker silent this long is dead; its leases go back to the queue
CURRENT_TTL_S = 3600  # a run no worker has touched for an hour is abandoned: the next crawl starts anew


class RunCoordinator:
    def __init__(self, server: redis.Redis, seller_id: str) -> None:
        self.server = server
        self.seller_id = seller_id
        self.worker = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.run_id = ""
        self.started_at = ""
        self.epoch = ""
        self.keys = K.RunKeys(seller_id, "")
        self._scripts = {name: server.register_script(getattr(lua, name)) for name in _SCRIPTS}
        # lease -> num_iids still to be stored; leases whose callback output is complete
        self._waiting: dict[str, set[int]] = defaultdict(set)
        self._by_item: dict[int, set[str]] = defaultdict(set)
        self._output_done: set[str] = set()
        self._request_tokens: WeakKeyDictionary[object, int] = WeakKeyDictionary()
        self._request_seq = 0
        self._pushed: dict[str, float] = {}

    def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return self._scripts[name](keys=keys, args=args)

    # -- membership ---------------------------------------------------------------------------

    def join(self, proposed_run_id: str, started_at: str) -> tuple[str, str]:
        """Join the seller's run in progress, or start one. Returns (run_id, started_at ISO)."""
        current = K.current_key(self.seller_id)
        args = [proposed_run_id, started_at, self.worker, 0, CURRENT_TTL_S, K.runs_prefix(self.seller_id)]
        run_id = self._run("JOIN", [current], args)
        self.run_id = run_id.decode() if isinstance(run_id, bytes) else str(run_id)
        self.keys = K.RunKeys(self.seller_id, self.run_id)
        self._register(started_at)
        logger.info("Worker %s joined run %s of seller %s", self.worker, self.run_id, self.seller_id)
        return self.run_id, self.started_at

    def _register(self, started_at: str) -> None:
        started, epoch = self._run(
            "REGISTER",
            [self.keys.meta, self.keys.workers, self.keys.heartbeat(self.worker), self.keys.closed],
            [started_at, self.worker, HEARTBEAT_TTL_MS, K.RUN_TTL_SECONDS, secrets.token_hex(8)],
        )
        self.started_at, self.epoch = _text(started), _text(epoch)

    def check_state(self) -> str:
        """``ok``; or, when Redis lost this run's state: ``recovered`` for the one worker that made the
        run's state anew (it must redo the listing), ``reset`` for the others. Either way this
        worker's leases are gone, so it forgets what it was waiting to acknowledge."""
        if not self.run_id:
            return "ok"
        epoch = self.server.hget(self.keys.meta, "epoch")
        if epoch is not None and _text(epoch) == self.epoch:
            return "ok"
        won = 0
        if epoch is None:
            keys = [self.keys.meta, K.current_key(self.seller_id), self.keys.closed]
            args = [self.run_id, self.started_at, secrets.token_hex(8), K.RUN_TTL_SECONDS, CURRENT_TTL_S]
            epoch, won = self._run("RECOVER", keys, args)
        self._waiting.clear()
        self._by_item.clear()
        self._output_done.clear()
        self._request_tokens.clear()
        self._pushed.clear()  # the shared counters are gone: push this worker's totals again
        self._register(self.started_at)
        return "recovered" if int(won) else "reset"

    def beat(self) -> None:
        keys = [self.keys.heartbeat(self.worker), self.keys.workers, self.keys.closed]
        keys.append(K.current_key(self.seller_id))
        args = [self.worker, HEARTBEAT_TTL_MS, self.run_id, CURRENT_TTL_S, K.RUN_TTL_SECONDS]
        self._run("BEAT", keys, args)

    def reclaim_dead(self) -> int:
        moved = int(self._run("RECLAIM", self._reclaim_keys(), [self.keys.prefix, "", K.RUN_TTL_SECONDS]))
        if moved:
            logger.warning("Requeued %d requests leased by dead workers", moved)
        return moved

    def _reclaim_keys(self) -> list[str]:
        return [self.keys.workers, self.keys.queue, self.keys.closed]

    def pending(self) -> tuple[int, int]:
        queued, leased = self._run("PENDING", [self.keys.workers, self.keys.queue], [self.keys.prefix])
        return int(queued), int(leased)

    def requeue_orphans(self) -> int:
        """Put back this worker's leases when it holds no request: a lease whose pop reply was lost
        in a Redis outage was never handed to this worker, and would otherwise block the run's end."""
        moved = int(
            self._run("RECLAIM", self._reclaim_keys(), [self.keys.prefix, self.worker, K.RUN_TTL_SECONDS])
        )
        self.server.sadd(self.keys.workers, self.worker)
        if moved:
            logger.warning("Requeued %d leases this worker never received (lost in a Redis outage)", moved)
        return moved

    def leave(self) -> None:
        """Give this worker's unfinished leases back to the queue and deregister."""
        moved = int(
            self._run("RECLAIM", self._reclaim_keys(), [self.keys.prefix, self.worker, K.RUN_TTL_SECONDS])
        )
        self.server.srem(self.keys.workers, self.worker)
        self.server.delete(self.keys.heartbeat(self.worker))
        if moved:
            logger.info("Returned %d unfinished requests to the queue", moved)

    def try_close(self) -> bool:
        """True for exactly one worker of the run: the one that closes the run record. Every key of
        the run then expires within ``CLOSED_TTL_SECONDS`` (``shopcrawl status`` shows it closed
        meanwhile)."""
        keys = [self.keys.closed, K.current_key(self.seller_id), self.keys.workers, *self.keys.named()]
        args = [self.worker, self.run_id, K.CLOSED_TTL_SECONDS, self.keys.prefix]
        return bool(self._run("CLOSE", keys, args))

    # -- listing ledger -----------------------------------------------------------------------

    def claim(self, page_key: str, num_iids: Iterable[int]) -> set[int]:
        ids = [str(n) for n in num_iids]
        if not ids:
            return set()
        mine = self._run("CLAIM", [self.keys.owner, self.keys.closed], [page_key, K.RUN_TTL_SECONDS, *ids])
        return {int(n) for n in mine}

    def listed_count(self) -> int:
        return int(self.server.hlen(self.keys.owner))

    def compact(self) -> None:
        """For the closing worker, once the run record has what it needs from Redis (see COMPACT)."""
        k = self.keys
        self._run("COMPACT", [k.meta, k.owner, k.done, k.dupefilter, k.queue, k.seq], [])

    def set_declared_total(self, total: int) -> None:
        self.server.hsetnx(self.keys.meta, "declared_total", total)

    def declared_total(self) -> int | None:
        value = self.server.hget(self.keys.meta, "declared_total")
        return None if value is None else int(value)

    def set_listing_gap(self, text: str) -> None:
        """Shared with every worker: the one that closes the run may not be the one that found it."""
        self.server.hsetnx(self.keys.meta, "listing_gap", text)

    def listing_gap(self) -> str:
        value = self.server.hget(self.keys.meta, "listing_gap")
        return "" if value is None else (value.decode() if isinstance(value, bytes) else str(value))

    # -- acknowledgements -----------------------------------------------------------------------

    def expect(self, lease: str, num_iid: int) -> None:
        self._waiting[lease].add(num_iid)
        self._by_item[num_iid].add(lease)

    def output_done(self, lease: str) -> None:
        self._output_done.add(lease)
        if not self._waiting.get(lease):
            self._ack([lease])

    def expect_request(self, lease: str, request: object) -> None:
        """A request the leased callback produced: the lease also waits until it is in the queue.

        Scrapy hands a callback's outputs to its workers through a queue, so the callback can end
        while requests it yielded are not scheduled yet; acknowledging the lease then would let a
        worker see nothing queued or leased and close the run early."""
        self._request_seq -= 1  # negative: never an item id
        self._request_tokens[request] = self._request_seq
        self.expect(lease, self._request_seq)

    def request_scheduled(self, request: object) -> None:
        """The request is in the queue (or was a duplicate): its lease no longer waits for it."""
        token = self._request_tokens.pop(request, None)
        if token is not None:
            self._ack(self._settle([token]))

    def stored(self, num_iids: list[int], counters: Mapping[str, float]) -> None:
        """Items (or their rejects) are durably in the store: ack the leases now complete."""
        complete = self._settle(num_iids)
        self.push_counters(counters, accounted=num_iids)  # before the acks: a closed run's counters are final
        self._ack(complete)

    def _settle(self, num_iids: list[int]) -> list[str]:
        """Mark what each lease waited for as done; the leases with nothing left to wait for."""
        complete = []
        for num_iid in num_iids:
            for lease in self._by_item.pop(num_iid, ()):
                waiting = self._waiting.get(lease)
                if waiting is not None:
                    waiting.discard(num_iid)
                    if not waiting and lease in self._output_done:
                        complete.append(lease)
        return complete

    def _ack(self, leases: list[str]) -> None:
        if leases:
            self.server.hdel(self.keys.leases(self.worker), *leases)
        for lease in leases:
            self._waiting.pop(lease, None)
            self._output_done.discard(lease)

    def unacked(self) -> int:
        return len(self._output_done) + len(self._waiting)

    # -- counters -------------------------------------------------------------------------------

    def push_counters(self, counters: Mapping[str, float], accounted: Iterable[int] = ()) -> None:
        """Add what this worker counted since its last push to the run's shared counters, and the
        items it wrote to the run's set of items accounted for (per item, not per delivery)."""
        ids = [str(n) for n in accounted]
        changes: list[str | int | float] = []
        for key, value in counters.items():
            delta = value - self._pushed.get(key, 0)
            if delta:
                changes += [key, "i", int(delta)] if isinstance(value, int) else [key, "f", float(delta)]
                self._pushed[key] = value
        keys = [self.keys.counters, self.keys.done, self.keys.closed]
        self._run("COUNT", keys, [K.RUN_TTL_SECONDS, len(ids), *ids, *changes])

    def counters(self) -> dict[str, float]:
        raw: dict[bytes, bytes] = self.server.hgetall(self.keys.counters)  # type: ignore[assignment]
        out: dict[str, float] = {}
        for key, value in raw.items():
            text = value.decode()
            out[key.decode()] = float(text) if "." in text else int(text)
        return out


_SCRIPTS = ("JOIN", "BEAT", "CLOSE", "REGISTER", "RECOVER", "RECLAIM", "PENDING", "CLAIM", "COUNT", "COMPACT")


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")
