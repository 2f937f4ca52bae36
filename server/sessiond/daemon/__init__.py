"""The daemon's wiring: configuration, the gRPC server and its services, maintenance jobs.

The one place that builds the layers below and hands each only the values it uses.
"""
