"""Monitoring: what changed between complete runs of a shop, trends, reports and alerts."""
