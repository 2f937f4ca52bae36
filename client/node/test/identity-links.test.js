// Identity links against the REAL daemon (LinkIdentity, UnlinkIdentity, ListIdentityLinks, and
// the `link_identities` of the gateway config): one `sessiond serve` child of its own. A client
// made with `linkIdentities: true` files the DMs of linked user ids under their identity's key;
// one without the option sends no gateway config and gets the daemon's default (off). Every test
// uses identities and user ids of its own, and every wait for events is for the events themselves,
// with a deadline (helpers/events.js).

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import grpc from '@grpc/grpc-js';

import { IDEMPOTENT_METHODS, InvalidArgumentError, SessionStoreClient, Status } from '../src/index.js';
import { rejectsWith } from './helpers/assertions.js';
import { startDaemon } from './helpers/daemon.js';
import { takeEvents } from './helpers/events.js';

/** @type {import('./helpers/daemon.js').Daemon} */
let daemon;
/** Without the option: the daemon's `sessions.link_identities` (off). */
/** @type {SessionStoreClient} */
let store;
/** With `linkIdentities: true`. */
/** @type {SessionStoreClient} */
let linked;

/** An identity (or user id) no other test uses: letters and digits. */
function fresh(stem = 'alice') {
  return `${stem}${randomUUID().replaceAll('-', '').slice(0, 10)}`;
}

/**
 * The DM source of `userId` on `platform` (its chat id is the user id, as in a private chat).
 * @param {string} platform
 * @param {string} userId
 */
function dm(platform, userId) {
  return { platform, chatId: userId, chatType: /** @type {const} */ ('dm'), userId, userName: 'Alice' };
}

/** @param {string} identity */
const identityKey = (identity) => `agent:main:identity:dm:${identity}`;

before(async () => {
  daemon = await startDaemon();
  store = new SessionStoreClient(daemon.address, { timeoutMs: 5000 });
  linked = new SessionStoreClient(daemon.address, { timeoutMs: 5000, linkIdentities: true });
});

after(async () => {
  store?.close();
  linked?.close();
  await daemon?.stop();
});

describe('linkIdentity', () => {
  it("a DM from a linked user id lands on the identity's key; two platforms linked to one identity share one session", async () => {
    const identity = fresh();
    const telegramId = fresh('1');
    const discordId = fresh('2');

    const result = await store.linkIdentity('telegram', telegramId, identity);
    assert.deepEqual(Object.keys(result).sort(), ['changed', 'link', 'previousIdentity']);
    const { linkedAt, ...link } = result.link;
    assert.deepEqual(link, { platform: 'telegram', userId: telegramId, identity });
    assert.ok(linkedAt instanceof Date && Math.abs(linkedAt.getTime() - Date.now()) < 60_000, `linkedAt ${linkedAt}`);
    assert.equal(result.previousIdentity, null);
    assert.equal(result.changed, true);
    const again = await store.linkIdentity('telegram', telegramId, identity);
    assert.deepEqual(again, { link: result.link, previousIdentity: null, changed: false }, 'the link already was so');

    const fromTelegram = await linked.getOrCreateSession(dm('telegram', telegramId));
    assert.equal(fromTelegram.sessionKey, identityKey(identity));
    assert.equal(await linked.buildSessionKey(dm('telegram', telegramId)), identityKey(identity));
    await linked.appendMessages(fromTelegram.sessionId, [{ role: 'user', content: 'hi from telegram', message_id: 'tg-1' }]);

    await store.linkIdentity('discord', discordId, identity);
    const fromDiscord = await linked.getOrCreateSession(dm('discord', discordId));
    assert.equal(fromDiscord.sessionKey, identityKey(identity), 'the same key');
    assert.equal(fromDiscord.sessionId, fromTelegram.sessionId, 'and the same session');
    await linked.appendMessages(fromDiscord.sessionId, [{ role: 'user', content: 'hi from discord', message_id: 'dc-1' }]);
    assert.deepEqual(await linked.loadTranscript(fromTelegram.sessionId), [
      { role: 'user', content: 'hi from telegram' },
      { role: 'user', content: 'hi from discord' },
    ]);

    // Without the option the daemon's default applies (off): the platform keys, as ever.
    assert.equal((await store.getOrCreateSession(dm('telegram', telegramId))).sessionKey, `agent:main:telegram:dm:${telegramId}`);
    assert.equal(await store.buildSessionKey(dm('discord', discordId)), `agent:main:discord:dm:${discordId}`);
    // And `linkIdentities: false` says so itself.
    const unlinked = new SessionStoreClient(daemon.address, { timeoutMs: 5000, linkIdentities: false });
    try {
      assert.equal(await unlinked.buildSessionKey(dm('telegram', telegramId)), `agent:main:telegram:dm:${telegramId}`);
    } finally {
      unlinked.close();
    }

    // The identity's links, by platform then user id; all links include them.
    const links = await store.listIdentityLinks({ identity });
    assert.deepEqual(
      links.map(({ platform, userId, identity: linkedTo }) => ({ platform, userId, identity: linkedTo })),
      [
        { platform: 'discord', userId: discordId, identity },
        { platform: 'telegram', userId: telegramId, identity },
      ],
    );
    assert.ok(links.every((each) => each.linkedAt instanceof Date));
    const everyLink = await store.listIdentityLinks();
    for (const each of links) assert.ok(everyLink.some((other) => other.platform === each.platform && other.userId === each.userId));
    assert.deepEqual(await store.listIdentityLinks({ identity: fresh('nobody') }), []);
  });

  it('a user id linked to another identity moves: previousIdentity names the old one', async () => {
    const first = fresh();
    const second = fresh('bob');
    const userId = fresh('3');
    await store.linkIdentity('telegram', userId, first);
    const moved = await store.linkIdentity('telegram', userId, second);
    assert.equal(moved.changed, true);
    assert.equal(moved.previousIdentity, first);
    assert.equal(moved.link.identity, second);
    assert.deepEqual(await store.listIdentityLinks({ identity: first }), []);
    assert.deepEqual((await store.listIdentityLinks({ identity: second })).map((each) => each.userId), [userId]);
    assert.equal(await linked.buildSessionKey(dm('telegram', userId)), identityKey(second));
  });

  it('an identity the daemon refuses is an InvalidArgumentError naming the field', async () => {
    for (const bad of ['', '-lead', 'two words', 'x'.repeat(129)]) {
      const error = await rejectsWith(store.linkIdentity('telegram', fresh('4'), bad), InvalidArgumentError, Status.INVALID_ARGUMENT);
      assert.equal(error.field, 'identity', `${JSON.stringify(bad)}: ${error.message}`);
    }
  });
});

describe('unlinkIdentity', () => {
  it("splits the user's future messages off to its platform key again; the identity's history stays", async () => {
    const identity = fresh();
    const telegramId = fresh('5');
    const discordId = fresh('6');
    await store.linkIdentity('telegram', telegramId, identity);
    await store.linkIdentity('discord', discordId, identity);
    const shared = await linked.getOrCreateSession(dm('telegram', telegramId));
    assert.equal(shared.sessionKey, identityKey(identity));
    await linked.appendMessages(shared.sessionId, [{ role: 'user', content: 'before the unlink', message_id: 'u-1' }]);

    assert.equal(await store.unlinkIdentity('telegram', telegramId), identity);
    assert.equal(await store.unlinkIdentity('telegram', telegramId), null, 'no link any more: nothing changed');
    assert.equal(await store.unlinkIdentity('telegram', fresh('never')), null);

    const split = await linked.getOrCreateSession(dm('telegram', telegramId));
    assert.equal(split.sessionKey, `agent:main:telegram:dm:${telegramId}`);
    assert.notEqual(split.sessionId, shared.sessionId);
    assert.deepEqual(await linked.loadTranscript(split.sessionId), [], 'a session of its own');
    // The other platform is still linked, and the identity's session and transcript stay.
    const stillShared = await linked.getOrCreateSession(dm('discord', discordId));
    assert.equal(stillShared.sessionKey, identityKey(identity));
    assert.equal(stillShared.sessionId, shared.sessionId);
    assert.equal((await store.getSession(identityKey(identity)))?.sessionId, shared.sessionId);
    assert.deepEqual(await store.loadTranscript(shared.sessionId), [{ role: 'user', content: 'before the unlink' }]);
    assert.deepEqual((await store.listIdentityLinks({ identity })).map((each) => each.platform), ['discord']);
  });
});

describe('events', () => {
  it('watchEvents sees identity_linked (link, relink) and identity_unlinked, not a link that changed nothing', async () => {
    const identity = fresh();
    const other = fresh('carol');
    const userId = fresh('7');
    const watch = store.watchEvents({ fromNow: true, kinds: ['identity_linked', 'identity_unlinked'] });
    try {
      await watch.ready;
      await store.linkIdentity('telegram', userId, identity);
      await store.linkIdentity('telegram', userId, identity); // no change: no event
      await store.linkIdentity('telegram', userId, other);
      await store.unlinkIdentity('telegram', userId);
      await store.unlinkIdentity('telegram', userId); // no link: no event
      const events = await takeEvents(watch, 3);
      assert.deepEqual(
        events.map(({ kind, reason, identity: linkedTo, linkedUser, sessionKey, sessionId }) => ({
          kind,
          reason,
          identity: linkedTo,
          linkedUser,
          sessionKey,
          sessionId,
        })),
        [
          { kind: 'identity_linked', reason: 'link', identity, linkedUser: `telegram:${userId}`, sessionKey: '', sessionId: '' },
          { kind: 'identity_linked', reason: 'relink', identity: other, linkedUser: `telegram:${userId}`, sessionKey: '', sessionId: '' },
          { kind: 'identity_unlinked', reason: events[2]?.reason ?? null, identity: other, linkedUser: `telegram:${userId}`, sessionKey: '', sessionId: '' },
        ],
      );
      for (const event of events) {
        assert.equal(event.otherSessionKey, null);
        assert.equal(event.fencingToken, null);
        assert.ok(event.time instanceof Date);
      }
      // Nothing more: the next event the watch gets is one made after this.
      await store.linkIdentity('telegram', userId, identity);
      const [next] = await takeEvents(watch, 1);
      assert.deepEqual([next.kind, next.identity], ['identity_linked', identity]);
    } finally {
      watch.close();
    }
  });
});

describe('requests', () => {
  it('linkIdentities is sent in the gateway config of the calls that build keys, beside the namespace; none without the option', async () => {
    /** @type {{method: string, message: any}[]} */
    const sent = [];
    /** @type {grpc.Interceptor} */
    const interceptor = (options, nextCall) =>
      new grpc.InterceptingCall(nextCall(options), {
        sendMessage(message, next) {
          const { path } = options.method_definition;
          sent.push({ method: path.slice(path.lastIndexOf('/') + 1), message });
          next(message);
        },
      });
    const clients = [
      new SessionStoreClient(daemon.address, { channelOptions: { interceptors: [interceptor] } }),
      new SessionStoreClient(daemon.address, { linkIdentities: true, channelOptions: { interceptors: [interceptor] } }),
      new SessionStoreClient(daemon.address, { linkIdentities: false, namespace: 'research', channelOptions: { interceptors: [interceptor] } }),
    ];
    try {
      for (const client of clients) {
        await client.buildSessionKey(dm('telegram', '1'));
        await client.getOrCreateSession(dm('telegram', fresh('8')));
        await client.listIdentityLinks({ identity: 'nobody' });
      }
    } finally {
      for (const client of clients) client.close();
    }
    const configs = sent.map(({ method, message }) => [method, message.config]);
    assert.deepEqual(configs, [
      ['BuildSessionKey', undefined],
      ['GetOrCreateSession', undefined],
      ['ListIdentityLinks', undefined],
      ['BuildSessionKey', { linkIdentities: true }],
      ['GetOrCreateSession', { linkIdentities: true }],
      ['ListIdentityLinks', undefined],
      ['BuildSessionKey', { namespace: 'research', linkIdentities: false }],
      ['GetOrCreateSession', { namespace: 'research', linkIdentities: false }],
      ['ListIdentityLinks', undefined],
    ]);
    assert.ok(IDEMPOTENT_METHODS.includes('ListIdentityLinks'), 'the listing is retried as the other reads');
    for (const method of ['LinkIdentity', 'UnlinkIdentity']) assert.ok(!IDEMPOTENT_METHODS.includes(/** @type {any} */ (method)), method);
  });
});
