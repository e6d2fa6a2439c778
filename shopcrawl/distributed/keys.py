"""Every Redis key shopcrawl uses. Run-scoped keys live under ``shopcrawl:run:<seller>:<run_id>:``.

Nothing secret is ever stored: no session, app secret or signature. The rate-limit keys are
named by a hash of the app key, never the key itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

ROOT = "shopcrawl"
RUN_TTL_SECONDS = 7 * 24 * 3600  # a run's keys expire a week after its last activity


def current_key(seller_id: str) -> str:
    """Points at the run in progress for a seller; deleted when the run closes."""
    return f"{ROOT}:current:{seller_id}"


def app_tag(app_key: str) -> str:
    return hashlib.sha256(app_key.encode()).hexdigest()[:16]


def gcra_key(app_key: str) -> str:
    return f"{ROOT}:gcra:{app_tag(app_key)}"


def ban_key(app_key: str, method: str) -> str:
    """``method`` is an API method name, or ``*`` for a ban of the whole app key."""
    return f"{ROOT}:ban:{app_tag(app_key)}:{method}"


def window_key(app_key: str) -> str:
    """Send times of the last second, for the hard per-second cap."""
    return f"{ROOT}:window:{app_tag(app_key)}"


def calls_prefix(app_key: str = "*") -> str:
    """Keys ``<prefix><unix second>`` count the calls sent in that second, for ``shopcrawl status``;
    the throttle script appends the second (``*`` matches every app key)."""
    return f"{ROOT}:calls:{app_key if app_key == '*' else app_tag(app_key)}:"


@dataclass(frozen=True)
class RunKeys:
    seller_id: str
    run_id: str

    @property
    def prefix(self) -> str:
        return f"{ROOT}:run:{self.seller_id}:{self.run_id}:"

    def __getattr__(self, name: str) -> str:  # keys.queue, keys.dupefilter, ...
        if name in _RUN_KEYS:
            return self.prefix + name
        raise AttributeError(name)

    def leases(self, worker: str) -> str:
        return f"{self.prefix}leases:{worker}"

    def heartbeat(self, worker: str) -> str:
        return f"{self.prefix}hb:{worker}"


# queue: zset of "<lease id>|<json request>" by score; dupefilter: set of fingerprints; workers:
# set of worker ids; owner: hash num_iid -> listing page that claimed it; meta: hash of run facts;
# counters: hash of summed worker stats; done: set of num_iids written to the store (stored or
# rejected); seq: FIFO counter; closed: set once by the closing worker.
_RUN_KEYS = frozenset(
    {"queue", "dupefilter", "workers", "owner", "meta", "counters", "done", "seq", "closed"}
)
