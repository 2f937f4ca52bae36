"""Identity links (LinkIdentity, UnlinkIdentity, ListIdentityLinks): the operator's map from
platform user ids to the person behind them, and the DM keys that follow it.

A link changes no entry and no transcript: the next DM from a linked id is keyed by its identity
(when links are on for its call), and after an unlink by its platform again, so history stays
where it was written. Each change is one transaction with its event.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sessiond.model import Event, EventKind, IdentityLink, Source
from sessiond.rules import identities, keys
from sessiond.rules.settings import Settings
from sessiond.storage.interface import Storage, Transaction

Deadline = float | None


class IdentityLinks:
    """Part of ``SessionStore``: needs its ``storage`` and ``clock``."""

    storage: Storage
    clock: Callable[[], datetime]

    def link_identity(
        self, platform: str, user_id: str, identity: str, deadline: Deadline = None
    ) -> tuple[IdentityLink, str | None, bool]:
        """Link the user id to ``identity``: (the link, the identity it had before, whether it changed)."""

        def work(tx: Transaction) -> tuple[IdentityLink, str | None, bool]:
            stored = tx.identity_link(platform, user_id)
            if stored is not None and stored.identity == identity:
                return stored, None, False
            previous = stored.identity if stored else None
            link = IdentityLink(platform, user_id, identity, self.clock())
            tx.link_identity(link, previous)
            reason = "link" if previous is None else "relink"
            self._link_event(tx, "identity_linked", link.platform, link.user_id, identity, reason)
            return link, previous, True

        return self.storage.write(work, deadline)

    def unlink_identity(self, platform: str, user_id: str, deadline: Deadline = None) -> str | None:
        """Remove the user id's link; the identity it had (None: it had none, nothing changed)."""

        def work(tx: Transaction) -> str | None:
            identity = tx.unlink_identity(platform, user_id)
            if identity is not None:
                self._link_event(tx, "identity_unlinked", platform, user_id, identity, "unlink")
            return identity

        return self.storage.write(work, deadline)

    def identity_links(self, identity: str | None, after: tuple[str, str], limit: int) -> list[IdentityLink]:
        return self.storage.read(lambda tx: tx.identity_links(identity, after, limit))

    def session_key(self, source: Source, settings: Settings) -> str:
        """The key of a source under these settings; a linked DM's is its identity's (a read)."""
        if not _links_apply(source, settings):
            return keys.build_session_key(source, settings.key_options, settings.mapped, settings.namespace)
        return self.storage.read(lambda tx: key_in(tx, source, settings))

    def _link_event(
        self, tx: Transaction, kind: EventKind, platform: str, user_id: str, identity: str, reason: str
    ) -> None:
        """A link change belongs to no key: its event names the user id and the identity."""
        linked_user = identities.shown(platform, user_id)
        event = Event(kind, "", "", 0, reason=reason, identity=identity, linked_user=linked_user)
        tx.add_event(event, self.clock())


def _links_apply(source: Source, settings: Settings) -> bool:
    return settings.link_identities and identities.linked_user(source) is not None


def key_in(tx: Transaction, source: Source, settings: Settings, path: str = "source") -> str:
    """The key of a source (``path`` in the request), its DM's identity read in ``tx`` when links
    are on for the call."""
    identity = None
    linked = identities.linked_user(source) if settings.link_identities else None
    if linked is not None and (link := tx.identity_link(*linked)) is not None:
        identity = link.identity
    options, mapped = settings.key_options, settings.mapped
    return keys.build_session_key(source, options, mapped, settings.namespace, identity, path)
