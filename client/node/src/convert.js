// Between the JavaScript values a gateway works with and the protobuf messages on the wire.
//
// Sources, entries, leases and contexts are the contract's messages with proto-loader's
// lowerCamelCase field names, made friendlier: chat types are the reference's strings ("dm",
// "group", "channel", "thread", or one the enum does not name, such as "forum"), times are
// `Date`s, and `optional` fields that are not set are `null` (so "not sent" stays different from
// ""). They are read from the loaded .proto descriptors, so a field added to the contract shows
// up here without a code change. Session metadata (the contract's `map<string, MetadataValue>`)
// is a plain object of plain values: `{model: 'gpt-5', priority: 2, tags: ['a', 'b']}`.
//
// Transcript messages keep the OpenAI chat format's own snake_case keys (`tool_calls`,
// `tool_call_id`, ...), exactly as the Python client's dicts: gateways hand them to the model
// API as they are.

import { PACKAGE } from './proto.js';
import { invalidArgument } from './errors.js';

/** @typedef {'dm' | 'group' | 'channel' | 'thread'} ChatTypeName */
/**
 * One of the enum's names, or a chat type it does not name ("forum"), which the contract carries
 * in `chat_type_name`. (`string & {}` keeps the four names offered as completions.)
 * @typedef {ChatTypeName | (string & {})} ChatType
 */

/** The reference's chat type strings and the contract's enum names. */
export const CHAT_TYPES = Object.freeze({
  dm: 'CHAT_TYPE_DM',
  group: 'CHAT_TYPE_GROUP',
  channel: 'CHAT_TYPE_CHANNEL',
  thread: 'CHAT_TYPE_THREAD',
});
/** @type {Record<string, ChatTypeName>} */
const CHAT_TYPE_NAMES = Object.fromEntries(
  Object.entries(CHAT_TYPES).map(([name, value]) => [value, /** @type {ChatTypeName} */ (name)]),
);

/**
 * The contract's field, beside the ChatType enum in sources and entries, for a chat type the
 * enum does not name. Gateways see one `chatType` string, so this field is never a key of ours.
 */
const CHAT_TYPE_NAME = 'chatTypeName';

/** Message keys stored as JSON text, only when truthy in Python's sense (as the reference's SessionDB). */
export const MESSAGE_JSON_FIELDS = Object.freeze([
  'tool_calls',
  'reasoning_details',
  'codex_reasoning_items',
  'codex_message_items',
]);
/** Message keys copied as they are when present (not null or undefined). */
export const MESSAGE_PLAIN_FIELDS = Object.freeze([
  'tool_call_id',
  'tool_name',
  'reasoning',
  'reasoning_content',
  'finish_reason',
  'token_count',
]);

/**
 * A source as a gateway passes it. Keys may be lowerCamelCase (`chatId`) or the reference's
 * snake_case `to_dict()` keys (`chat_id`); camelCase wins when both are given. Unknown keys are
 * ignored. Missing `chatType` means "dm"; `null`/`undefined` optionals are not sent.
 * @typedef {object} SessionSourceInput
 * @property {string | {value: string}} platform  "telegram", "discord", ... (an enum-like `{value}` works)
 * @property {string | number} [chatId]
 * @property {ChatType} [chatType]
 * @property {string | null} [chatName]
 * @property {string | null} [userId]
 * @property {string | null} [userName]
 * @property {string | null} [threadId]
 * @property {string | null} [chatTopic]
 * @property {string | null} [userIdAlt]
 * @property {string | null} [chatIdAlt]
 * @property {boolean} [isBot]
 * @property {string | null} [guildId]
 * @property {string | null} [parentChatId]
 * @property {string | null} [messageId]
 */

/**
 * A source as the daemon returns it (an entry's `origin`, a context's `source`).
 * @typedef {object} SessionSource
 * @property {string} platform
 * @property {string} chatId
 * @property {ChatType} chatType
 * @property {string | null} chatName
 * @property {string | null} userId
 * @property {string | null} userName
 * @property {string | null} threadId
 * @property {string | null} chatTopic
 * @property {string | null} userIdAlt
 * @property {string | null} chatIdAlt
 * @property {boolean} isBot
 * @property {string | null} guildId
 * @property {string | null} parentChatId
 * @property {string | null} messageId
 */

/**
 * The current session of a session key (the reference's `SessionEntry` plus `version`).
 * @typedef {object} SessionEntry
 * @property {string} sessionKey
 * @property {string} sessionId  "YYYYMMDD_HHMMSS_<8 hex>"
 * @property {Date} createdAt
 * @property {Date} updatedAt
 * @property {SessionSource | null} origin
 * @property {string | null} displayName
 * @property {string | null} platform
 * @property {ChatType} chatType
 * @property {number} inputTokens
 * @property {number} outputTokens
 * @property {number} cacheReadTokens
 * @property {number} cacheWriteTokens
 * @property {number} totalTokens
 * @property {number} estimatedCostUsd
 * @property {string} costStatus
 * @property {number} lastPromptTokens
 * @property {boolean} wasAutoReset
 * @property {string | null} autoResetReason
 * @property {boolean} resetHadActivity
 * @property {boolean} isFreshReset
 * @property {boolean} expiryFinalized
 * @property {boolean} suspended
 * @property {boolean} resumePending
 * @property {string | null} resumeReason
 * @property {Date | null} lastResumeMarkedAt
 * @property {number} version  pass it back as `expectedVersion` to make a change conditional
 * @property {SessionMetadata} metadata  the current session's metadata ({} when it has none)
 */

/**
 * What a context prompt needs of an entry: key, id and times (ours, or any object with them).
 * @typedef {{sessionKey: string, sessionId: string, createdAt: Date | string | number, updatedAt: Date | string | number}} EntryRef
 */

/**
 * A lease on a session key.
 * @typedef {{sessionKey: string, owner: string, expiresAt: Date | null}} Lease
 */

/**
 * One session in a lineage: where it came from (null for a root) and why.
 * @typedef {object} LineageLink
 * @property {string} sessionId
 * @property {string | null} parentSessionId  null for a lineage's root
 * @property {string | null} reason  "reset", "auto_reset", "force_new", "switch" or "branch"; null for a root
 * @property {Date} startedAt
 * @property {string | null} title
 */

/**
 * A stored session as search finds it.
 * @typedef {object} SessionSummary
 * @property {string} sessionId
 * @property {string | null} title
 * @property {string} platform  "unknown" for a session created by an append
 * @property {string | null} sessionKey  the key it was started for; null for one created by an append or a switch to a new id
 * @property {Date} startedAt
 * @property {Date | null} endedAt  null while it has not ended
 * @property {string | null} endReason
 * @property {number} messageCount
 * @property {string | null} parentSessionId  null for a lineage's root
 * @property {SessionMetadata} metadata  its metadata ({} when it has none)
 * @property {Date | null} archivedAt  when it was archived (`archiveSessions`); null while it is not
 * @property {Date} activeAt  its last activity: its newest message, its entry's last activity while current, its end
 */

/**
 * One message that matched a full-text search.
 * @typedef {object} SearchHit
 * @property {SessionSummary} session  the session the message belongs to
 * @property {number} position  the message's position in its transcript (0-based)
 * @property {string} messageId  "" when it has none
 * @property {string} role
 * @property {Date | null} time  the message's timestamp
 * @property {string} snippet  up to about 40 words around the match, matched words between ">>>" and "<<<", "..." where text was cut
 * @property {number} score  relevance, higher is better (only the order means something)
 * @property {TranscriptMessage[]} window  the message and its neighbours in transcript order, in the replay shape
 */

/**
 * A transcript message in the OpenAI chat format, as the Python client's dicts. Read with
 * `includeHidden`, a message a rewind or a compaction hid also has `visibility` ("rewound" or
 * "archived") and `hidden_by` (that rewind's or compaction's number); a visible one has neither.
 * @typedef {{role: string, content?: unknown, message_id?: string | number | null, visibility?: MessageVisibility, hidden_by?: number, [key: string]: unknown}} TranscriptMessage
 */

/**
 * Why a stored message is left out of the transcript: soft-deleted by a rewind (/undo, /retry;
 * restorable), or replaced by a compaction's summary (/compress; still found by search).
 * @typedef {'rewound' | 'archived'} MessageVisibility
 */

/**
 * Which stored sessions `deleteSessions` and `archiveSessions` act on: every condition given must
 * hold, and at least one must be given (the daemon's `InvalidArgumentError` for `selector`
 * otherwise). `null`/`undefined` conditions are not sent.
 * @typedef {object} SessionSelector
 * @property {Iterable<string> | string | null} [sessionIds]  only these sessions (at most 1000)
 * @property {number | null} [inactiveDays]  only sessions last active (`activeAt`) more than this many days ago; positive
 * @property {string | null} [platform]  only sessions started on this platform
 * @property {ChatType | null} [chatType]  only sessions started in this kind of chat
 * @property {boolean | null} [titled]  only titled (true) or only untitled (false) sessions
 * @property {string | null} [titlePrefix]  only sessions whose title starts so (case and punctuation ignored)
 * @property {Iterable<string> | string | null} [endReasons]  only sessions that ended for one of these reasons
 * @property {boolean | null} [ended]  only ended (true) or only current (false) sessions
 * @property {number | bigint | null} [minMessages]  only sessions with at least this many stored messages
 * @property {number | bigint | null} [maxMessages]  only sessions with at most this many stored messages
 * @property {MetadataFilterInput | null} [metadata]  only sessions whose metadata matches every condition (as `listSessions`')
 * @property {boolean | null} [archived]  only archived (true) or only not archived (false) sessions
 * @property {string | null} [namespace]  only sessions started for a key of this agent namespace
 *   ("agent:<namespace>:..."; a client's own `namespace` when omitted)
 */

/**
 * The kinds of session events by their names in this client (the contract's `EventKind` in lower
 * case without its prefix, as the Python client names them).
 */
export const EVENT_KINDS = Object.freeze({
  created: 'EVENT_KIND_CREATED',
  auto_reset: 'EVENT_KIND_AUTO_RESET',
  reset: 'EVENT_KIND_RESET',
  switched: 'EVENT_KIND_SWITCHED',
  suspended: 'EVENT_KIND_SUSPENDED',
  resume_pending: 'EVENT_KIND_RESUME_PENDING',
  expired: 'EVENT_KIND_EXPIRED',
  pruned: 'EVENT_KIND_PRUNED',
  lease_expired: 'EVENT_KIND_LEASE_EXPIRED',
  titled: 'EVENT_KIND_TITLED',
  rewound: 'EVENT_KIND_REWOUND',
  branched: 'EVENT_KIND_BRANCHED',
  compacted: 'EVENT_KIND_COMPACTED',
  metadata_changed: 'EVENT_KIND_METADATA_CHANGED',
  session_deleted: 'EVENT_KIND_SESSION_DELETED',
  session_archived: 'EVENT_KIND_SESSION_ARCHIVED',
  identity_linked: 'EVENT_KIND_IDENTITY_LINKED',
  identity_unlinked: 'EVENT_KIND_IDENTITY_UNLINKED',
  handed_off: 'EVENT_KIND_HANDED_OFF',
  turn_started: 'EVENT_KIND_TURN_STARTED',
  turn_ended: 'EVENT_KIND_TURN_ENDED',
  turn_interrupted: 'EVENT_KIND_TURN_INTERRUPTED',
  turn_expired: 'EVENT_KIND_TURN_EXPIRED',
});
const EVENT_KIND_PREFIX = 'EVENT_KIND_';

/** @typedef {keyof typeof EVENT_KINDS} EventKindName */
/**
 * A kind of session event: one of `EVENT_KINDS`' names (or, from a newer contract, another name
 * in the same form).
 * @typedef {EventKindName | (string & {})} EventKind
 */

/**
 * A change of a session key, from `watchEvents`; unset optionals are null.
 * @typedef {object} SessionEvent
 * @property {number} sequence  its position in the daemon's event log: strictly increasing, never reused
 * @property {EventKind} kind  "created", "metadata_changed", "session_deleted", ...
 * @property {string} sessionKey  "" where the kind allows none (a deleted or archived session no key pointed at, ...)
 * @property {string} sessionId  the key's session id after the change (the removed one for "pruned")
 * @property {string | null} previousSessionId  the key's session before: "auto_reset", "reset", "switched", "branched"
 * @property {string | null} reason  why, where the kind has a reason ("idle", "delete", "archive", the metadata keys, ...)
 * @property {number} entryVersion  the entry's version after the change
 * @property {string | null} leaseOwner  who held the lease ("lease_expired"), or runs the turn ("turn_*")
 * @property {Date} time  when the change happened (the daemon's clock)
 * @property {string | null} identity  the identity ("identity_linked", "identity_unlinked")
 * @property {string | null} linkedUser  the platform user id, as "<platform>:<user id>" ("identity_linked", "identity_unlinked")
 * @property {string | null} otherSessionKey  the key at the other end ("handed_off")
 * @property {number | null} fencingToken  the turn's fencing token ("turn_*")
 */

/**
 * A platform user id linked to an identity (a person across platforms; see `linkIdentity`).
 * @typedef {object} IdentityLink
 * @property {string} platform  "telegram", a plugin's name, ...
 * @property {string} userId  the user id on that platform, as sources carry it in `userId` (a DM source without one: its `chatId`)
 * @property {string} identity  1-128 letters, digits and "._@+-", starting with a letter or digit
 * @property {Date} linkedAt  when the link was made
 */

/**
 * One handoff of a session from one chat's key to another's (`handoffSession`).
 * @typedef {object} Handoff
 * @property {string} fromSessionKey  the key the session continued from
 * @property {string} toSessionKey  the key that points at it since
 * @property {string | null} replacedSessionId  the destination's session it ended (null when the key had none)
 * @property {Date} time  when
 */

/**
 * A turn running (or abandoned) on a session key (`beginTurn`). It works as its own `TurnFence`.
 * @typedef {object} Turn
 * @property {string} sessionKey
 * @property {string} owner  who runs it (a process, an agent loop)
 * @property {number} fencingToken  grows with every turn begun on the key (1 for its first)
 * @property {string | null} sessionId  the session the key pointed at when the turn began (null: no entry)
 * @property {Date} startedAt
 * @property {Date} expiresAt  when it lapses unless renewed
 */

/**
 * What a write carries to prove it comes from the newest turn of its key: the key and the token
 * `beginTurn` gave (a `Turn` itself will do). `fencingToken` is a safe integer Number or a bigint.
 * @typedef {{sessionKey: string, fencingToken: number | bigint}} TurnFence
 */

/**
 * What `beginTurn` does while another owner's live turn runs on the key: "reject" (do not begin;
 * the running turn comes back), "queue" (wait in line; `queuePosition` says where) or
 * "interrupt" (end the running turn and begin at once).
 * @typedef {'reject' | 'queue' | 'interrupt'} TurnConflict
 */

/** The `onConflict` policies of `beginTurn` by this client's names, and the contract's `TurnConflict` names. */
export const TURN_CONFLICTS = Object.freeze({
  reject: 'TURN_CONFLICT_REJECT',
  queue: 'TURN_CONFLICT_QUEUE',
  interrupt: 'TURN_CONFLICT_INTERRUPT',
});

/** The contract's MessageVisibility names of hidden messages, by the client's names. */
export const MESSAGE_VISIBILITIES = Object.freeze({
  rewound: 'MESSAGE_VISIBILITY_REWOUND',
  archived: 'MESSAGE_VISIBILITY_ARCHIVED',
});
/** @type {Record<string, MessageVisibility>} */
const VISIBILITY_NAMES = Object.fromEntries(
  Object.entries(MESSAGE_VISIBILITIES).map(([name, value]) => [value, /** @type {MessageVisibility} */ (name)]),
);

/**
 * One value of a session's metadata as the daemon returns it: a text, a number (the contract's
 * `integer` and `number` alike; int64 integers are numbers, as every int64 of this client), a
 * flag, or a list of texts (tags).
 * @typedef {string | number | boolean | string[]} MetadataValue
 */
/** @typedef {Record<string, MetadataValue>} SessionMetadata */

/**
 * One value of a session's metadata as a gateway gives it: a string is a text, a boolean a flag,
 * a bigint or a safe integer Number an integer, any other finite Number a number (a double), an
 * array of strings a list of texts. The explicit forms say the kind: `{number: 3}` sends 3 as a
 * double, `{integer: 3}`, `{text: 'x'}`, `{flag: true}` and `{texts: ['a']}` the others.
 * @typedef {string | boolean | number | bigint | readonly string[] | {text: string} | {integer: number | bigint} | {number: number} | {flag: boolean} | {texts: readonly string[]}} MetadataValueInput
 */
/** @typedef {Record<string, MetadataValueInput>} SessionMetadataInput */

/**
 * Metadata conditions, all of which must hold: each key must be present and, unless its value is
 * `null` or `undefined` ("any value"), equal to the value (numbers by value, 3 equals 3.0) or,
 * for a list of texts, hold it (`{tags: 'a'}` matches `tags: ['a', 'b']`).
 * @typedef {Record<string, MetadataValueInput | null | undefined>} MetadataFilterInput
 */

/** The members of the contract's MetadataValue `kind` oneof. */
const METADATA_KINDS = Object.freeze(['text', 'integer', 'number', 'flag', 'texts']);
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * @param {unknown} value
 * @returns {value is Record<string, unknown>}
 */
function isPlainObject(value) {
  if (value === null || typeof value !== 'object') return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/**
 * @param {unknown} value
 * @returns {string}
 */
function describeValue(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array that is not all strings';
  if (typeof value === 'number') return String(value);
  if (isPlainObject(value)) return `an object with keys ${JSON.stringify(Object.keys(value))}`;
  if (typeof value === 'object') return `a ${value.constructor?.name ?? 'object'}`;
  return typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`;
}

/**
 * @param {string} key
 * @param {string} reason
 */
function metadataTypeError(key, reason) {
  return new TypeError(`metadata key ${JSON.stringify(key)}: ${reason}`);
}

/**
 * An int64 for the wire: a safe integer Number as it is, a bigint in range as its decimal text
 * (protobufjs parses it exactly); null when the value is neither.
 * @param {unknown} value
 * @returns {number | string | null}
 */
function int64ToProto(value) {
  if (typeof value === 'bigint') return value >= INT64_MIN && value <= INT64_MAX ? value.toString() : null;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
  return null;
}

/**
 * @param {unknown} value
 * @returns {value is Iterable<unknown>}
 */
function isIterable(value) {
  return value !== null && typeof value === 'object' && typeof (/** @type {any} */ (value)[Symbol.iterator]) === 'function';
}

/**
 * @param {unknown} value
 * @returns {value is readonly string[]}
 */
function isStringArray(value) {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

/**
 * A MetadataValue message from a gateway's value (see `MetadataValueInput`); a TypeError naming
 * the key for anything else.
 * @param {string} key
 * @param {unknown} value
 * @returns {Record<string, unknown>}
 */
export function metadataValueToProto(key, value) {
  switch (typeof value) {
    case 'string':
      return { text: value };
    case 'boolean':
      return { flag: value };
    case 'bigint': {
      const integer = int64ToProto(value);
      if (integer === null) throw metadataTypeError(key, `${value} is outside the int64 range`);
      return { integer };
    }
    case 'number':
      if (Number.isSafeInteger(value)) return { integer: value };
      if (Number.isFinite(value)) return { number: value };
      throw metadataTypeError(key, `${value} is not a finite number`);
    default:
  }
  if (isStringArray(value)) return { texts: { values: [...value] } };
  if (isPlainObject(value)) {
    const keys = Object.keys(value);
    const [kind] = keys;
    if (keys.length === 1 && METADATA_KINDS.includes(kind)) {
      const given = value[kind];
      if (kind === 'text' && typeof given === 'string') return { text: given };
      if (kind === 'flag' && typeof given === 'boolean') return { flag: given };
      if (kind === 'number' && typeof given === 'number' && Number.isFinite(given)) return { number: given };
      if (kind === 'texts' && isStringArray(given)) return { texts: { values: [...given] } };
      const integer = kind === 'integer' ? int64ToProto(given) : null;
      if (integer !== null) return { integer };
      const expected = {
        text: 'a string',
        integer: 'a safe integer Number or a bigint in the int64 range',
        number: 'a finite Number',
        flag: 'a boolean',
        texts: 'an array of strings',
      }[kind];
      throw metadataTypeError(key, `{${kind}} takes ${expected}, not ${describeValue(given)}`);
    }
  }
  throw metadataTypeError(
    key,
    `${describeValue(value)} is no metadata value (a string, boolean, number, bigint or array of strings, ` +
      'or one of {text}, {integer}, {number}, {flag}, {texts})',
  );
}

/**
 * The wire's `map<string, MetadataValue>` from a gateway's metadata object (null: empty).
 * @param {SessionMetadataInput | Record<string, unknown> | null | undefined} metadata
 * @param {string} [name]  the argument, for the TypeError when it is no object
 * @returns {Record<string, Record<string, unknown>>}
 */
export function metadataToProto(metadata, name = 'metadata') {
  if (metadata === null || metadata === undefined) return {};
  if (!isPlainObject(metadata)) throw new TypeError(`${name} must be an object of metadata values, not ${describeValue(metadata)}`);
  return Object.fromEntries(Object.entries(metadata).map(([key, value]) => [key, metadataValueToProto(key, value)]));
}

/**
 * Repeated MetadataFilter messages from `{key: value}` conditions: `null`/`undefined` asks for
 * the key with any value (`equals` unset), anything else for that value (see `MetadataFilterInput`).
 * @param {MetadataFilterInput | Record<string, unknown> | null | undefined} filters
 * @returns {{key: string, equals?: Record<string, unknown>}[]}
 */
export function metadataFiltersToProto(filters) {
  if (filters === null || filters === undefined) return [];
  if (!isPlainObject(filters)) throw new TypeError(`metadata must be an object of {key: value} conditions, not ${describeValue(filters)}`);
  return Object.entries(filters).map(([key, value]) =>
    value === null || value === undefined ? { key } : { key, equals: metadataValueToProto(key, value) },
  );
}

/**
 * A plain value from a decoded MetadataValue (see `MetadataValue`); null when it has no kind this
 * client knows.
 * @param {Record<string, any> | null | undefined} value
 * @returns {MetadataValue | null}
 */
export function metadataValueFromProto(value) {
  if (!value) return null;
  const kind = value.kind ?? METADATA_KINDS.find((name) => value[name] !== undefined && value[name] !== null);
  switch (kind) {
    case 'text':
      return String(value.text);
    case 'integer':
    case 'number':
      return Number(value[kind]);
    case 'flag':
      return Boolean(value.flag);
    case 'texts':
      return [...(value.texts?.values ?? [])];
    default:
      return null;
  }
}

/**
 * A metadata object from a decoded `map<string, MetadataValue>` ({} when unset).
 * @param {Record<string, any> | null | undefined} map
 * @returns {SessionMetadata}
 */
export function metadataFromProto(map) {
  /** @type {SessionMetadata} */
  const result = {};
  for (const [key, value] of Object.entries(map ?? {})) {
    const plain = metadataValueFromProto(value);
    if (plain !== null) result[key] = plain;
  }
  return result;
}

/**
 * A TurnFence message from a fence (`{sessionKey, fencingToken}`, or a `Turn`); null when
 * `fence` is null or undefined (no fence: the write is not fenced). Anything else that is no
 * fence is a TypeError naming the key, thrown before anything is sent.
 * @param {TurnFence | null | undefined} fence
 * @param {string} [name]  the argument, for the TypeError
 * @returns {{sessionKey: string, fencingToken: number | string} | null}
 */
export function fenceToProto(fence, name = 'fence') {
  if (fence === null || fence === undefined) return null;
  if (typeof fence !== 'object') throw new TypeError(`${name} must be {sessionKey, fencingToken} (or a Turn), not ${describeValue(fence)}`);
  const { sessionKey, fencingToken } = /** @type {Record<string, unknown>} */ (fence);
  if (typeof sessionKey !== 'string') throw new TypeError(`${name}.sessionKey: a string, not ${describeValue(sessionKey)}`);
  const token = int64ToProto(fencingToken);
  if (token === null) {
    const given = typeof fencingToken === 'bigint' ? `${fencingToken}n` : describeValue(fencingToken);
    throw new TypeError(`${name}.fencingToken: an integer (a safe integer Number or a bigint in the int64 range), not ${given}`);
  }
  return { sessionKey, fencingToken: token };
}

/**
 * The contract's TurnConflict name for an `onConflict` policy ("reject", "queue", "interrupt";
 * null or undefined: "reject"); anything else is an `InvalidArgumentError` for `on_conflict`,
 * before anything is sent.
 * @param {TurnConflict | null | undefined} onConflict
 * @returns {string}
 */
export function turnConflictToProto(onConflict) {
  if (onConflict === null || onConflict === undefined) return TURN_CONFLICTS.reject;
  if (typeof onConflict === 'string' && Object.hasOwn(TURN_CONFLICTS, onConflict)) {
    return TURN_CONFLICTS[/** @type {TurnConflict} */ (onConflict)];
  }
  throw invalidArgument('on_conflict', `unknown conflict policy ${typeof onConflict === 'string' ? `'${onConflict}'` : describeValue(onConflict)} (reject, queue or interrupt)`);
}

/** @param {string} name  "chat_id" → "chatId", as protobufjs converts field names */
export function camelCase(name) {
  return name.replace(/_([a-z0-9])/g, (_, letter) => letter.toUpperCase());
}

/** @param {string} name  "chatId" → "chat_id" */
export function snakeCase(name) {
  return name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

/**
 * A `Date` from a google.protobuf.Timestamp (millisecond precision), null when unset.
 * @param {{seconds?: number, nanos?: number} | null | undefined} timestamp
 * @returns {Date | null}
 */
export function timestampToDate(timestamp) {
  if (!timestamp) return null;
  return new Date(Number(timestamp.seconds ?? 0) * 1000 + Math.floor(Number(timestamp.nanos ?? 0) / 1e6));
}

/**
 * A google.protobuf.Timestamp from a `Date` (or anything `new Date()` takes).
 * @param {Date | string | number} value
 * @param {string} field  for the error when the value is no valid time
 */
export function dateToTimestamp(value, field) {
  const millis = (value instanceof Date ? value : new Date(value)).getTime();
  if (!Number.isFinite(millis)) throw invalidArgument(field, `not a valid time: ${String(value)}`);
  const seconds = Math.floor(millis / 1000);
  return { seconds, nanos: (millis - seconds * 1000) * 1e6 };
}

/**
 * A google.protobuf.Duration from seconds (fractions kept to the nanosecond).
 * @param {number} seconds
 * @param {string} field
 */
export function secondsToDuration(seconds, field) {
  const value = Number(seconds);
  if (!Number.isFinite(value)) throw invalidArgument(field, `not a number of seconds: ${String(seconds)}`);
  const whole = Math.trunc(value);
  return { seconds: whole, nanos: Math.round((value - whole) * 1e9) };
}

/**
 * Truthiness as Python sees it: empty arrays, objects and strings, 0, false, null are false.
 * @param {unknown} value
 */
function pythonTruthy(value) {
  if (value === null || value === undefined || value === false || value === 0 || value === '') return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.keys(value).length > 0;
  }
  return true;
}

/**
 * @param {unknown} value
 * @returns {ChatTypeName}
 */
function chatTypeName(value) {
  return CHAT_TYPE_NAMES[String(value)] ?? 'dm';
}

/**
 * The contract's fields for a chat type: the enum for its four names, else the free
 * `chatTypeName` ("forum"), as the reference took any string. Missing means dm, as in the
 * reference's `from_dict`.
 * @param {unknown} value  a string, or an enum-like `{value}`
 * @returns {{chatType: string} | {chatTypeName: string}}
 */
function chatTypeToProto(value) {
  if (value === null || value === undefined) return { chatType: CHAT_TYPES.dm };
  const name = typeof value === 'object' && 'value' in value ? value.value : value;
  if (typeof name !== 'string') throw invalidArgument('source.chat_type', `not a string: ${String(name)}`);
  if (Object.hasOwn(CHAT_TYPES, name)) return { chatType: CHAT_TYPES[/** @type {ChatTypeName} */ (name)] };
  return { chatTypeName: name };
}

/**
 * @typedef {object} FieldInfo
 * @property {string} name  lowerCamelCase, as proto-loader names it
 * @property {string} type  "TYPE_STRING", "TYPE_MESSAGE", ...
 * @property {string} typeName  message or enum type, possibly relative ("SessionSource")
 * @property {boolean} repeated
 * @property {boolean} optional  declared `optional` (has presence)
 * @property {boolean} map  a `map<K, V>`: repeated entries on the wire, an object keyed by K here
 */

/**
 * Conversions bound to a loaded contract (they read field lists from its descriptors).
 * @param {Record<string, any>} definition  proto-loader's package definition
 */
export function createCodec(definition) {
  /** @type {Map<string, FieldInfo[]>} */
  const fieldCache = new Map();
  /** The value field of each map field's entry type, by "<message type>.<field name>". */
  /** @type {Map<string, FieldInfo>} */
  const mapValues = new Map();
  const METADATA_VALUE = `${PACKAGE}.MetadataValue`;

  /** @param {string} typeName  full or relative to the package */
  function resolveType(typeName) {
    const name = typeName.replace(/^\./, '');
    if (definition[name]) return name;
    if (definition[`${PACKAGE}.${name}`]) return `${PACKAGE}.${name}`;
    return null;
  }

  /**
   * @param {any} field  a field of a descriptor
   * @param {Set<string>} synthetic  the descriptor's synthetic oneofs (`_<name>`)
   * @param {Map<string, any>} mapEntries  the descriptor's nested map entry types, by name
   * @returns {FieldInfo}
   */
  function fieldInfo(field, synthetic, mapEntries) {
    const typeName = field.typeName ?? '';
    return {
      name: field.name,
      type: field.type,
      typeName,
      repeated: field.label === 'LABEL_REPEATED',
      optional: field.proto3Optional === true || synthetic.has(`_${field.name}`),
      map: field.type === 'TYPE_MESSAGE' && mapEntries.has(typeName.slice(typeName.lastIndexOf('.') + 1)),
    };
  }

  /**
   * The fields of a message type; `optional` ones are those with a synthetic oneof `_<name>`,
   * maps those whose type is a nested entry type (`options.mapEntry`).
   * @param {string} typeName
   * @returns {FieldInfo[]}
   */
  function fieldsOf(typeName) {
    const cached = fieldCache.get(typeName);
    if (cached) return cached;
    const descriptor = definition[typeName]?.type;
    if (!descriptor?.field) throw new Error(`sessiond client: ${typeName} is not a message of the contract`);
    const synthetic = new Set(
      (descriptor.oneofDecl ?? []).map((/** @type {{name: string}} */ o) => o.name).filter((/** @type {string} */ n) => n.startsWith('_')),
    );
    /** @type {Map<string, any>} */
    const mapEntries = new Map(
      (descriptor.nestedType ?? []).filter((/** @type {any} */ t) => t.options?.mapEntry).map((/** @type {any} */ t) => [t.name, t]),
    );
    const fields = descriptor.field.map((/** @type {any} */ field) => fieldInfo(field, synthetic, mapEntries));
    for (const field of fields) {
      if (!field.map) continue;
      const entry = mapEntries.get(field.typeName.slice(field.typeName.lastIndexOf('.') + 1));
      const value = entry.field.find((/** @type {any} */ f) => f.name === 'value');
      mapValues.set(`${typeName}.${field.name}`, fieldInfo(value, new Set(), new Map()));
    }
    fieldCache.set(typeName, fields);
    return fields;
  }

  /**
   * @param {FieldInfo} field
   * @param {any} value
   */
  function valueFromProto(field, value) {
    if (field.type === 'TYPE_MESSAGE') {
      if (value === null || value === undefined) return null;
      const type = resolveType(field.typeName);
      if (type === 'google.protobuf.Timestamp') return timestampToDate(value);
      if (type === 'google.protobuf.Duration') return Number(value.seconds ?? 0) + Number(value.nanos ?? 0) / 1e9;
      if (type === METADATA_VALUE) return metadataValueFromProto(value);
      return type ? fromProto(type, value) : value;
    }
    return value;
  }

  /**
   * A map field's object, its values converted as the map's value type says (a metadata map's
   * values plain ones, entries of no kind this client knows left out); {} when unset.
   * @param {string} typeName
   * @param {FieldInfo} field
   * @param {Record<string, any> | null | undefined} value
   */
  function mapFromProto(typeName, field, value) {
    const valueField = /** @type {FieldInfo} */ (mapValues.get(`${typeName}.${field.name}`));
    if (resolveType(valueField.typeName) === METADATA_VALUE) return metadataFromProto(value);
    return Object.fromEntries(Object.entries(value ?? {}).map(([key, item]) => [key, valueFromProto(valueField, item)]));
  }

  /**
   * A plain object from a decoded message: every field of the type, unset optionals null, maps
   * objects ({} when empty); a chat type is one string, whether the enum or `chatTypeName`
   * carried it.
   * @param {string} typeName  full name, e.g. "sessiond.v1.SessionEntry"
   * @param {Record<string, any>} message
   * @returns {Record<string, any>}
   */
  function fromProto(typeName, message) {
    /** @type {Record<string, any>} */
    const result = {};
    for (const field of fieldsOf(typeName)) {
      if (field.name === CHAT_TYPE_NAME) continue; // read with the enum, below
      const value = message[field.name];
      if (field.type === 'TYPE_ENUM' && resolveType(field.typeName) === `${PACKAGE}.ChatType`) {
        result[field.name] = message[CHAT_TYPE_NAME] ?? chatTypeName(value);
      } else if (field.map) {
        result[field.name] = mapFromProto(typeName, field, value);
      } else if (field.repeated) {
        result[field.name] = (value ?? []).map((/** @type {any} */ item) => valueFromProto(field, item));
      } else if (field.optional && (value === undefined || value === null)) {
        result[field.name] = null;
      } else {
        result[field.name] = valueFromProto(field, value);
      }
    }
    return result;
  }

  const SOURCE = `${PACKAGE}.SessionSource`;

  /**
   * A SessionSource message from a gateway's source (camelCase or snake_case keys).
   * @param {SessionSourceInput | Record<string, unknown>} source
   */
  function sourceToProto(source) {
    if (source === null || typeof source !== 'object') throw invalidArgument('source', 'required');
    const input = /** @type {Record<string, unknown>} */ (source);
    /** @type {Record<string, unknown>} */
    const message = {};
    for (const field of fieldsOf(SOURCE)) {
      if (field.name === CHAT_TYPE_NAME) continue; // set from chatType
      const snake = snakeCase(field.name);
      let value = input[field.name] ?? input[snake];
      if (field.type === 'TYPE_ENUM') {
        Object.assign(message, chatTypeToProto(value));
      } else if (field.type === 'TYPE_BOOL') {
        message[field.name] = Boolean(value);
      } else if (field.type === 'TYPE_STRING') {
        if (value !== null && typeof value === 'object' && 'value' in value) value = value.value; // enum-like
        if (value !== null && value !== undefined) message[field.name] = String(value);
        else if (!field.optional) message[field.name] = '';
      } else if (value !== null && value !== undefined) {
        message[field.name] = value;
      }
    }
    return message;
  }

  /**
   * The part of an entry the context prompt uses: key, id and times.
   * @param {EntryRef} entry
   */
  function entryRefToProto(entry) {
    return {
      sessionKey: String(entry.sessionKey ?? ''),
      sessionId: String(entry.sessionId ?? ''),
      createdAt: dateToTimestamp(entry.createdAt, 'entry.created_at'),
      updatedAt: dateToTimestamp(entry.updatedAt, 'entry.updated_at'),
    };
  }

  /**
   * A transcript Message from an OpenAI-format message, stored as the reference's SessionDB did:
   * string content as text, anything else as JSON text; structured fields only when truthy; a
   * missing role becomes "unknown".
   * @param {TranscriptMessage} message
   */
  function messageToProto(message) {
    /** @type {Record<string, unknown>} */
    const proto = { role: message.role || 'unknown' };
    if (message.message_id !== null && message.message_id !== undefined) proto.messageId = String(message.message_id);
    const content = message.content;
    if (typeof content === 'string') proto.text = content;
    else if (content !== null && content !== undefined) proto.json = JSON.stringify(content);
    for (const name of MESSAGE_PLAIN_FIELDS) {
      if (message[name] !== null && message[name] !== undefined) proto[camelCase(name)] = message[name];
    }
    for (const name of MESSAGE_JSON_FIELDS) {
      if (pythonTruthy(message[name])) proto[`${camelCase(name)}Json`] = JSON.stringify(message[name]);
    }
    return proto;
  }

  /**
   * The message the reference's `get_messages_as_conversation` returned for a stored message;
   * one a rewind or a compaction hid (only read with `include_hidden`, or in a search window
   * around an archived hit) also has `visibility` and `hidden_by`.
   * @param {Record<string, any>} proto
   * @returns {TranscriptMessage}
   */
  function messageFromProto(proto) {
    /** @type {TranscriptMessage} */
    const result = {
      role: proto.role,
      content: proto.content === 'json' ? JSON.parse(proto.json) : proto.content === 'text' ? proto.text : null,
    };
    if (proto.toolCallId) result.tool_call_id = proto.toolCallId;
    if (proto.toolName) result.tool_name = proto.toolName;
    if (proto.toolCallsJson) result.tool_calls = JSON.parse(proto.toolCallsJson);
    if (proto.role === 'assistant') {
      // Reasoning fields, which the reference replays for assistant messages only.
      if (proto.finishReason) result.finish_reason = proto.finishReason;
      if (proto.reasoning) result.reasoning = proto.reasoning;
      if (proto.reasoningContent !== undefined && proto.reasoningContent !== null) {
        result.reasoning_content = proto.reasoningContent;
      }
      for (const name of ['reasoning_details', 'codex_reasoning_items', 'codex_message_items']) {
        const text = proto[`${camelCase(name)}Json`];
        if (text) result[name] = JSON.parse(text);
      }
    }
    const visibility = VISIBILITY_NAMES[proto.visibility];
    if (visibility) {
      result.visibility = visibility;
      result.hidden_by = Number(proto.hiddenBy ?? 0);
    }
    return result;
  }

  const SELECTOR = `${PACKAGE}.SessionSelector`;

  /**
   * One scalar condition of a selector, checked against its field's type.
   * @param {FieldInfo} field
   * @param {string} path  "selector.sessionIds[1]", for the TypeError
   * @param {unknown} value
   */
  function selectorScalar(field, path, value) {
    const refuse = (/** @type {string} */ wanted) =>
      new TypeError(`${path}: ${wanted}, not ${typeof value === 'number' ? value : describeValue(value)}`);
    if (field.type === 'TYPE_STRING') {
      if (typeof value === 'string') return value;
      throw refuse('a string');
    }
    if (field.type === 'TYPE_BOOL') {
      if (typeof value === 'boolean') return value;
      throw refuse('a boolean');
    }
    if (field.type === 'TYPE_INT32' || field.type === 'TYPE_INT64') {
      const integer = int64ToProto(value);
      const inRange = field.type === 'TYPE_INT64' || (Number(integer) >= -(2 ** 31) && Number(integer) < 2 ** 31);
      if (integer !== null && inRange) return integer;
      throw refuse(field.type === 'TYPE_INT32' ? 'an integer from -2^31 to 2^31 - 1' : 'an integer (a safe integer Number or a bigint)');
    }
    return value;
  }

  /**
   * A SessionSelector message from a gateway's selector (see `SessionSelector`): its keys are the
   * contract's field names in camelCase, `metadata` takes `listSessions`' conditions, a list may be
   * given as one string; `null`/`undefined` conditions are not sent. A key the contract does not
   * name, or a value of the wrong type, is a TypeError naming it, thrown before anything is sent
   * (a mistyped condition must never widen what a delete selects).
   * @param {SessionSelector | Record<string, unknown>} selector
   * @returns {Record<string, unknown>}
   */
  function selectorToProto(selector) {
    if (!isPlainObject(selector)) throw new TypeError(`selector must be an object of conditions, not ${describeValue(selector)}`);
    const fields = new Map(fieldsOf(SELECTOR).map((field) => [field.name, field]));
    /** @type {Record<string, unknown>} */
    const message = {};
    for (const [key, value] of Object.entries(selector)) {
      const field = fields.get(key);
      if (!field) throw new TypeError(`selector.${key}: no such condition (the conditions: ${[...fields.keys()].join(', ')})`);
      if (value === null || value === undefined) continue;
      if (field.type === 'TYPE_MESSAGE') {
        message[key] = resolveType(field.typeName) === `${PACKAGE}.MetadataFilter` ? metadataFiltersToProto(/** @type {any} */ (value)) : value;
      } else if (field.repeated) {
        const items = typeof value === 'string' ? [value] : isIterable(value) ? Array.from(value) : null;
        if (!items) throw new TypeError(`selector.${key}: a list, not ${describeValue(value)}`);
        message[key] = items.map((item, index) => selectorScalar(field, `selector.${key}[${index}]`, item));
      } else {
        message[key] = selectorScalar(field, `selector.${key}`, value);
      }
    }
    return message;
  }

  /** @type {Set<string>} */
  let eventKindNames;

  /**
   * The contract's EventKind names for `kinds` ("expired": EVENT_KIND_EXPIRED), as the Python
   * client takes them: lower case, without the prefix. A kind the loaded contract does not name is
   * an `InvalidArgumentError` for `kinds`, before anything is sent.
   * @param {Iterable<string> | string | null | undefined} kinds
   * @returns {string[]}
   */
  function eventKindsToProto(kinds) {
    eventKindNames ??= new Set(
      (definition[`${PACKAGE}.EventKind`]?.type?.value ?? [])
        .map((/** @type {{name: string}} */ value) => value.name)
        .filter((/** @type {string} */ name) => name !== `${EVENT_KIND_PREFIX}UNSPECIFIED`),
    );
    const given = kinds === null || kinds === undefined ? [] : typeof kinds === 'string' ? [kinds] : Array.from(kinds);
    return given.map((kind) => {
      const name = typeof kind === 'string' && kind === kind.toLowerCase() ? `${EVENT_KIND_PREFIX}${kind.toUpperCase()}` : '';
      if (!eventKindNames.has(name)) throw invalidArgument('kinds', `unknown event kind '${String(kind)}'`);
      return name;
    });
  }

  /**
   * A session event: its fields as `fromProto` reads them (the time a Date, unset optionals null),
   * its kind by this client's name ("metadata_changed"; a kind the loaded contract does not name
   * as its number in text).
   * @param {Record<string, any>} message
   * @returns {SessionEvent}
   */
  function eventFromProto(message) {
    const event = fromProto(`${PACKAGE}.SessionEvent`, message);
    const { kind } = message;
    event.kind = typeof kind === 'string' && kind.startsWith(EVENT_KIND_PREFIX) ? kind.slice(EVENT_KIND_PREFIX.length).toLowerCase() : String(kind);
    return /** @type {SessionEvent} */ (event);
  }

  const SUMMARY = `${PACKAGE}.SessionSummary`;

  /**
   * A search hit: its fields as `fromProto` reads them (times as Dates, the session a
   * `SessionSummary`), the window's messages in the replay shape of `loadTranscript`.
   * @param {Record<string, any>} message
   * @returns {SearchHit}
   */
  function hitFromProto(message) {
    const hit = fromProto(`${PACKAGE}.SearchHit`, message);
    hit.session = fromProto(SUMMARY, message.session ?? {});
    hit.window = (message.window ?? []).map(messageFromProto);
    return /** @type {SearchHit} */ (hit);
  }

  return {
    fieldsOf,
    fromProto,
    sourceToProto,
    /** @param {Record<string, any>} message @returns {SessionSource} */
    sourceFromProto: (message) => /** @type {SessionSource} */ (fromProto(SOURCE, message)),
    /** @param {Record<string, any>} message @returns {SessionEntry} */
    entryFromProto: (message) => /** @type {SessionEntry} */ (fromProto(`${PACKAGE}.SessionEntry`, message)),
    /** @param {Record<string, any>} message @returns {Lease} */
    leaseFromProto: (message) => /** @type {Lease} */ (fromProto(`${PACKAGE}.Lease`, message)),
    /** @param {Record<string, any>} message @returns {LineageLink} */
    lineageLinkFromProto: (message) => /** @type {LineageLink} */ (fromProto(`${PACKAGE}.LineageLink`, message)),
    /** @param {Record<string, any>} message @returns {SessionSummary} */
    summaryFromProto: (message) => /** @type {SessionSummary} */ (fromProto(SUMMARY, message)),
    /** @param {Record<string, any>} message @returns {IdentityLink} */
    identityLinkFromProto: (message) => /** @type {IdentityLink} */ (fromProto(`${PACKAGE}.IdentityLink`, message)),
    /** @param {Record<string, any>} message @returns {Handoff} */
    handoffFromProto: (message) => /** @type {Handoff} */ (fromProto(`${PACKAGE}.Handoff`, message)),
    /** @param {Record<string, any>} message @returns {Turn} */
    turnFromProto: (message) => /** @type {Turn} */ (fromProto(`${PACKAGE}.Turn`, message)),
    fenceToProto,
    turnConflictToProto,
    hitFromProto,
    entryRefToProto,
    messageToProto,
    messageFromProto,
    metadataToProto,
    metadataFromProto,
    metadataFiltersToProto,
    selectorToProto,
    eventKindsToProto,
    eventFromProto,
  };
}

/** @typedef {ReturnType<typeof createCodec>} Codec */
