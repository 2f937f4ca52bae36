"""Operator tools run beside the daemon: ``sessiond admin`` and the import of a Hermes home."""
