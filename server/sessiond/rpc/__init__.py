"""The gRPC edge: servicers (protobuf to domain calls and back), conversion, errors mapped to
statuses once, authentication and metrics. Nothing below imports it.
"""
