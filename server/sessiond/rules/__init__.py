"""The rules: session keys, reset policy, the agent's prompt, platform names, transcript replay.

Pure functions of their inputs (the clock is passed in): nothing of gRPC, SQL or the store, so
they are tested in process and byte for byte against the reference.
"""
