"""The benchmark harness of sessiond (issues 5 and 15): ``python -m bench.run [--quick | --full]``.

It drives the real daemon as a subprocess and compares it with two empty echo gRPC servers (the
physical limit of one RPC here) and with the in-process reference store; ``run`` is the entry.
``python -m bench.profile`` shows where the daemon spends its time under one of its scenarios.
"""
