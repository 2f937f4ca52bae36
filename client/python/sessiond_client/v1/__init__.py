"""Generated protobuf and gRPC stubs of the sessiond.v1 contract (``make proto``; do not edit)."""
