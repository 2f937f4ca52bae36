// Session metadata against the REAL daemon (UpdateSessionMetadata, GetSessionMetadata, and the
// `metadata` filters of ListSessions, SearchSessions and SearchMessages): one `sessiond serve`
// child of its own; every test uses keys or values of its own, so no test sees another's sessions
// in its filters. (The metadata_changed events are test/events.test.js's.)

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import grpc from '@grpc/grpc-js';

import {
  ConflictError,
  IDEMPOTENT_METHODS,
  InvalidArgumentError,
  NotFoundError,
  SessionStoreClient,
  Status,
  loadContract,
} from '../src/index.js';
import { rejectsWith } from './helpers/assertions.js';
import { startDaemon } from './helpers/daemon.js';

const UNKNOWN_SESSION_ID = '20000101_000000_00000000';
const UNKNOWN_KEY = 'agent:main:telegram:dm:no-such-key';

/** @type {import('./helpers/daemon.js').Daemon} */
let daemon;
/** @type {SessionStoreClient} */
let store;
/** A bare stub of the contract, to see which kind of MetadataValue the daemon stored. */
/** @type {any} */
let stub;

/** A source of its own for each test, so tests do not share session keys. */
function freshSource(platform = 'telegram') {
  return { platform, chatId: `${Math.floor(Math.random() * 1e9)}`, chatType: /** @type {const} */ ('dm'), userId: '7' };
}

/** A value (or key: lower-case letters and digits) no other test uses. */
function fresh(stem = 'v') {
  return `${stem}${randomUUID().replaceAll('-', '').slice(0, 10)}`;
}

/**
 * The kind of each value of the session's metadata as stored (`{model: 'text', ratio: 'number'}`),
 * read with GetSessionMetadata over the bare stub.
 * @param {string} sessionId
 * @returns {Promise<Record<string, string>>}
 */
function storedKinds(sessionId) {
  return new Promise((resolve, reject) => {
    stub.GetSessionMetadata({ sessionId }, { deadline: Date.now() + 5000 }, (/** @type {any} */ error, /** @type {any} */ response) =>
      error
        ? reject(error)
        : resolve(Object.fromEntries(Object.entries(response.metadata).map(([key, value]) => [key, /** @type {any} */ (value).kind]))),
    );
  });
}

/**
 * The ids of `sessions` (entries or summaries), sorted.
 * @param {{sessionId: string}[]} sessions
 */
function ids(sessions) {
  return sessions.map((session) => session.sessionId).sort();
}

before(async () => {
  daemon = await startDaemon();
  store = new SessionStoreClient(daemon.address, { timeoutMs: 5000 });
  const { SessionStore } = loadContract();
  stub = new SessionStore(daemon.address, grpc.credentials.createInsecure());
});

after(async () => {
  stub?.close();
  store?.close();
  await daemon?.stop();
});

describe('updateSessionMetadata and getSessionMetadata', () => {
  it('every kind of value round-trips: text, integer, number, flag, texts; the entry carries it', async () => {
    const source = freshSource();
    const entry = await store.getOrCreateSession(source);
    assert.deepEqual(entry.metadata, {}, 'a new session has none');
    assert.deepEqual(await store.getSessionMetadata(entry.sessionId), {});

    const set = {
      model: 'gpt-5',
      empty: '',
      unicode: 'Grüße 🌍',
      priority: 3,
      negative: -42,
      huge: 2n ** 62n,
      ratio: 0.25,
      double: { number: 3 },
      exact: { integer: 7n },
      digits: { text: '12' },
      pinned: true,
      muted: false,
      tags: ['work', 'urgent'],
    };
    const expected = {
      model: 'gpt-5',
      empty: '',
      unicode: 'Grüße 🌍',
      priority: 3,
      negative: -42,
      huge: 2 ** 62,
      ratio: 0.25,
      double: 3,
      exact: 7,
      digits: '12',
      pinned: true,
      muted: false,
      tags: ['work', 'urgent'],
    };
    const result = await store.updateSessionMetadata(entry.sessionKey, { set, expectedVersion: entry.version });
    assert.deepEqual(Object.keys(result).sort(), ['changed', 'entry']);
    assert.equal(result.changed, true);
    assert.equal(result.entry.sessionId, entry.sessionId);
    assert.ok(result.entry.version > entry.version, 'the version grew');
    assert.deepEqual(result.entry.metadata, expected);
    assert.deepEqual(await store.getSessionMetadata(entry.sessionId), expected);
    assert.deepEqual((await store.getSession(entry.sessionKey))?.metadata, expected);
    assert.deepEqual((await store.getOrCreateSession(source)).metadata, expected, 'getOrCreateSession shows it too');

    // The kinds as stored: a plain 3 is an integer, {number: 3} a double, a bigint an integer.
    assert.deepEqual(await storedKinds(entry.sessionId), {
      model: 'text',
      empty: 'text',
      unicode: 'text',
      priority: 'integer',
      negative: 'integer',
      huge: 'integer',
      ratio: 'number',
      double: 'number',
      exact: 'integer',
      digits: 'text',
      pinned: 'flag',
      muted: 'flag',
      tags: 'texts',
    });
  });

  it('the same values again change nothing: changed false, no new version; another kind is a change', async () => {
    const entry = await store.getOrCreateSession(freshSource());
    const first = await store.updateSessionMetadata(entry.sessionKey, { set: { priority: 3, tags: ['a'] } });
    assert.equal(first.changed, true);
    const again = await store.updateSessionMetadata(entry.sessionKey, { set: { priority: 3, tags: ['a'] } });
    assert.equal(again.changed, false);
    assert.equal(again.entry.version, first.entry.version);
    assert.deepEqual(again.entry.metadata, { priority: 3, tags: ['a'] });
    const none = await store.updateSessionMetadata(entry.sessionKey, { remove: ['absent'] });
    assert.equal(none.changed, false, 'removing an absent key changes nothing');
    assert.equal(none.entry.version, first.entry.version);

    // 3.0 is not 3: the kind changes, the value reads the same.
    const double = await store.updateSessionMetadata(entry.sessionKey, { set: { priority: { number: 3 } } });
    assert.equal(double.changed, true);
    assert.ok(double.entry.version > first.entry.version);
    assert.deepEqual(double.entry.metadata, { priority: 3, tags: ['a'] });
    assert.equal((await storedKinds(entry.sessionId)).priority, 'number');
  });

  it('remove drops keys, an empty list removes its key, replace makes set the whole map', async () => {
    const entry = await store.getOrCreateSession(freshSource());
    await store.updateSessionMetadata(entry.sessionKey, { set: { a: 'x', b: 1, c: true, d: ['t'], e: 0.5 } });

    const removed = await store.updateSessionMetadata(entry.sessionKey, { remove: ['a', 'absent'] });
    assert.equal(removed.changed, true);
    assert.deepEqual(removed.entry.metadata, { b: 1, c: true, d: ['t'], e: 0.5 });
    const one = await store.updateSessionMetadata(entry.sessionKey, { remove: 'b' });
    assert.deepEqual(one.entry.metadata, { c: true, d: ['t'], e: 0.5 }, 'a single key as a string');
    const emptied = await store.updateSessionMetadata(entry.sessionKey, { set: { d: [], f: 'new' }, remove: new Set(['c']) });
    assert.deepEqual(emptied.entry.metadata, { e: 0.5, f: 'new' });

    const replaced = await store.updateSessionMetadata(entry.sessionKey, { set: { owner: 'alice' }, replace: true });
    assert.equal(replaced.changed, true);
    assert.deepEqual(replaced.entry.metadata, { owner: 'alice' });
    assert.deepEqual(await store.getSessionMetadata(entry.sessionId), { owner: 'alice' });

    const cleared = await store.updateSessionMetadata(entry.sessionKey, { set: {}, replace: true });
    assert.equal(cleared.changed, true);
    assert.deepEqual(cleared.entry.metadata, {});
    assert.deepEqual(await store.getSessionMetadata(entry.sessionId), {});
    const noop = await store.updateSessionMetadata(entry.sessionKey, { replace: true });
    assert.equal(noop.changed, false, 'nothing to clear');
    assert.equal(noop.entry.version, cleared.entry.version);
  });

  it('ABORTED: ConflictError for a stale expectedVersion, and nothing changes', async () => {
    const entry = await store.getOrCreateSession(freshSource());
    const { entry: current } = await store.updateSessionMetadata(entry.sessionKey, {
      set: { owner: 'alice' },
      expectedVersion: entry.version,
    });
    const error = await rejectsWith(
      store.updateSessionMetadata(entry.sessionKey, { set: { owner: 'bob' }, expectedVersion: entry.version }),
      ConflictError,
      Status.ABORTED,
    );
    assert.equal(error.codeName, 'ABORTED');
    await rejectsWith(
      store.updateSessionMetadata(entry.sessionKey, { remove: ['owner'], expectedVersion: entry.version }),
      ConflictError,
      Status.ABORTED,
    );
    const after = await store.getSession(entry.sessionKey);
    assert.equal(after?.version, current.version);
    assert.deepEqual(after?.metadata, { owner: 'alice' });
    // The current version goes through.
    const ok = await store.updateSessionMetadata(entry.sessionKey, { set: { owner: 'bob' }, expectedVersion: current.version });
    assert.deepEqual(ok.entry.metadata, { owner: 'bob' });
  });

  it('INVALID_ARGUMENT naming the field for a key or value the daemon refuses, and nothing changes', async () => {
    const entry = await store.getOrCreateSession(freshSource());
    const { entry: current } = await store.updateSessionMetadata(entry.sessionKey, { set: { owner: 'alice' } });
    const refused = async (/** @type {Parameters<SessionStoreClient['updateSessionMetadata']>[1]} */ options) =>
      rejectsWith(store.updateSessionMetadata(entry.sessionKey, options), InvalidArgumentError, Status.INVALID_ARGUMENT);

    const upper = await refused({ set: { 'Bad Key': 'x' } });
    assert.equal(upper.field, "set['Bad Key']");
    assert.ok(upper.description.includes('lower-case'), upper.description);
    assert.equal((await refused({ set: { ['k'.repeat(65)]: 'x' } })).field, `set['${'k'.repeat(65)}']`);
    assert.equal((await refused({ set: { _leading: 'x' } })).field, "set['_leading']");
    assert.equal((await refused({ remove: ['owner', 'Nope'] })).field, 'remove[1]');
    assert.equal((await refused({ set: { owner: 'bob' }, remove: ['owner'] })).field, 'remove[0]', 'not in both');
    assert.equal((await refused({ set: { long: 'x'.repeat(1025) } })).field, "set['long']");
    assert.equal((await refused({ set: { tags: ['ok', ''] } })).field, "set['tags'][1]");
    const many = Object.fromEntries(Array.from({ length: 33 }, (_, n) => [`k${n}`, n]));
    assert.equal((await refused({ set: many })).field, 'set');

    const after = await store.getSession(entry.sessionKey);
    assert.equal(after?.version, current.version);
    assert.deepEqual(after?.metadata, { owner: 'alice' });
    // 1024 bytes of text and 32 keys are allowed.
    const longest = await store.updateSessionMetadata(entry.sessionKey, { set: { long: 'é'.repeat(512) } });
    assert.equal(longest.entry.metadata.long, 'é'.repeat(512));
    const thirtyTwo = Object.fromEntries(Array.from({ length: 32 }, (_, n) => [`k${n}`, n]));
    const full = await store.updateSessionMetadata(entry.sessionKey, { set: thirtyTwo, replace: true });
    assert.equal(Object.keys(full.entry.metadata).length, 32);
  });

  it('a value of no kind is a TypeError naming the key, before anything is sent', async () => {
    const entry = await store.getOrCreateSession(freshSource());
    for (const value of [new Date(), null, NaN, ['a', 2], { number: 'x' }]) {
      await assert.rejects(
        store.updateSessionMetadata(entry.sessionKey, { set: { good: 'x', when: /** @type {any} */ (value) } }),
        (/** @type {unknown} */ error) => error instanceof TypeError && /"when"/.test(error.message),
      );
    }
    const after = await store.getSession(entry.sessionKey);
    assert.equal(after?.version, entry.version);
    assert.deepEqual(after?.metadata, {});
  });

  it('an unknown key: NotFoundError to update; an unknown session: null to get', async () => {
    await rejectsWith(store.updateSessionMetadata(UNKNOWN_KEY, { set: { a: 'x' } }), NotFoundError, Status.NOT_FOUND);
    assert.equal(await store.getSessionMetadata(UNKNOWN_SESSION_ID), null);
  });

  it('metadata belongs to the session: a reset starts without, the ended session keeps its own, a branch copies it', async () => {
    const entry = await store.getOrCreateSession(freshSource());
    await store.updateSessionMetadata(entry.sessionKey, { set: { owner: 'alice', tags: ['x'] } });
    const reset = await store.resetSession(entry.sessionKey);
    assert.ok(reset && reset.sessionId !== entry.sessionId);
    assert.deepEqual(reset.metadata, {});
    assert.deepEqual(await store.getSessionMetadata(reset.sessionId), {});
    assert.deepEqual(await store.getSessionMetadata(entry.sessionId), { owner: 'alice', tags: ['x'] }, 'an ended session keeps it');

    // Switching back shows the old session's metadata on the entry again.
    const back = await store.switchSession(entry.sessionKey, entry.sessionId);
    assert.deepEqual(back?.metadata, { owner: 'alice', tags: ['x'] });

    const branch = await store.branchSession(entry.sessionId, { sessionKey: entry.sessionKey });
    assert.deepEqual(branch.entry?.metadata, { owner: 'alice', tags: ['x'] }, "a branch starts with its source's");
    assert.deepEqual(await store.getSessionMetadata(branch.sessionId), { owner: 'alice', tags: ['x'] });
  });

  it('GetSessionMetadata is retried like the other reads; UpdateSessionMetadata is not', () => {
    assert.ok(IDEMPOTENT_METHODS.includes('GetSessionMetadata'));
    assert.ok(!IDEMPOTENT_METHODS.includes(/** @type {any} */ ('UpdateSessionMetadata')));
  });
});

describe('metadata filters', () => {
  it('listSessions: equal values, any value (null or undefined), list membership, all conditions', async () => {
    const owner = fresh('owner');
    const tag = fresh('tag');
    const key = fresh('k');
    const [a, b, c, d] = await Promise.all([0, 1, 2, 3].map(() => store.getOrCreateSession(freshSource())));
    await store.updateSessionMetadata(a.sessionKey, { set: { owner, tags: [tag, 'b'], priority: 2, [key]: true } });
    await store.updateSessionMetadata(b.sessionKey, { set: { owner, tags: ['b'], priority: { number: 2.5 } } });
    await store.updateSessionMetadata(c.sessionKey, { set: { owner: fresh('other'), tags: [tag], [key]: 'x' } });
    await store.updateSessionMetadata(d.sessionKey, { set: { owner: 'nobody-else' } });
    const list = async (/** @type {import('../src/index.js').MetadataFilterInput} */ metadata) => ids(await store.listSessions({ metadata }));

    assert.deepEqual(await list({ owner }), ids([a, b]));
    assert.deepEqual(await list({ tags: tag }), ids([a, c]), 'a list holding the value matches');
    assert.deepEqual(await list({ owner, tags: tag }), ids([a]), 'all conditions must hold');
    assert.deepEqual(await list({ [key]: null }), ids([a, c]), 'null: the key with any value');
    assert.deepEqual(await list({ [key]: undefined }), ids([a, c]), 'undefined: the same');
    assert.deepEqual(await list({ [key]: true }), ids([a]));
    assert.deepEqual(await list({ [key]: 'x' }), ids([c]));
    assert.deepEqual(await list({ owner, priority: 2 }), ids([a]));
    assert.deepEqual(await list({ owner, priority: { number: 2 } }), ids([a]), 'numbers compare by value: 2.0 finds 2');
    assert.deepEqual(await list({ owner, priority: 2.5 }), ids([b]));
    assert.deepEqual(await list({ owner: fresh('nobody') }), []);
    assert.deepEqual(await list({ [fresh('missing')]: null }), []);

    // Without a filter, every entry; with an empty one, too.
    const everything = ids(await store.listSessions());
    for (const entry of [a, b, c, d]) assert.ok(everything.includes(entry.sessionId));
    assert.deepEqual(ids(await store.listSessions({ metadata: {} })), everything);
    // With activeMinutes beside it, both hold.
    assert.deepEqual(ids(await store.listSessions({ activeMinutes: 60, metadata: { owner } })), ids([a, b]));
  });

  it('listSessions filters on the current session: after a reset the key no longer matches', async () => {
    const owner = fresh('owner');
    const entry = await store.getOrCreateSession(freshSource());
    await store.updateSessionMetadata(entry.sessionKey, { set: { owner } });
    assert.deepEqual(ids(await store.listSessions({ metadata: { owner } })), [entry.sessionId]);
    await store.resetSession(entry.sessionKey);
    assert.deepEqual(await store.listSessions({ metadata: { owner } }), []);
  });

  it('a filter that is no condition: InvalidArgumentError naming the field, or a TypeError before sending', async () => {
    const list = await rejectsWith(
      store.listSessions({ metadata: { ok: null, tags: /** @type {any} */ (['a']) } }),
      InvalidArgumentError,
      Status.INVALID_ARGUMENT,
    );
    assert.equal(list.field, 'metadata[1].equals');
    const key = await rejectsWith(store.listSessions({ metadata: { 'Not A Key': 'x' } }), InvalidArgumentError, Status.INVALID_ARGUMENT);
    assert.equal(key.field, 'metadata[0].key');
    await assert.rejects(store.listSessions({ metadata: { when: /** @type {any} */ (new Date()) } }), TypeError);
    await assert.rejects(store.searchSessions('x', { metadata: /** @type {any} */ ('owner') }), TypeError);
  });

  it('searchSessions: only the sessions whose metadata matches; summaries carry their metadata', async () => {
    const tag = fresh('meta');
    const team = fresh('team');
    const first = await store.getOrCreateSession(freshSource());
    const second = await store.getOrCreateSession(freshSource());
    const untagged = await store.getOrCreateSession(freshSource());
    for (const [entry, name] of [[first, 'one'], [second, 'two'], [untagged, 'three']]) {
      await store.setSessionTitle(entry.sessionId, `${tag} ${name}`);
    }
    await store.updateSessionMetadata(first.sessionKey, { set: { tags: [team, 'x'], priority: 1 } });
    await store.updateSessionMetadata(second.sessionKey, { set: { tags: [team], pinned: true } });
    const search = async (/** @type {import('../src/index.js').MetadataFilterInput | undefined} */ metadata) =>
      (await store.searchSessions(tag, { metadata })).sessions;

    assert.deepEqual(ids(await search(undefined)), ids([first, second, untagged]));
    assert.deepEqual(ids(await search({ tags: team })), ids([first, second]));
    assert.deepEqual(ids(await search({ tags: team, pinned: true })), ids([second]));
    assert.deepEqual(ids(await search({ priority: null })), ids([first]));
    assert.deepEqual(await search({ tags: fresh('none') }), []);

    const summaries = Object.fromEntries((await search(undefined)).map((summary) => [summary.sessionId, summary.metadata]));
    assert.deepEqual(summaries, {
      [first.sessionId]: { tags: [team, 'x'], priority: 1 },
      [second.sessionId]: { tags: [team], pinned: true },
      [untagged.sessionId]: {},
    });
    // Pages of a filtered search: one session each.
    const page1 = await store.searchSessions(tag, { metadata: { tags: team }, pageSize: 1 });
    assert.equal(page1.sessions.length, 1);
    assert.ok(page1.nextPageToken);
    const page2 = await store.searchSessions(tag, { metadata: { tags: team }, pageSize: 1, pageToken: page1.nextPageToken });
    assert.deepEqual(ids([...page1.sessions, ...page2.sessions]), ids([first, second]));
    assert.equal(page2.nextPageToken, '');
  });

  it("searchMessages: only messages of sessions whose metadata matches; the hit's session carries it", async () => {
    const word = fresh('zebra');
    const workspace = fresh('ws');
    const sessions = [];
    for (const metadata of [{ workspace, tags: ['red', 'blue'] }, { workspace, tags: ['blue'] }, { workspace: fresh('other') }, null]) {
      const entry = await store.getOrCreateSession(freshSource());
      await store.appendMessages(entry.sessionId, [{ role: 'user', content: `a ${word} here`, message_id: 'm0' }]);
      if (metadata) await store.updateSessionMetadata(entry.sessionKey, { set: metadata });
      sessions.push(entry);
    }
    const [redBlue, blue, other, none] = sessions;
    const hits = async (/** @type {import('../src/index.js').MetadataFilterInput | undefined} */ metadata) =>
      (await store.searchMessages(word, { metadata, pageSize: 100 })).hits;
    const sessionsOf = async (/** @type {import('../src/index.js').MetadataFilterInput | undefined} */ metadata) =>
      (await hits(metadata)).map((hit) => hit.session.sessionId).sort();

    assert.deepEqual(await sessionsOf(undefined), ids([redBlue, blue, other, none]));
    assert.deepEqual(await sessionsOf({ workspace }), ids([redBlue, blue]));
    assert.deepEqual(await sessionsOf({ tags: 'blue' }), ids([redBlue, blue]));
    assert.deepEqual(await sessionsOf({ tags: 'red' }), ids([redBlue]));
    assert.deepEqual(await sessionsOf({ workspace: null }), ids([redBlue, blue, other]));
    assert.deepEqual(await sessionsOf({ workspace, tags: 'red' }), ids([redBlue]));
    assert.deepEqual(await sessionsOf({ workspace: fresh('nowhere') }), []);
    // Beside the other filters, all hold.
    assert.deepEqual(await store.searchMessages(word, { sessionId: other.sessionId, metadata: { workspace } }), {
      hits: [],
      nextPageToken: '',
      indexBuilding: false,
    });

    const [hit] = await hits({ tags: 'red' });
    assert.deepEqual(hit.session.metadata, { workspace, tags: ['red', 'blue'] });
    const filtered = await rejectsWith(
      store.searchMessages(word, { metadata: { tags: /** @type {any} */ (['red']) } }),
      InvalidArgumentError,
      Status.INVALID_ARGUMENT,
    );
    assert.equal(filtered.field, 'metadata[0].equals');
  });
});
