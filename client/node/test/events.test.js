// Event watching against the REAL daemon (WatchSessionEvents): one `sessiond serve` child of its
// own (and one more for a daemon that stops under a watch). The tests of this file run one after
// another, so a watch `fromNow` sees only the changes of its test. Every wait is for the events
// themselves, with a deadline (helpers/events.js), never for a fixed time.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  EVENT_KINDS,
  IDEMPOTENT_METHODS,
  InvalidArgumentError,
  OutOfRangeError,
  SessionStoreClient,
  SessiondError,
  Status,
  UnavailableError,
} from '../src/index.js';
import { rejectsWith } from './helpers/assertions.js';
import { startDaemon } from './helpers/daemon.js';
import { EVENT_TIMEOUT_MS, summaries, takeEvents } from './helpers/events.js';

const EVENT_KEYS = [
  'entryVersion',
  'fencingToken',
  'identity',
  'kind',
  'leaseOwner',
  'linkedUser',
  'otherSessionKey',
  'previousSessionId',
  'reason',
  'sequence',
  'sessionId',
  'sessionKey',
  'time',
];

/** @type {import('./helpers/daemon.js').Daemon} */
let daemon;
/** @type {SessionStoreClient} */
let store;

/** A source of its own for each session, so tests do not share session keys. */
function freshSource(platform = 'telegram') {
  return { platform, chatId: `${Math.floor(Math.random() * 1e9)}`, chatType: /** @type {const} */ ('dm'), userId: '7' };
}

/**
 * A watch of the changes from now on, once it is live.
 * @param {Omit<import('../src/index.js').WatchEventsOptions, 'fromNow' | 'afterSequence'>} [options]
 */
async function watchFromNow(options = {}) {
  const watch = store.watchEvents({ ...options, fromNow: true });
  await watch.ready;
  return watch;
}

before(async () => {
  daemon = await startDaemon();
  store = new SessionStoreClient(daemon.address, { timeoutMs: 5000 });
});

after(async () => {
  store?.close();
  await daemon?.stop();
});

describe('watchEvents', () => {
  it('from now: create, metadata, archive and delete arrive in order with their keys, ids, reasons and versions', async () => {
    const watch = await watchFromNow();
    const start = watch.cursor;
    try {
      const entry = await store.getOrCreateSession(freshSource());
      const { entry: tagged } = await store.updateSessionMetadata(entry.sessionKey, { set: { owner: 'alice', tags: ['x'] } });
      await store.archiveSessions({ sessionIds: [entry.sessionId] });
      await store.deleteSessions({ sessionIds: [entry.sessionId] });
      // A session deleted while it is its key's current one names the key.
      const current = await store.getOrCreateSession(freshSource());
      await store.deleteSessions({ sessionIds: [current.sessionId] });

      const events = await takeEvents(watch, 6);
      assert.deepEqual(summaries(events), [
        { kind: 'created', sessionKey: entry.sessionKey, sessionId: entry.sessionId, reason: null },
        { kind: 'metadata_changed', sessionKey: entry.sessionKey, sessionId: entry.sessionId, reason: 'owner,tags' },
        { kind: 'session_archived', sessionKey: entry.sessionKey, sessionId: entry.sessionId, reason: 'archive' },
        // Archiving took the key's entry: no key points at the session any more.
        { kind: 'session_deleted', sessionKey: '', sessionId: entry.sessionId, reason: 'delete' },
        { kind: 'created', sessionKey: current.sessionKey, sessionId: current.sessionId, reason: null },
        { kind: 'session_deleted', sessionKey: current.sessionKey, sessionId: current.sessionId, reason: 'delete' },
      ]);
      for (const event of events) {
        assert.deepEqual(Object.keys(event).sort(), EVENT_KEYS);
        assert.equal(event.previousSessionId, null);
        assert.equal(event.leaseOwner, null);
        assert.deepEqual([event.identity, event.linkedUser, event.otherSessionKey, event.fencingToken], [null, null, null, null]);
        assert.ok(event.time instanceof Date && Math.abs(event.time.getTime() - Date.now()) < 60_000, `time ${event.time}`);
        assert.ok(Object.hasOwn(EVENT_KINDS, event.kind));
      }
      const sequences = events.map((event) => event.sequence);
      assert.ok(sequences[0] > start, 'after the cursor it started from');
      assert.deepEqual(sequences, [...sequences].sort((a, b) => a - b));
      assert.equal(new Set(sequences).size, sequences.length, 'strictly increasing');
      assert.equal(watch.cursor, sequences[5], "while the last is handled, the cursor is its sequence");
      assert.deepEqual(
        events.map((event) => event.entryVersion),
        [entry.version, tagged.version, tagged.version, 0, current.version, current.version],
        'the entry version after each change (0: no entry)',
      );
    } finally {
      watch.close();
    }
  });

  it('resuming with afterSequence from the cursor misses nothing, even what happened between the watches', async () => {
    const first = await watchFromNow();
    const entry = await store.getOrCreateSession(freshSource());
    await store.updateSessionMetadata(entry.sessionKey, { set: { step: 1 } });
    await store.updateSessionMetadata(entry.sessionKey, { set: { step: 2 } });
    const [created] = await takeEvents(first, 1);
    assert.equal(created.kind, 'created');
    const cursor = first.cursor;
    assert.equal(cursor, created.sequence);
    first.close();
    // While no watch is open.
    await store.updateSessionMetadata(entry.sessionKey, { remove: ['step'] });
    await store.resetSession(entry.sessionKey);

    const second = store.watchEvents({ afterSequence: cursor });
    try {
      const events = await takeEvents(second, 4);
      assert.deepEqual(
        events.map(({ kind, reason }) => [kind, reason]),
        [['metadata_changed', 'step'], ['metadata_changed', 'step'], ['metadata_changed', 'step'], ['reset', 'reset']],
      );
      assert.ok(events[0].sequence > cursor);
      const reset = events[3];
      assert.equal(reset.previousSessionId, entry.sessionId, 'a reset names the session the key had');
      assert.notEqual(reset.sessionId, entry.sessionId);
      assert.equal(reset.sessionKey, entry.sessionKey);
      // From the first watch's start, a third watch gets the same events again, the first included.
      const third = store.watchEvents({ afterSequence: created.sequence - 1 });
      try {
        assert.deepEqual(await takeEvents(third, 5), [created, ...events]);
      } finally {
        third.close();
      }
    } finally {
      second.close();
    }
  });

  it('kinds: only those are delivered, and the cursor moves past the others', async () => {
    const watch = await watchFromNow({ kinds: ['session_deleted', 'session_archived'] });
    const everything = await watchFromNow();
    try {
      const entry = await store.getOrCreateSession(freshSource());
      await store.updateSessionMetadata(entry.sessionKey, { set: { owner: 'bob' } });
      await store.archiveSessions({ sessionIds: entry.sessionId });
      await store.archiveSessions({ sessionIds: entry.sessionId }, { unarchive: true });
      const untouched = await store.getOrCreateSession(freshSource()); // filtered out, after the last wanted one

      const events = await takeEvents(watch, 2);
      assert.deepEqual(summaries(events), [
        { kind: 'session_archived', sessionKey: entry.sessionKey, sessionId: entry.sessionId, reason: 'archive' },
        { kind: 'session_archived', sessionKey: '', sessionId: entry.sessionId, reason: 'unarchive' },
      ]);
      // Every event of the unfiltered watch, the last one created `untouched`'s session.
      const all = await takeEvents(everything, 5);
      assert.deepEqual(all.map((event) => event.kind), ['created', 'metadata_changed', 'session_archived', 'session_archived', 'created']);
      assert.equal(all[4].sessionId, untouched.sessionId);
      // A watch filtered so that nothing after the cursor passes still moves its cursor to the newest event.
      const nothing = store.watchEvents({ afterSequence: events[1].sequence, kinds: 'session_deleted' });
      try {
        await nothing.ready;
        assert.equal(nothing.cursor, all[4].sequence);
      } finally {
        nothing.close();
      }
    } finally {
      watch.close();
      everything.close();
    }
  });

  it('close ends the iteration: a pending next() resolves done, for await ends, break closes it', async () => {
    const pending = await watchFromNow();
    const next = pending.next();
    pending.close();
    assert.deepEqual(await next, { done: true, value: undefined });
    assert.deepEqual(await pending.next(), { done: true, value: undefined }, 'and stays done');
    pending.close(); // twice is harmless

    // Closed from the loop body: the loop ends after the event at hand, without an error, though
    // two more events were committed after it.
    const looped = await watchFromNow();
    const start = looped.cursor;
    const entry = await store.getOrCreateSession(freshSource());
    await store.updateSessionMetadata(entry.sessionKey, { set: { a: 1 } });
    await store.updateSessionMetadata(entry.sessionKey, { set: { a: 2 } });
    const seen = [];
    for await (const event of looped) {
      seen.push(event.kind);
      looped.close();
    }
    assert.deepEqual(seen, ['created']);

    // A break returns the watch: done from then on.
    const broken = store.watchEvents({ afterSequence: start });
    for await (const event of broken) {
      assert.equal(event.kind, 'created');
      break;
    }
    assert.deepEqual(await broken.next(), { done: true, value: undefined });
    // The events were there: a new watch from the same cursor has all three.
    const again = store.watchEvents({ afterSequence: start });
    try {
      assert.deepEqual((await takeEvents(again, 3)).map((event) => event.kind), ['created', 'metadata_changed', 'metadata_changed']);
    } finally {
      again.close();
    }

    // Closed before its first response: done, and `ready` says it never became live.
    const early = store.watchEvents();
    early.close();
    assert.deepEqual(await early.next(), { done: true, value: undefined });
    await assert.rejects(early.ready, (/** @type {unknown} */ error) => error instanceof SessiondError && error.code === Status.CANCELLED);
  });

  it('an unknown kind is an InvalidArgumentError for kinds, thrown at once; the daemon refuses from_now with a cursor', async () => {
    for (const kinds of [['bogus'], ['CREATED'], ['created', 'unspecified']]) {
      assert.throws(
        () => store.watchEvents({ kinds }),
        (/** @type {unknown} */ error) => error instanceof InvalidArgumentError && error.field === 'kinds',
      );
    }
    const watch = store.watchEvents({ fromNow: true, afterSequence: 1 });
    const error = await rejectsWith(watch.ready, InvalidArgumentError, Status.INVALID_ARGUMENT);
    assert.equal(error.field, 'from_now');
    await rejectsWith(watch.next(), InvalidArgumentError, Status.INVALID_ARGUMENT);
    assert.deepEqual(await watch.next(), { done: true, value: undefined }, 'the iteration ended with the error');
    const negative = store.watchEvents({ afterSequence: -1 });
    assert.equal((await rejectsWith(negative.ready, InvalidArgumentError, Status.INVALID_ARGUMENT)).field, 'after_sequence');
    negative.close();
  });

  it('OUT_OF_RANGE: a cursor ahead of the log rejects ready and the iteration with OutOfRangeError', async () => {
    const watch = store.watchEvents({ afterSequence: 1e12 });
    const error = await rejectsWith(watch.ready, OutOfRangeError, Status.OUT_OF_RANGE);
    assert.match(error.details, /ahead of the newest event/);
    await assert.rejects(
      (async () => {
        for await (const event of watch) assert.fail(`no event expected: ${JSON.stringify(event)}`);
      })(),
      OutOfRangeError,
    );
  });

  it('the watch is not retried: it has no deadline and no reconnection', () => {
    assert.ok(!IDEMPOTENT_METHODS.includes(/** @type {any} */ ('WatchSessionEvents')));
  });
});

describe('a daemon that stops under a watch', () => {
  it('ends the iteration with UnavailableError; the cursor is where to resume', async () => {
    const own = await startDaemon();
    const client = new SessionStoreClient(own.address, { timeoutMs: 5000 });
    try {
      const watch = client.watchEvents({ fromNow: true });
      await watch.ready;
      const entry = await client.getOrCreateSession(freshSource());
      const [created] = await takeEvents(watch, 1);
      assert.equal(created.sessionId, entry.sessionId);
      const ended = watch.next().then(
        (result) => ({ result }),
        (/** @type {unknown} */ error) => ({ error }),
      );
      const stopped = await own.stop();
      assert.deepEqual(stopped, { code: 0, signal: null }, own.stderr());
      const outcome = await Promise.race([ended, timeout(EVENT_TIMEOUT_MS)]);
      assert.ok('error' in outcome, `the watch ended ${JSON.stringify(outcome)}`);
      assert.ok(outcome.error instanceof UnavailableError, String(outcome.error));
      assert.equal(watch.cursor, created.sequence, 'resume from here');
    } finally {
      client.close();
      await own.stop();
    }
  });
});

/**
 * Resolves to `{timedOut: true}` after `ms` (unref'd: it keeps nothing alive).
 * @param {number} ms
 */
function timeout(ms) {
  return new Promise((resolve) => setTimeout(() => resolve({ timedOut: true }), ms).unref());
}
