// Search against the REAL daemon (SearchMessages, SearchSessions): full-text hits with their
// session, snippet and window of neighbours; sessions by id prefix or title prefix. One
// `sessiond serve` child of its own; every test searches for words of its own, so tests do not
// see each other's messages.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import { IDEMPOTENT_METHODS, InvalidArgumentError, SessionStoreClient, Status } from '../src/index.js';
import { rejectsWith } from './helpers/assertions.js';
import { startDaemon } from './helpers/daemon.js';

const HIT_KEYS = ['messageId', 'position', 'role', 'score', 'session', 'snippet', 'time', 'window'];
const SUMMARY_KEYS = [
  'activeAt',
  'archivedAt',
  'endReason',
  'endedAt',
  'messageCount',
  'metadata',
  'parentSessionId',
  'platform',
  'sessionId',
  'sessionKey',
  'startedAt',
  'title',
];

/** @type {import('./helpers/daemon.js').Daemon} */
let daemon;
/** @type {SessionStoreClient} */
let store;

/** A source of its own for each test, so tests do not share session keys. */
function freshSource(platform = 'telegram') {
  return { platform, chatId: `${Math.floor(Math.random() * 1e9)}`, chatType: /** @type {const} */ ('dm'), userId: '7' };
}

/** A word no other message of the daemon has (letters and digits only: one word to the index). */
function freshWord(stem = 'zebra') {
  return `${stem}${randomUUID().replaceAll('-', '').slice(0, 10)}`;
}

/**
 * A new session of `source` holding `texts` as alternating user/assistant messages (ids m0, m1, ...).
 * @param {string[]} texts
 * @param {ReturnType<typeof freshSource>} [source]
 */
async function sessionWith(texts, source = freshSource()) {
  const entry = await store.getOrCreateSession(source);
  const messages = texts.map((content, n) => ({ role: n % 2 ? 'assistant' : 'user', content, message_id: `m${n}` }));
  const result = await store.appendMessages(entry.sessionId, messages);
  assert.equal(result.appended, texts.length);
  return entry;
}

/**
 * Every hit for `query`, following the page tokens.
 * @param {string} query
 * @param {Parameters<SessionStoreClient['searchMessages']>[1]} [options]
 */
async function allHits(query, options = {}) {
  const hits = [];
  let pageToken = '';
  for (let pages = 0; pages < 50; pages += 1) {
    const page = await store.searchMessages(query, { ...options, pageToken });
    hits.push(...page.hits);
    if (!page.nextPageToken) return hits;
    pageToken = page.nextPageToken;
  }
  assert.fail(`more than 50 pages for ${query}`);
}

before(async () => {
  daemon = await startDaemon();
  store = new SessionStoreClient(daemon.address, { timeoutMs: 5000 });
});

after(async () => {
  store?.close();
  await daemon?.stop();
});

describe('searchMessages', () => {
  it('finds the message with the word: its session, position, id, role, time, a marked snippet and score', async () => {
    const word = freshWord();
    const texts = ['good morning', 'what are we doing today', `we could go and see a ${word} at the zoo`, 'sounds great', 'see you there'];
    const entry = await sessionWith(texts);
    const appendedAt = Date.now();

    const page = await store.searchMessages(word);
    assert.deepEqual(Object.keys(page).sort(), ['hits', 'indexBuilding', 'nextPageToken']);
    assert.equal(page.indexBuilding, false);
    assert.equal(page.nextPageToken, '');
    assert.equal(page.hits.length, 1, JSON.stringify(page.hits));
    const [hit] = page.hits;
    assert.deepEqual(Object.keys(hit).sort(), HIT_KEYS);
    assert.equal(hit.position, 2);
    assert.equal(hit.messageId, 'm2');
    assert.equal(hit.role, 'user');
    assert.ok(hit.snippet.includes(`>>>${word}<<<`), hit.snippet);
    assert.ok(typeof hit.score === 'number' && Number.isFinite(hit.score), `score ${hit.score}`);
    assert.ok(hit.time instanceof Date, `time ${hit.time}`);
    assert.ok(Math.abs(hit.time.getTime() - appendedAt) < 60_000, `time ${hit.time.toISOString()} is now-ish`);

    // The session, as a plain object: unset optionals null, times Dates.
    assert.deepEqual(Object.keys(hit.session).sort(), SUMMARY_KEYS);
    assert.deepEqual(
      { ...hit.session, startedAt: undefined, activeAt: undefined },
      {
        sessionId: entry.sessionId,
        title: null,
        platform: 'telegram',
        sessionKey: entry.sessionKey,
        startedAt: undefined,
        endedAt: null,
        endReason: null,
        messageCount: texts.length,
        parentSessionId: null,
        metadata: {},
        archivedAt: null,
        activeAt: undefined,
      },
    );
    assert.ok(hit.session.startedAt instanceof Date);
    assert.equal(hit.session.startedAt.getTime(), entry.createdAt.getTime(), 'a session starts when its entry is created');
    // Its last activity, a Date the daemon always sets: here its newest message, appended just now.
    assert.ok(hit.session.activeAt instanceof Date, `activeAt ${hit.session.activeAt}`);
    assert.ok(hit.session.activeAt.getTime() >= entry.createdAt.getTime(), 'active no earlier than its start');
    assert.ok(Math.abs(hit.session.activeAt.getTime() - appendedAt) < 60_000, `activeAt ${hit.session.activeAt.toISOString()} is now-ish`);

    // Any case finds it; a word that is nowhere finds nothing.
    const upper = await store.searchMessages(word.toUpperCase());
    assert.deepEqual(upper.hits.map((h) => [h.session.sessionId, h.position]), [[entry.sessionId, 2]]);
    const none = await store.searchMessages(freshWord('nowhere'));
    assert.deepEqual(none, { hits: [], nextPageToken: '', indexBuilding: false });
  });

  it('the window holds the hit and its neighbours in transcript order, as far as the transcript goes', async () => {
    const word = freshWord('window');
    const texts = [`${word} first`, 'second', `third ${word}`, 'fourth', 'fifth', `sixth ${word}`];
    const entry = await sessionWith(texts);
    const windows = async (/** @type {number | undefined} */ window) => {
      const hits = await allHits(word, { sessionId: entry.sessionId, ...(window === undefined ? {} : { window }) });
      hits.sort((a, b) => a.position - b.position);
      return hits.map((hit) => [hit.position, hit.window.map((message) => message.content)]);
    };

    // window 1 (also when unset): up to 3 messages, the hit in the middle.
    const one = [
      [0, [texts[0], texts[1]]],
      [2, [texts[1], texts[2], texts[3]]],
      [5, [texts[4], texts[5]]],
    ];
    assert.deepEqual(await windows(1), one);
    assert.deepEqual(await windows(undefined), one, 'window defaults to 1');
    assert.deepEqual(await windows(0), [[0, [texts[0]]], [2, [texts[2]]], [5, [texts[5]]]], 'window 0: the hit alone');
    assert.deepEqual(await windows(2), [
      [0, texts.slice(0, 3)],
      [2, texts.slice(0, 5)],
      [5, texts.slice(3, 6)],
    ]);

    // Window messages are in the replay shape of loadTranscript (roles kept).
    const [middle] = (await store.searchMessages(`third ${word}`, { sessionId: entry.sessionId })).hits;
    assert.deepEqual(middle.window, (await store.loadTranscript(entry.sessionId)).slice(1, 4));
    assert.deepEqual(middle.window.map((message) => message.role), ['assistant', 'user', 'assistant']);
  });

  it('roles keeps only messages of those roles', async () => {
    const word = freshWord('role');
    const entry = await sessionWith([`user says ${word}`, `assistant says ${word}`, 'no match here']);
    const roles = async (/** @type {string[] | undefined} */ only) =>
      (await allHits(word, { sessionId: entry.sessionId, roles: only })).map((hit) => [hit.role, hit.position]).sort();

    assert.deepEqual(await roles(undefined), [['assistant', 1], ['user', 0]]);
    assert.deepEqual(await roles([]), [['assistant', 1], ['user', 0]], 'no roles: every role');
    assert.deepEqual(await roles(['user']), [['user', 0]]);
    assert.deepEqual(await roles(['assistant']), [['assistant', 1]]);
    assert.deepEqual(await roles(['user', 'assistant']), [['assistant', 1], ['user', 0]]);
    assert.deepEqual(await roles(['tool']), []);
  });

  it('sessionKey keeps the key\'s sessions (old ones too), sessionId one session, platform one platform', async () => {
    const word = freshWord('filter');
    const mine = await sessionWith([`mine ${word}`]);
    const theirs = await sessionWith([`theirs ${word}`]);
    const elsewhere = await sessionWith([`elsewhere ${word}`], freshSource('discord'));
    const ids = async (/** @type {Parameters<SessionStoreClient['searchMessages']>[1]} */ options) =>
      (await allHits(word, options)).map((hit) => hit.session.sessionId).sort();

    assert.deepEqual(await ids({}), [mine.sessionId, theirs.sessionId, elsewhere.sessionId].sort());
    assert.deepEqual(await ids({ sessionKey: mine.sessionKey }), [mine.sessionId]);
    assert.deepEqual(await ids({ sessionKey: theirs.sessionKey }), [theirs.sessionId]);
    assert.deepEqual(await ids({ sessionId: theirs.sessionId }), [theirs.sessionId]);
    assert.deepEqual(await ids({ sessionKey: `agent:main:telegram:dm:nobody-${randomUUID()}` }), []);
    assert.deepEqual(await ids({ platform: 'discord' }), [elsewhere.sessionId]);
    assert.deepEqual(await ids({ platform: 'telegram' }), [mine.sessionId, theirs.sessionId].sort());
    assert.deepEqual(await ids({ sessionKey: mine.sessionKey, sessionId: theirs.sessionId }), [], 'filters combine');

    // After a reset the key's earlier session is still one of its sessions.
    const reset = await store.resetSession(mine.sessionKey);
    assert.ok(reset);
    await store.appendMessages(reset.sessionId, [{ role: 'user', content: `after the reset ${word}`, message_id: 'r0' }]);
    assert.deepEqual(await ids({ sessionKey: mine.sessionKey }), [mine.sessionId, reset.sessionId].sort());
  });

  it('since and until (Dates) bound the messages\' times', async () => {
    const word = freshWord('time');
    const entry = await sessionWith([`then ${word}`]);
    const count = async (/** @type {Parameters<SessionStoreClient['searchMessages']>[1]} */ options) =>
      (await store.searchMessages(word, { sessionId: entry.sessionId, ...options })).hits.length;
    const hour = 3_600_000;
    const now = Date.now();

    assert.equal(await count({ since: new Date(now - hour) }), 1);
    assert.equal(await count({ since: new Date(now + hour) }), 0);
    assert.equal(await count({ until: new Date(now + hour) }), 1);
    assert.equal(await count({ until: new Date(now - hour) }), 0);
    assert.equal(await count({ since: new Date(now - hour), until: new Date(now + hour) }), 1);
    assert.equal(await count({ since: now - hour, until: new Date(now + hour).toISOString() }), 1, 'as new Date() takes them');
    assert.equal(await count({ since: null, until: null }), 1, 'null: no bound');

    const order = await rejectsWith(
      store.searchMessages(word, { since: new Date(now + hour), until: new Date(now - hour) }),
      InvalidArgumentError,
      Status.INVALID_ARGUMENT,
    );
    assert.equal(order.field, 'until');
    // A time that is no time is refused before anything is sent.
    const invalid = await rejectsWith(store.searchMessages(word, { since: 'not a time' }), InvalidArgumentError, Status.INVALID_ARGUMENT);
    assert.equal(invalid.field, 'since');
  });

  it('pageSize 1 pages through the hits with nextPageToken, each once', async () => {
    const word = freshWord('page');
    const first = await sessionWith([`one ${word}`, 'filler', `two ${word}`]);
    const second = await sessionWith([`three ${word}`]);

    const page1 = await store.searchMessages(word, { pageSize: 1 });
    assert.equal(page1.hits.length, 1);
    assert.ok(page1.nextPageToken, 'a next page');
    const page2 = await store.searchMessages(word, { pageSize: 1, pageToken: page1.nextPageToken });
    assert.equal(page2.hits.length, 1);
    const at = (/** @type {import('../src/index.js').SearchHit} */ hit) => `${hit.session.sessionId}/${hit.position}`;
    assert.notEqual(at(page2.hits[0]), at(page1.hits[0]), 'the second page has another hit');

    const paged = await allHits(word, { pageSize: 1 });
    const expected = [`${first.sessionId}/0`, `${first.sessionId}/2`, `${second.sessionId}/0`].sort();
    assert.deepEqual(paged.map(at).sort(), expected, 'every hit once');
    assert.deepEqual(paged.slice(0, 2).map(at), [at(page1.hits[0]), at(page2.hits[0])], 'the same pages again');
    // Best first: the scores never rise from one hit to the next.
    for (let n = 1; n < paged.length; n += 1) assert.ok(paged[n].score <= paged[n - 1].score, `${paged[n].score} after ${paged[n - 1].score}`);

    const whole = await store.searchMessages(word, { pageSize: 10 });
    assert.equal(whole.hits.length, 3);
    assert.equal(whole.nextPageToken, '', 'the last page has no token');
  });

  it('a query without a letter or digit: InvalidArgumentError naming query', async () => {
    for (const query of ['', '   ', '?!', '-- ... "" *']) {
      const error = await rejectsWith(store.searchMessages(query), InvalidArgumentError, Status.INVALID_ARGUMENT);
      assert.equal(error.field, 'query', JSON.stringify(query));
    }
  });

  it('phrases must occur in order, word* matches words starting so, punctuation separates words', async () => {
    const stem = freshWord('phrase');
    const entry = await sessionWith([`red ${stem}alpha blue`, `blue ${stem}alpha red`]);
    const positions = async (/** @type {string} */ query) =>
      (await allHits(query, { sessionId: entry.sessionId })).map((hit) => hit.position).sort();

    assert.deepEqual(await positions(`"red ${stem}alpha"`), [0]);
    assert.deepEqual(await positions(`"${stem}alpha red"`), [1]);
    assert.deepEqual(await positions(`red ${stem}alpha`), [0, 1], 'bare words: all must occur, any order');
    assert.deepEqual(await positions(`${stem}*`), [0, 1]);
    assert.deepEqual(await positions(stem), [], 'a bare word matches whole words only');
    assert.deepEqual(await positions(`red-${stem}alpha`), [0], 'foo-bar is the phrase "foo bar"');
  });
});

describe('searchSessions', () => {
  it('finds sessions by the start of their title, ignoring case and punctuation; newest first', async () => {
    const tag = randomUUID().replaceAll('-', '').slice(0, 8);
    const first = await store.getOrCreateSession(freshSource());
    const second = await store.getOrCreateSession(freshSource());
    const untitled = await store.getOrCreateSession(freshSource());
    assert.equal(await store.setSessionTitle(first.sessionId, `Trip${tag} to Paris`), `Trip${tag} to Paris`);
    assert.equal(await store.setSessionTitle(second.sessionId, `Trip${tag} to Paris #2`), `Trip${tag} to Paris #2`);
    await store.appendMessages(second.sessionId, [{ role: 'user', content: 'bonjour', message_id: 'b0' }]);

    const page = await store.searchSessions(`TRIP${tag.toUpperCase()}-to.paris`);
    assert.deepEqual(Object.keys(page).sort(), ['nextPageToken', 'sessions']);
    assert.equal(page.nextPageToken, '');
    assert.deepEqual(page.sessions.map((s) => s.sessionId), [second.sessionId, first.sessionId], 'newest first');
    const [newest, oldest] = page.sessions;
    assert.deepEqual(Object.keys(newest).sort(), SUMMARY_KEYS);
    assert.deepEqual(
      { ...newest, startedAt: undefined, activeAt: undefined },
      {
        sessionId: second.sessionId,
        title: `Trip${tag} to Paris #2`,
        platform: 'telegram',
        sessionKey: second.sessionKey,
        startedAt: undefined,
        endedAt: null,
        endReason: null,
        messageCount: 1,
        parentSessionId: null,
        metadata: {},
        archivedAt: null,
        activeAt: undefined,
      },
    );
    assert.ok(newest.startedAt instanceof Date);
    assert.equal(newest.startedAt.getTime(), second.createdAt.getTime());
    assert.ok(newest.activeAt instanceof Date && oldest.activeAt instanceof Date);
    assert.ok(newest.activeAt.getTime() >= newest.startedAt.getTime(), 'its message came after its start');
    assert.ok(oldest.activeAt.getTime() >= oldest.startedAt.getTime());
    assert.equal(oldest.archivedAt, null);
    assert.equal(oldest.title, `Trip${tag} to Paris`);
    assert.equal(oldest.messageCount, 0);

    // Other spellings of a prefix; "#2" folds to "2".
    for (const query of [`trip${tag}`, `  Trip ${tag} TO `, `trip_${tag}_to_paris`]) {
      assert.deepEqual((await store.searchSessions(query)).sessions.map((s) => s.sessionId), [second.sessionId, first.sessionId], query);
    }
    assert.deepEqual((await store.searchSessions(`trip${tag} to paris 2`)).sessions.map((s) => s.sessionId), [second.sessionId]);
    // The start of the title only; another platform has none of them.
    assert.deepEqual((await store.searchSessions(`to paris ${tag}`)).sessions, []);
    assert.deepEqual((await store.searchSessions(`trip${tag}`, { platform: 'discord' })).sessions, []);
    assert.deepEqual((await store.searchSessions(`trip${tag}`, { platform: 'telegram' })).sessions.length, 2);
    assert.ok(!(await store.searchSessions(`trip${tag}`)).sessions.some((s) => s.sessionId === untitled.sessionId));

    // pageSize 1: one session a page, the token leads to the other.
    const page1 = await store.searchSessions(`trip${tag}`, { pageSize: 1 });
    assert.deepEqual(page1.sessions.map((s) => s.sessionId), [second.sessionId]);
    assert.ok(page1.nextPageToken);
    const page2 = await store.searchSessions(`trip${tag}`, { pageSize: 1, pageToken: page1.nextPageToken });
    assert.deepEqual(page2.sessions.map((s) => s.sessionId), [first.sessionId]);
    assert.equal(page2.nextPageToken, '');
  });

  it('finds a session by a prefix of its id', async () => {
    const entry = await store.getOrCreateSession(freshSource());
    const whole = await store.searchSessions(entry.sessionId);
    assert.deepEqual(whole.sessions.map((s) => s.sessionId), [entry.sessionId]);
    assert.equal(whole.sessions[0].sessionKey, entry.sessionKey);
    assert.equal(whole.sessions[0].title, null);

    const prefix = entry.sessionId.slice(0, -3);
    const found = await store.searchSessions(prefix, { pageSize: 100 });
    assert.ok(found.sessions.some((s) => s.sessionId === entry.sessionId), `${prefix} finds ${entry.sessionId}`);
    for (const session of found.sessions) assert.ok(session.sessionId.startsWith(prefix), session.sessionId);
  });

  it('an empty query: InvalidArgumentError naming query; punctuation alone matches no title', async () => {
    for (const query of ['', '   ']) {
      const error = await rejectsWith(store.searchSessions(query), InvalidArgumentError, Status.INVALID_ARGUMENT);
      assert.equal(error.field, 'query', JSON.stringify(query));
    }
    // Folded, "?!" is empty: it must not be the prefix of every title.
    const { sessionId } = await store.getOrCreateSession(freshSource());
    await store.setSessionTitle(sessionId, `Anything ${randomUUID().slice(0, 8)}`);
    assert.deepEqual((await store.searchSessions('?!')).sessions, []);
  });
});

describe('search requests', () => {
  it('both search RPCs are retried like the other reads', () => {
    for (const method of ['SearchSessions', 'SearchMessages']) {
      assert.ok(IDEMPOTENT_METHODS.includes(/** @type {any} */ (method)), method);
    }
  });
});
