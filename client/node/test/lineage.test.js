// Session lineage against the REAL daemon (GetSessionLineage, GetLineageTip): every session a call
// starts records its parent and why ("reset", "auto_reset", "force_new", "switch"). One
// `sessiond serve` child of its own.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import grpc from '@grpc/grpc-js';

import { IDEMPOTENT_METHODS, InvalidArgumentError, SessionStoreClient, Status, loadContract } from '../src/index.js';
import { rejectsWith } from './helpers/assertions.js';
import { startDaemon } from './helpers/daemon.js';

const UNKNOWN_SESSION_ID = '20000101_000000_00000000';
const LINK_KEYS = ['parentSessionId', 'reason', 'sessionId', 'startedAt', 'title'];

/** @type {import('./helpers/daemon.js').Daemon} */
let daemon;
/** @type {SessionStoreClient} */
let store;
/** A bare stub of the contract, for the one request field the client does not offer (`create_session`). */
/** @type {any} */
let stub;

/** A source of its own for each test, so tests do not share session keys. */
function freshSource() {
  return { platform: 'telegram', chatId: `${Math.floor(Math.random() * 1e9)}`, chatType: /** @type {const} */ ('dm'), userId: '7' };
}

/** A title no other test takes (titles are unique among all sessions of the daemon). */
function freshTitle(name = 'Plan') {
  return `${name} ${randomUUID().slice(0, 8)}`;
}

/**
 * SwitchSession with `create_session`: the key points at `targetSessionId`, which the daemon
 * records (as a "switch" child of the key's current session) when it is unknown. The client's
 * `switchSession` has no option for it (nor has the Python client's), so it goes over the wire.
 * @param {string} sessionKey
 * @param {string} targetSessionId
 * @returns {Promise<{entry: any, switched: boolean}>}
 */
function switchCreating(sessionKey, targetSessionId) {
  return new Promise((resolve, reject) => {
    const request = { sessionKey, targetSessionId, createSession: true };
    stub.SwitchSession(request, { deadline: Date.now() + 5000 }, (/** @type {any} */ error, /** @type {any} */ response) =>
      error ? reject(error) : resolve(response),
    );
  });
}

/**
 * The parts of a link the tests compare exactly (times are checked on their own).
 * @param {import('../src/convert.js').LineageLink} link
 */
function shape(link) {
  return { sessionId: link.sessionId, parentSessionId: link.parentSessionId, reason: link.reason, title: link.title };
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

describe('lineage', () => {
  it('each way a key gets a new session records its parent and why, back to the root', async () => {
    const source = freshSource();
    const first = await store.getOrCreateSession(source);
    const forced = await store.getOrCreateSession(source, { forceNew: true });
    const reset = await store.resetSession(first.sessionKey);
    assert.ok(reset);
    assert.equal(await store.suspendSession(first.sessionKey), true);
    const auto = await store.getOrCreateSession(source); // a suspended session starts over: auto_reset
    assert.equal(auto.wasAutoReset, true);
    const target = `switched-${randomUUID()}`;
    const switched = await switchCreating(first.sessionKey, target);
    assert.equal(switched.switched, true);
    assert.equal((await store.getSession(first.sessionKey))?.sessionId, target);
    const ids = [first, forced, reset, auto].map((entry) => entry.sessionId);
    assert.equal(new Set([...ids, target]).size, 5, 'five sessions');

    const lineage = await store.getSessionLineage(target);
    assert.ok(lineage);
    assert.deepEqual(Object.keys(lineage).sort(), ['ancestors', 'children', 'handoffs', 'session']);
    assert.deepEqual(lineage.handoffs, [], 'never handed off (see test/handoff.test.js)');
    assert.deepEqual(shape(lineage.session), { sessionId: target, parentSessionId: auto.sessionId, reason: 'switch', title: null });
    assert.deepEqual(lineage.ancestors.map(shape), [
      { sessionId: auto.sessionId, parentSessionId: reset.sessionId, reason: 'auto_reset', title: null },
      { sessionId: reset.sessionId, parentSessionId: forced.sessionId, reason: 'reset', title: null },
      { sessionId: forced.sessionId, parentSessionId: first.sessionId, reason: 'force_new', title: null },
      { sessionId: first.sessionId, parentSessionId: null, reason: null, title: null },
    ]);
    assert.deepEqual(lineage.children, [], 'nothing started from the newest session yet');

    // Every link has exactly the documented fields; startedAt is a Date, as the entries' times are.
    const links = [lineage.session, ...lineage.ancestors];
    for (const link of links) {
      assert.deepEqual(Object.keys(link).sort(), LINK_KEYS);
      assert.ok(link.startedAt instanceof Date, `${link.sessionId}: startedAt ${link.startedAt}`);
      assert.ok(Number.isFinite(link.startedAt.getTime()));
    }
    // A session starts when its entry is created: the same instant (both at millisecond precision).
    for (const [link, entry] of [[links[1], auto], [links[2], reset], [links[3], forced], [links[4], first]]) {
      assert.equal(link.startedAt.getTime(), /** @type {any} */ (entry).createdAt.getTime(), link.sessionId);
    }
    // From the newest session back to the root, each started no later than the one after it.
    for (let n = 1; n < links.length; n += 1) {
      assert.ok(links[n].startedAt <= links[n - 1].startedAt, `${links[n].sessionId} after ${links[n - 1].sessionId}`);
    }
    const now = Date.now();
    assert.ok(Math.abs(links[0].startedAt.getTime() - now) < 60_000, `startedAt ${links[0].startedAt.toISOString()} is now-ish`);

    // Walked from the middle: parent first above, the one child below.
    const middle = await store.getSessionLineage(forced.sessionId);
    assert.ok(middle);
    assert.deepEqual(shape(middle.session), { sessionId: forced.sessionId, parentSessionId: first.sessionId, reason: 'force_new', title: null });
    assert.deepEqual(middle.ancestors.map((link) => link.sessionId), [first.sessionId]);
    assert.deepEqual(middle.children.map(shape), [
      { sessionId: reset.sessionId, parentSessionId: forced.sessionId, reason: 'reset', title: null },
    ]);
    assert.ok(middle.children[0].startedAt instanceof Date);

    // The root has no ancestors; its one child is the forced session.
    const root = await store.getSessionLineage(first.sessionId);
    assert.ok(root);
    assert.deepEqual(shape(root.session), { sessionId: first.sessionId, parentSessionId: null, reason: null, title: null });
    assert.deepEqual(root.ancestors, []);
    assert.deepEqual(root.children.map((link) => link.sessionId), [forced.sessionId]);

    assert.equal(await store.getLineageTip(first.sessionId), target);
    assert.equal(await store.getLineageTip(reset.sessionId), target);
    assert.equal(await store.getLineageTip(target), target, 'a session without children is its own tip');
  });

  it('children come newest first; the tip follows the newest child, a branch ends at itself', async () => {
    const root = await store.getOrCreateSession(freshSource());
    const key = root.sessionKey;
    const older = await store.resetSession(key);
    assert.ok(older);
    // Back to the root (an existing session: a switch records no lineage), and reset it again.
    assert.equal((await store.switchSession(key, root.sessionId))?.sessionId, root.sessionId);
    const newer = await store.resetSession(key);
    assert.ok(newer);
    assert.notEqual(newer.sessionId, older.sessionId);

    const lineage = await store.getSessionLineage(root.sessionId);
    assert.ok(lineage);
    assert.deepEqual(lineage.children.map(shape), [
      { sessionId: newer.sessionId, parentSessionId: root.sessionId, reason: 'reset', title: null },
      { sessionId: older.sessionId, parentSessionId: root.sessionId, reason: 'reset', title: null },
    ]);
    assert.ok(lineage.children[0].startedAt >= lineage.children[1].startedAt, 'newest first');
    assert.deepEqual(lineage.ancestors, []);
    assert.deepEqual(shape(lineage.session), { sessionId: root.sessionId, parentSessionId: null, reason: null, title: null });

    for (const child of [older, newer]) {
      const up = await store.getSessionLineage(child.sessionId);
      assert.ok(up);
      assert.deepEqual(up.ancestors.map((link) => link.sessionId), [root.sessionId]);
      assert.deepEqual(up.children, []);
    }

    assert.equal(await store.getLineageTip(root.sessionId), newer.sessionId);
    assert.equal(await store.getLineageTip(older.sessionId), older.sessionId, 'a branch that went no further');
    assert.equal(await store.getLineageTip(newer.sessionId), newer.sessionId);
  });

  it('titles travel with the links, as stored; null without one', async () => {
    const source = freshSource();
    const title = freshTitle();
    const first = await store.getOrCreateSession(source, { title });
    const second = await store.resetSession(first.sessionKey, { title: `  ${title}   #2 ` });
    assert.ok(second);
    const third = await store.getOrCreateSession(source, { forceNew: true });

    const lineage = await store.getSessionLineage(second.sessionId);
    assert.ok(lineage);
    assert.deepEqual(shape(lineage.session), { sessionId: second.sessionId, parentSessionId: first.sessionId, reason: 'reset', title: `${title} #2` });
    assert.deepEqual(lineage.ancestors.map(shape), [{ sessionId: first.sessionId, parentSessionId: null, reason: null, title }]);
    assert.deepEqual(lineage.children.map(shape), [
      { sessionId: third.sessionId, parentSessionId: second.sessionId, reason: 'force_new', title: null },
    ]);

    // A title set or cleared later is what the links show.
    const later = freshTitle('Later');
    assert.equal(await store.setSessionTitle(third.sessionId, later), later);
    assert.equal(await store.setSessionTitle(first.sessionId, ''), null);
    const fromTip = await store.getSessionLineage(third.sessionId);
    assert.ok(fromTip);
    assert.equal(fromTip.session.title, later);
    assert.deepEqual(fromTip.ancestors.map((link) => link.title), [`${title} #2`, null]);
  });

  it('an unknown session: null from both; an empty id: InvalidArgumentError naming session_id', async () => {
    assert.equal(await store.getSessionLineage(UNKNOWN_SESSION_ID), null);
    assert.equal(await store.getLineageTip(UNKNOWN_SESSION_ID), null);
    assert.equal(await store.getSessionLineage(`nope-${randomUUID()}`), null);
    assert.equal(await store.getLineageTip(`nope-${randomUUID()}`), null);
    const lineage = await rejectsWith(store.getSessionLineage(''), InvalidArgumentError, Status.INVALID_ARGUMENT);
    assert.equal(lineage.field, 'session_id');
    const tip = await rejectsWith(store.getLineageTip(''), InvalidArgumentError, Status.INVALID_ARGUMENT);
    assert.equal(tip.field, 'session_id');
  });

  it('the lineage RPCs are retried like the other idempotent calls', () => {
    for (const method of ['GetSessionLineage', 'GetLineageTip']) {
      assert.ok(IDEMPOTENT_METHODS.includes(/** @type {any} */ (method)), method);
    }
  });
});
