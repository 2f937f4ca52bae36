// Between the JavaScript values a gateway works with and the protobuf messages on the wire.
//
// Sources, entries, leases and contexts are the contract's messages with proto-loader's
// lowerCamelCase field names, made friendlier: chat types are the reference's strings ("dm",
// "group", "channel", "thread", or one the enum does not name, such as "forum"), times are
// `Date`s, and `optional` fields that are not set are `null` (so "not sent" stays different from
// ""). They are read from the loaded .proto descriptors, so a field added to the contract shows
// up here without a code change.
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

/** The contract's MessageVisibility names of hidden messages, by the client's names. */
export const MESSAGE_VISIBILITIES = Object.freeze({
  rewound: 'MESSAGE_VISIBILITY_REWOUND',
  archived: 'MESSAGE_VISIBILITY_ARCHIVED',
});
/** @type {Record<string, MessageVisibility>} */
const VISIBILITY_NAMES = Object.fromEntries(
  Object.entries(MESSAGE_VISIBILITIES).map(([name, value]) => [value, /** @type {MessageVisibility} */ (name)]),
);

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
 */

/**
 * Conversions bound to a loaded contract (they read field lists from its descriptors).
 * @param {Record<string, any>} definition  proto-loader's package definition
 */
export function createCodec(definition) {
  /** @type {Map<string, FieldInfo[]>} */
  const fieldCache = new Map();

  /** @param {string} typeName  full or relative to the package */
  function resolveType(typeName) {
    const name = typeName.replace(/^\./, '');
    if (definition[name]) return name;
    if (definition[`${PACKAGE}.${name}`]) return `${PACKAGE}.${name}`;
    return null;
  }

  /**
   * The fields of a message type; `optional` ones are those with a synthetic oneof `_<name>`.
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
    const fields = descriptor.field.map((/** @type {any} */ field) => ({
      name: field.name,
      type: field.type,
      typeName: field.typeName ?? '',
      repeated: field.label === 'LABEL_REPEATED',
      optional: field.proto3Optional === true || synthetic.has(`_${field.name}`),
    }));
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
      return type ? fromProto(type, value) : value;
    }
    return value;
  }

  /**
   * A plain object from a decoded message: every field of the type, unset optionals null; a
   * chat type is one string, whether the enum or `chatTypeName` carried it.
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
    hitFromProto,
    entryRefToProto,
    messageToProto,
    messageFromProto,
  };
}

/** @typedef {ReturnType<typeof createCodec>} Codec */
