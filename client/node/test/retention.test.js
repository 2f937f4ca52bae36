// Retention against the REAL daemon (DeleteSessions, ArchiveSessions, and `includeArchived` of
// SearchSessions and SearchMessages): one `sessiond serve` child of its own. Every test selects
// by ids, or by a metadata value of its own, and searches for words of its own, so no test
// touches another's sessions.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import { IDEMPOTENT_METHODS, InvalidArgumentError, SessionStoreClient, Status } from '../src/index.js';
import { rejectsWith } from './helpers/assertions.js';
import { startDaemon } from './helpers/daemon.js';

/** @type {import('./helpers/daemon.js').Daemon} */
let daemon;
/** @type {SessionStoreClient} */
let store;

/** A source of its own for each session, so tests do not share session keys. */
function freshSource(platform = 'telegram') {
  return { platform, chatId: `${Math.floor(Math.random() * 1e9)}`, chatType: /** @type {const} */ ('dm'), userId: '7' };
}

/** A word (or metadata value) no other test uses: letters and digits only, one word to the index. */
function fresh(stem = 'walrus') {
  return `${stem}${randomUUID().replaceAll('-', '').slice(0, 10)}`;
}

/**
 * A new session holding `texts` as user messages (ids m0, m1, ...), with `metadata` when given.
 * @param {string[]} texts
 * @param {{metadata?: import('../src/index.js').SessionMetadataInput, title?: string}} [options]
 */
async function chat(texts, { metadata, title } = {}) {
  const entry = await store.getOrCreateSession(freshSource());
  if (texts.length) {
    const messages = texts.map((content, n) => ({ role: 'user', content, message_id: `m${n}` }));
    assert.equal((await store.appendMessages(entry.sessionId, messages)).appended, texts.length);
  }
  if (metadata) await store.updateSessionMetadata(entry.sessionKey, { set: metadata });
  if (title) await store.setSessionTitle(entry.sessionId, title);
  return entry;
}

/**
 * The ids of the sessions whose messages have `word`, sorted.
 * @param {string} word
 * @param {Parameters<SessionStoreClient['searchMessages']>[1]} [options]
 */
async function found(word, options = {}) {
  const { hits } = await store.searchMessages(word, { pageSize: 100, ...options });
  return [...new Set(hits.map((hit) => hit.session.sessionId))].sort();
}

/**
 * Whether the daemon still stores the session (GetSessionMetadata answers for ended and archived ones too).
 * @param {string} sessionId
 */
async function exists(sessionId) {
  return (await store.getSessionMetadata(sessionId)) !== null;
}

before(async () => {
  daemon = await startDaemon();
  store = new SessionStoreClient(daemon.address, { timeoutMs: 5000 });
});

after(async () => {
  store?.close();
  await daemon?.stop();
});

describe('deleteSessions', () => {
  it('a dry run counts and writes nothing; a delete takes the session, its transcript, its hits and the key’s entry', async () => {
    const word = fresh();
    const source = freshSource();
    const entry = await store.getOrCreateSession(source);
    await store.appendMessages(entry.sessionId, [
      { role: 'user', content: `one ${word}`, message_id: 'a' },
      { role: 'assistant', content: `two ${word}`, message_id: 'b' },
    ]);
    const other = await chat([`three ${word}`]);

    const dry = await store.deleteSessions({ sessionIds: [entry.sessionId] }, { dryRun: true });
    assert.deepEqual(Object.keys(dry).sort(), ['messages', 'remaining', 'remainingMessages', 'sessionIds', 'sessionKeys']);
    assert.deepEqual(
      { sessionIds: dry.sessionIds, messages: dry.messages, remaining: dry.remaining, remainingMessages: dry.remainingMessages },
      { sessionIds: [entry.sessionId], messages: 2, remaining: 1, remainingMessages: 2 },
    );
    assert.ok(Array.isArray(dry.sessionKeys));
    // Nothing written: the session, its transcript, its hits and the key's entry are all still there.
    assert.ok(await exists(entry.sessionId));
    assert.equal((await store.loadTranscript(entry.sessionId)).length, 2);
    assert.deepEqual(await found(word), [entry.sessionId, other.sessionId].sort());
    assert.equal((await store.getSession(entry.sessionKey))?.version, entry.version);

    const done = await store.deleteSessions({ sessionIds: [entry.sessionId] });
    assert.deepEqual(done, {
      sessionIds: [entry.sessionId],
      messages: 2,
      remaining: 0,
      remainingMessages: 0,
      sessionKeys: [entry.sessionKey],
    });
    assert.equal(await exists(entry.sessionId), false);
    assert.deepEqual(await store.loadTranscript(entry.sessionId), [], 'the transcript went with it (NOT_FOUND: [])');
    assert.deepEqual(await found(word), [other.sessionId], 'and its messages left the index in the same transaction');
    assert.deepEqual(await found(word, { includeArchived: true }), [other.sessionId]);
    assert.deepEqual((await store.searchSessions(entry.sessionId, { includeArchived: true })).sessions, []);
    assert.equal(await store.getSession(entry.sessionKey), null, "the key's entry is gone");
    assert.ok(!(await store.listSessions()).some((listed) => listed.sessionKey === entry.sessionKey));

    // The key starts over; deleting the same id again deletes nothing.
    const again = await store.getOrCreateSession(source);
    assert.notEqual(again.sessionId, entry.sessionId);
    assert.deepEqual(await store.deleteSessions({ sessionIds: entry.sessionId }), {
      sessionIds: [],
      messages: 0,
      remaining: 0,
      remainingMessages: 0,
      sessionKeys: [],
    });
    assert.ok(await exists(other.sessionId), 'the other session is untouched');
  });

  it('an ended session goes without touching its key; a leased key’s current session is never selected', async () => {
    const entry = await chat(['x']);
    const current = await store.resetSession(entry.sessionKey);
    assert.ok(current);
    const done = await store.deleteSessions({ sessionIds: [entry.sessionId], ended: true });
    assert.deepEqual([done.sessionIds, done.sessionKeys], [[entry.sessionId], []]);
    assert.equal((await store.getSession(entry.sessionKey))?.sessionId, current.sessionId, 'the key keeps its current session');

    await store.acquireLease(current.sessionKey, 'worker', 60);
    assert.deepEqual((await store.deleteSessions({ sessionIds: [current.sessionId] })).sessionIds, []);
    assert.deepEqual((await store.archiveSessions({ sessionIds: [current.sessionId] })).sessionIds, []);
    assert.ok(await exists(current.sessionId));
    assert.equal(await store.releaseLease(current.sessionKey, 'worker'), true);
    assert.deepEqual((await store.deleteSessions({ sessionIds: [current.sessionId] })).sessionIds, [current.sessionId]);
  });

  it('conditions combine: all must hold (metadata, ended, titled, title prefix, message counts, platform)', async () => {
    const team = fresh('team');
    const tag = fresh('Notes');
    const long = await chat(['a', 'b', 'c'], { metadata: { team }, title: `${tag} long` });
    const short = await chat(['a'], { metadata: { team } });
    const empty = await chat([], { metadata: { team, pinned: true } });
    const chosen = async (/** @type {import('../src/index.js').SessionSelector} */ selector) =>
      (await store.deleteSessions({ metadata: { team }, ...selector }, { dryRun: true, limit: 1000 })).sessionIds.sort();

    assert.deepEqual(await chosen({}), [long.sessionId, short.sessionId, empty.sessionId].sort());
    assert.deepEqual(await chosen({ minMessages: 2 }), [long.sessionId]);
    assert.deepEqual(await chosen({ maxMessages: 0 }), [empty.sessionId]);
    assert.deepEqual(await chosen({ minMessages: 1, maxMessages: 1 }), [short.sessionId]);
    assert.deepEqual(await chosen({ titled: true }), [long.sessionId]);
    assert.deepEqual(await chosen({ titled: false }), [short.sessionId, empty.sessionId].sort());
    assert.deepEqual(await chosen({ titlePrefix: `${tag.toUpperCase()}-LO` }), [long.sessionId], 'case and punctuation ignored');
    assert.deepEqual(await chosen({ metadata: { team, pinned: null } }), [empty.sessionId]);
    assert.deepEqual(await chosen({ ended: true }), []);
    assert.deepEqual(await chosen({ ended: false, chatType: 'dm', platform: 'telegram' }), [long.sessionId, short.sessionId, empty.sessionId].sort());
    assert.deepEqual(await chosen({ platform: 'discord' }), []);
    assert.deepEqual(await chosen({ inactiveDays: 1 }), [], 'all were active just now');
    assert.deepEqual(await chosen({ archived: true }), []);
    assert.deepEqual(await chosen({ sessionIds: [short.sessionId, empty.sessionId], minMessages: 1 }), [short.sessionId]);
    for (const entry of [long, short, empty]) assert.ok(await exists(entry.sessionId), 'dry runs all');
  });
});

describe('archiveSessions', () => {
  it('archived sessions leave search unless includeArchived, stay loadable, and their key starts over; unarchive brings them back', async () => {
    const word = fresh('narwhal');
    const tag = fresh('Project');
    const source = freshSource();
    const entry = await store.getOrCreateSession(source);
    await store.appendMessages(entry.sessionId, [{ role: 'user', content: `the ${word} plan`, message_id: 'n0' }]);
    await store.setSessionTitle(entry.sessionId, `${tag} narwhal`);

    const dry = await store.archiveSessions({ sessionIds: [entry.sessionId] }, { dryRun: true });
    assert.deepEqual([dry.sessionIds, dry.messages, dry.remaining], [[entry.sessionId], 1, 1]);
    assert.deepEqual(await found(word), [entry.sessionId], 'a dry run archives nothing');

    const done = await store.archiveSessions({ sessionIds: [entry.sessionId] });
    assert.deepEqual(done, {
      sessionIds: [entry.sessionId],
      messages: 1,
      remaining: 0,
      remainingMessages: 0,
      sessionKeys: [entry.sessionKey],
    });
    // Out of both searches, unless asked for.
    assert.deepEqual(await found(word), []);
    assert.deepEqual(await found(word, { includeArchived: true }), [entry.sessionId]);
    const [hit] = (await store.searchMessages(word, { includeArchived: true })).hits;
    assert.ok(hit.session.archivedAt instanceof Date, `archivedAt ${hit.session.archivedAt}`);
    assert.deepEqual((await store.searchSessions(tag)).sessions, []);
    const { sessions } = await store.searchSessions(tag, { includeArchived: true });
    assert.deepEqual(sessions.map((summary) => summary.sessionId), [entry.sessionId]);
    const [summary] = sessions;
    assert.ok(summary.archivedAt instanceof Date && summary.activeAt instanceof Date);
    assert.ok(Math.abs(summary.archivedAt.getTime() - Date.now()) < 60_000, 'archived just now');
    assert.ok(summary.activeAt.getTime() <= summary.archivedAt.getTime(), 'archiving is no activity');
    assert.equal(summary.endReason, 'session_archived', 'archiving a current session ends it');
    // Kept whole: the transcript, the metadata read.
    assert.deepEqual(await store.loadTranscript(entry.sessionId), [{ role: 'user', content: `the ${word} plan` }]);
    assert.ok(await exists(entry.sessionId));
    // The key's entry went with it: the key starts over at its next message.
    assert.equal(await store.getSession(entry.sessionKey), null);
    const next = await store.getOrCreateSession(source);
    assert.notEqual(next.sessionId, entry.sessionId);

    // Already archived: not selected again; `archived` selects it for a delete's dry run.
    assert.deepEqual((await store.archiveSessions({ sessionIds: [entry.sessionId] })).sessionIds, []);
    const archivedOnes = await store.deleteSessions({ sessionIds: [entry.sessionId, next.sessionId], archived: true }, { dryRun: true });
    assert.deepEqual(archivedOnes.sessionIds, [entry.sessionId]);

    // Unarchive: back in search, archivedAt null again; unarchiving it twice changes nothing.
    const back = await store.archiveSessions({ sessionIds: [entry.sessionId] }, { unarchive: true });
    assert.deepEqual([back.sessionIds, back.messages, back.remaining], [[entry.sessionId], 1, 0]);
    assert.deepEqual(await found(word), [entry.sessionId]);
    const [restored] = (await store.searchSessions(tag)).sessions;
    assert.equal(restored?.sessionId, entry.sessionId);
    assert.equal(restored?.archivedAt, null);
    assert.deepEqual((await store.archiveSessions({ sessionIds: [entry.sessionId] }, { unarchive: true })).sessionIds, []);
    assert.equal((await store.getSession(entry.sessionKey))?.sessionId, next.sessionId, 'unarchiving does not move the key back');
  });

  it('switchSession back to an archived session unarchives it', async () => {
    const word = fresh('orca');
    const source = freshSource();
    const entry = await store.getOrCreateSession(source);
    await store.appendMessages(entry.sessionId, [{ role: 'user', content: `an ${word}`, message_id: 'o0' }]);
    await store.archiveSessions({ sessionIds: [entry.sessionId] });
    assert.deepEqual(await found(word), []);
    // The key's entry went with the archived session: the key gets a new one, then switches back (/resume).
    const fresher = await store.getOrCreateSession(source);
    assert.notEqual(fresher.sessionId, entry.sessionId);
    const switched = await store.switchSession(entry.sessionKey, entry.sessionId);
    assert.equal(switched?.sessionId, entry.sessionId);
    assert.deepEqual(await found(word), [entry.sessionId]);
    const [summary] = (await store.searchSessions(entry.sessionId)).sessions;
    assert.equal(summary?.archivedAt, null);
  });
});

describe('selectors, limits and batches', () => {
  it('a selector without conditions is INVALID_ARGUMENT naming `selector`, and nothing is written', async () => {
    const entry = await chat(['x']);
    for (const selector of [{}, { platform: null, sessionIds: undefined }]) {
      for (const call of [
        () => store.deleteSessions(selector),
        () => store.deleteSessions(selector, { dryRun: true }),
        () => store.archiveSessions(selector),
        () => store.archiveSessions(selector, { unarchive: true }),
        () => store.deleteAllSessions(selector),
        () => store.archiveAllSessions(selector),
      ]) {
        const error = await rejectsWith(call(), InvalidArgumentError, Status.INVALID_ARGUMENT);
        assert.equal(error.field, 'selector');
        assert.match(error.description, /at least one condition/);
      }
    }
    // The daemon names the other fields it refuses, too.
    const refused = async (/** @type {import('../src/index.js').SessionSelector} */ selector, options = {}) =>
      (await rejectsWith(store.deleteSessions(selector, options), InvalidArgumentError, Status.INVALID_ARGUMENT)).field;
    assert.equal(await refused({ inactiveDays: 0 }), 'selector.inactive_days');
    assert.equal(await refused({ endReasons: [''] }), 'selector.end_reasons[0]');
    assert.equal(await refused({ minMessages: -1 }), 'selector.min_messages');
    assert.equal(await refused({ titlePrefix: '!!' }), 'selector.title_prefix');
    assert.equal(await refused({ sessionIds: Array.from({ length: 1001 }, (_, n) => `x${n}`) }), 'selector.session_ids');
    assert.equal(await refused({ metadata: { Bad: null } }), 'selector.metadata[0].key');
    assert.equal(await refused({ platform: 'telegram' }, { limit: -1 }), 'limit');
    // A key the selector has not, or a value of another type: a TypeError before anything is sent.
    await assert.rejects(store.deleteSessions(/** @type {any} */ ({ session_ids: [entry.sessionId] })), /TypeError: selector\.session_ids: no such condition/);
    await assert.rejects(store.archiveSessions(/** @type {any} */ ({ sessionIds: [entry.sessionId], ended: 'no' })), TypeError);
    await assert.rejects(store.deleteAllSessions(/** @type {any} */ ('everything')), TypeError);
    assert.ok(await exists(entry.sessionId));
    assert.equal((await store.getSession(entry.sessionKey))?.sessionId, entry.sessionId);
  });

  it('limit makes batches, least recently active first; remaining counts down to 0', async () => {
    const batch = fresh('batch');
    const entries = [];
    for (let n = 0; n < 5; n += 1) entries.push(await chat([`message ${n}`], { metadata: { batch } }));
    const selector = { metadata: { batch } };
    // Their last activity, as the daemon orders them.
    const { sessions } = await store.searchSessions('2', { pageSize: 100 }); // ids start with the year
    const activeAt = new Map(sessions.map((summary) => [summary.sessionId, summary.activeAt.getTime()]));
    assert.ok(entries.every((entry) => activeAt.has(entry.sessionId)));

    const dry = await store.deleteSessions(selector, { dryRun: true, limit: 2 });
    assert.deepEqual([dry.sessionIds.length, dry.messages, dry.remaining, dry.remainingMessages], [2, 2, 5, 5]);
    const first = await store.deleteSessions(selector, { limit: 2 });
    assert.deepEqual(first.sessionIds, dry.sessionIds, 'the dry run named the first batch');
    assert.deepEqual([first.sessionIds.length, first.messages, first.remaining, first.remainingMessages], [2, 2, 3, 3]);
    const second = await store.deleteSessions(selector, { limit: 2 });
    assert.deepEqual([second.sessionIds.length, second.remaining, second.remainingMessages], [2, 1, 1]);
    const third = await store.deleteSessions(selector, { limit: 2 });
    assert.deepEqual([third.sessionIds.length, third.remaining, third.remainingMessages], [1, 0, 0]);
    const all = [...first.sessionIds, ...second.sessionIds, ...third.sessionIds];
    assert.deepEqual([...all].sort(), entries.map((entry) => entry.sessionId).sort(), 'each session once');
    const times = all.map((id) => /** @type {number} */ (activeAt.get(id)));
    assert.deepEqual(times, [...times].sort((a, b) => a - b), 'least recently active first');
    assert.equal((await store.deleteSessions(selector, { limit: 2 })).sessionIds.length, 0);
  });

  it('deleteAllSessions and archiveAllSessions loop until nothing remains, reporting each batch', async () => {
    const batch = fresh('loop');
    const entries = [];
    for (let n = 0; n < 5; n += 1) entries.push(await chat(['a', 'b'], { metadata: { batch } }));
    const ids = entries.map((entry) => entry.sessionId).sort();
    const selector = { metadata: { batch } };

    /** @type {import('../src/index.js').BulkResult[]} */
    const archived = [];
    const archiving = await store.archiveAllSessions(selector, { limit: 2, onProgress: (result) => void archived.push(result) });
    assert.deepEqual(archived.map((result) => [result.sessionIds.length, result.remaining]), [[2, 3], [2, 1], [1, 0]]);
    assert.deepEqual([...archiving.sessionIds].sort(), ids);
    assert.deepEqual([archiving.messages, archiving.remaining, archiving.remainingMessages], [10, 0, 0]);
    assert.deepEqual([...archiving.sessionKeys].sort(), entries.map((entry) => entry.sessionKey).sort());
    const back = await store.archiveAllSessions(selector, { limit: 3, unarchive: true });
    assert.deepEqual([...back.sessionIds].sort(), ids);

    /** @type {import('../src/index.js').BulkResult[]} */
    const deleted = [];
    const deleting = await store.deleteAllSessions(selector, {
      limit: 2,
      onProgress: async (result) => {
        deleted.push(result);
        assert.equal(await exists(result.sessionIds[0]), false, 'each batch is committed before the next');
      },
    });
    assert.deepEqual(deleted.map((result) => [result.sessionIds.length, result.messages, result.remaining]), [[2, 4, 3], [2, 4, 1], [1, 2, 0]]);
    assert.deepEqual([...deleting.sessionIds].sort(), ids);
    assert.deepEqual([deleting.messages, deleting.remaining, deleting.remainingMessages], [10, 0, 0]);
    for (const id of ids) assert.equal(await exists(id), false);
    // Nothing matches: one call, nothing deleted.
    const none = await store.deleteAllSessions(selector);
    assert.deepEqual(none, { sessionIds: [], messages: 0, remaining: 0, remainingMessages: 0, sessionKeys: [] });

    // A throwing onProgress stops the loop after its batch.
    const stop = fresh('stop');
    for (let n = 0; n < 3; n += 1) await chat(['x'], { metadata: { stop } });
    await assert.rejects(
      store.deleteAllSessions({ metadata: { stop } }, { limit: 1, onProgress: () => { throw new Error('enough'); } }),
      /enough/,
    );
    assert.equal((await store.deleteSessions({ metadata: { stop } }, { dryRun: true })).remaining, 2);
  });

  it('neither bulk call is retried: a second attempt would change the next batch', () => {
    for (const method of ['DeleteSessions', 'ArchiveSessions']) {
      assert.ok(!IDEMPOTENT_METHODS.includes(/** @type {any} */ (method)), method);
    }
  });
});
