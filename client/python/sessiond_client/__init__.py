"""Python client of sessiond: a channel to the daemon and the generated stub, ready to use.

from sessiond_client import connect
with connect() as client:
    key = client.build_session_key(SessionSource(platform="telegram", chat_id="42")).session_key

For a gateway written against the reference's in-process ``SessionStore``, the drop-in:

from sessiond_client import SessionStoreClient
store = SessionStoreClient()          # instead of SessionStore(sessions_dir, config)
entry = store.get_or_create_session(source)

A daemon's TCP port asks for TLS, a bearer token, or both (its Unix socket for neither):

store = SessionStoreClient("sessiond:50051", token=token, tls=TLS(root_certificates=ca_pem))
"""

from sessiond_client.channel import TLS
from sessiond_client.client import SessiondClient, connect, default_target
from sessiond_client.errors import SessiondError
from sessiond_client.store_client import SessionStoreClient

__all__ = ["TLS", "SessionStoreClient", "SessiondClient", "SessiondError", "connect", "default_target"]
