"""sessiond: the session store of chat-agent gateways, as a gRPC sidecar over SQLite or PostgreSQL."""
