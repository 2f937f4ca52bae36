// Session titles against the REAL daemon (/title, /new <name>, /resume <name>): one
// `sessiond serve` child of its own, so the titles taken here are the only ones it knows.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import {
  AlreadyExistsError,
  ConflictError,
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

/** A title no other test takes (titles are unique among all sessions of the daemon). */
function freshTitle(name = 'Trip') {
  return `${name} ${randomUUID().slice(0, 8)}`;
}


before(async () => {
  daemon = await startDaemon();
  store = new SessionStoreClient(daemon.address, { timeoutMs: 5000 });
});

after(async () => {
  store?.close();
  await daemon?.stop();
});

describe('titles', () => {
  it('set normalises the spelling, get reads it, set again keeps it, "" clears it', async () => {
    const { sessionId } = await store.getOrCreateSession(freshSource());
    assert.equal(await store.getSessionTitle(sessionId), null, 'a new session has no title');
    const tag = randomUUID().slice(0, 8);
    assert.equal(await store.setSessionTitle(sessionId, `  Trip \t to\n  Paris ${tag}  `), `Trip to Paris ${tag}`);
    assert.equal(await store.getSessionTitle(sessionId), `Trip to Paris ${tag}`);
    assert.equal(await store.setSessionTitle(sessionId, `Trip to Paris ${tag}`), `Trip to Paris ${tag}`, 'its own title is no clash');
    assert.equal(await store.setSessionTitle(sessionId, `Trip to Rome ${tag}`), `Trip to Rome ${tag}`);
    assert.equal(await store.getSessionTitle(sessionId), `Trip to Rome ${tag}`);
    assert.equal(await store.findSessionByTitle(`Trip to Paris ${tag}`), null, 'the old title is free again');

    assert.equal(await store.setSessionTitle(sessionId, ''), null, 'cleared');
    assert.equal(await store.getSessionTitle(sessionId), null);
    assert.equal(await store.findSessionByTitle(`Trip to Rome ${tag}`), null);
    assert.equal(await store.setSessionTitle(sessionId, '   '), null, 'only whitespace clears too');
  });

  it('an unknown session: NotFoundError to set, null to get; a too long title: InvalidArgumentError', async () => {
    await rejectsWith(store.setSessionTitle(UNKNOWN_SESSION_ID, freshTitle()), NotFoundError, Status.NOT_FOUND);
    assert.equal(await store.getSessionTitle(UNKNOWN_SESSION_ID), null);
    const { sessionId } = await store.getOrCreateSession(freshSource());
    const long = await rejectsWith(store.setSessionTitle(sessionId, 'x'.repeat(101)), InvalidArgumentError, Status.INVALID_ARGUMENT);
    assert.equal(long.field, 'title');
    assert.equal(await store.getSessionTitle(sessionId), null);
    const longest = `${'x'.repeat(91)} ${randomUUID().slice(0, 8)}`;
    assert.equal(longest.length, 100);
    assert.equal(await store.setSessionTitle(sessionId, longest), longest, '100 characters are allowed');
  });

  it('ALREADY_EXISTS: AlreadyExistsError when another session has the title, and nothing changes', async () => {
    const first = await store.getOrCreateSession(freshSource());
    const second = await store.getOrCreateSession(freshSource());
    const title = freshTitle('Taken');
    const secondTitle = freshTitle('Mine');
    assert.equal(await store.setSessionTitle(first.sessionId, title), title);
    assert.equal(await store.setSessionTitle(second.sessionId, secondTitle), secondTitle);

    const error = await rejectsWith(store.setSessionTitle(second.sessionId, title), AlreadyExistsError, Status.ALREADY_EXISTS);
    assert.equal(error.codeName, 'ALREADY_EXISTS');
    assert.match(error.message, /^ALREADY_EXISTS: /);
    assert.ok(error.details.includes(first.sessionId), error.details);
    // Spelled differently, it is the same title.
    await rejectsWith(store.setSessionTitle(second.sessionId, `  ${title.replace(' ', '   ')} `), AlreadyExistsError, Status.ALREADY_EXISTS);

    assert.equal(await store.getSessionTitle(second.sessionId), secondTitle);
    assert.equal(await store.getSessionTitle(first.sessionId), title);
    assert.equal(await store.findSessionByTitle(title), first.sessionId);
    assert.equal(await store.findSessionByTitle(secondTitle), second.sessionId);
  });

  it('findSessionByTitle with latestInLineage prefers the newest numbered continuation', async () => {
    const base = `Saga ${randomUUID().slice(0, 8)}`;
    const ids = [];
    for (let n = 0; n < 3; n += 1) ids.push((await store.getOrCreateSession(freshSource())).sessionId);
    await store.setSessionTitle(ids[0], base);
    assert.equal(await store.findSessionByTitle(base, { latestInLineage: true }), ids[0]);
    await store.setSessionTitle(ids[1], `${base} #2`);
    await store.setSessionTitle(ids[2], `${base} #3`);
    assert.equal(await store.findSessionByTitle(base, { latestInLineage: true }), ids[2]);
    assert.equal(await store.findSessionByTitle(base), ids[0]);
  });

  it('findSessionByTitle finds the session (normalising the title), null when none has it', async () => {
    const { sessionId } = await store.getOrCreateSession(freshSource());
    const title = freshTitle('Find me');
    await store.setSessionTitle(sessionId, title);
    assert.equal(await store.findSessionByTitle(title), sessionId);
    assert.equal(await store.findSessionByTitle(` ${title.replaceAll(' ', '  ')}\t`), sessionId);
    assert.equal(await store.findSessionByTitle(title.toUpperCase()), null, 'matched exactly');
    assert.equal(await store.findSessionByTitle(freshTitle('Nobody')), null);
  });

  it('nextTitleInLineage numbers a taken title after the highest number in use', async () => {
    const [a, b, c] = await Promise.all([0, 1, 2].map(() => store.getOrCreateSession(freshSource())));
    assert.equal(await store.nextTitleInLineage('Research'), 'Research', 'a free title is its own next');
    assert.equal(await store.setSessionTitle(a.sessionId, 'Research'), 'Research');
    assert.equal(await store.nextTitleInLineage('Research'), 'Research #2');
    assert.equal(await store.nextTitleInLineage('  Research '), 'Research #2', 'normalised');
    assert.equal(await store.setSessionTitle(b.sessionId, await store.nextTitleInLineage('Research')), 'Research #2');
    assert.equal(await store.nextTitleInLineage('Research'), 'Research #3');
    assert.equal(await store.setSessionTitle(c.sessionId, 'Research #5'), 'Research #5');
    assert.equal(await store.nextTitleInLineage('Research'), 'Research #6');
    assert.equal(await store.nextTitleInLineage('Research #2'), 'Research #6', 'a numbered title counts as its base');
    assert.equal(await store.nextTitleInLineage('Researcher'), 'Researcher', 'another lineage');
    assert.equal(await store.findSessionByTitle('Research #5'), c.sessionId);
  });

  it('getOrCreateSession titles the session it starts, not one it keeps', async () => {
    const source = freshSource();
    const title = freshTitle('New');
    const entry = await store.getOrCreateSession(source, { title: `  ${title}  ` });
    assert.equal(await store.getSessionTitle(entry.sessionId), title);
    assert.equal(await store.findSessionByTitle(title), entry.sessionId);

    const other = freshTitle('Ignored');
    const kept = await store.getOrCreateSession(source, { title: other });
    assert.equal(kept.sessionId, entry.sessionId);
    assert.equal(await store.getSessionTitle(entry.sessionId), title, "a kept session's title is not changed");
    assert.equal(await store.findSessionByTitle(other), null);

    const forced = await store.getOrCreateSession(source, { forceNew: true, title: other });
    assert.notEqual(forced.sessionId, entry.sessionId);
    assert.equal(await store.getSessionTitle(forced.sessionId), other);
    assert.equal(await store.getSessionTitle(entry.sessionId), title);

    const untitled = await store.getOrCreateSession(source, { forceNew: true });
    assert.equal(await store.getSessionTitle(untitled.sessionId), null, 'no title unless asked');
  });

  it('getOrCreateSession with a taken title: AlreadyExistsError, the current session kept', async () => {
    const source = freshSource();
    const entry = await store.getOrCreateSession(source);
    const taken = freshTitle('Taken');
    await store.setSessionTitle((await store.getOrCreateSession(freshSource())).sessionId, taken);
    await rejectsWith(store.getOrCreateSession(source, { forceNew: true, title: taken }), AlreadyExistsError, Status.ALREADY_EXISTS);
    await rejectsWith(store.getOrCreateSession(freshSource(), { title: taken }), AlreadyExistsError, Status.ALREADY_EXISTS);
    const after = await store.getSession(entry.sessionKey);
    assert.equal(after?.sessionId, entry.sessionId);
    assert.equal(after?.version, entry.version);
    assert.equal(await store.getSessionTitle(entry.sessionId), null);
  });

  it('resetSession titles the new session; a taken title changes nothing; an unknown key is null', async () => {
    const entry = await store.getOrCreateSession(freshSource());
    const oldTitle = freshTitle('Old');
    await store.setSessionTitle(entry.sessionId, oldTitle);
    const title = freshTitle('Fresh');
    const reset = await store.resetSession(entry.sessionKey, { title, expectedVersion: entry.version });
    assert.ok(reset);
    assert.notEqual(reset.sessionId, entry.sessionId);
    assert.equal(reset.isFreshReset, true);
    assert.equal(await store.getSessionTitle(reset.sessionId), title);
    assert.equal(await store.getSessionTitle(entry.sessionId), oldTitle, 'the ended session keeps its title');

    await rejectsWith(store.resetSession(entry.sessionKey, { title: oldTitle }), AlreadyExistsError, Status.ALREADY_EXISTS);
    const current = await store.getSession(entry.sessionKey);
    assert.equal(current?.sessionId, reset.sessionId);
    assert.equal(current?.version, reset.version);
    await rejectsWith(store.resetSession(entry.sessionKey, { title: freshTitle(), expectedVersion: entry.version }), ConflictError, Status.ABORTED);

    const untitled = await store.resetSession(entry.sessionKey);
    assert.ok(untitled);
    assert.equal(await store.getSessionTitle(untitled.sessionId), null);
    assert.equal(await store.resetSession('agent:main:telegram:dm:no-such-key', { title: freshTitle() }), null);
  });

  it('switchSession by targetTitle points the key at the titled session; null for an unknown title', async () => {
    const entry = await store.getOrCreateSession(freshSource());
    const title = freshTitle('Resume me');
    await store.setSessionTitle(entry.sessionId, title);
    const reset = await store.resetSession(entry.sessionKey);
    assert.ok(reset && reset.sessionId !== entry.sessionId);

    const switched = await store.switchSession(entry.sessionKey, '', { targetTitle: `  ${title} `, expectedVersion: reset.version });
    assert.equal(switched?.sessionId, entry.sessionId);
    assert.equal((await store.getSession(entry.sessionKey))?.sessionId, entry.sessionId);

    // Another key can resume it by its title too; the title stays with the session.
    const other = await store.getOrCreateSession(freshSource());
    assert.equal((await store.switchSession(other.sessionKey, undefined, { targetTitle: title }))?.sessionId, entry.sessionId);
    assert.equal(await store.getSessionTitle(entry.sessionId), title);

    const before = await store.getSession(other.sessionKey);
    assert.equal(await store.switchSession(other.sessionKey, '', { targetTitle: freshTitle('Nobody') }), null);
    assert.equal((await store.getSession(other.sessionKey))?.version, before?.version, 'nothing changed');
    const both = await rejectsWith(
      store.switchSession(other.sessionKey, reset.sessionId, { targetTitle: title }),
      InvalidArgumentError,
      Status.INVALID_ARGUMENT,
    );
    assert.equal(both.field, 'target_title');
    assert.equal(await store.switchSession('agent:main:telegram:dm:no-such-key', '', { targetTitle: title }), null);
  });

  it('the title RPCs are retried like the other idempotent calls', () => {
    for (const method of ['SetSessionTitle', 'GetSessionTitle', 'FindSessionByTitle', 'NextTitleInLineage']) {
      assert.ok(IDEMPOTENT_METHODS.includes(/** @type {any} */ (method)), method);
    }
  });
});
