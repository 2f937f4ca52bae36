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
  EVENT_KINDS,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  OutOfRangeError,
  PermissionDeniedError,
  ResourceExhaustedError,
  SessionStoreClient,
  SessiondError,
  Status,
  TURN_CONFLICTS,
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

/**
 * What `fn` throws (the test fails when it returns).
 * @param {() => unknown} fn
 * @returns {unknown}
 */
function thrown(fn) {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return assert.fail('expected it to throw');
}

describe('errors', () => {
  /** @type {[number, typeof SessiondError][]} */
  const cases = [
    [Status.INVALID_ARGUMENT, InvalidArgumentError],
    [Status.NOT_FOUND, NotFoundError],
    [Status.ALREADY_EXISTS, AlreadyExistsError],
    [Status.ABORTED, ConflictError],
    [Status.FAILED_PRECONDITION, FailedPreconditionError],
    [Status.RESOURCE_EXHAUSTED, ResourceExhaustedError],
    [Status.OUT_OF_RANGE, OutOfRangeError],
    [Status.UNAVAILABLE, UnavailableError],
    [Status.DEADLINE_EXCEEDED, DeadlineExceededError],
    [Status.INTERNAL, SessiondError],
    [Status.PERMISSION_DENIED, PermissionDeniedError],
    [Status.UNAUTHENTICATED, SessiondError],
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
    // As proto-loader decodes an unset message field (the daemon sets archived_at only while archived).
    archivedAt: null,
    activeAt: { seconds: 1767268830, nanos: 0 },
  };

  it('a summary has every field, unset optionals null, times Dates, metadata {} when none', () => {
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
      metadata: {},
      archivedAt: null,
      activeAt: new Date('2026-01-01T12:00:30Z'),
    });
    const ended = codec.summaryFromProto({ ...summary, title: 'Trip', endedAt: { seconds: 1767272400, nanos: 0 }, endReason: 'reset' });
    assert.deepEqual([ended.title, ended.endedAt, ended.endReason], ['Trip', new Date('2026-01-01T13:00:00Z'), 'reset']);
    const archived = codec.summaryFromProto({ ...summary, archivedAt: { seconds: 1767272400, nanos: 500_000_000 } });
    assert.deepEqual(archived.archivedAt, new Date('2026-01-01T13:00:00.500Z'));
    // Fields left out entirely (a hand-made message, not proto-loader's way) are null too.
    const bare = codec.summaryFromProto({ sessionId: 's' });
    assert.deepEqual([bare.archivedAt, bare.activeAt], [null, null]);
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

describe('metadata', () => {
  it('values go to the wire by their JS type: text, flag, integer, number, texts', () => {
    assert.deepEqual(
      codec.metadataToProto({
        model: 'gpt-5',
        pinned: false,
        priority: 3,
        negative: -7,
        huge: 2n ** 62n,
        ratio: 0.25,
        tags: ['a', 'b'],
        none: [],
      }),
      {
        model: { text: 'gpt-5' },
        pinned: { flag: false },
        priority: { integer: 3 },
        negative: { integer: -7 },
        huge: { integer: '4611686018427387904' },
        ratio: { number: 0.25 },
        tags: { texts: { values: ['a', 'b'] } },
        none: { texts: { values: [] } },
      },
    );
    const beyond = codec.metadataToProto({ big: 2 ** 60 });
    assert.deepEqual(beyond, { big: { number: 2 ** 60 } }, 'beyond the safe integers a Number is a double');
    assert.deepEqual(codec.metadataToProto(null), {});
    assert.deepEqual(codec.metadataToProto(undefined), {});
    assert.deepEqual(codec.metadataToProto({}), {});
  });

  it('the explicit forms say the kind: {number: 3} is a double, {integer}, {text}, {flag}, {texts}', () => {
    assert.deepEqual(
      codec.metadataToProto({
        a: { number: 3 },
        b: { integer: 4 },
        c: { integer: -(2n ** 63n) },
        d: { text: '5' },
        e: { flag: true },
        f: { texts: ['x'] },
        g: { number: -0.5 },
      }),
      {
        a: { number: 3 },
        b: { integer: 4 },
        c: { integer: '-9223372036854775808' },
        d: { text: '5' },
        e: { flag: true },
        f: { texts: { values: ['x'] } },
        g: { number: -0.5 },
      },
    );
  });

  it('anything else is a TypeError naming the key', () => {
    const refused = [
      null,
      undefined,
      NaN,
      Infinity,
      -Infinity,
      2n ** 63n,
      -(2n ** 63n) - 1n,
      ['a', 1],
      [null],
      {},
      { text: 1 },
      { integer: 1.5 },
      { integer: '3' },
      { integer: 2 ** 60 },
      { number: NaN },
      { number: 1n },
      { flag: 'yes' },
      { texts: 'a' },
      { text: 'a', flag: true },
      { value: 'a' },
      new Date(0),
      new Map(),
      Symbol('s'),
      () => 1,
    ];
    for (const value of refused) {
      assert.throws(
        () => codec.metadataToProto({ ok: 'fine', 'the-key': /** @type {any} */ (value) }),
        (/** @type {unknown} */ error) => {
          assert.ok(error instanceof TypeError, String(error));
          assert.match(error.message, /^metadata key "the-key": /, error.message);
          return true;
        },
        String(typeof value === 'symbol' ? 'symbol' : value),
      );
    }
    for (const metadata of [[], 'text', 3, new Map([['a', 'b']])]) {
      assert.throws(() => codec.metadataToProto(/** @type {any} */ (metadata), 'set'), /^TypeError: set must be an object/);
    }
  });

  it('values come back plain: text a string, integer and number numbers, flag a boolean, texts an array', () => {
    const decoded = codec.metadataFromProto({
      model: { text: 'gpt-5', kind: 'text' },
      priority: { integer: 3, kind: 'integer' },
      ratio: { number: 0.25, kind: 'number' },
      whole: { number: 3, kind: 'number' },
      pinned: { flag: false, kind: 'flag' },
      tags: { texts: { values: ['a', 'b'] }, kind: 'texts' },
      empty: { text: '', kind: 'text' },
      unknown: {},
    });
    assert.deepEqual(decoded, { model: 'gpt-5', priority: 3, ratio: 0.25, whole: 3, pinned: false, tags: ['a', 'b'], empty: '' });
    assert.deepEqual(codec.metadataFromProto(undefined), {});
    // Without proto-loader's `kind`, the member that is set says it.
    assert.deepEqual(codec.metadataFromProto({ a: { flag: true }, b: { texts: { values: [] } } }), { a: true, b: [] });
  });

  it('what goes to the wire comes back as it was given, through the contract\'s own encoding', () => {
    const { UpdateSessionMetadata, GetSessionMetadata } = /** @type {any} */ (loadContract().definition['sessiond.v1.SessionStore']);
    const set = codec.metadataToProto({
      model: 'm',
      priority: 2,
      huge: 2n ** 53n + 1n,
      ratio: 1.5,
      double: { number: 3 },
      pinned: true,
      tags: ['x'],
    });
    const request = UpdateSessionMetadata.requestDeserialize(UpdateSessionMetadata.requestSerialize({ sessionKey: 'k', set }));
    assert.deepEqual(
      Object.fromEntries(Object.entries(request.set).map(([key, value]) => [key, /** @type {any} */ (value).kind])),
      { model: 'text', priority: 'integer', huge: 'integer', ratio: 'number', double: 'number', pinned: 'flag', tags: 'texts' },
    );
    const response = GetSessionMetadata.responseDeserialize(GetSessionMetadata.responseSerialize({ metadata: request.set }));
    assert.deepEqual(codec.metadataFromProto(response.metadata), {
      model: 'm',
      priority: 2,
      huge: 2 ** 53, // int64s come back as numbers: beyond 2^53 they lose precision
      ratio: 1.5,
      double: 3,
      pinned: true,
      tags: ['x'],
    });
  });

  it('entries and summaries have their metadata as a plain object, {} when none', () => {
    const entry = codec.entryFromProto({ sessionKey: 'k', metadata: { tags: { texts: { values: ['a'] }, kind: 'texts' } } });
    assert.deepEqual(entry.metadata, { tags: ['a'] });
    assert.deepEqual(codec.entryFromProto({ sessionKey: 'k' }).metadata, {});
    assert.deepEqual(codec.summaryFromProto({ sessionId: 's', metadata: { n: { integer: 1, kind: 'integer' } } }).metadata, { n: 1 });
    const hit = codec.hitFromProto({ session: { sessionId: 's', metadata: { on: { flag: true, kind: 'flag' } } }, window: [] });
    assert.deepEqual(hit.session.metadata, { on: true });
    assert.ok(codec.fieldsOf('sessiond.v1.SessionEntry').find((field) => field.name === 'metadata')?.map);
    assert.ok(!codec.fieldsOf('sessiond.v1.SessionEntry').find((field) => field.name === 'origin')?.map);
  });

  it('filters: {key: value} wants that value, null or undefined any value; in the order given', () => {
    assert.deepEqual(
      codec.metadataFiltersToProto({
        owner: 'alice',
        priority: 2,
        ratio: 0.5,
        exact: { number: 2 },
        pinned: true,
        model: null,
        tags: undefined,
      }),
      [
        { key: 'owner', equals: { text: 'alice' } },
        { key: 'priority', equals: { integer: 2 } },
        { key: 'ratio', equals: { number: 0.5 } },
        { key: 'exact', equals: { number: 2 } },
        { key: 'pinned', equals: { flag: true } },
        { key: 'model' },
        { key: 'tags' },
      ],
    );
    assert.deepEqual(codec.metadataFiltersToProto(null), []);
    assert.deepEqual(codec.metadataFiltersToProto(undefined), []);
    assert.throws(() => codec.metadataFiltersToProto({ owner: /** @type {any} */ ({ nope: 1 }) }), /^TypeError: metadata key "owner": /);
    assert.throws(() => codec.metadataFiltersToProto(/** @type {any} */ ([['owner', 'alice']])), TypeError);
    // A filter with an unset `equals` goes over the wire as one.
    const { ListSessions } = /** @type {any} */ (loadContract().definition['sessiond.v1.SessionStore']);
    const filters = codec.metadataFiltersToProto({ a: null, b: 'x' });
    const request = ListSessions.requestDeserialize(ListSessions.requestSerialize({ metadata: filters }));
    assert.deepEqual(request.metadata, [{ key: 'a', equals: null }, { key: 'b', equals: { text: 'x', kind: 'text' } }]);
  });
});

describe('selectors', () => {
  it('camelCase conditions become the contract\'s fields; null and undefined are not sent; metadata as the filters', () => {
    const selector = codec.selectorToProto({
      sessionIds: ['a', 'b'],
      inactiveDays: 30,
      platform: 'telegram',
      chatType: 'group',
      titled: false,
      titlePrefix: 'Trip',
      endReasons: new Set(['session_reset']),
      ended: true,
      minMessages: 2,
      maxMessages: 10n,
      metadata: { owner: 'alice', tags: null },
      archived: false,
    });
    assert.deepEqual(selector, {
      sessionIds: ['a', 'b'],
      inactiveDays: 30,
      platform: 'telegram',
      chatType: 'group',
      titled: false,
      titlePrefix: 'Trip',
      endReasons: ['session_reset'],
      ended: true,
      minMessages: 2,
      maxMessages: '10',
      metadata: [{ key: 'owner', equals: { text: 'alice' } }, { key: 'tags' }],
      archived: false,
    });
    assert.deepEqual(codec.selectorToProto({ sessionIds: 'one', platform: null, ended: undefined }), { sessionIds: ['one'] });
    assert.deepEqual(codec.selectorToProto({}), {}, "no condition: the daemon's INVALID_ARGUMENT, not the client's");
    // Through the contract's own encoding: false and 0 are sent (the fields have presence), unset ones are not.
    const { DeleteSessions } = /** @type {any} */ (loadContract().definition['sessiond.v1.SessionStore']);
    const wire = DeleteSessions.requestDeserialize(
      DeleteSessions.requestSerialize({ selector: codec.selectorToProto({ titled: false, minMessages: 0 }), limit: 5 }),
    );
    assert.equal(wire.selector.titled, false);
    assert.equal(wire.selector.minMessages, 0);
    assert.equal(wire.selector._titled, 'titled', 'titled is set');
    assert.equal(wire.selector._ended, undefined, 'ended is not');
    assert.equal(wire.limit, 5);
  });

  it('an unknown key or a value of another type is a TypeError naming it, before anything is sent', () => {
    /** @type {[Record<string, unknown>, RegExp][]} */
    const cases = [
      [{ inactive_days: 30 }, /^TypeError: selector\.inactive_days: no such condition/],
      [{ platfrom: 'telegram', ended: true }, /^TypeError: selector\.platfrom: no such condition/],
      [{ inactiveDays: '30' }, /^TypeError: selector\.inactiveDays: an integer/],
      [{ inactiveDays: 1.5 }, /^TypeError: selector\.inactiveDays: an integer .*, not 1\.5$/],
      [{ inactiveDays: 2 ** 31 }, /^TypeError: selector\.inactiveDays: an integer from -2\^31/],
      [{ minMessages: 2 ** 53 }, /^TypeError: selector\.minMessages: an integer/],
      [{ titled: 'yes' }, /^TypeError: selector\.titled: a boolean, not a string$/],
      [{ platform: 3 }, /^TypeError: selector\.platform: a string, not 3$/],
      [{ sessionIds: ['a', 7] }, /^TypeError: selector\.sessionIds\[1\]: a string, not 7$/],
      [{ sessionIds: 7 }, /^TypeError: selector\.sessionIds: a list, not 7$/],
      [{ metadata: { owner: new Date() } }, /^TypeError: metadata key "owner": /],
    ];
    for (const [selector, message] of cases) assert.throws(() => codec.selectorToProto(/** @type {any} */ (selector)), message);
    assert.throws(() => codec.selectorToProto(/** @type {any} */ (null)), /^TypeError: selector must be an object/);
    assert.throws(() => codec.selectorToProto(/** @type {any} */ (['a'])), TypeError);
  });
});

describe('events', () => {
  it('EVENT_KINDS names every kind of the contract but the unspecified one', () => {
    const contract = /** @type {any} */ (loadContract().definition['sessiond.v1.EventKind']).type.value
      .map((/** @type {{name: string}} */ value) => value.name)
      .filter((/** @type {string} */ name) => name !== 'EVENT_KIND_UNSPECIFIED');
    assert.deepEqual(Object.values(EVENT_KINDS), contract);
    for (const [name, value] of Object.entries(EVENT_KINDS)) assert.equal(value, `EVENT_KIND_${name.toUpperCase()}`);
  });

  it('kinds go by their lower-case names; an unknown one is an InvalidArgumentError for kinds', () => {
    assert.deepEqual(codec.eventKindsToProto(['created', 'session_deleted']), ['EVENT_KIND_CREATED', 'EVENT_KIND_SESSION_DELETED']);
    assert.deepEqual(codec.eventKindsToProto('expired'), ['EVENT_KIND_EXPIRED']);
    assert.deepEqual(codec.eventKindsToProto(null), []);
    for (const kind of ['CREATED', 'EVENT_KIND_CREATED', 'unspecified', 'nope', '']) {
      const error = thrown(() => codec.eventKindsToProto([kind]));
      assert.ok(error instanceof InvalidArgumentError, String(error));
      assert.equal(error.field, 'kinds');
      assert.equal(error.description, `unknown event kind '${kind}'`);
      assert.equal(error.code, Status.INVALID_ARGUMENT);
    }
  });

  it('an event has every field, its kind by name, unset optionals null, its time a Date', () => {
    const event = codec.eventFromProto({
      sequence: 7,
      kind: 'EVENT_KIND_METADATA_CHANGED',
      sessionKey: 'agent:main:telegram:dm:7',
      sessionId: '20260101_120000_abcdef01',
      reason: 'owner,tags',
      entryVersion: 3,
      time: { seconds: 1767268800, nanos: 0 },
    });
    assert.deepEqual(event, {
      sequence: 7,
      kind: 'metadata_changed',
      sessionKey: 'agent:main:telegram:dm:7',
      sessionId: '20260101_120000_abcdef01',
      previousSessionId: null,
      reason: 'owner,tags',
      entryVersion: 3,
      leaseOwner: null,
      time: new Date('2026-01-01T12:00:00Z'),
      identity: null,
      linkedUser: null,
      otherSessionKey: null,
      fencingToken: null,
    });
    assert.equal(codec.eventFromProto({ kind: 'EVENT_KIND_SESSION_ARCHIVED' }).kind, 'session_archived');
    assert.equal(codec.eventFromProto({ kind: 99 }).kind, '99', 'a kind the contract does not name: its number');
  });
});

describe('identity links, handoffs and turns', () => {
  it('the new kinds go by their lower-case names, and their fields are read', () => {
    assert.deepEqual(
      codec.eventKindsToProto(['identity_linked', 'identity_unlinked', 'handed_off', 'turn_started', 'turn_ended', 'turn_interrupted', 'turn_expired']),
      [
        'EVENT_KIND_IDENTITY_LINKED',
        'EVENT_KIND_IDENTITY_UNLINKED',
        'EVENT_KIND_HANDED_OFF',
        'EVENT_KIND_TURN_STARTED',
        'EVENT_KIND_TURN_ENDED',
        'EVENT_KIND_TURN_INTERRUPTED',
        'EVENT_KIND_TURN_EXPIRED',
      ],
    );
    const linked = codec.eventFromProto({ kind: 'EVENT_KIND_IDENTITY_LINKED', reason: 'relink', identity: 'alice', linkedUser: 'telegram:42' });
    assert.deepEqual([linked.kind, linked.reason, linked.identity, linked.linkedUser, linked.otherSessionKey], ['identity_linked', 'relink', 'alice', 'telegram:42', null]);
    const handed = codec.eventFromProto({ kind: 'EVENT_KIND_HANDED_OFF', otherSessionKey: 'agent:main:discord:dm:9' });
    assert.deepEqual([handed.kind, handed.otherSessionKey, handed.fencingToken], ['handed_off', 'agent:main:discord:dm:9', null]);
    const turn = codec.eventFromProto({ kind: 'EVENT_KIND_TURN_INTERRUPTED', leaseOwner: 'loop-a', fencingToken: 7 });
    assert.deepEqual([turn.kind, turn.leaseOwner, turn.fencingToken], ['turn_interrupted', 'loop-a', 7]);
  });

  it('TURN_CONFLICTS names every policy of the contract but the unspecified one', () => {
    const contract = /** @type {any} */ (loadContract().definition['sessiond.v1.TurnConflict']).type.value
      .map((/** @type {{name: string}} */ value) => value.name)
      .filter((/** @type {string} */ name) => name !== 'TURN_CONFLICT_UNSPECIFIED');
    assert.deepEqual(Object.values(TURN_CONFLICTS), contract);
    for (const [name, value] of Object.entries(TURN_CONFLICTS)) assert.equal(value, `TURN_CONFLICT_${name.toUpperCase()}`);
  });

  it('onConflict goes by its name, "reject" by default; another is an InvalidArgumentError for on_conflict', () => {
    assert.equal(codec.turnConflictToProto('queue'), 'TURN_CONFLICT_QUEUE');
    assert.equal(codec.turnConflictToProto('interrupt'), 'TURN_CONFLICT_INTERRUPT');
    assert.equal(codec.turnConflictToProto('reject'), 'TURN_CONFLICT_REJECT');
    assert.equal(codec.turnConflictToProto(undefined), 'TURN_CONFLICT_REJECT');
    assert.equal(codec.turnConflictToProto(null), 'TURN_CONFLICT_REJECT');
    for (const bad of ['QUEUE', 'TURN_CONFLICT_QUEUE', 'wait', '', 2, 'toString']) {
      const error = thrown(() => codec.turnConflictToProto(/** @type {any} */ (bad)));
      assert.ok(error instanceof InvalidArgumentError, String(error));
      assert.equal(error.field, 'on_conflict');
      assert.equal(error.code, Status.INVALID_ARGUMENT);
    }
  });

  it('a fence is {sessionKey, fencingToken} (a Turn will do), its token a safe integer or a bigint; none is null', () => {
    const key = 'agent:main:telegram:dm:7';
    assert.deepEqual(codec.fenceToProto({ sessionKey: key, fencingToken: 3 }), { sessionKey: key, fencingToken: 3 });
    assert.deepEqual(codec.fenceToProto({ sessionKey: key, fencingToken: 2n ** 62n }), { sessionKey: key, fencingToken: String(2n ** 62n) });
    const turn = codec.turnFromProto({
      sessionKey: key,
      owner: 'loop-a',
      fencingToken: 4,
      startedAt: { seconds: 1767268800, nanos: 0 },
      expiresAt: { seconds: 1767268860, nanos: 0 },
    });
    assert.deepEqual(turn, {
      sessionKey: key,
      owner: 'loop-a',
      fencingToken: 4,
      sessionId: null,
      startedAt: new Date('2026-01-01T12:00:00Z'),
      expiresAt: new Date('2026-01-01T12:01:00Z'),
    });
    assert.deepEqual(codec.fenceToProto(turn), { sessionKey: key, fencingToken: 4 }, 'only the key and the token');
    assert.equal(codec.fenceToProto(null), null);
    assert.equal(codec.fenceToProto(undefined), null);
    /** @type {[unknown, RegExp][]} */
    const cases = [
      [7, /^TypeError: fence must be \{sessionKey, fencingToken\}/],
      ['x', /^TypeError: fence must be/],
      [{ fencingToken: 1 }, /^TypeError: fence\.sessionKey: a string, not undefined$/],
      [{ sessionKey: key, fencingToken: '1' }, /^TypeError: fence\.fencingToken: an integer/],
      [{ sessionKey: key, fencingToken: 1.5 }, /^TypeError: fence\.fencingToken: .*not 1\.5$/],
      [{ sessionKey: key, fencingToken: 2 ** 60 }, /^TypeError: fence\.fencingToken: /],
      [{ sessionKey: key, fencingToken: 2n ** 63n }, /^TypeError: fence\.fencingToken: .*not 9223372036854775808n$/],
      [{ sessionKey: key }, /^TypeError: fence\.fencingToken: .*not undefined$/],
    ];
    for (const [fence, message] of cases) assert.throws(() => codec.fenceToProto(/** @type {any} */ (fence)), message, JSON.stringify(String(fence)));
  });

  it('identity links and handoffs: every field, times as Dates, unset optionals null', () => {
    assert.deepEqual(
      codec.identityLinkFromProto({ platform: 'telegram', userId: '42', identity: 'alice', linkedAt: { seconds: 1767268800, nanos: 0 } }),
      { platform: 'telegram', userId: '42', identity: 'alice', linkedAt: new Date('2026-01-01T12:00:00Z') },
    );
    assert.deepEqual(
      codec.handoffFromProto({ fromSessionKey: 'a', toSessionKey: 'b', time: { seconds: 1767268800, nanos: 0 } }),
      { fromSessionKey: 'a', toSessionKey: 'b', replacedSessionId: null, time: new Date('2026-01-01T12:00:00Z') },
    );
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

  it('linkIdentities is a boolean or nothing', () => {
    for (const [given, expected] of [[true, true], [false, false], [null, null], [undefined, null]]) {
      const client = new SessionStoreClient('127.0.0.1:1', { linkIdentities: given });
      assert.equal(client.linkIdentities, expected);
      client.close();
    }
    for (const wrong of ['yes', 1, {}]) {
      assert.throws(() => new SessionStoreClient('127.0.0.1:1', { linkIdentities: /** @type {any} */ (wrong) }), /^TypeError: linkIdentities must be a boolean/);
    }
  });
});
