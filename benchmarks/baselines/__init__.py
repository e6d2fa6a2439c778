"""Baselines the benchmarks compare shopcrawl with: the seed article's client and a plain Scrapy spider."""
