// Handoffs against the REAL daemon (HandoffSession, the lineage's handoffs and the handed_off
// events): one `sessiond serve` child of its own. A Telegram DM's session continues in a Discord
// DM: the destination key points at it, the destination's former session ends, both keys get an
// event. Every test uses chats of its own, and every wait for events is for the events themselves,
// with a deadline (helpers/events.js).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { ConflictError, FailedPreconditionError, NotFoundError, SessionStoreClient, Status } from '../src/index.js';
import { rejectsWith } from './helpers/assertions.js';
import { startDaemon } from './helpers/daemon.js';
import { takeEvents } from './helpers/events.js';

/** @type {import('./helpers/daemon.js').Daemon} */
let daemon;
/** @type {SessionStoreClient} */
let store;
/** A client of the agent namespace "research". */
/** @type {SessionStoreClient} */
let research;

/**
 * A DM source of its own on `platform`, so tests do not share session keys.
 * @param {string} platform
 */
function freshDm(platform) {
  const id = `${Math.floor(Math.random() * 1e9)}`;
  return { platform, chatId: id, chatType: /** @type {const} */ ('dm'), userId: id, userName: 'Alice' };
}

/**
 * The session's summary, as search finds it (ended ones too).
 * @param {string} sessionId
 */
async function summary(sessionId) {
  const { sessions } = await store.searchSessions(sessionId, { includeArchived: true });
  return sessions.find((each) => each.sessionId === sessionId) ?? null;
}

/**
 * The fields a test compares of a handed_off event.
 * @param {import('../src/index.js').SessionEvent} event
 */
function handoffShape({ kind, sessionKey, sessionId, previousSessionId, reason, otherSessionKey }) {
  return { kind, sessionKey, sessionId, previousSessionId, reason, otherSessionKey };
}

/**
 * Events by key, so a test does not depend on which of the two events of a handoff comes first.
 * @param {import('../src/index.js').SessionEvent[]} events
 */
function byKey(events) {
  return [...events].map(handoffShape).sort((a, b) => a.sessionKey.localeCompare(b.sessionKey));
}

before(async () => {
  daemon = await startDaemon();
  store = new SessionStoreClient(daemon.address, { timeoutMs: 5000 });
  research = new SessionStoreClient(daemon.address, { timeoutMs: 5000, namespace: 'research' });
});

after(async () => {
  store?.close();
  research?.close();
  await daemon?.stop();
});

describe('handoffSession', () => {
  it("continues a Telegram DM's session in a Discord DM (targetSource): the destination's old session is replaced, both keys see it", async () => {
    const telegram = freshDm('telegram');
    const discord = freshDm('discord');
    const source = await store.getOrCreateSession(telegram);
    await store.appendMessages(source.sessionId, [{ role: 'user', content: 'started on telegram', message_id: 'h-1' }]);
    const former = await store.getOrCreateSession(discord);
    assert.notEqual(former.sessionId, source.sessionId);

    const watch = store.watchEvents({ fromNow: true, kinds: ['handed_off'] });
    try {
      await watch.ready;
      const result = await store.handoffSession(source.sessionKey, { targetSource: discord });
      assert.deepEqual(Object.keys(result).sort(), ['entry', 'replacedSessionId']);
      assert.equal(result.entry.sessionKey, `agent:main:discord:dm:${discord.chatId}`);
      assert.equal(result.entry.sessionKey, former.sessionKey);
      assert.equal(result.entry.sessionId, source.sessionId, 'the destination points at the session');
      assert.equal(result.replacedSessionId, former.sessionId);

      // Both keys point at it (the source was not released), and the Discord DM goes on with it.
      assert.equal((await store.getSession(source.sessionKey))?.sessionId, source.sessionId);
      assert.equal((await store.getSession(former.sessionKey))?.sessionId, source.sessionId);
      const continued = await store.getOrCreateSession(discord);
      assert.equal(continued.sessionId, source.sessionId);
      await store.appendMessages(continued.sessionId, [{ role: 'user', content: 'going on on discord', message_id: 'h-2' }]);
      assert.deepEqual(await store.loadTranscript(source.sessionId), [
        { role: 'user', content: 'started on telegram' },
        { role: 'user', content: 'going on on discord' },
      ]);

      // The destination's former session ended, for the handoff.
      const ended = await summary(former.sessionId);
      assert.equal(ended?.endReason, 'handoff');
      assert.ok(ended?.endedAt instanceof Date);

      // One event on each key, each naming the other end.
      const events = await takeEvents(watch, 2);
      assert.deepEqual(byKey(events), byKey([
        /** @type {any} */ ({
          kind: 'handed_off',
          sessionKey: former.sessionKey,
          sessionId: source.sessionId,
          previousSessionId: former.sessionId,
          reason: 'handoff_in',
          otherSessionKey: source.sessionKey,
        }),
        /** @type {any} */ ({
          kind: 'handed_off',
          sessionKey: source.sessionKey,
          sessionId: source.sessionId,
          previousSessionId: events.find((event) => event.sessionKey === source.sessionKey)?.previousSessionId ?? null,
          reason: 'handoff_out',
          otherSessionKey: former.sessionKey,
        }),
      ]));
      for (const event of events) assert.deepEqual([event.identity, event.linkedUser, event.fencingToken], [null, null, null]);

      // The session's lineage records it.
      const lineage = await store.getSessionLineage(source.sessionId);
      assert.equal(lineage?.handoffs.length, 1);
      const [handoff] = lineage?.handoffs ?? [];
      assert.deepEqual(
        { ...handoff, time: undefined },
        { fromSessionKey: source.sessionKey, toSessionKey: former.sessionKey, replacedSessionId: former.sessionId, time: undefined },
      );
      assert.ok(handoff.time instanceof Date && Math.abs(handoff.time.getTime() - Date.now()) < 60_000, `time ${handoff.time}`);
      assert.deepEqual((await store.getSessionLineage(former.sessionId))?.handoffs, [], 'the replaced session was not handed off');
    } finally {
      watch.close();
    }
  });

  it('releaseSource removes the source entry (its next message starts a new session); targetSessionKey names a key with an entry', async () => {
    const telegram = freshDm('telegram');
    const discord = freshDm('discord');
    const source = await store.getOrCreateSession(telegram);
    const destination = await store.getOrCreateSession(discord);
    const watch = store.watchEvents({ fromNow: true, kinds: ['handed_off'] });
    try {
      await watch.ready;
      const result = await store.handoffSession(source.sessionKey, {
        targetSessionKey: destination.sessionKey,
        releaseSource: true,
        expectedVersion: source.version,
      });
      assert.equal(result.entry.sessionKey, destination.sessionKey);
      assert.equal(result.entry.sessionId, source.sessionId);
      assert.equal(result.replacedSessionId, destination.sessionId);
      assert.equal(await store.getSession(source.sessionKey), null, 'the source entry is gone');
      const again = await store.getOrCreateSession(telegram);
      assert.notEqual(again.sessionId, source.sessionId, 'the source chat starts over');
      assert.equal((await store.getSession(destination.sessionKey))?.sessionId, source.sessionId, 'the session stays, at the destination');

      const events = byKey(await takeEvents(watch, 2));
      const out = events.find((event) => event.sessionKey === source.sessionKey);
      const into = events.find((event) => event.sessionKey === destination.sessionKey);
      assert.deepEqual([out?.reason, out?.otherSessionKey], ['released', destination.sessionKey]);
      assert.deepEqual([into?.reason, into?.otherSessionKey, into?.previousSessionId], ['handoff_in', source.sessionKey, destination.sessionId]);
      const lineage = await store.getSessionLineage(source.sessionId);
      assert.deepEqual(
        lineage?.handoffs.map(({ fromSessionKey, toSessionKey, replacedSessionId }) => ({ fromSessionKey, toSessionKey, replacedSessionId })),
        [{ fromSessionKey: source.sessionKey, toSessionKey: destination.sessionKey, replacedSessionId: destination.sessionId }],
      );
    } finally {
      watch.close();
    }
  });

  it('a destination chat without an entry gets one (replacedSessionId null); handoffs list oldest first', async () => {
    const telegram = freshDm('telegram');
    const discord = freshDm('discord');
    const slack = { platform: 'slack', chatId: `D${Math.floor(Math.random() * 1e9)}`, chatType: /** @type {const} */ ('dm'), userId: 'U1' };
    const source = await store.getOrCreateSession(telegram);
    const first = await store.handoffSession(source.sessionKey, { targetSource: discord });
    assert.equal(first.replacedSessionId, null);
    assert.equal(first.entry.sessionId, source.sessionId);
    assert.equal(first.entry.platform, 'discord');
    assert.equal(first.entry.origin?.chatId, discord.chatId, "the destination's origin is its chat");
    const second = await store.handoffSession(first.entry.sessionKey, { targetSource: slack });
    assert.equal(second.entry.sessionId, source.sessionId);
    const lineage = await store.getSessionLineage(source.sessionId);
    assert.deepEqual(
      lineage?.handoffs.map(({ fromSessionKey, toSessionKey, replacedSessionId }) => [fromSessionKey, toSessionKey, replacedSessionId]),
      [
        [source.sessionKey, first.entry.sessionKey, null],
        [first.entry.sessionKey, second.entry.sessionKey, null],
      ],
    );
    // The destination already pointing at the session: nothing replaced.
    const repeat = await store.handoffSession(source.sessionKey, { targetSessionKey: first.entry.sessionKey });
    assert.equal(repeat.replacedSessionId, null);
    assert.equal(repeat.entry.sessionId, source.sessionId);
  });

  it('exactly one of targetSessionKey and targetSource, else a TypeError before anything is sent', async () => {
    const source = await store.getOrCreateSession(freshDm('telegram'));
    const discord = freshDm('discord');
    for (const options of [{}, { targetSessionKey: null, targetSource: null }, { targetSessionKey: 'agent:main:discord:dm:1', targetSource: discord }]) {
      await assert.rejects(store.handoffSession(source.sessionKey, /** @type {any} */ (options)), /^TypeError: handoffSession takes exactly one of targetSessionKey and targetSource/);
    }
    await assert.rejects(store.handoffSession(source.sessionKey, /** @type {any} */ (undefined)), TypeError);
    await assert.rejects(store.handoffSession(source.sessionKey, /** @type {any} */ ({ targetSessionKey: 7 })), /^TypeError: targetSessionKey must be a string/);
    await assert.rejects(store.handoffSession(source.sessionKey, /** @type {any} */ ({ targetSource: 'discord' })), /^TypeError: targetSource must be a source object/);
    assert.equal(await store.getSession(await store.buildSessionKey(discord)), null, 'nothing was handed off');
  });

  it('across namespaces or onto the same key: FailedPreconditionError, and nothing changes', async () => {
    const mine = await research.getOrCreateSession(freshDm('telegram'));
    assert.match(mine.sessionKey, /^agent:research:/);
    const main = await store.getOrCreateSession(freshDm('discord'));
    // The research client's key onto a key of the main namespace.
    const across = await rejectsWith(
      research.handoffSession(mine.sessionKey, { targetSessionKey: main.sessionKey }),
      FailedPreconditionError,
      Status.FAILED_PRECONDITION,
    );
    assert.ok(across.details.length > 0);
    // The main namespace's key onto a chat whose key the research client builds in its namespace.
    const discord = freshDm('discord');
    await rejectsWith(research.handoffSession(main.sessionKey, { targetSource: discord }), FailedPreconditionError, Status.FAILED_PRECONDITION);
    assert.equal(await store.getSession(`agent:research:discord:dm:${discord.chatId}`), null, 'no destination entry was made');
    // Onto its own key.
    await rejectsWith(store.handoffSession(main.sessionKey, { targetSessionKey: main.sessionKey }), FailedPreconditionError, Status.FAILED_PRECONDITION);
    assert.equal((await store.getSession(mine.sessionKey))?.sessionId, mine.sessionId);
    assert.equal((await store.getSession(main.sessionKey))?.sessionId, main.sessionId);
    assert.deepEqual((await store.getSessionLineage(mine.sessionId))?.handoffs, []);

    // Within its namespace a namespaced client's targetSource is built there.
    const within = await research.handoffSession(mine.sessionKey, { targetSource: discord });
    assert.equal(within.entry.sessionKey, `agent:research:discord:dm:${discord.chatId}`);
    assert.equal(within.entry.sessionId, mine.sessionId);
  });

  it('a stale expectedVersion is a ConflictError, an unknown key a NotFoundError; nothing changes', async () => {
    const source = await store.getOrCreateSession(freshDm('telegram'));
    await store.updateSessionMetadata(source.sessionKey, { set: { step: 1 } }); // the version moves on
    const destination = await store.getOrCreateSession(freshDm('discord'));
    await rejectsWith(
      store.handoffSession(source.sessionKey, { targetSessionKey: destination.sessionKey, expectedVersion: source.version }),
      ConflictError,
      Status.ABORTED,
    );
    assert.equal((await store.getSession(destination.sessionKey))?.sessionId, destination.sessionId);
    await rejectsWith(
      store.handoffSession('agent:main:telegram:dm:no-such-key', { targetSessionKey: destination.sessionKey }),
      NotFoundError,
      Status.NOT_FOUND,
    );
  });
});
