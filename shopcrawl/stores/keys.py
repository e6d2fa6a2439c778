"""Key hygiene for MongoDB: dict keys from scraped data made safe to store, and restored on read.

Policy. MongoDB refuses, or reads as operators and paths, field names that start with ``$`` or
contain ``.``, and BSON cannot hold a NUL in a name. The keys of ``Sku.props``, ``ShopItem.extras``
and reject payloads are seller or API text, so every such key is escaped before it reaches MongoDB,
at any depth of nested dicts and lists, as the MongoDB manual advises:

- a leading ``$`` becomes U+FF04 ``＄`` (a ``$`` elsewhere in a key is legal and kept);
- every ``.`` becomes U+FF0E ``．``;
- every NUL becomes U+2400 ``␀``.

To make this a round trip, the escape marker U+FF3C ``＼`` (fullwidth reverse solidus) is put before
every literal ``．``, ``␀`` and ``＼`` in a key, and before a literal ``＄`` that starts one. So
``{"a.b": 1}`` is stored as ``{"a．b": 1}`` and a seller's own ``{"a．b": 1}`` as ``{"a＼．b": 1}``;
:func:`unescape_keys` gives both back exactly. Keys without any of these seven characters (almost
all) are stored as they are. Values are never changed, only keys. Readers of the raw collections see
the escaped form; the store's read helpers return the original keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

DOLLAR = "\uff04"  # ＄ for a leading $
DOT = "\uff0e"  # ． for .
NUL = "\u2400"  # ␀ for NUL
ESCAPE = "\uff3c"  # ＼ before a literal replacement character (or a literal ＼)

_ESCAPE_ANYWHERE = {".": DOT, "\x00": NUL}
_LITERAL_ANYWHERE = frozenset((DOT, NUL, ESCAPE))
_NEEDS_WORK = frozenset(".\x00") | _LITERAL_ANYWHERE
_DECODE = {DOT: ".", NUL: "\x00"}

T = TypeVar("T")


def escape_key(key: str) -> str:
    """The stored form of one key (the key itself when it needs nothing)."""
    if not key.startswith(("$", DOLLAR)) and _NEEDS_WORK.isdisjoint(key):
        return key
    out = []
    for position, char in enumerate(key):
        if char in _ESCAPE_ANYWHERE:
            out.append(_ESCAPE_ANYWHERE[char])
        elif char in _LITERAL_ANYWHERE or (position == 0 and char == DOLLAR):
            out.append(ESCAPE + char)
        elif position == 0 and char == "$":
            out.append(DOLLAR)
        else:
            out.append(char)
    return "".join(out)


def unescape_key(key: str) -> str:
    """The original key of a stored one: ``unescape_key(escape_key(k)) == k`` for every string."""
    if not key.startswith(DOLLAR) and _LITERAL_ANYWHERE.isdisjoint(key):
        return key
    out = []
    position, end = 0, len(key)
    while position < end:  # advances by one or two characters a turn
        char = key[position]
        if char == ESCAPE and position + 1 < end:
            out.append(key[position + 1])
            position += 2
            continue
        if position == 0 and char == DOLLAR:
            out.append("$")
        else:
            out.append(_DECODE.get(char, char))
        position += 1
    return "".join(out)


def escape_keys(value: T) -> tuple[T, int]:
    """``value`` with every dict key escaped, through nested dicts, lists and tuples, and the number
    of keys whose stored form differs. Containers are copied; the input is not modified."""
    escaped = 0

    def escape(key: str) -> str:
        nonlocal escaped
        stored = escape_key(key)
        escaped += stored != key
        return stored

    return _walk(value, escape), escaped


def unescape_keys(value: T) -> T:
    """The inverse of :func:`escape_keys`."""
    return _walk(value, unescape_key)


def _walk(value: T, key_fn: Callable[[str], str]) -> T:
    """A copy of ``value`` with ``key_fn`` applied to every dict key; non-string keys become ``str``
    first, as JSON would make them. Depth is bounded by the interpreter's recursion limit."""
    walked: object = value
    if isinstance(value, dict):
        walked = {key_fn(k if isinstance(k, str) else str(k)): _walk(v, key_fn) for k, v in value.items()}
    elif isinstance(value, list):
        walked = [_walk(v, key_fn) for v in value]
    elif isinstance(value, tuple):
        walked = tuple(_walk(v, key_fn) for v in value)
    return cast(T, walked)
