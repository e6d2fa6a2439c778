"""A fleet: long-running workers that take shop jobs from Redis, and a schedule that queues each shop
once per interval. Every key lives under the ``{fleet}`` hash tag (one Redis Cluster slot)."""
