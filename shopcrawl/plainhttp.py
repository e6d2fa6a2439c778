"""One urllib opener for the POSTs made outside Scrapy (alert webhooks, OAuth token endpoints).

It follows no redirect: those endpoints answer, and a redirect would re-send a body holding a secret
somewhere else."""

from __future__ import annotations

import urllib.request
from typing import Any


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


OPENER = urllib.request.build_opener(_NoRedirects())
