"""Kailash-compatible import paths (``kailash.api.*``) as aliases of kailash_nb modules."""

__all__: list[str] = []
