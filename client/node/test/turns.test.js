// Turns against the REAL daemon (BeginTurn, RenewTurn, EndTurn, the `fence` of the writes, the
// abandoned turns of ListExpiredSessions and the turn_* events): one `sessiond serve` child of its
// own. One turn at a time per key, each with a fencing token that grows with every turn begun on
// the key; a write fenced with a stale token is ABORTED (`ConflictError`) and writes nothing.
// Every test uses a key of its own, and every wait is for what it waits for, with a deadline.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { ConflictError, IDEMPOTENT_METHODS, InvalidArgumentError, SessionStoreClient, Status } from '../src/index.js';
import { rejectsWith } from './helpers/assertions.js';
import { startDaemon } from './helpers/daemon.js';
import { EVENT_TIMEOUT_MS, takeEvents } from './helpers/events.js';

/** @type {import('./helpers/daemon.js').Daemon} */
let daemon;
/** @type {SessionStoreClient} */
let store;

/** A source of its own for each session, so tests do not share session keys. */
function freshSource(platform = 'telegram') {
  return { platform, chatId: `${Math.floor(Math.random() * 1e9)}`, chatType: /** @type {const} */ ('dm'), userId: '7' };
}

/** A new session for a chat of its own: its entry. */
function freshEntry() {
  return store.getOrCreateSession(freshSource());
}

/**
 * Asserts a turn's shape: its key, owner and token, and that its times are Dates in order.
 * @param {import('../src/index.js').Turn} turn
 * @param {{sessionKey: string, owner: string, fencingToken: number, sessionId?: string | null}} expected
 */
function assertTurn(turn, expected) {
  assert.deepEqual(Object.keys(turn).sort(), ['expiresAt', 'fencingToken', 'owner', 'sessionId', 'sessionKey', 'startedAt']);
  const { startedAt, expiresAt, ...rest } = turn;
  assert.deepEqual(rest, { sessionId: rest.sessionId, ...expected });
  assert.ok(startedAt instanceof Date && Math.abs(startedAt.getTime() - Date.now()) < 60_000, `startedAt ${startedAt}`);
  assert.ok(expiresAt instanceof Date && expiresAt > startedAt, `expiresAt ${expiresAt}`);
}

before(async () => {
  daemon = await startDaemon();
  store = new SessionStoreClient(daemon.address, { timeoutMs: 5000 });
});

after(async () => {
  store?.close();
  await daemon?.stop();
});

describe('beginTurn', () => {
  it("begins with token 1; another owner is rejected (the running turn back), queued (position 1) or interrupts (token 2)", async () => {
    const entry = await freshEntry();
    const key = entry.sessionKey;
    const first = await store.beginTurn(key, 'loop-a', { ttlMs: 30_000 });
    assert.deepEqual(Object.keys(first).sort(), ['interrupted', 'queuePosition', 'started', 'turn']);
    assert.equal(first.started, true);
    assertTurn(first.turn, { sessionKey: key, owner: 'loop-a', fencingToken: 1, sessionId: entry.sessionId });
    assert.equal(first.queuePosition, 0);
    assert.equal(first.interrupted, null);
    assert.ok(first.turn.expiresAt.getTime() - first.turn.startedAt.getTime() >= 29_000, 'about ttlMs');

    const rejected = await store.beginTurn(key, 'loop-b');
    assert.equal(rejected.started, false);
    assert.deepEqual(rejected.turn, first.turn, 'the running turn');
    assert.equal(rejected.queuePosition, 0);
    assert.equal(rejected.interrupted, null);
    const explicit = await store.beginTurn(key, 'loop-b', { onConflict: 'reject' });
    assert.deepEqual([explicit.started, explicit.turn.fencingToken], [false, 1]);

    const queued = await store.beginTurn(key, 'loop-c', { onConflict: 'queue' });
    assert.equal(queued.started, false);
    assert.equal(queued.queuePosition, 1);
    assert.equal(queued.turn.fencingToken, 1);
    assert.equal(queued.turn.owner, 'loop-a');

    const interrupting = await store.beginTurn(key, 'loop-b', { onConflict: 'interrupt' });
    assert.equal(interrupting.started, true);
    assertTurn(interrupting.turn, { sessionKey: key, owner: 'loop-b', fencingToken: 2, sessionId: entry.sessionId });
    assert.ok(interrupting.interrupted);
    assert.equal(interrupting.interrupted.fencingToken, 1);
    assert.equal(interrupting.interrupted.owner, 'loop-a');
    assert.equal(interrupting.queuePosition, 0);
  });

  it('a key without an entry can have a turn (sessionId null); the same owner again replaces its own turn', async () => {
    const key = `agent:main:telegram:dm:${Math.floor(Math.random() * 1e9)}`;
    const first = await store.beginTurn(key, 'loop-a');
    assert.equal(first.started, true);
    assertTurn(first.turn, { sessionKey: key, owner: 'loop-a', fencingToken: 1, sessionId: null });
    const restarted = await store.beginTurn(key, 'loop-a');
    assert.equal(restarted.started, true);
    assert.equal(restarted.turn.fencingToken, 2);
    assert.equal(restarted.interrupted?.fencingToken, 1, "the owner's own earlier turn");
  });

  it('a conflict policy of no other name is an InvalidArgumentError for on_conflict, a ttl no number one for ttl; the daemon refuses a bad ttl or owner', async () => {
    const { sessionKey } = await freshEntry();
    for (const onConflict of ['wait', 'QUEUE', 3]) {
      const error = await rejectsWith(store.beginTurn(sessionKey, 'loop-a', { onConflict: /** @type {any} */ (onConflict) }), InvalidArgumentError, Status.INVALID_ARGUMENT);
      assert.equal(error.field, 'on_conflict');
    }
    for (const ttlMs of ['60000', Number.NaN]) {
      const error = await rejectsWith(store.beginTurn(sessionKey, 'loop-a', { ttlMs: /** @type {any} */ (ttlMs) }), InvalidArgumentError, Status.INVALID_ARGUMENT);
      assert.equal(error.field, 'ttl');
    }
    for (const ttlMs of [0, -1000, 2 * 86_400_000]) {
      const error = await rejectsWith(store.beginTurn(sessionKey, 'loop-a', { ttlMs }), InvalidArgumentError, Status.INVALID_ARGUMENT);
      assert.equal(error.field, 'ttl', `${ttlMs}: ${error.message}`);
    }
    const error = await rejectsWith(store.beginTurn(sessionKey, ''), InvalidArgumentError, Status.INVALID_ARGUMENT);
    assert.equal(error.field, 'owner');
    // Nothing began: the first real turn still has token 1.
    assert.equal((await store.beginTurn(sessionKey, 'loop-a')).turn.fencingToken, 1);
  });
});

describe('fenced writes', () => {
  it('an append with a stale fence is a ConflictError and writes nothing; with the fresh fence it succeeds', async () => {
    const entry = await freshEntry();
    const stale = (await store.beginTurn(entry.sessionKey, 'loop-a')).turn;
    const fresh = (await store.beginTurn(entry.sessionKey, 'loop-b', { onConflict: 'interrupt' })).turn;
    assert.deepEqual([stale.fencingToken, fresh.fencingToken], [1, 2]);

    const message = { role: 'user', content: 'from the stale loop', message_id: 'stale-1' };
    await rejectsWith(store.appendMessages(entry.sessionId, [message], { fence: stale }), ConflictError, Status.ABORTED);
    await rejectsWith(
      store.appendMessages(entry.sessionId, [{ role: 'user', content: 'no id' }], { fence: { sessionKey: entry.sessionKey, fencingToken: 1 } }),
      ConflictError,
      Status.ABORTED,
    );
    await rejectsWith(store.appendToTranscript(entry.sessionId, { role: 'user', content: 'x' }, { fence: stale }), ConflictError, Status.ABORTED);
    assert.deepEqual(await store.loadTranscript(entry.sessionId, { includeHidden: true }), [], 'nothing was written');

    const appended = await store.appendMessages(entry.sessionId, [{ role: 'user', content: 'from the fresh loop', message_id: 'fresh-1' }], { fence: fresh });
    assert.deepEqual(appended, { appended: 1, duplicates: 0, messageCount: 1 });
    // The fence as a plain object, its token a bigint, works as well.
    await store.appendToTranscript(entry.sessionId, { role: 'assistant', content: 'reply' }, { fence: { sessionKey: entry.sessionKey, fencingToken: 2n } });
    assert.deepEqual(await store.loadTranscript(entry.sessionId), [
      { role: 'user', content: 'from the fresh loop' },
      { role: 'assistant', content: 'reply' },
    ]);
  });

  it('every fenced write refuses a stale fence with a ConflictError and changes nothing: rewrite, update, rewind, compact, metadata', async () => {
    const entry = await freshEntry();
    const key = entry.sessionKey;
    const stale = (await store.beginTurn(key, 'loop-a')).turn;
    const fresh = (await store.beginTurn(key, 'loop-b', { onConflict: 'interrupt' })).turn;
    const messages = [
      { role: 'user', content: 'u1', message_id: 'm1' },
      { role: 'assistant', content: 'a1', message_id: 'm2' },
      { role: 'user', content: 'u2', message_id: 'm3' },
      { role: 'assistant', content: 'a2', message_id: 'm4' },
    ];
    await store.appendMessages(entry.sessionId, messages, { fence: fresh });
    const before = await store.getSession(key);
    const transcript = await store.loadTranscript(entry.sessionId, { includeHidden: true });

    const attempts = {
      rewriteTranscript: () => store.rewriteTranscript(entry.sessionId, [{ role: 'user', content: 'replaced' }], { fence: stale }),
      updateSession: () => store.updateSession(key, { totalTokens: 100, fence: stale }),
      rewindTranscript: () => store.rewindTranscript(entry.sessionId, { turns: 1, fence: stale }),
      compactTranscript: () => store.compactTranscript(entry.sessionId, 0, 1, { role: 'assistant', content: 'summary' }, { fence: stale }),
      updateSessionMetadata: () => store.updateSessionMetadata(key, { set: { owner: 'stale' }, fence: stale }),
    };
    for (const [name, attempt] of Object.entries(attempts)) {
      const error = await rejectsWith(attempt(), ConflictError, Status.ABORTED);
      assert.ok(error.details.length > 0, name);
    }
    assert.deepEqual(await store.loadTranscript(entry.sessionId, { includeHidden: true }), transcript, 'the transcript is as it was');
    const after = await store.getSession(key);
    assert.equal(after?.version, before?.version, 'the entry is as it was');
    assert.equal(after?.totalTokens, before?.totalTokens);
    assert.deepEqual(after?.metadata, {});

    // The fresh fence passes each of them.
    assert.equal((await store.updateSession(key, { totalTokens: 100, fence: fresh }))?.totalTokens, (before?.totalTokens ?? 0) + 100);
    assert.equal((await store.updateSessionMetadata(key, { set: { owner: 'fresh' }, fence: fresh })).entry.metadata.owner, 'fresh');
    assert.equal((await store.rewindTranscript(entry.sessionId, { turns: 1, fence: fresh })).rewoundMessages, 2);
    assert.equal((await store.compactTranscript(entry.sessionId, 0, 1, { role: 'assistant', content: 'summary' }, { fence: fresh })).archivedMessages, 2);
    assert.equal(await store.rewriteTranscript(entry.sessionId, [{ role: 'user', content: 'replaced' }], { fence: fresh }), 1);
  });

  it('a fence that is no fence is a TypeError, before anything is sent', async () => {
    const entry = await freshEntry();
    for (const fence of [7, { sessionKey: entry.sessionKey }, { sessionKey: entry.sessionKey, fencingToken: '1' }, { fencingToken: 1 }]) {
      await assert.rejects(store.appendMessages(entry.sessionId, [{ role: 'user', content: 'x' }], { fence: /** @type {any} */ (fence) }), TypeError);
      await assert.rejects(store.updateSessionMetadata(entry.sessionKey, { set: { a: 1 }, fence: /** @type {any} */ (fence) }), TypeError);
    }
    assert.deepEqual(await store.loadTranscript(entry.sessionId), []);
    assert.deepEqual((await store.getSession(entry.sessionKey))?.metadata, {});
  });
});

describe('renewTurn and endTurn', () => {
  it('renew extends the running turn; endTurn is true, then false; a stale fence renews with a ConflictError', async () => {
    const { sessionKey } = await freshEntry();
    const { turn } = await store.beginTurn(sessionKey, 'loop-a', { ttlMs: 10_000 });
    const renewed = await store.renewTurn(turn, { ttlMs: 120_000 });
    assertTurn(renewed, { sessionKey, owner: 'loop-a', fencingToken: 1, sessionId: turn.sessionId });
    assert.ok(renewed.expiresAt.getTime() > turn.expiresAt.getTime() + 60_000, `${renewed.expiresAt} after ${turn.expiresAt}`);
    assert.deepEqual(renewed.startedAt, turn.startedAt);
    assert.equal((await store.renewTurn({ sessionKey, fencingToken: 1n })).fencingToken, 1, 'a plain fence, the default ttl');

    const { turn: newer } = await store.beginTurn(sessionKey, 'loop-b', { onConflict: 'interrupt' });
    await rejectsWith(store.renewTurn(turn), ConflictError, Status.ABORTED);
    assert.equal(await store.endTurn(turn), false, 'superseded');

    assert.equal(await store.endTurn(newer), true);
    assert.equal(await store.endTurn(newer), false, 'already ended');
    await rejectsWith(store.renewTurn(newer), ConflictError, Status.ABORTED);

    // The key is free: the next turn begins at once, with the next token.
    const next = await store.beginTurn(sessionKey, 'loop-c');
    assert.deepEqual([next.started, next.turn.fencingToken], [true, 3]);
  });

  it('renewTurn and endTurn need a fence: anything else is a TypeError, before anything is sent', async () => {
    for (const fence of [null, undefined, 'agent:main:telegram:dm:1', { sessionKey: 'k', fencingToken: 1.5 }]) {
      await assert.rejects(store.renewTurn(/** @type {any} */ (fence)), TypeError);
      await assert.rejects(store.endTurn(/** @type {any} */ (fence)), TypeError);
    }
    const error = await rejectsWith(store.renewTurn({ sessionKey: 'k', fencingToken: 1 }, { ttlMs: /** @type {any} */ ('5') }), InvalidArgumentError, Status.INVALID_ARGUMENT);
    assert.equal(error.field, 'ttl');
  });

  it('none of the turn RPCs is retried (a second attempt would answer otherwise)', () => {
    for (const method of ['BeginTurn', 'RenewTurn', 'EndTurn', 'HandoffSession']) {
      assert.ok(!IDEMPOTENT_METHODS.includes(/** @type {any} */ (method)), method);
    }
  });
});

describe('events and abandoned turns', () => {
  it('watchEvents sees turn_started, turn_interrupted and turn_ended with the owner and the token', async () => {
    const { sessionKey } = await freshEntry();
    const watch = store.watchEvents({ fromNow: true, kinds: ['turn_started', 'turn_ended', 'turn_interrupted', 'turn_expired'] });
    try {
      await watch.ready;
      const first = await store.beginTurn(sessionKey, 'loop-a');
      const [started] = await takeEvents(watch, 1);
      const second = await store.beginTurn(sessionKey, 'loop-b', { onConflict: 'interrupt' });
      const around = await takeEvents(watch, 2);
      await store.endTurn(second.turn);
      const [ended] = await takeEvents(watch, 1);

      const shape = (/** @type {import('../src/index.js').SessionEvent} */ event) => ({
        kind: event.kind,
        sessionKey: event.sessionKey,
        leaseOwner: event.leaseOwner,
        fencingToken: event.fencingToken,
      });
      assert.deepEqual(shape(started), { kind: 'turn_started', sessionKey, leaseOwner: 'loop-a', fencingToken: first.turn.fencingToken });
      // The interruption and the new turn's start, in one call: in either order.
      const sorted = around.map(shape).sort((a, b) => a.kind.localeCompare(b.kind));
      assert.deepEqual(sorted, [
        { kind: 'turn_interrupted', sessionKey, leaseOwner: 'loop-a', fencingToken: 1 },
        { kind: 'turn_started', sessionKey, leaseOwner: 'loop-b', fencingToken: 2 },
      ]);
      assert.equal(around.find((event) => event.kind === 'turn_interrupted')?.reason, 'interrupted');
      assert.deepEqual(shape(ended), { kind: 'turn_ended', sessionKey, leaseOwner: 'loop-b', fencingToken: 2 });
      for (const event of [started, ...around, ended]) assert.deepEqual([event.identity, event.linkedUser, event.otherSessionKey], [null, null, null]);
    } finally {
      watch.close();
    }
  });

  it('a turn that lapses without endTurn is listed among the abandoned turns of listExpiredSessionsAndTurns', async () => {
    const entry = await freshEntry();
    const { turn } = await store.beginTurn(entry.sessionKey, 'loop-dead', { ttlMs: 300 });
    const deadline = Date.now() + EVENT_TIMEOUT_MS;
    /** @type {import('../src/index.js').Turn | undefined} */
    let abandoned;
    /** @type {import('../src/index.js').ExpiredSessionsAndTurns | undefined} */
    let listed;
    while (!abandoned && Date.now() < deadline) {
      listed = await store.listExpiredSessionsAndTurns();
      abandoned = listed.abandonedTurns.find((each) => each.sessionKey === entry.sessionKey);
      if (!abandoned) await sleep(100);
    }
    assert.ok(abandoned, `not abandoned within ${EVENT_TIMEOUT_MS} ms: ${JSON.stringify(listed)}`);
    assert.deepEqual(abandoned, turn);
    assert.ok(Array.isArray(listed?.entries));
    assert.ok(Array.isArray(await store.listExpiredSessions()), 'listExpiredSessions still resolves to the entries');
    // Resumed by a new turn: no longer abandoned.
    const resumed = await store.beginTurn(entry.sessionKey, 'loop-new');
    assert.deepEqual([resumed.started, resumed.turn.fencingToken], [true, 2]);
    const after = await store.listExpiredSessionsAndTurns();
    assert.ok(!after.abandonedTurns.some((each) => each.sessionKey === entry.sessionKey), JSON.stringify(after.abandonedTurns));
  });
});
