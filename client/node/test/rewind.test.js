// Rewinds, compactions and branches against the REAL daemon (RewindTranscript, RestoreTranscript,
// CompactTranscript, BranchSession, LoadTranscript with include_hidden): /undo, /retry,
// /compress and /branch without losing a message. One `sessiond serve` child of its own.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import {
  FailedPreconditionError,
  IDEMPOTENT_METHODS,
  InvalidArgumentError,
  NotFoundError,
  SessionStoreClient,
  Status,
} from '../src/index.js';
import { rejectsWith } from './helpers/assertions.js';
import { startDaemon } from './helpers/daemon.js';

const UNKNOWN_SESSION_ID = '20000101_000000_00000000';

/** @type {import('./helpers/daemon.js').Daemon} */
let daemon;
/** @type {SessionStoreClient} */
let store;

/** A source of its own for each test, so tests do not share session keys. */
function freshSource() {
  return { platform: 'telegram', chatId: `${Math.floor(Math.random() * 1e9)}`, chatType: /** @type {const} */ ('dm'), userId: '7' };
}

/** A word no other message of the daemon has (one word to the full-text index). */
function freshWord(stem = 'walrus') {
  return `${stem}${randomUUID().replaceAll('-', '').slice(0, 10)}`;
}

/**
 * `turns` user turns, each a user message and an assistant reply: u1, a1, u2, a2, ...
 * @param {number} turns
 * @param {string} [tag]  put into every text, to tell sessions apart
 */
function conversation(turns, tag = '') {
  return Array.from({ length: turns }, (_, n) => [
    { role: 'user', content: `u${n + 1}${tag}`, message_id: `u${n + 1}` },
    { role: 'assistant', content: `a${n + 1}${tag}`, message_id: `a${n + 1}` },
  ]).flat();
}

/**
 * The replay shape `loadTranscript` gives for messages as they were appended.
 * @param {{role: string, content: unknown}[]} messages
 */
function replayed(messages) {
  return messages.map(({ role, content }) => ({ role, content }));
}

/**
 * A new session of its own holding `messages`.
 * @param {import('../src/convert.js').TranscriptMessage[]} messages
 */
async function sessionWith(messages) {
  const entry = await store.getOrCreateSession(freshSource());
  const result = await store.appendMessages(entry.sessionId, messages);
  assert.equal(result.appended, messages.length);
  return entry;
}

/**
 * What `includeHidden` lists, reduced to what the tests compare.
 * @param {string} sessionId
 */
async function everything(sessionId) {
  const messages = await store.loadTranscript(sessionId, { includeHidden: true });
  return messages.map((message) => {
    const { content, position, visibility = 'visible', hidden_by: hiddenBy = 0 } = message;
    return { content, position, visibility, hiddenBy };
  });
}

before(async () => {
  daemon = await startDaemon();
  store = new SessionStoreClient(daemon.address, { timeoutMs: 5000 });
});

after(async () => {
  store?.close();
  await daemon?.stop();
});

describe('rewind and restore', () => {
  it('/undo 2 hides the last two user turns, kept; restore brings them back', async () => {
    const messages = conversation(3);
    const { sessionId } = await sessionWith(messages);

    const rewound = await store.rewindTranscript(sessionId, { turns: 2 });
    assert.deepEqual(rewound, { rewind: 1, rewoundMessages: 4, visibleMessages: 2, appended: 0 });
    // The default load: the visible messages only, in the shape they always had (no new keys).
    assert.deepEqual(await store.loadTranscript(sessionId), replayed(messages.slice(0, 2)));
    assert.deepEqual(await everything(sessionId), [
      { content: 'u1', position: 0, visibility: 'visible', hiddenBy: 0 },
      { content: 'a1', position: 1, visibility: 'visible', hiddenBy: 0 },
      { content: 'u2', position: 2, visibility: 'rewound', hiddenBy: 1 },
      { content: 'a2', position: 3, visibility: 'rewound', hiddenBy: 1 },
      { content: 'u3', position: 4, visibility: 'rewound', hiddenBy: 1 },
      { content: 'a3', position: 5, visibility: 'rewound', hiddenBy: 1 },
    ]);
    // A visible message read with includeHidden has a position, and no visibility key at all.
    const [first, , third] = await store.loadTranscript(sessionId, { includeHidden: true });
    assert.deepEqual(first, { role: 'user', content: 'u1', position: 0 });
    assert.deepEqual(third, { role: 'user', content: 'u2', visibility: 'rewound', hidden_by: 1, position: 2 });

    assert.deepEqual(await store.restoreTranscript(sessionId), { rewind: 1, restoredMessages: 4, visibleMessages: 6 });
    assert.deepEqual(await store.loadTranscript(sessionId), replayed(messages));
    assert.deepEqual(
      (await everything(sessionId)).map(({ visibility }) => visibility),
      Array(6).fill('visible'),
    );
    const again = await rejectsWith(store.restoreTranscript(sessionId), FailedPreconditionError, Status.FAILED_PRECONDITION);
    assert.match(again.details, /nothing/);
  });

  it('rewinds are numbered; restore takes the newest unless one is named', async () => {
    const messages = conversation(3);
    const { sessionId } = await sessionWith(messages);
    assert.equal((await store.rewindTranscript(sessionId)).rewind, 1, 'turns defaults to 1');
    assert.deepEqual(await store.rewindTranscript(sessionId, { turns: 1 }), { rewind: 2, rewoundMessages: 2, visibleMessages: 2, appended: 0 });
    assert.deepEqual(await store.restoreTranscript(sessionId), { rewind: 2, restoredMessages: 2, visibleMessages: 4 });
    assert.deepEqual(await store.restoreTranscript(sessionId, { rewind: 1 }), { rewind: 1, restoredMessages: 2, visibleMessages: 6 });
    assert.deepEqual(await store.loadTranscript(sessionId), replayed(messages));
    await rejectsWith(store.restoreTranscript(sessionId, { rewind: 1 }), FailedPreconditionError, Status.FAILED_PRECONDITION);
  });

  it('/retry: a rewind with append replaces the last turn in one call', async () => {
    const messages = conversation(2);
    const { sessionId } = await sessionWith(messages);
    const retried = [
      { role: 'user', content: 'u2 again', message_id: 'u2-retry' },
      { role: 'assistant', content: 'a2 again', message_id: 'a2-retry' },
    ];
    const result = await store.rewindTranscript(sessionId, { append: retried });
    assert.deepEqual(result, { rewind: 1, rewoundMessages: 2, visibleMessages: 4, appended: 2 });
    assert.deepEqual(await store.loadTranscript(sessionId), replayed([...messages.slice(0, 2), ...retried]));
    assert.deepEqual(await everything(sessionId), [
      { content: 'u1', position: 0, visibility: 'visible', hiddenBy: 0 },
      { content: 'a1', position: 1, visibility: 'visible', hiddenBy: 0 },
      { content: 'u2', position: 2, visibility: 'rewound', hiddenBy: 1 },
      { content: 'a2', position: 3, visibility: 'rewound', hiddenBy: 1 },
      { content: 'u2 again', position: 4, visibility: 'visible', hiddenBy: 0 },
      { content: 'a2 again', position: 5, visibility: 'visible', hiddenBy: 0 },
    ]);
    // The retry's own messages came after the rewound ones: they cannot come back.
    await rejectsWith(store.restoreTranscript(sessionId), FailedPreconditionError, Status.FAILED_PRECONDITION);
  });

  it('restore is refused after an append, and nothing changes', async () => {
    const messages = conversation(2);
    const { sessionId } = await sessionWith(messages);
    await store.rewindTranscript(sessionId);
    const later = { role: 'user', content: 'something else', message_id: 'later' };
    await store.appendMessages(sessionId, [later]);
    const before = await everything(sessionId);

    const refused = await rejectsWith(store.restoreTranscript(sessionId), FailedPreconditionError, Status.FAILED_PRECONDITION);
    assert.match(refused.details, /added after rewind 1/);
    await rejectsWith(store.restoreTranscript(sessionId, { rewind: 1 }), FailedPreconditionError, Status.FAILED_PRECONDITION);
    assert.deepEqual(await everything(sessionId), before);
    assert.deepEqual(await store.loadTranscript(sessionId), replayed([...messages.slice(0, 2), later]));
  });

  it('more turns than the transcript has: FailedPreconditionError, and nothing changes', async () => {
    const messages = conversation(2);
    const { sessionId } = await sessionWith(messages);
    await rejectsWith(store.rewindTranscript(sessionId, { turns: 3 }), FailedPreconditionError, Status.FAILED_PRECONDITION);
    const retry = { turns: 3, append: [{ role: 'user', content: 'not stored' }] };
    await rejectsWith(store.rewindTranscript(sessionId, retry), FailedPreconditionError, Status.FAILED_PRECONDITION);
    assert.deepEqual(await store.loadTranscript(sessionId, { includeHidden: true }), replayed(messages).map((m, n) => ({ ...m, position: n })));
  });
});

describe('compaction', () => {
  it('the summary takes the last position of the range; the archived messages stay, listed with includeHidden', async () => {
    const word = freshWord();
    const messages = conversation(3, ` ${word}`);
    const entry = await sessionWith(messages);
    const { sessionId } = entry;
    const summary = { role: 'assistant', content: 'Summary of the first two turns', message_id: 'summary-1' };

    const result = await store.compactTranscript(sessionId, 0, 3, summary);
    assert.deepEqual(result, { compaction: 1, archivedMessages: 4, summaryPosition: 3, visibleMessages: 3 });
    // The same session, its visible transcript the summary and the rest.
    assert.equal((await store.getSession(entry.sessionKey))?.sessionId, sessionId);
    assert.deepEqual(await store.loadTranscript(sessionId), replayed([summary, ...messages.slice(4)]));
    // In the order written: the archived range, then its summary at the range's last position.
    assert.deepEqual(await everything(sessionId), [
      { content: `u1 ${word}`, position: 0, visibility: 'archived', hiddenBy: 1 },
      { content: `a1 ${word}`, position: 1, visibility: 'archived', hiddenBy: 1 },
      { content: `u2 ${word}`, position: 2, visibility: 'archived', hiddenBy: 1 },
      { content: `a2 ${word}`, position: 3, visibility: 'archived', hiddenBy: 1 },
      { content: summary.content, position: 3, visibility: 'visible', hiddenBy: 0 },
      { content: `u3 ${word}`, position: 4, visibility: 'visible', hiddenBy: 0 },
      { content: `a3 ${word}`, position: 5, visibility: 'visible', hiddenBy: 0 },
    ]);
    const hidden = await store.loadTranscript(sessionId, { includeHidden: true });
    assert.deepEqual(hidden[0], { role: 'user', content: `u1 ${word}`, visibility: 'archived', hidden_by: 1, position: 0 });
    assert.deepEqual(hidden[4], { role: 'assistant', content: summary.content, position: 3 });

    // Archived messages are still found by search; the window around one shows them as archived.
    const { hits } = await store.searchMessages(word, { sessionId, roles: ['user'], window: 1 });
    assert.deepEqual(hits.map((hit) => hit.position).sort(), [0, 2, 4]);
    const archivedHit = hits.find((hit) => hit.position === 2);
    assert.ok(archivedHit);
    assert.deepEqual(
      archivedHit.window.map((message) => [message.content, message.visibility ?? 'visible']),
      [[`a1 ${word}`, 'archived'], [`u2 ${word}`, 'archived'], [`a2 ${word}`, 'archived']],
    );
    const visibleHit = hits.find((hit) => hit.position === 4);
    assert.ok(visibleHit);
    assert.ok(visibleHit.window.every((message) => !('visibility' in message)), 'visible neighbours have no visibility key');

    // A second compaction over the summary and the next turn is numbered 2.
    const second = await store.compactTranscript(sessionId, 0, 4, { role: 'assistant', content: 'Summary of all but the last' });
    assert.deepEqual(second, { compaction: 2, archivedMessages: 2, summaryPosition: 4, visibleMessages: 2 });
    assert.deepEqual((await store.loadTranscript(sessionId)).map((m) => m.content), ['Summary of all but the last', `a3 ${word}`]);
    // Nothing is lost: the first summary and u3 are archived by compaction 2, in place.
    assert.deepEqual((await everything(sessionId)).map(({ content, position, visibility, hiddenBy }) => [content, position, visibility, hiddenBy]), [
      [`u1 ${word}`, 0, 'archived', 1],
      [`a1 ${word}`, 1, 'archived', 1],
      [`u2 ${word}`, 2, 'archived', 1],
      [`a2 ${word}`, 3, 'archived', 1],
      [summary.content, 3, 'archived', 2],
      [`u3 ${word}`, 4, 'archived', 2],
      ['Summary of all but the last', 4, 'visible', 0],
      [`a3 ${word}`, 5, 'visible', 0],
    ]);
  });

  it('the summary goes to the last VISIBLE position of the range', async () => {
    const messages = conversation(3);
    const { sessionId } = await sessionWith(messages);
    await store.rewindTranscript(sessionId); // positions 4 and 5 rewound
    const result = await store.compactTranscript(sessionId, 0, 5, { role: 'assistant', content: 'summary' });
    assert.deepEqual(result, { compaction: 1, archivedMessages: 4, summaryPosition: 3, visibleMessages: 1 });
    assert.deepEqual(await store.loadTranscript(sessionId), [{ role: 'assistant', content: 'summary' }]);
    assert.deepEqual((await everything(sessionId)).map(({ position, visibility }) => [position, visibility]), [
      [0, 'archived'],
      [1, 'archived'],
      [2, 'archived'],
      [3, 'archived'],
      [3, 'visible'],
      [4, 'rewound'],
      [5, 'rewound'],
    ]);
    // A range without visible messages: FailedPreconditionError.
    await rejectsWith(
      store.compactTranscript(sessionId, 4, 5, { role: 'assistant', content: 'x' }),
      FailedPreconditionError,
      Status.FAILED_PRECONDITION,
    );
  });
});

describe('branches', () => {
  it('copies the visible messages through a position into a new child session; the key stays', async () => {
    const messages = conversation(3);
    const entry = await sessionWith(messages);
    const branch = await store.branchSession(entry.sessionId, { throughPosition: 3 });
    assert.deepEqual(Object.keys(branch).sort(), ['copiedMessages', 'entry', 'sessionId']);
    assert.equal(branch.copiedMessages, 4);
    assert.equal(branch.entry, null, 'no key given: no entry');
    assert.notEqual(branch.sessionId, entry.sessionId);
    assert.match(branch.sessionId, /^\d{8}_\d{6}_[0-9a-f]{8}$/);

    assert.deepEqual(await store.loadTranscript(branch.sessionId), replayed(messages.slice(0, 4)));
    assert.deepEqual(await store.loadTranscript(entry.sessionId), replayed(messages), 'the source is unchanged');
    assert.equal((await store.getSession(entry.sessionKey))?.sessionId, entry.sessionId, 'the key still points at the source');

    const lineage = await store.getSessionLineage(branch.sessionId);
    assert.ok(lineage);
    assert.equal(lineage.session.parentSessionId, entry.sessionId);
    assert.equal(lineage.session.reason, 'branch');
    const parent = await store.getSessionLineage(entry.sessionId);
    assert.deepEqual(parent?.children.map((link) => link.sessionId), [branch.sessionId]);

    // Without a position: every visible message (a rewound turn is not copied).
    await store.rewindTranscript(entry.sessionId);
    const whole = await store.branchSession(entry.sessionId);
    assert.equal(whole.copiedMessages, 4);
    assert.deepEqual(await store.loadTranscript(whole.sessionId), replayed(messages.slice(0, 4)));
  });

  it('with sessionKey the key moves to the branch (getSession shows it), with a title', async () => {
    const messages = conversation(2);
    const entry = await sessionWith(messages);
    const title = `Fork ${randomUUID().slice(0, 8)}`;
    const branch = await store.branchSession(entry.sessionId, { sessionKey: entry.sessionKey, title });
    assert.equal(branch.copiedMessages, 4);
    assert.ok(branch.entry);
    assert.equal(branch.entry.sessionKey, entry.sessionKey);
    assert.equal(branch.entry.sessionId, branch.sessionId);
    assert.ok(branch.entry.createdAt instanceof Date, 'the entry is a SessionEntry, times as Dates');
    assert.ok(branch.entry.version > entry.version);

    const current = await store.getSession(entry.sessionKey);
    assert.equal(current?.sessionId, branch.sessionId);
    assert.equal(await store.getSessionTitle(branch.sessionId), title);
    assert.deepEqual(await store.loadTranscript(branch.sessionId), replayed(messages));
    const lineage = await store.getSessionLineage(branch.sessionId);
    assert.deepEqual(
      lineage && { parent: lineage.session.parentSessionId, reason: lineage.session.reason, title: lineage.session.title },
      { parent: entry.sessionId, reason: 'branch', title },
    );
  });
});

describe('bad input', () => {
  it('InvalidArgumentError names the field', async () => {
    const { sessionId } = await sessionWith(conversation(2));
    const summary = { role: 'assistant', content: 'summary' };
    /** @type {[Promise<unknown>, string][]} */
    const cases = [
      [store.rewindTranscript(sessionId, { turns: 0 }), 'turns'],
      [store.rewindTranscript(sessionId, { turns: 1001 }), 'turns'],
      [store.restoreTranscript(sessionId, { rewind: 0 }), 'rewind'],
      [store.compactTranscript(sessionId, 2, 1, summary), 'last_position'],
      [store.compactTranscript(sessionId, -1, 1, summary), 'first_position'],
      [store.compactTranscript(sessionId, 0, 1, /** @type {any} */ (undefined)), 'summary'],
      [store.branchSession(sessionId, { throughPosition: -1 }), 'through_position'],
      [store.rewindTranscript(''), 'session_id'],
    ];
    for (const [call, field] of cases) {
      const error = await rejectsWith(call, InvalidArgumentError, Status.INVALID_ARGUMENT);
      assert.equal(error.field, field, error.details);
    }
    assert.equal((await store.loadTranscript(sessionId)).length, 4, 'nothing changed');
  });

  it('an unknown session or key: NotFoundError', async () => {
    const summary = { role: 'assistant', content: 'summary' };
    await rejectsWith(store.rewindTranscript(UNKNOWN_SESSION_ID), NotFoundError, Status.NOT_FOUND);
    await rejectsWith(store.restoreTranscript(UNKNOWN_SESSION_ID), NotFoundError, Status.NOT_FOUND);
    await rejectsWith(store.compactTranscript(UNKNOWN_SESSION_ID, 0, 0, summary), NotFoundError, Status.NOT_FOUND);
    await rejectsWith(store.branchSession(UNKNOWN_SESSION_ID), NotFoundError, Status.NOT_FOUND);
    const { sessionId } = await sessionWith(conversation(1));
    await rejectsWith(store.branchSession(sessionId, { sessionKey: `agent:main:nobody:${randomUUID()}` }), NotFoundError, Status.NOT_FOUND);
    assert.deepEqual(await store.loadTranscript(UNKNOWN_SESSION_ID, { includeHidden: true }), []);
  });

  it('none of the four is retried: a second attempt would rewind, compact or branch again', () => {
    for (const method of ['RewindTranscript', 'RestoreTranscript', 'CompactTranscript', 'BranchSession']) {
      assert.ok(!IDEMPOTENT_METHODS.includes(/** @type {any} */ (method)), method);
    }
  });
});
