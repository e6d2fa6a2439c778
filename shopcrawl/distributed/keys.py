"""Every Redis key shopcrawl uses, laid out for Redis Cluster.

The part of a key in ``{...}`` (its hash tag) alone decides its cluster slot, and every Lua script
and transaction touches the keys of one tag only:

- ``shopcrawl:{<seller>}:current`` and ``shopcrawl:{<seller>}:run:<run_id>:<name>``: one seller's
  current-run pointer and all its runs' keys (``queue``, ``hb:<worker>``, ``leases:<worker>``, ...);
- ``shopcrawl:{app:<app tag>}:gcra`` / ``:window`` / ``:ban:<method>`` / ``:calls:<second>``: the
  rate limit and bans of one app key;
- ``shopcrawl:{auth:<digest>}:lock``: the refresh lock of one grant.

Redis ends a tag at its first ``}``, so a seller id is written into its tag with ``%``, ``{`` and
``}`` percent-encoded (``%25``, ``%7B``, ``%7D``): any seller id makes one tag, and two seller ids
never make the same one.

Nothing secret is ever stored: no session, app secret or signature. The rate-limit keys are
named by a hash of the app key, never the key itself.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

ROOT = "shopcrawl"
# The fleet's job queue and schedule (shopcrawl.fleet.jobs): one tag, one Redis Cluster slot.
FLEET_PREFIX = f"{ROOT}:{{fleet}}:"
RUN_TTL_SECONDS = 7 * 24 * 3600  # a run's keys expire a week after its last activity
CLOSED_TTL_SECONDS = 3600  # ... and an hour after it was closed

_ESCAPES = {"%": "%25", "{": "%7B", "}": "%7D"}
_UNESCAPES = {code: char for char, code in _ESCAPES.items()}


def seller_tag(seller_id: str) -> str:
    """The hash tag of a seller's keys, braces included."""
    if not seller_id:
        raise ValueError("a seller id is required")  # an empty tag would not group the keys
    return "{" + re.sub("[%{}]", lambda m: _ESCAPES[m.group()], seller_id) + "}"


def current_key(seller_id: str) -> str:
    """Points at the run in progress for a seller; deleted when the run closes."""
    return f"{ROOT}:{seller_tag(seller_id)}:current"


def runs_prefix(seller_id: str) -> str:
    """``<prefix><run_id>:<name>`` is a key of one of the seller's runs."""
    return f"{ROOT}:{seller_tag(seller_id)}:run:"


def run_meta_pattern(seller_id: str | None = None) -> str:
    """A SCAN pattern matching the ``meta`` key of every run (of one seller, if given)."""
    tag = "{*}" if seller_id is None else re.sub(r"([*?\[\]\\])", r"\\\1", seller_tag(seller_id))
    return f"{ROOT}:{tag}:run:*:meta"


def parse_run_meta_key(key: str) -> tuple[str, str] | None:
    """(seller id, run id) of a run's ``meta`` key; None for any other key."""
    head = f"{ROOT}:{{"
    end = key.find("}", len(head))
    if not key.startswith(head) or end < 0:
        return None
    rest = key[end + 1 :]
    if not (rest.startswith(":run:") and rest.endswith(":meta")) or len(rest) <= len(":run::meta"):
        return None
    seller = re.sub("%(25|7B|7D)", lambda m: _UNESCAPES[m.group()], key[len(head) : end])
    return seller, rest[len(":run:") : -len(":meta")]


def app_tag(app_key: str) -> str:
    return hashlib.sha256(app_key.encode()).hexdigest()[:16]


def _app(app_key: str) -> str:
    return f"{ROOT}:{{app:{app_tag(app_key)}}}"


def gcra_key(app_key: str) -> str:
    return f"{_app(app_key)}:gcra"


def ban_key(app_key: str, method: str) -> str:
    """``method`` is an API method name, or ``*`` for a ban of the whole app key."""
    return f"{_app(app_key)}:ban:{method}"


def window_key(app_key: str) -> str:
    """Send times of the last second, for the hard per-second cap."""
    return f"{_app(app_key)}:window"


def calls_prefix(app_key: str = "*") -> str:
    """Keys ``<prefix><unix second>`` count the calls sent in that second, for ``shopcrawl status``;
    the throttle script appends the second (``*`` matches every app key)."""
    app = f"{ROOT}:{{app:*}}" if app_key == "*" else _app(app_key)
    return f"{app}:calls:"


def auth_lock_key(digest: str) -> str:
    """The lock held while one grant (named by ``digest``, a hash) is refreshed."""
    return f"{ROOT}:{{auth:{digest}}}:lock"


@dataclass(frozen=True)
class RunKeys:
    seller_id: str
    run_id: str

    @property
    def prefix(self) -> str:
        return f"{runs_prefix(self.seller_id)}{self.run_id}:"

    def __getattr__(self, name: str) -> str:  # keys.queue, keys.dupefilter, ...
        if name in _RUN_KEYS:
            return self.prefix + name
        raise AttributeError(name)

    def named(self) -> list[str]:
        """Every key of the run but the per-worker ones (``hb:`` and ``leases:`` of each worker
        in ``workers``)."""
        return [self.prefix + name for name in sorted(_RUN_KEYS)]

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
