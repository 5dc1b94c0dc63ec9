"""The gateway's request handlers, one module per resource; :func:`routes` is the table
the application is assembled from."""

from kailash_nb.middleware.handlers.route_table import routes

__all__ = ["routes"]
