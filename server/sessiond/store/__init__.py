"""Store logic: each operation is one transaction that reads, asks the rules, and writes.

It speaks to storage only through ``sessiond.storage.interface`` and knows nothing of gRPC.
"""
