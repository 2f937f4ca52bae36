// Unit tests without a daemon: the error mapping, the conversions to and from the contract's
// messages, and the defaults.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import grpc from '@grpc/grpc-js';

import {
  AlreadyExistsError,
  CHAT_TYPES,
  ConflictError,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  SessionStoreClient,
  SessiondError,
  Status,
  UnavailableError,
  channelOptions,
  createCodec,
  dateToTimestamp,
  defaultTarget,
  fromServiceError,
  loadContract,
  timestampToDate,
} from '../src/index.js';

const codec = createCodec(loadContract().definition);

describe('errors', () => {
  /** @type {[number, typeof SessiondError][]} */
  const cases = [
    [Status.INVALID_ARGUMENT, InvalidArgumentError],
    [Status.NOT_FOUND, NotFoundError],
    [Status.ALREADY_EXISTS, AlreadyExistsError],
    [Status.ABORTED, ConflictError],
    [Status.FAILED_PRECONDITION, FailedPreconditionError],
    [Status.RESOURCE_EXHAUSTED, ResourceExhaustedError],
    [Status.UNAVAILABLE, UnavailableError],
    [Status.DEADLINE_EXCEEDED, DeadlineExceededError],
    [Status.INTERNAL, SessiondError],
    [Status.PERMISSION_DENIED, SessiondError],
  ];
  for (const [code, type] of cases) {
    it(`status ${code} becomes ${type.name}`, () => {
      const metadata = new grpc.Metadata();
      const grpcError = Object.assign(new Error('x'), { code, details: 'some: thing', metadata });
      const error = fromServiceError(grpcError);
      assert.equal(error.constructor, type);
      assert.ok(error instanceof SessiondError && error instanceof Error);
      assert.equal(error.code, code);
      assert.equal(error.details, 'some: thing');
      assert.equal(error.metadata, metadata);
      assert.equal(error.cause, grpcError);
      assert.equal(error.name, type.name);
      assert.equal(error.message, `${error.codeName}: some: thing`);
    });
  }

  it('InvalidArgumentError.field is the part before ": " when it holds no space', () => {
    const field = (/** @type {string} */ details) =>
      /** @type {InvalidArgumentError} */ (fromServiceError({ code: Status.INVALID_ARGUMENT, details })).field;
    assert.equal(field('source.platform: unknown platform'), 'source.platform');
    assert.equal(field('messages[2].role: required'), 'messages[2].role');
    assert.equal(field('a sentence: with a colon'), '');
    assert.equal(field('no separator'), '');
  });

  it('InvalidArgumentError.description is the reason after the field, else the whole message', () => {
    const error = (/** @type {string} */ details) =>
      /** @type {InvalidArgumentError} */ (fromServiceError({ code: Status.INVALID_ARGUMENT, details }));
    assert.equal(error('source.platform: unknown platform').description, 'unknown platform');
    assert.equal(error('a sentence: with a colon').description, 'a sentence: with a colon');
    const given = new InvalidArgumentError(Status.INVALID_ARGUMENT, 'whatever: x', { field: 'kinds', description: 'unknown' });
    assert.deepEqual([given.field, given.description], ['kinds', 'unknown']);
  });

  it('anything without a status code is SessiondError UNKNOWN', () => {
    const error = fromServiceError(new TypeError('boom'));
    assert.equal(error.constructor, SessiondError);
    assert.equal(error.code, Status.UNKNOWN);
    assert.equal(error.codeName, 'UNKNOWN');
    assert.equal(error.details, 'boom');
  });
});

describe('sources', () => {
  it('camelCase and snake_case keys give the same message; null optionals are not sent', () => {
    const camel = codec.sourceToProto({ platform: 'telegram', chatId: 5, chatType: 'group', userIdAlt: 'u', threadId: null });
    const snake = codec.sourceToProto({ platform: 'telegram', chat_id: 5, chat_type: 'group', user_id_alt: 'u', thread_id: null });
    assert.deepEqual(camel, snake);
    assert.deepEqual(camel, { platform: 'telegram', chatId: '5', chatType: CHAT_TYPES.group, userIdAlt: 'u', isBot: false });
  });

  it('a missing chat type is dm, an enum-like platform its value, "" stays sent', () => {
    const message = codec.sourceToProto({ platform: { value: 'discord' }, chat_id: 'c', user_name: '' });
    assert.equal(message.chatType, 'CHAT_TYPE_DM');
    assert.equal(message.platform, 'discord');
    assert.equal(message.userName, '');
  });

  it('a chat type the enum does not name travels as chatTypeName, the enum left unset', () => {
    const forum = codec.sourceToProto({ platform: 'telegram', chatId: '1', chatType: 'forum' });
    assert.deepEqual(forum, { platform: 'telegram', chatId: '1', chatTypeName: 'forum', isBot: false });
    assert.equal(codec.sourceToProto({ platform: 'x', chat_type: /** @type {any} */ ({ value: 'room' }) }).chatTypeName, 'room');
    // Only chatType says the chat type: a chatTypeName key beside it would be the daemon's "not both" error.
    const both = codec.sourceToProto(/** @type {any} */ ({ platform: 'x', chatType: 'thread', chatTypeName: 'forum' }));
    assert.equal(both.chatType, CHAT_TYPES.thread);
    assert.ok(!('chatTypeName' in both));
  });

  it('a chat type that is no string, or no source, is an InvalidArgumentError before anything is sent', () => {
    for (const chatType of [3, true, {}]) {
      assert.throws(() => codec.sourceToProto({ platform: 'x', chatType: /** @type {any} */ (chatType) }), (error) => {
        assert.ok(error instanceof InvalidArgumentError);
        assert.equal(error.field, 'source.chat_type');
        return true;
      });
    }
    assert.throws(() => codec.sourceToProto(/** @type {any} */ (null)), InvalidArgumentError);
  });

  it('a decoded source has every field, unset optionals null, chat type as the reference string', () => {
    const source = codec.sourceFromProto({ platform: 'slack', chatId: 'C1', chatType: 'CHAT_TYPE_THREAD', isBot: false, threadId: '' });
    assert.equal(source.chatType, 'thread');
    assert.equal(source.threadId, '');
    assert.equal(source.userId, null);
    assert.equal(codec.sourceFromProto({ platform: 'x', chatId: '', chatType: 'CHAT_TYPE_UNSPECIFIED' }).chatType, 'dm');
  });

  it('a decoded chatTypeName is the chat type, and no key of its own', () => {
    const forum = { chatType: 'CHAT_TYPE_UNSPECIFIED', chatTypeName: 'forum' };
    const entry = codec.entryFromProto({ sessionKey: 'k', ...forum, origin: { platform: 'x', chatId: '', ...forum } });
    for (const decoded of [entry, entry.origin]) {
      assert.equal(decoded?.chatType, 'forum');
      assert.ok(decoded && !('chatTypeName' in decoded));
    }
  });
});

describe('times', () => {
  it('Timestamp and Date convert both ways at millisecond precision', () => {
    const date = new Date('2025-03-01T10:20:30.456Z');
    const timestamp = dateToTimestamp(date, 'x');
    assert.deepEqual(timestamp, { seconds: Math.floor(date.getTime() / 1000), nanos: 456_000_000 });
    assert.equal(timestampToDate(timestamp)?.getTime(), date.getTime());
    assert.equal(timestampToDate({ seconds: 1, nanos: 999_999 })?.getTime(), 1000);
    assert.equal(timestampToDate(null), null);
    const before1970 = new Date(-1500);
    assert.equal(timestampToDate(dateToTimestamp(before1970, 'x'))?.getTime(), -1500);
    assert.throws(() => dateToTimestamp('not a date', 'entry.created_at'), InvalidArgumentError);
  });

  it('an entry ref sends key, id and times', () => {
    const ref = codec.entryRefToProto({
      sessionKey: 'k',
      sessionId: 'i',
      createdAt: '2025-01-01T00:00:00Z',
      updatedAt: new Date(0),
    });
    assert.deepEqual(ref, {
      sessionKey: 'k',
      sessionId: 'i',
      createdAt: { seconds: 1735689600, nanos: 0 },
      updatedAt: { seconds: 0, nanos: 0 },
    });
  });
});

describe('transcript messages', () => {
  it('are stored as the reference did: text or JSON content, structured fields only when truthy', () => {
    assert.deepEqual(codec.messageToProto({ role: 'user', content: 'hi', message_id: 7 }), {
      role: 'user',
      text: 'hi',
      messageId: '7',
    });
    assert.deepEqual(
      codec.messageToProto({
        role: 'assistant',
        content: null,
        tool_calls: [],
        reasoning_details: {},
        codex_message_items: [{ a: 1 }],
        reasoning_content: '',
        token_count: 3,
      }),
      { role: 'assistant', codexMessageItemsJson: '[{"a":1}]', reasoningContent: '', tokenCount: 3 },
    );
    assert.deepEqual(codec.messageToProto({ role: '', content: [{ type: 'text', text: 'x' }] }), {
      role: 'unknown',
      json: '[{"type":"text","text":"x"}]',
    });
  });

  it('come back in the reference replay shape; reasoning only on assistant messages', () => {
    assert.deepEqual(
      codec.messageFromProto({
        role: 'assistant',
        content: 'json',
        json: '{"k":[1,2]}',
        toolCallsJson: '[{"id":"c"}]',
        finishReason: 'stop',
        reasoning: 'why',
        reasoningContent: '',
        reasoningDetailsJson: '[1]',
        tokenCount: 5,
        messageId: 'm',
      }),
      {
        role: 'assistant',
        content: { k: [1, 2] },
        tool_calls: [{ id: 'c' }],
        finish_reason: 'stop',
        reasoning: 'why',
        reasoning_content: '',
        reasoning_details: [1],
      },
    );
    assert.deepEqual(codec.messageFromProto({ role: 'user', content: 'text', text: 'hi', reasoning: 'dropped' }), {
      role: 'user',
      content: 'hi',
    });
    assert.deepEqual(codec.messageFromProto({ role: 'assistant' }), { role: 'assistant', content: null });
  });
});

describe('search results', () => {
  const summary = {
    sessionId: '20260101_120000_abcdef01',
    platform: 'telegram',
    startedAt: { seconds: 1767268800, nanos: 250_000_000 },
    endedAt: null,
    messageCount: 3,
  };

  it('a summary has every field, unset optionals null, times Dates', () => {
    assert.deepEqual(codec.summaryFromProto(summary), {
      sessionId: '20260101_120000_abcdef01',
      title: null,
      platform: 'telegram',
      sessionKey: null,
      startedAt: new Date('2026-01-01T12:00:00.250Z'),
      endedAt: null,
      endReason: null,
      messageCount: 3,
      parentSessionId: null,
    });
    const ended = codec.summaryFromProto({ ...summary, title: 'Trip', endedAt: { seconds: 1767272400, nanos: 0 }, endReason: 'reset' });
    assert.deepEqual([ended.title, ended.endedAt, ended.endReason], ['Trip', new Date('2026-01-01T13:00:00Z'), 'reset']);
  });

  it('a hit has its session as a summary, its time a Date, its window in the replay shape', () => {
    const hit = codec.hitFromProto({
      session: { ...summary, sessionKey: 'agent:main:telegram:dm:7' },
      position: 1,
      messageId: 'm1',
      role: 'assistant',
      time: { seconds: 1767268801, nanos: 0 },
      snippet: 'a >>>zebra<<< ...',
      score: 1.5,
      window: [
        { role: 'user', content: 'text', text: 'hi', messageId: 'm0', position: 0 },
        { role: 'assistant', content: 'text', text: 'a zebra', reasoning: 'think', messageId: 'm1', position: 1 },
      ],
    });
    assert.deepEqual(hit, {
      session: { ...codec.summaryFromProto(summary), sessionKey: 'agent:main:telegram:dm:7' },
      position: 1,
      messageId: 'm1',
      role: 'assistant',
      time: new Date('2026-01-01T12:00:01Z'),
      snippet: 'a >>>zebra<<< ...',
      score: 1.5,
      window: [
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: 'a zebra', reasoning: 'think' },
      ],
    });
    const bare = codec.hitFromProto({ position: 0, messageId: '', role: 'user', time: null, snippet: '', score: 0, window: [] });
    assert.equal(bare.time, null);
    assert.deepEqual(bare.window, []);
  });
});

describe('client set-up', () => {
  it('defaultTarget follows SESSIOND_TARGET, then XDG_RUNTIME_DIR', () => {
    const saved = { target: process.env.SESSIOND_TARGET, runtime: process.env.XDG_RUNTIME_DIR };
    try {
      process.env.SESSIOND_TARGET = '127.0.0.1:50051';
      assert.equal(defaultTarget(), '127.0.0.1:50051');
      delete process.env.SESSIOND_TARGET;
      process.env.XDG_RUNTIME_DIR = '/run/user/1000';
      assert.equal(defaultTarget(), 'unix:/run/user/1000/sessiond/sessiond.sock');
      delete process.env.XDG_RUNTIME_DIR;
      assert.match(defaultTarget(), /^unix:\/tmp\/sessiond-\d+\/sessiond\.sock$/);
    } finally {
      for (const [name, value] of Object.entries({ SESSIOND_TARGET: saved.target, XDG_RUNTIME_DIR: saved.runtime })) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it('only idempotent methods get a retry policy', () => {
    const retried = JSON.parse(String(channelOptions(['GetSession'])['grpc.service_config']));
    assert.deepEqual(retried.methodConfig[0].name, [{ service: 'sessiond.v1.SessionStore', method: 'GetSession' }]);
    assert.deepEqual(retried.methodConfig[0].retryPolicy.retryableStatusCodes, ['UNAVAILABLE']);
    assert.equal(channelOptions([])['grpc.enable_retries'], 0);
  });

  it('accepts unix:/path and host:port addresses, and refuses a non-positive timeout', () => {
    for (const address of ['unix:/tmp/sessiond-test.sock', '127.0.0.1:50051', 'localhost:50051']) {
      const client = new SessionStoreClient(address, { timeoutMs: 1000 });
      assert.equal(client.address, address);
      client.close();
    }
    assert.throws(() => new SessionStoreClient('127.0.0.1:1', { timeoutMs: 0 }), TypeError);
  });
});
