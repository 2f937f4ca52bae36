"""Storage: all SQL. An interface (``interface``) and its SQLite and PostgreSQL backends.

Nothing here knows of gRPC, the rules or the store above it.
"""
