"""Obtaining, storing and refreshing the sellers' authorisations (TOP sessions, 1688 access tokens)."""
