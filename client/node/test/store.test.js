// The behaviour suite against the REAL daemon: one `sessiond serve` child process on a temporary
// Unix socket and database, shared by the tests of this file (which run in order), stopped with
// SIGTERM by the last one.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';

import {
  ConflictError,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  SessionStoreClient,
  SessiondError,
  Status,
  UnavailableError,
} from '../src/index.js';
import { fieldViolationOf } from '../src/errors.js';
import { CASES, camelEntry, camelPlatforms, camelSource } from './cases.js';
import { rejectsWith } from './helpers/assertions.js';
import { PACKAGE_DIR, runPython, startDaemon } from './helpers/daemon.js';

const SESSION_ID = /^\d{8}_\d{6}_[0-9a-f]{8}$/;

/** @type {import('./helpers/daemon.js').Daemon} */
let daemon;
/** @type {SessionStoreClient} */
let store;

/** A source of its own for each test, so tests do not share session keys. */
function freshSource(overrides = {}) {
  return {
    platform: 'telegram',
    chatId: `-100${Math.floor(Math.random() * 1e9)}`,
    chatType: /** @type {const} */ ('group'),
    chatName: 'Test group',
    userId: '42',
    userName: 'Bob',
    ...overrides,
  };
}


before(async () => {
  daemon = await startDaemon();
  store = new SessionStoreClient(daemon.address, { timeoutMs: 5000 });
});

after(async () => {
  store?.close();
  if (daemon && daemon.process.exitCode === null && daemon.process.signalCode === null) await daemon.stop();
});

describe('keys and prompt text equal what the Python client gets', () => {
  /** @type {any[]} */
  let python;

  before(async () => {
    const script = join(PACKAGE_DIR, 'test/helpers/python_answers.py');
    const cases = CASES.map(({ source, redact, entry, platforms }) => ({ source, redact: Boolean(redact), entry, platforms }));
    python = JSON.parse(await runPython([script, daemon.address], JSON.stringify(cases)));
    assert.equal(python.length, CASES.length);
  });

  CASES.forEach((testCase, index) => {
    it(testCase.name, async () => {
      const expected = python[index];
      const source = camelSource(testCase.source);
      const options = {
        redactPii: Boolean(testCase.redact),
        entry: camelEntry(testCase.entry),
        platforms: camelPlatforms(testCase.platforms),
      };

      assert.equal(await store.buildSessionKey(source), expected.session_key);
      const details = await store.buildSessionKeyDetails(source);
      assert.deepEqual(details, {
        sessionKey: expected.session_key,
        sharedMultiUserSession: Boolean(expected.shared_multi_user_session),
        description: expected.description,
      });

      const { context, prompt } = await store.buildSessionContext(source, options);
      assert.equal(prompt, expected.prompt);
      assert.equal(await store.buildSessionContextPrompt(source, options), expected.prompt);
      assert.ok(prompt.startsWith('## Current Session Context\n'));

      const pythonContext = expected.context;
      assert.equal(context.sharedMultiUserSession, Boolean(pythonContext.shared_multi_user_session));
      assert.deepEqual(context.connectedPlatforms, pythonContext.connected_platforms ?? []);
      assert.deepEqual(
        context.homeChannels.map((/** @type {any} */ home) => [home.platform, home.chatId, home.name]),
        (pythonContext.home_channels ?? []).map((/** @type {any} */ home) => [home.platform, home.chat_id, home.name ?? null]),
      );
      assert.equal(context.source.platform, pythonContext.source.platform);
      assert.equal(context.source.chatId, pythonContext.source.chat_id ?? '');
      assert.equal(context.sessionKey, pythonContext.session_key ?? '');
      assert.equal(context.sessionId, pythonContext.session_id ?? '');
      if (testCase.entry) {
        assert.equal(context.createdAt?.getTime(), Date.parse(pythonContext.created_at));
        assert.equal(context.updatedAt?.getTime(), Date.parse(pythonContext.updated_at));
      } else {
        assert.equal(context.createdAt, null);
      }
    });
  });

  it('a source in the reference snake_case shape gives the same key and prompt', async () => {
    for (const [index, testCase] of CASES.entries()) {
      assert.equal(await store.buildSessionKey(testCase.source), python[index].session_key, testCase.name);
      const prompt = await store.buildSessionContextPrompt(testCase.source, {
        redactPii: Boolean(testCase.redact),
        entry: camelEntry(testCase.entry),
        platforms: camelPlatforms(testCase.platforms),
      });
      assert.equal(prompt, python[index].prompt, testCase.name);
    }
  });

  it('redaction hashes ids only on PII-safe platforms', async () => {
    const byName = Object.fromEntries(CASES.map((c, i) => [c.name, { testCase: c, prompt: python[i].prompt }]));
    const unredacted = async (/** @type {string} */ name) => {
      const { testCase } = byName[name];
      return store.buildSessionContextPrompt(camelSource(testCase.source), {
        redactPii: false,
        platforms: camelPlatforms(testCase.platforms),
      });
    };
    const telegram = byName['telegram dm without a name, redacted'].prompt;
    assert.match(telegram, /\*\*User ID:\*\* user_[0-9a-f]{12}/);
    assert.doesNotMatch(telegram, /777001|-100555000/);
    assert.match(await unredacted('telegram dm without a name, redacted'), /\*\*User ID:\*\* 777001/);
    assert.match(telegram, /\*\*Home Channels \(default destinations\):\*\*/);
    const slack = 'slack thread in a channel, redaction asked (slack is not PII safe)';
    assert.equal(await unredacted(slack), byName[slack].prompt);
  });
});

describe('sessions round-trip', () => {
  it('getOrCreateSession creates once, then returns the same entry', async () => {
    const source = freshSource({ threadId: null, isBot: false });
    const key = await store.buildSessionKey(source);
    const first = await store.getOrCreateSession(source);
    assert.equal(first.sessionKey, key);
    assert.match(first.sessionId, SESSION_ID);
    assert.ok(first.createdAt instanceof Date && first.updatedAt instanceof Date);
    assert.equal(first.chatType, 'group');
    assert.equal(first.platform, 'telegram');
    assert.equal(first.displayName, 'Test group');
    assert.equal(first.origin?.chatId, source.chatId);
    assert.equal(first.origin?.userName, 'Bob');
    assert.equal(first.origin?.threadId, null, 'unset optionals are null');
    assert.equal(first.origin?.chatType, 'group');
    assert.equal(first.autoResetReason, null);
    assert.equal(first.lastResumeMarkedAt, null);
    assert.equal(first.costStatus, 'unknown');
    assert.equal(typeof first.version, 'number');

    const again = await store.getOrCreateSession(source);
    assert.equal(again.sessionId, first.sessionId);
    const read = await store.getSession(key);
    assert.equal(read?.sessionId, first.sessionId);
    assert.equal(read?.version, again.version);

    const forced = await store.getOrCreateSession(source, { forceNew: true });
    assert.notEqual(forced.sessionId, first.sessionId);
    assert.match(forced.sessionId, SESSION_ID);
  });

  it('a chat type the enum does not name ("forum") is keyed like a group and comes back as it was', async () => {
    const source = freshSource({ chatType: 'forum' });
    const key = await store.buildSessionKey(source);
    assert.equal(key, `agent:main:telegram:forum:${source.chatId}:${source.userId}`);
    const entry = await store.getOrCreateSession(source);
    assert.equal(entry.sessionKey, key);
    assert.equal(entry.chatType, 'forum');
    assert.equal(entry.origin?.chatType, 'forum');
  });

  it('updateSession adds usage, bumps the version and ignores unknown keys', async () => {
    const entry = await store.getOrCreateSession(freshSource());
    const updated = await store.updateSession(entry.sessionKey, {
      lastPromptTokens: 812,
      inputTokens: 800,
      outputTokens: 150,
      totalTokens: 950,
      estimatedCostUsd: 0.25,
      costStatus: 'estimated',
      expectedVersion: entry.version,
    });
    assert.ok(updated);
    assert.equal(updated.lastPromptTokens, 812);
    assert.equal(updated.totalTokens, 950);
    assert.equal(updated.estimatedCostUsd, 0.25);
    assert.equal(updated.costStatus, 'estimated');
    assert.ok(updated.version > entry.version);
    const twice = await store.updateSession(entry.sessionKey, { totalTokens: 50 });
    assert.equal(twice?.totalTokens, 1000);
    assert.equal(await store.updateSession('agent:main:telegram:dm:no-such-key', { totalTokens: 1 }), null);
  });

  it('resetSession starts a new id and ends the old one; null for an unknown key', async () => {
    const entry = await store.getOrCreateSession(freshSource());
    const reset = await store.resetSession(entry.sessionKey);
    assert.ok(reset);
    assert.equal(reset.sessionKey, entry.sessionKey);
    assert.notEqual(reset.sessionId, entry.sessionId);
    assert.equal(reset.isFreshReset, true);
    assert.equal(reset.origin?.chatId, entry.origin?.chatId, 'origin kept');
    assert.equal((await store.getSession(entry.sessionKey))?.sessionId, reset.sessionId);
    assert.equal(await store.resetSession('agent:main:telegram:dm:no-such-key'), null);
  });

  it('switchSession points the key back at an earlier id; null for unknown key or id', async () => {
    const entry = await store.getOrCreateSession(freshSource());
    const reset = await store.resetSession(entry.sessionKey);
    assert.ok(reset);
    const switched = await store.switchSession(entry.sessionKey, entry.sessionId);
    assert.equal(switched?.sessionId, entry.sessionId);
    assert.equal((await store.getOrCreateSession(entry.origin ?? {}))?.sessionId, entry.sessionId);
    assert.equal(await store.switchSession(entry.sessionKey, '20000101_000000_00000000'), null);
    assert.equal(await store.switchSession('agent:main:telegram:dm:no-such-key', entry.sessionId), null);
  });

  it('appendToTranscript and loadTranscript round-trip OpenAI-format messages', async () => {
    const entry = await store.getOrCreateSession(freshSource());
    const toolCalls = [{ id: 'call_1', type: 'function', function: { name: 'search', arguments: '{"q":"x"}' } }];
    const messages = [
      { role: 'system', content: 'You are helpful.' },
      { role: 'user', content: 'hello' },
      {
        role: 'assistant',
        content: null,
        tool_calls: toolCalls,
        reasoning: 'look it up',
        finish_reason: 'tool_calls',
      },
      { role: 'tool', tool_call_id: 'call_1', tool_name: 'search', content: 'found it' },
      { role: 'assistant', content: [{ type: 'text', text: 'Here: 1' }], reasoning_details: [{ n: 1 }] },
    ];
    for (const message of messages) {
      const result = await store.appendToTranscript(entry.sessionId, message);
      assert.equal(result?.appended, 1);
    }
    assert.equal(await store.appendToTranscript(entry.sessionId, { role: 'user', content: 'x' }, { skipDb: true }), null);
    assert.deepEqual(await store.loadTranscript(entry.sessionId), messages);
  });

  it('appendMessages skips message ids already stored, so a retry never duplicates', async () => {
    const entry = await store.getOrCreateSession(freshSource());
    const batch = [
      { role: 'user', content: 'one', message_id: `m-${randomUUID()}` },
      { role: 'assistant', content: 'two', message_id: `m-${randomUUID()}` },
    ];
    assert.deepEqual(await store.appendMessages(entry.sessionId, batch), { appended: 2, duplicates: 0, messageCount: 2 });
    assert.deepEqual(await store.appendMessages(entry.sessionId, batch), { appended: 0, duplicates: 2, messageCount: 2 });
    const loaded = await store.loadTranscript(entry.sessionId);
    assert.deepEqual(loaded, [
      { role: 'user', content: 'one' },
      { role: 'assistant', content: 'two' },
    ]);
  });

  it('loadTranscript strips surrounding whitespace unless raw; [] for an unknown session id', async () => {
    const entry = await store.getOrCreateSession(freshSource());
    await store.appendToTranscript(entry.sessionId, { role: 'user', content: '  padded  ' });
    assert.deepEqual(await store.loadTranscript(entry.sessionId), [{ role: 'user', content: 'padded' }]);
    assert.deepEqual(await store.loadTranscript(entry.sessionId, { raw: true }), [{ role: 'user', content: '  padded  ' }]);
    assert.deepEqual(await store.loadTranscript('20000101_000000_00000000'), []);
  });

  it('rewriteTranscript replaces the transcript atomically', async () => {
    const entry = await store.getOrCreateSession(freshSource());
    await store.appendMessages(entry.sessionId, [
      { role: 'user', content: 'a' },
      { role: 'assistant', content: 'b' },
      { role: 'user', content: 'c' },
    ]);
    assert.equal(await store.rewriteTranscript(entry.sessionId, [{ role: 'user', content: 'a' }]), 1);
    assert.deepEqual(await store.loadTranscript(entry.sessionId), [{ role: 'user', content: 'a' }]);
  });

  it('suspend, resume-pending and clear behave as the reference', async () => {
    const source = freshSource();
    const entry = await store.getOrCreateSession(source);
    assert.equal(await store.markResumePending(entry.sessionKey, { reason: 'restart_interrupted' }), true);
    const pending = await store.getSession(entry.sessionKey);
    assert.equal(pending?.resumePending, true);
    assert.equal(pending?.resumeReason, 'restart_interrupted');
    assert.ok(pending?.lastResumeMarkedAt instanceof Date);
    assert.equal(await store.clearResumePending(entry.sessionKey), true);
    assert.equal(await store.clearResumePending(entry.sessionKey), false);

    assert.equal(await store.suspendSession(entry.sessionKey), true);
    assert.equal(await store.markResumePending(entry.sessionKey), false, 'suspended: FAILED_PRECONDITION is false');
    const next = await store.getOrCreateSession(source);
    assert.notEqual(next.sessionId, entry.sessionId, 'a suspended session starts over');
    assert.equal(next.wasAutoReset, true);
    assert.equal(next.autoResetReason, 'suspended');

    const unknown = 'agent:main:telegram:dm:no-such-key';
    assert.equal(await store.suspendSession(unknown), false);
    assert.equal(await store.markResumePending(unknown), false);
    assert.equal(await store.clearResumePending(unknown), false);
  });

  it('listSessions, hasAnySessions, suspendRecentlyActive, pruneOldEntries, listExpiredSessions', async () => {
    const entry = await store.getOrCreateSession(freshSource());
    const all = await store.listSessions();
    assert.ok(all.some((e) => e.sessionKey === entry.sessionKey));
    for (let i = 1; i < all.length; i += 1) assert.ok(all[i - 1].updatedAt >= all[i].updatedAt, 'newest first');
    const recent = await store.listSessions({ activeMinutes: 5 });
    assert.ok(recent.some((e) => e.sessionKey === entry.sessionKey));
    assert.equal(await store.hasAnySessions(), true);
    assert.equal(await store.pruneOldEntries(0), 0, 'max_age_days <= 0 disables pruning');
    assert.equal(await store.pruneOldEntries(), 0, 'nothing is old enough for the configured age');
    assert.ok(Array.isArray(await store.listExpiredSessions()));
    const marked = await store.suspendRecentlyActive(600);
    assert.ok(marked >= 1);
    assert.equal((await store.getSession(entry.sessionKey))?.resumePending, true);
  });

  it('markExpiryFinalized records the id; ConflictError once the key moved on', async () => {
    const entry = await store.getOrCreateSession(freshSource());
    const finalized = await store.markExpiryFinalized(entry.sessionKey, entry.sessionId);
    assert.equal(finalized.expiryFinalized, true);
    await store.resetSession(entry.sessionKey);
    await rejectsWith(store.markExpiryFinalized(entry.sessionKey, entry.sessionId), ConflictError, Status.ABORTED);
  });

  it('leases: acquire, renew, refuse another owner, release', async () => {
    const entry = await store.getOrCreateSession(freshSource());
    const lease = await store.acquireLease(entry.sessionKey, 'job-1', 30);
    assert.equal(lease.sessionKey, entry.sessionKey);
    assert.equal(lease.owner, 'job-1');
    assert.ok(lease.expiresAt instanceof Date && lease.expiresAt.getTime() > Date.now());
    const renewed = await store.acquireLease(entry.sessionKey, 'job-1', 60);
    assert.ok(/** @type {Date} */ (renewed.expiresAt) > /** @type {Date} */ (lease.expiresAt));
    await rejectsWith(store.acquireLease(entry.sessionKey, 'job-2', 30), FailedPreconditionError, Status.FAILED_PRECONDITION);
    assert.equal(await store.releaseLease(entry.sessionKey, 'job-2'), false);
    assert.equal(await store.releaseLease(entry.sessionKey, 'job-1'), true);
    assert.equal((await store.acquireLease(entry.sessionKey, 'job-2', 1.5)).owner, 'job-2');
  });
});

describe('errors arrive typed', () => {
  it('NOT_FOUND: NotFoundError for an unknown session id or key', async () => {
    const error = await rejectsWith(
      store.appendMessages('20000101_000000_00000000', [{ role: 'user', content: 'x' }]),
      NotFoundError,
      Status.NOT_FOUND,
    );
    assert.equal(error.codeName, 'NOT_FOUND');
    assert.match(error.message, /^NOT_FOUND: /);
    await rejectsWith(store.appendToTranscript('20000101_000000_00000000', { role: 'user', content: 'x' }), NotFoundError, Status.NOT_FOUND);
    await rejectsWith(store.rewriteTranscript('20000101_000000_00000000', []), NotFoundError, Status.NOT_FOUND);
    await rejectsWith(
      store.markExpiryFinalized('agent:main:telegram:dm:no-such-key', '20000101_000000_00000000'),
      NotFoundError,
      Status.NOT_FOUND,
    );
  });

  it('INVALID_ARGUMENT: InvalidArgumentError naming the field', async () => {
    const platform = await rejectsWith(store.buildSessionKey({ platform: '', chatId: '1' }), InvalidArgumentError, Status.INVALID_ARGUMENT);
    assert.equal(platform.field, 'source.platform');
    assert.match(platform.details, /^source\.platform: /);
    const ttl = await rejectsWith(store.acquireLease('agent:main:telegram:dm:1', 'me', 0), InvalidArgumentError, Status.INVALID_ARGUMENT);
    assert.equal(ttl.field, 'ttl');
    const key = await rejectsWith(store.getSession(''), InvalidArgumentError, Status.INVALID_ARGUMENT);
    assert.equal(key.field, 'session_key');
    const negative = await rejectsWith(
      store.updateSession('agent:main:telegram:dm:1', { lastPromptTokens: -1 }),
      InvalidArgumentError,
      Status.INVALID_ARGUMENT,
    );
    assert.equal(negative.field, 'last_prompt_tokens');
    const chatType = await rejectsWith(
      store.getOrCreateSession({ platform: 'telegram', chatId: '1', chatType: /** @type {any} */ (7) }),
      InvalidArgumentError,
      Status.INVALID_ARGUMENT,
    );
    assert.equal(chatType.field, 'source.chat_type', 'checked by the client before sending');
  });

  it("INVALID_ARGUMENT: the field and its description are the daemon's google.rpc.BadRequest detail", async () => {
    const platform = await rejectsWith(
      store.getOrCreateSession(freshSource({ platform: 'myspace' })),
      InvalidArgumentError,
      Status.INVALID_ARGUMENT,
    );
    const description = "unknown platform 'myspace' (not built in, not a configured plugin)";
    assert.deepEqual([platform.field, platform.description], ['source.platform', description]);
    assert.equal(platform.details, `source.platform: ${description}`);
    const { sessionId } = await store.getOrCreateSession(freshSource());
    const messages = ['m1', 'm2', 'm3', 'm3'].map((id) => ({ role: 'user', content: id, message_id: id }));
    const repeated = await rejectsWith(store.rewriteTranscript(sessionId, messages), InvalidArgumentError, Status.INVALID_ARGUMENT);
    assert.deepEqual([repeated.field, repeated.description], ['messages[3].message_id', 'repeated within the transcript']);
    for (const error of [platform, repeated]) {
      // The trailer is there and is where they come from: decoded, it names the same field and description.
      assert.equal(error.metadata?.get('grpc-status-details-bin').length, 1);
      assert.deepEqual(fieldViolationOf(error.metadata, error.code, error.details), {
        field: error.field,
        description: error.description,
      });
    }
  });

  it('ABORTED: ConflictError for a stale expectedVersion, and nothing changes', async () => {
    const entry = await store.getOrCreateSession(freshSource());
    const current = await store.updateSession(entry.sessionKey, { totalTokens: 10 });
    assert.ok(current && current.version > entry.version);
    for (const call of [
      () => store.updateSession(entry.sessionKey, { totalTokens: 5, expectedVersion: entry.version }),
      () => store.resetSession(entry.sessionKey, { expectedVersion: entry.version }),
      () => store.suspendSession(entry.sessionKey, { expectedVersion: entry.version }),
      () => store.switchSession(entry.sessionKey, entry.sessionId, { expectedVersion: entry.version }),
    ]) {
      const error = await rejectsWith(call(), ConflictError, Status.ABORTED);
      assert.equal(error.codeName, 'ABORTED');
    }
    const after = await store.getSession(entry.sessionKey);
    assert.equal(after?.version, current.version);
    assert.equal(after?.totalTokens, 10);
    assert.equal(after?.suspended, false);
  });

  it('UNAVAILABLE: UnavailableError when nothing listens on the socket', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sessiond-node-'));
    const absent = new SessionStoreClient(`unix:${join(dir, 'nobody.sock')}`, { timeoutMs: 2000 });
    try {
      await rejectsWith(absent.buildSessionKey({ platform: 'telegram', chatId: '1' }), UnavailableError, Status.UNAVAILABLE);
      await rejectsWith(absent.getOrCreateSession({ platform: 'telegram', chatId: '1' }), UnavailableError, Status.UNAVAILABLE);
    } finally {
      absent.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('DEADLINE_EXCEEDED: DeadlineExceededError when the daemon does not answer in time', async () => {
    // A socket that accepts connections and never speaks: every call runs into its deadline.
    const dir = await mkdtemp(join(tmpdir(), 'sessiond-node-'));
    const path = join(dir, 'silent.sock');
    /** @type {import('node:net').Socket[]} */
    const sockets = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise((done) => silent.listen(path, () => done(undefined)));
    const client = new SessionStoreClient(`unix:${path}`, { timeoutMs: 300 });
    try {
      const started = Date.now();
      await rejectsWith(client.getSession('agent:main:telegram:dm:1'), DeadlineExceededError, Status.DEADLINE_EXCEEDED);
      assert.ok(Date.now() - started >= 250, 'waited for the deadline');
    } finally {
      client.close();
      for (const socket of sockets) socket.destroy();
      await new Promise((done) => silent.close(() => done(undefined)));
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('a TCP port with a bearer token', () => {
  it('answers calls with the token, UNAUTHENTICATED without it; health needs none', async () => {
    const free = createServer();
    await new Promise((done) => free.listen(0, '127.0.0.1', () => done(undefined)));
    const address = `127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (free.address()).port}`;
    await new Promise((done) => free.close(() => done(undefined)));
    const token = randomUUID();
    const tcp = await startDaemon({ args: ['--tcp', address], env: { SESSIOND_TOKEN: token } });
    const withToken = new SessionStoreClient(address, { token });
    const withoutToken = new SessionStoreClient(address);
    try {
      assert.equal(await withToken.buildSessionKey(freshSource({ chatId: '-1001' })), 'agent:main:telegram:group:-1001:42');
      await rejectsWith(withoutToken.getSession('agent:main:telegram:dm:1'), SessiondError, Status.UNAUTHENTICATED);
      assert.equal(await withoutToken.checkHealth(), 'SERVING');
    } finally {
      withToken.close();
      withoutToken.close();
      await tcp.stop();
    }
  });
});

describe('health and the example', () => {
  it('health reports SERVING for the store and the server', async () => {
    assert.equal(await store.checkHealth(), 'SERVING');
    assert.equal(await store.checkHealth(''), 'SERVING');
    assert.equal(await store.isServing(), true);
  });

  it('examples/gateway-loop.mjs runs a simulated conversation against the daemon', async () => {
    const example = resolve(PACKAGE_DIR, 'examples/gateway-loop.mjs');
    const { code, stdout, stderr } = await new Promise((done, fail) => {
      const child = spawn(process.execPath, [example, daemon.address], { cwd: PACKAGE_DIR });
      let out = '';
      let err = '';
      child.stdout.setEncoding('utf8').on('data', (chunk) => (out += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk) => (err += chunk));
      child.on('error', fail);
      child.on('close', (exitCode) => done({ code: exitCode, stdout: out, stderr: err }));
    });
    assert.equal(code, 0, stderr);
    assert.match(stdout, /## Current Session Context/);
    assert.match(stdout, /session agent:main:/);
    assert.match(stdout, /transcript of \d{8}_\d{6}_[0-9a-f]{8}: 4 messages/);
  });
});

describe('shutdown', () => {
  it('the daemon stops on SIGTERM with exit status 0', async () => {
    store.close();
    const { code, signal } = await daemon.stop();
    assert.equal(signal, null, daemon.stderr());
    assert.equal(code, 0, daemon.stderr());
    assert.match(daemon.stderr(), /"msg": "serving"/);
    assert.match(daemon.stderr(), /"msg": "stopped"/);
  });
});
