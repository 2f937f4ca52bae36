// Agent namespaces against the REAL daemon: a client made with `namespace` builds
// "agent:<namespace>:..." keys, and its listings, searches, prunes, bulk calls and event watches
// see its namespace only; a client without the option sends exactly what it always sent and sees
// every key. One `sessiond serve` child of its own (and one more whose configuration names the
// daemon's namespace). Every test uses chats, words and metadata values of its own, and every
// wait for events is for the events themselves, with a deadline (helpers/events.js).

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import grpc from '@grpc/grpc-js';

import { InvalidArgumentError, SessionStoreClient, Status, fromServiceError, loadContract } from '../src/index.js';
import { rejectsWith } from './helpers/assertions.js';
import { startDaemon } from './helpers/daemon.js';
import { summaries, takeEvents } from './helpers/events.js';

/** @type {import('./helpers/daemon.js').Daemon} */
let daemon;
/** Without the option: the daemon's namespace ("main") for keys, every key otherwise. */
/** @type {SessionStoreClient} */
let store;
/** @type {SessionStoreClient} */
let research;
/** @type {SessionStoreClient} */
let ops;
/** A bare stub of the contract, to see what the daemon itself says of a namespace. */
/** @type {any} */
let stub;

/** A source of its own for each session, so tests do not share session keys. */
function freshSource(platform = 'telegram') {
  return { platform, chatId: `${Math.floor(Math.random() * 1e9)}`, chatType: /** @type {const} */ ('dm'), userId: '7' };
}

/** A word (or metadata value) no other test uses: letters and digits only, one word to the index. */
function fresh(stem = 'walrus') {
  return `${stem}${randomUUID().replaceAll('-', '').slice(0, 10)}`;
}

/**
 * A new session of `client`'s namespace for a chat of its own, holding `text` as a user message
 * when given, with `metadata` when given.
 * @param {SessionStoreClient} client
 * @param {{text?: string, metadata?: import('../src/index.js').SessionMetadataInput}} [options]
 */
async function chat(client, { text, metadata } = {}) {
  const entry = await client.getOrCreateSession(freshSource());
  if (text) await client.appendMessages(entry.sessionId, [{ role: 'user', content: text, message_id: 'm0' }]);
  if (metadata) await client.updateSessionMetadata(entry.sessionKey, { set: metadata });
  return entry;
}

/**
 * The ids of the sessions whose messages have `word`, sorted, as `client` finds them.
 * @param {SessionStoreClient} client
 * @param {string} word
 */
async function found(client, word) {
  const { hits } = await client.searchMessages(word, { pageSize: 100 });
  return [...new Set(hits.map((hit) => hit.session.sessionId))].sort();
}

/**
 * One unary call of the bare stub, its error as the client's.
 * @param {string} method
 * @param {Record<string, unknown>} request
 */
function call(method, request) {
  return new Promise((resolve, reject) => {
    stub[method](request, { deadline: Date.now() + 5000 }, (/** @type {unknown} */ error, /** @type {any} */ response) =>
      error ? reject(fromServiceError(error)) : resolve(response),
    );
  });
}

/** @param {string[]} ids */
const sorted = (ids) => [...ids].sort();

before(async () => {
  daemon = await startDaemon();
  store = new SessionStoreClient(daemon.address, { timeoutMs: 5000 });
  research = new SessionStoreClient(daemon.address, { timeoutMs: 5000, namespace: 'research' });
  ops = new SessionStoreClient(daemon.address, { timeoutMs: 5000, namespace: 'ops-2' });
  const { SessionStore } = loadContract();
  stub = new SessionStore(daemon.address, grpc.credentials.createInsecure());
});

after(async () => {
  stub?.close();
  for (const client of [store, research, ops]) client?.close();
  await daemon?.stop();
});

describe('keys', () => {
  it('a namespaced client builds and creates agent:<namespace>:... keys; the same chat is another key and session in each', async () => {
    assert.equal(research.namespace, 'research');
    assert.equal(store.namespace, null);
    const source = freshSource();
    const main = await store.getOrCreateSession(source);
    assert.equal(main.sessionKey, `agent:main:telegram:dm:${source.chatId}`, "without the option: the daemon's namespace, the reference's bytes");
    const mine = await research.getOrCreateSession(source);
    assert.equal(mine.sessionKey, `agent:research:telegram:dm:${source.chatId}`);
    assert.notEqual(mine.sessionId, main.sessionId, 'two keys, two sessions');
    assert.equal((await research.getOrCreateSession(source)).sessionId, mine.sessionId, 'and the namespace key keeps its session');
    assert.equal((await store.getOrCreateSession(source)).sessionId, main.sessionId);
    assert.equal((await ops.getOrCreateSession(source)).sessionKey, `agent:ops-2:telegram:dm:${source.chatId}`);

    // buildSessionKey agrees with getOrCreateSession, for other kinds of chats too: the reference's
    // key with the namespace as its second part.
    const sources = [
      source,
      { platform: 'telegram', chatId: '-100', chatType: 'group', userId: '42' },
      { platform: 'discord', chatId: 'c1', chatType: 'thread', threadId: 't9', userId: 'u1' },
      { platform: 'slack', chatId: 'C1', chatType: 'channel', userId: 'U1', threadId: '17.5' },
    ];
    for (const each of sources) {
      const key = await store.buildSessionKey(each);
      assert.match(key, /^agent:main:/);
      assert.equal(await research.buildSessionKey(each), key.replace(/^agent:main:/, 'agent:research:'));
      const details = await research.buildSessionKeyDetails(each);
      const plain = await store.buildSessionKeyDetails(each);
      assert.deepEqual(details, { ...plain, sessionKey: key.replace(/^agent:main:/, 'agent:research:') });
    }

    // A key names its session whatever the client's namespace.
    assert.equal((await store.getSession(mine.sessionKey))?.sessionId, mine.sessionId);
    assert.equal((await research.getSession(main.sessionKey))?.sessionId, main.sessionId);
  });

  it("without the option, keys are the daemon's configured namespace; a client naming one gets its own", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sessiond-node-ns-'));
    const config = join(dir, 'sessiond.toml');
    await writeFile(config, '[sessions]\nnamespace = "fleet"\n');
    const own = await startDaemon({ args: ['--config', config] });
    const plain = new SessionStoreClient(own.address, { timeoutMs: 5000 });
    const main = new SessionStoreClient(own.address, { timeoutMs: 5000, namespace: 'main' });
    try {
      const source = freshSource();
      assert.equal((await plain.getOrCreateSession(source)).sessionKey, `agent:fleet:telegram:dm:${source.chatId}`);
      assert.equal(await plain.buildSessionKey(source), `agent:fleet:telegram:dm:${source.chatId}`);
      assert.equal((await main.getOrCreateSession(source)).sessionKey, `agent:main:telegram:dm:${source.chatId}`);
      // Listings without a namespace are every key's, whatever the daemon's namespace.
      const keys = (await plain.listSessions()).map((entry) => entry.sessionKey).sort();
      assert.deepEqual(keys, [`agent:fleet:telegram:dm:${source.chatId}`, `agent:main:telegram:dm:${source.chatId}`]);
      assert.deepEqual((await main.listSessions()).map((entry) => entry.sessionKey), [`agent:main:telegram:dm:${source.chatId}`]);
    } finally {
      plain.close();
      main.close();
      await own.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('listings and searches', () => {
  it('listSessions, searchMessages and searchSessions of a namespaced client see its namespace only; without the option, everything', async () => {
    const word = fresh();
    const title = fresh('Voyage');
    const main = await chat(store, { text: `a ${word} in main` });
    const mine = await chat(research, { text: `a ${word} in research` });
    const theirs = await chat(ops, { text: `a ${word} in ops` });
    await store.setSessionTitle(main.sessionId, `${title} main`);
    await research.setSessionTitle(mine.sessionId, `${title} research`);

    const listed = async (/** @type {SessionStoreClient} */ client) => (await client.listSessions()).map((entry) => entry.sessionKey);
    const researchKeys = await listed(research);
    assert.ok(researchKeys.includes(mine.sessionKey));
    assert.ok(researchKeys.every((key) => key.startsWith('agent:research:')), researchKeys.join(' '));
    const opsKeys = await listed(ops);
    assert.ok(opsKeys.includes(theirs.sessionKey) && opsKeys.every((key) => key.startsWith('agent:ops-2:')), opsKeys.join(' '));
    const everyKey = await listed(store);
    for (const key of [main.sessionKey, mine.sessionKey, theirs.sessionKey]) assert.ok(everyKey.includes(key), key);
    assert.deepEqual(sorted(everyKey), sorted([...new Set(everyKey)]));
    assert.ok(everyKey.length > researchKeys.length + opsKeys.length, 'main has keys of its own');
    // Filters still apply, within the namespace.
    assert.deepEqual(await research.listSessions({ activeMinutes: 60, metadata: { nobody: null } }), []);

    assert.deepEqual(await found(research, word), [mine.sessionId]);
    assert.deepEqual(await found(ops, word), [theirs.sessionId]);
    assert.deepEqual(await found(store, word), sorted([main.sessionId, mine.sessionId, theirs.sessionId]));

    const titled = async (/** @type {SessionStoreClient} */ client) =>
      (await client.searchSessions(title.toLowerCase(), { pageSize: 100 })).sessions.map((summary) => summary.sessionId).sort();
    assert.deepEqual(await titled(research), [mine.sessionId]);
    assert.deepEqual(await titled(ops), []);
    assert.deepEqual(await titled(store), sorted([main.sessionId, mine.sessionId]));
    // By id prefix too: main's session is not research's.
    assert.deepEqual((await research.searchSessions(main.sessionId)).sessions, []);
    assert.deepEqual((await store.searchSessions(main.sessionId)).sessions.map((summary) => summary.sessionId), [main.sessionId]);
  });

  it('listExpiredSessions and pruneOldEntries of a namespaced client stay in its namespace', async () => {
    // Nothing here is old enough to expire or be pruned (the daemon's clock is real): the daemon's
    // own tests age entries; here every entry listed must be the namespace's, and nothing pruned.
    for (const entry of await research.listExpiredSessions()) assert.match(entry.sessionKey, /^agent:research:/);
    assert.equal(await research.pruneOldEntries(1), 0);
    assert.equal(await research.pruneOldEntries(), 0);
    assert.ok((await research.listSessions()).length > 0, 'the entries are still there');
  });
});

describe('bulk calls', () => {
  it('deleteSessions (dry run and for real), archiveSessions and the loops select only the namespace', async () => {
    const team = fresh('team');
    const main = await chat(store, { metadata: { team } });
    const mine = await chat(research, { metadata: { team } });
    const other = await chat(research, { metadata: { team } });
    const theirs = await chat(ops, { metadata: { team } });
    const selector = { metadata: { team } };

    const plan = await research.deleteSessions(selector, { dryRun: true });
    assert.deepEqual(sorted(plan.sessionIds), sorted([mine.sessionId, other.sessionId]));
    assert.equal(plan.remaining, 2);
    const everything = await store.deleteSessions(selector, { dryRun: true });
    assert.deepEqual(sorted(everything.sessionIds), sorted([main.sessionId, mine.sessionId, other.sessionId, theirs.sessionId]));
    assert.equal(everything.remaining, 4);
    assert.deepEqual((await ops.deleteSessions(selector, { dryRun: true })).sessionIds, [theirs.sessionId]);

    // A selector's own namespace is kept; a null one is no condition, so the client's applies.
    assert.deepEqual((await research.deleteSessions({ ...selector, namespace: 'main' }, { dryRun: true })).sessionIds, [main.sessionId]);
    assert.deepEqual((await store.deleteSessions({ ...selector, namespace: 'ops-2' }, { dryRun: true })).sessionIds, [theirs.sessionId]);
    assert.equal((await research.deleteSessions({ ...selector, namespace: null }, { dryRun: true })).remaining, 2);

    // The client's namespace is no condition of the caller's: a selector without any is still
    // refused, by the daemon, naming `selector` (and nothing is written); naming the namespace is one.
    for (const none of [{}, { platform: null, sessionIds: [], metadata: {} }]) {
      for (const attempt of [
        () => research.deleteSessions(none),
        () => research.deleteSessions(none, { dryRun: true }),
        () => research.archiveSessions(none),
        () => research.deleteAllSessions(none),
        () => research.archiveAllSessions(none, { unarchive: true }),
      ]) {
        assert.equal((await rejectsWith(attempt(), InvalidArgumentError, Status.INVALID_ARGUMENT)).field, 'selector');
      }
    }
    const named = await research.deleteSessions({ namespace: 'research' }, { dryRun: true, limit: 1000 });
    assert.ok(named.sessionIds.includes(mine.sessionId) && named.sessionIds.includes(other.sessionId));
    assert.ok(!named.sessionIds.includes(main.sessionId) && !named.sessionIds.includes(theirs.sessionId));

    const deleted = await research.deleteSessions({ ...selector, sessionIds: [mine.sessionId, main.sessionId] });
    assert.deepEqual(deleted.sessionIds, [mine.sessionId], "main's session is not research's to delete");
    assert.deepEqual(deleted.sessionKeys, [mine.sessionKey]);
    const loop = await research.deleteAllSessions(selector);
    assert.deepEqual(loop.sessionIds, [other.sessionId]);
    assert.equal(loop.remaining, 0);
    const left = await store.deleteSessions(selector, { dryRun: true });
    assert.deepEqual(sorted(left.sessionIds), sorted([main.sessionId, theirs.sessionId]), 'the other namespaces kept theirs');
    assert.equal(await store.getSession(mine.sessionKey), null);
    assert.equal((await store.getSession(main.sessionKey))?.sessionId, main.sessionId);
  });

  it('archiveSessions and archiveAllSessions, and unarchiving, select only the namespace', async () => {
    const team = fresh('crew');
    const main = await chat(store, { metadata: { team } });
    const mine = await chat(research, { metadata: { team } });
    const other = await chat(research, { metadata: { team } });
    const selector = { metadata: { team } };
    const archivedAt = async (/** @type {string} */ sessionId) =>
      (await store.searchSessions(sessionId, { includeArchived: true })).sessions[0]?.archivedAt ?? null;

    const first = await research.archiveSessions(selector, { limit: 1 });
    assert.equal(first.sessionIds.length, 1);
    assert.equal(first.remaining, 1, "research's other session; main's is not counted");
    const rest = await research.archiveAllSessions(selector);
    assert.equal(rest.remaining, 0);
    assert.deepEqual(sorted([...first.sessionIds, ...rest.sessionIds]), sorted([mine.sessionId, other.sessionId]));
    assert.ok((await archivedAt(mine.sessionId)) instanceof Date);
    assert.equal(await archivedAt(main.sessionId), null, "main's session is not archived");
    assert.deepEqual((await store.archiveSessions(selector, { dryRun: true })).sessionIds, [main.sessionId]);

    const back = await research.archiveAllSessions(selector, { unarchive: true });
    assert.deepEqual(sorted(back.sessionIds), sorted([mine.sessionId, other.sessionId]));
    assert.equal(await archivedAt(mine.sessionId), null);
  });
});

describe('watchEvents', () => {
  it("a namespaced watch receives only its namespace's events; one without the option, everyone's", async () => {
    const mineWatch = research.watchEvents({ fromNow: true });
    const created = research.watchEvents({ fromNow: true, kinds: ['created'] });
    const everything = store.watchEvents({ fromNow: true });
    try {
      await Promise.all([mineWatch.ready, created.ready, everything.ready]);
      const main = await store.getOrCreateSession(freshSource());
      const mine = await research.getOrCreateSession(freshSource());
      const theirs = await ops.getOrCreateSession(freshSource());
      await store.updateSessionMetadata(main.sessionKey, { set: { step: 1 } });
      await research.updateSessionMetadata(mine.sessionKey, { set: { step: 1 } });
      await ops.updateSessionMetadata(theirs.sessionKey, { set: { step: 1 } });
      const later = await store.getOrCreateSession(freshSource());
      // The last change is research's: once the namespaced watch has it, every event before it
      // was either delivered or left out.
      await research.updateSessionMetadata(mine.sessionKey, { set: { step: 2 } });

      const events = await takeEvents(mineWatch, 3);
      assert.deepEqual(summaries(events), [
        { kind: 'created', sessionKey: mine.sessionKey, sessionId: mine.sessionId, reason: null },
        { kind: 'metadata_changed', sessionKey: mine.sessionKey, sessionId: mine.sessionId, reason: 'step' },
        { kind: 'metadata_changed', sessionKey: mine.sessionKey, sessionId: mine.sessionId, reason: 'step' },
      ]);
      assert.equal(mineWatch.cursor, events[2].sequence);

      const all = await takeEvents(everything, 8);
      assert.deepEqual(
        all.map((event) => [event.kind, event.sessionKey]),
        [
          ['created', main.sessionKey],
          ['created', mine.sessionKey],
          ['created', theirs.sessionKey],
          ['metadata_changed', main.sessionKey],
          ['metadata_changed', mine.sessionKey],
          ['metadata_changed', theirs.sessionKey],
          ['created', later.sessionKey],
          ['metadata_changed', mine.sessionKey],
        ],
      );
      assert.deepEqual(events.map((event) => event.sequence), [all[1], all[4], all[7]].map((event) => event.sequence), 'the same events, the same sequences');

      // With kinds too: research's one creation; the cursor moves on to the newest event.
      const [first] = await takeEvents(created, 1);
      assert.equal(first.sessionId, mine.sessionId);
      const resumed = research.watchEvents({ afterSequence: first.sequence, kinds: 'created' });
      try {
        await resumed.ready;
        assert.equal(resumed.cursor, all[7].sequence, 'past the events of other namespaces and kinds');
      } finally {
        resumed.close();
      }
    } finally {
      mineWatch.close();
      created.close();
      everything.close();
    }
  });
});

describe('requests', () => {
  /**
   * A client whose requests are recorded by a grpc-js interceptor, as the contract's messages
   * before encoding, with their encoding.
   * @param {string | null} namespace
   */
  function recording(namespace) {
    /** @type {{method: string, message: any, bytes: Buffer}[]} */
    const sent = [];
    /** @type {grpc.Interceptor} */
    const interceptor = (options, nextCall) =>
      new grpc.InterceptingCall(nextCall(options), {
        sendMessage(message, next) {
          const { path, requestSerialize } = options.method_definition;
          sent.push({ method: path.slice(path.lastIndexOf('/') + 1), message, bytes: requestSerialize(message) });
          next(message);
        },
      });
    const client = new SessionStoreClient(daemon.address, { timeoutMs: 5000, namespace, channelOptions: { interceptors: [interceptor] } });
    return { client, sent };
  }

  /**
   * Every call that sends a namespace (or would), once, with the same arguments for each client.
   * @param {SessionStoreClient} client
   * @param {ReturnType<typeof freshSource>} source
   * @param {string} word
   */
  async function everyScopedCall(client, source, word) {
    await client.buildSessionKey(source);
    await client.buildSessionKeyDetails(source);
    await client.getOrCreateSession(source, { title: null });
    await client.listSessions({ metadata: { nobody: null } });
    await client.listExpiredSessions();
    await client.searchSessions(word);
    await client.searchMessages(word, { platform: 'telegram' });
    await client.pruneOldEntries(0);
    const nothing = { sessionIds: ['20000101_000000_00000000'] };
    await client.deleteSessions(nothing, { dryRun: true });
    await client.archiveSessions(nothing, { dryRun: true });
    await client.deleteAllSessions(nothing);
    await client.archiveAllSessions(nothing, { unarchive: true });
    const watch = client.watchEvents({ fromNow: true, kinds: ['created'] });
    await watch.ready;
    watch.close();
    await client.getSession('agent:main:telegram:dm:nobody'); // no namespace here: the same request either way
  }

  it('without the option no request carries a namespace or a gateway config; with it, each carries the namespace', async () => {
    const plain = recording(null);
    const scoped = recording('research');
    try {
      const source = freshSource();
      const word = fresh();
      await everyScopedCall(plain.client, source, word);
      await everyScopedCall(scoped.client, source, word);
    } finally {
      plain.client.close();
      scoped.client.close();
    }
    const methods = plain.sent.map((request) => request.method);
    assert.deepEqual(methods, scoped.sent.map((request) => request.method));
    assert.deepEqual(methods, [
      'BuildSessionKey',
      'BuildSessionKey',
      'GetOrCreateSession',
      'ListSessions',
      'ListExpiredSessions',
      'SearchSessions',
      'SearchMessages',
      'PruneOldEntries',
      'DeleteSessions',
      'ArchiveSessions',
      'DeleteSessions',
      'ArchiveSessions',
      'WatchSessionEvents',
      'GetSession',
    ]);
    const { definition } = loadContract();
    const service = /** @type {any} */ (definition['sessiond.v1.SessionStore']);
    for (const [index, { method, message, bytes }] of plain.sent.entries()) {
      // Not even an unset field: the request object is what the client sent before namespaces.
      assert.ok(!Object.hasOwn(message, 'namespace') && !Object.hasOwn(message, 'config'), `${method}: ${JSON.stringify(message)}`);
      if (message.selector) assert.ok(!Object.hasOwn(message.selector, 'namespace'), method);
      const decoded = service[method].requestDeserialize(bytes);
      assert.equal(decoded._namespace, undefined, `${method} has no namespace on the wire`);
      assert.equal(decoded.config ?? null, null, `${method} has no config on the wire`);
      if (decoded.selector) assert.equal(decoded.selector._namespace, undefined, method);

      const other = scoped.sent[index];
      if (method === 'GetSession') {
        assert.ok(other.bytes.equals(bytes), 'a call without a namespace field is the same either way');
        continue;
      }
      // The namespaced request is the plain one plus the namespace: in `config` for the calls
      // that build keys, in the selector for the bulk calls, in the request's own field otherwise.
      const { config, namespace, ...rest } = other.message;
      if (method === 'BuildSessionKey' || method === 'GetOrCreateSession') {
        assert.deepEqual(config, { namespace: 'research' }, method);
        assert.equal(namespace, undefined, method);
        assert.deepEqual(service[method].requestDeserialize(other.bytes).config.namespace, 'research');
      } else if (message.selector) {
        assert.equal(other.message.selector.namespace, 'research', method);
        assert.equal(config, undefined, method);
        assert.equal(namespace, undefined, method);
        assert.equal(service[method].requestDeserialize(other.bytes).selector.namespace, 'research');
        const { namespace: _, ...selector } = other.message.selector;
        rest.selector = selector;
      } else {
        assert.equal(namespace, 'research', method);
        assert.equal(config, undefined, method);
        assert.equal(service[method].requestDeserialize(other.bytes).namespace, 'research');
      }
      // What is left encodes as the plain request, byte for byte.
      assert.ok(service[method].requestSerialize(rest).equals(bytes), `${method}: only the namespace differs`);
    }
  });
});

describe('a bad namespace', () => {
  it("fails in the constructor exactly where the daemon refuses it (config.namespace, namespace, selector.namespace)", async () => {
    for (const bad of ['', 'Research', 'Bad Name', 'x:y', '-lead', '_lead', 'a'.repeat(65), 'café', 'a.b']) {
      assert.throws(
        () => new SessionStoreClient(daemon.address, { namespace: bad }),
        (/** @type {unknown} */ error) =>
          error instanceof InvalidArgumentError && error.code === Status.INVALID_ARGUMENT && error.field === 'namespace',
        JSON.stringify(bad),
      );
      // What the daemon says of it, field by field.
      const source = { platform: 'telegram', chatId: '1', chatType: 'CHAT_TYPE_DM' };
      const refused = async (/** @type {Promise<unknown>} */ promise) =>
        (await rejectsWith(promise, InvalidArgumentError, Status.INVALID_ARGUMENT)).field;
      assert.equal(await refused(call('GetOrCreateSession', { source, config: { namespace: bad } })), 'config.namespace', bad);
      assert.equal(await refused(call('BuildSessionKey', { source, config: { namespace: bad } })), 'config.namespace', bad);
      assert.equal(await refused(call('ListSessions', { namespace: bad })), 'namespace', bad);
      assert.equal(await refused(call('SearchMessages', { query: 'x', namespace: bad })), 'namespace', bad);
      assert.equal(await refused(store.deleteSessions({ sessionIds: ['x'], namespace: bad }, { dryRun: true })), 'selector.namespace', bad);
    }
    for (const good of ['a', '0', 'a'.repeat(64), 'ops_2-x', '9-lives']) {
      const client = new SessionStoreClient(daemon.address, { namespace: good });
      try {
        assert.equal(await client.buildSessionKey({ platform: 'telegram', chatId: '1' }), `agent:${good}:telegram:dm:1`);
        assert.deepEqual(await client.listSessions(), []);
      } finally {
        client.close();
      }
    }
    for (const wrong of [7, true, {}, ['research']]) {
      assert.throws(() => new SessionStoreClient(daemon.address, { namespace: /** @type {any} */ (wrong) }), /^TypeError: namespace must be a string/);
    }
    // null and undefined are no namespace.
    for (const none of [null, undefined]) {
      const client = new SessionStoreClient(daemon.address, { namespace: none });
      assert.equal(client.namespace, null);
      client.close();
    }
  });
});
