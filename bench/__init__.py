"""The benchmark harness of sessiond (issue 5): ``python -m bench.run [--quick | --full]``.

It drives the real daemon as a subprocess and compares it with an empty echo gRPC server (the
physical limit of one RPC here) and with the in-process reference store; ``run`` is the entry.
"""
