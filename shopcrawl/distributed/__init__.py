"""Distributed crawling over Redis (``REDIS_URL`` set): leased requests, a shared listing ledger,
one shared rate limit, and a run that ends once, when no work is queued or leased anywhere."""
