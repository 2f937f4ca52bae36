// SessionStoreClient: the Python client's operations (sessiond_client.SessionStoreClient) with
// camelCase names, promises, a deadline on every call and typed errors.

import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import grpc from '@grpc/grpc-js';

import { createCodec, dateToTimestamp, secondsToDuration } from './convert.js';
import {
  DeadlineExceededError,
  FailedPreconditionError,
  NotFoundError,
  SessiondError,
  Status,
  fromServiceError,
  invalidArgument,
} from './errors.js';
import { SERVICE, loadContract } from './proto.js';

/** @typedef {import('./convert.js').SessionSourceInput} SessionSourceInput */
/** @typedef {import('./convert.js').SessionSource} SessionSource */
/** @typedef {import('./convert.js').SessionEntry} SessionEntry */
/** @typedef {import('./convert.js').EntryRef} EntryRef */
/** @typedef {import('./convert.js').Lease} Lease */
/** @typedef {import('./convert.js').TranscriptMessage} TranscriptMessage */
/** @typedef {import('./convert.js').LineageLink} LineageLink */
/** @typedef {import('./convert.js').SessionSummary} SessionSummary */
/** @typedef {import('./convert.js').SearchHit} SearchHit */
/** @typedef {import('./convert.js').MessageVisibility} MessageVisibility */
/** @typedef {import('./convert.js').SessionMetadata} SessionMetadata */
/** @typedef {import('./convert.js').SessionMetadataInput} SessionMetadataInput */
/** @typedef {import('./convert.js').MetadataFilterInput} MetadataFilterInput */
/** @typedef {import('./convert.js').SessionSelector} SessionSelector */
/** @typedef {import('./convert.js').SessionEvent} SessionEvent */
/** @typedef {import('./convert.js').EventKind} EventKind */
/** @typedef {import('./convert.js').IdentityLink} IdentityLink */
/** @typedef {import('./convert.js').Handoff} Handoff */
/** @typedef {import('./convert.js').Turn} Turn */
/** @typedef {import('./convert.js').TurnFence} TurnFence */
/** @typedef {import('./convert.js').TurnConflict} TurnConflict */

/**
 * A session, where it came from and what came of it.
 * @typedef {object} SessionLineage
 * @property {LineageLink} session  the session itself
 * @property {LineageLink[]} ancestors  its parent, the parent's parent, ... back to the root
 * @property {LineageLink[]} children  the sessions started from it, newest first
 * @property {Handoff[]} handoffs  the chats the session itself was handed off between, oldest first
 */

/**
 * What `listExpiredSessionsAndTurns` found.
 * @typedef {object} ExpiredSessionsAndTurns
 * @property {SessionEntry[]} entries  as `listExpiredSessions`
 * @property {Turn[]} abandonedTurns  turns whose time to live passed without `endTurn` and that no
 *   newer turn replaced (their owner died), oldest first: resume them with `beginTurn`
 */

/**
 * What `linkIdentity` did.
 * @typedef {object} LinkIdentityResult
 * @property {IdentityLink} link  the link as stored
 * @property {string | null} previousIdentity  the identity the user id was linked to before, if another
 * @property {boolean} changed  false when the link already was so (then no event)
 */

/**
 * What `handoffSession` did.
 * @typedef {object} HandoffResult
 * @property {SessionEntry} entry  the destination's entry after the call (pointing at the session)
 * @property {string | null} replacedSessionId  the destination's former session, now ended
 *   (null when it had none, or it already was this session)
 */

/**
 * What `beginTurn` did.
 * @typedef {object} BeginTurnResult
 * @property {boolean} started  true when the caller's turn began
 * @property {Turn} turn  the caller's new turn when started, else the one running
 * @property {number} queuePosition  with `onConflict: 'queue'` and not started: the caller's place in line (1: next); else 0
 * @property {Turn | null} interrupted  the turn this call ended ('interrupt', or the owner's own earlier turn); null when none
 */

/**
 * Platforms and home channels the gateway knows at run time (replace the daemon's configured ones).
 * @typedef {object} RuntimePlatforms
 * @property {string[]} [connectedPlatforms]
 * @property {{platform: string, chatId: string, name?: string, threadId?: string, userId?: string, scopeId?: string}[]} [homeChannels]
 */

/**
 * @typedef {object} SessionContextResult
 * @property {Record<string, any>} context  the structured `SessionContext` (source, connectedPlatforms, homeChannels, ...)
 * @property {string} prompt  the "## Current Session Context" section of the system prompt
 */

/** @typedef {{appended: number, duplicates: number, messageCount: number}} AppendResult */

/**
 * One page of `searchSessions`.
 * @typedef {object} SearchSessionsResult
 * @property {SessionSummary[]} sessions  newest first
 * @property {string} nextPageToken  pass it as `pageToken` for the next page; "" on the last page
 */

/**
 * One page of `searchMessages`.
 * @typedef {object} SearchMessagesResult
 * @property {SearchHit[]} hits  best first
 * @property {string} nextPageToken  pass it as `pageToken` for the next page; "" on the last page
 * @property {boolean} indexBuilding  the index is still being built: older messages may be missing from the hits
 */

/**
 * What `rewindTranscript` did.
 * @typedef {object} RewindResult
 * @property {number} rewind  the rewind's number in this session (name it to `restoreTranscript`)
 * @property {number} rewoundMessages  messages it made rewound
 * @property {number} visibleMessages  visible messages after the call (the appended ones included)
 * @property {number} appended  messages appended after the rewind
 */

/**
 * What `restoreTranscript` did.
 * @typedef {object} RestoreResult
 * @property {number} rewind  the rewind undone
 * @property {number} restoredMessages  messages made visible again
 * @property {number} visibleMessages  visible messages after the call
 */

/**
 * What `branchSession` did.
 * @typedef {object} BranchResult
 * @property {string} sessionId  the new session
 * @property {number} copiedMessages  messages copied into it
 * @property {SessionEntry | null} entry  the key's entry after the call when `sessionKey` was given, else null
 */

/**
 * What `compactTranscript` did.
 * @typedef {object} CompactResult
 * @property {number} compaction  the compaction's number in this session (the archived messages' `hidden_by`)
 * @property {number} archivedMessages  messages archived
 * @property {number} summaryPosition  where the summary went: the last visible position of the range
 * @property {number} visibleMessages  visible messages after the call
 */

/**
 * What `updateSessionMetadata` did.
 * @typedef {object} UpdateMetadataResult
 * @property {SessionEntry} entry  the key's entry after the call (its `version` grew when the metadata changed)
 * @property {boolean} changed  false when the metadata already was so (then no event and no new version)
 */

/**
 * What one `deleteSessions` or `archiveSessions` call did (with `dryRun`: would do), or what a
 * `deleteAllSessions` or `archiveAllSessions` loop did in all.
 * @typedef {object} BulkResult
 * @property {string[]} sessionIds  the sessions deleted, archived or unarchived (with `dryRun`: the first that would be), least recently active first
 * @property {number} messages  their stored messages
 * @property {number} remaining  sessions the selector still matches after the call (with `dryRun`: all it matches)
 * @property {number} remainingMessages  their stored messages
 * @property {string[]} sessionKeys  session keys whose entry went with their current session
 */

/**
 * Safe to send twice: reads (the lineage, search, metadata and identity link reads among them), pure rules,
 * AppendMessages once every message has an id, and the title RPCs (setting the title a session
 * already has changes nothing).
 */
export const IDEMPOTENT_METHODS = Object.freeze([
  'BuildSessionKey',
  'BuildSessionContext',
  'GetSession',
  'ListSessions',
  'HasAnySessions',
  'ListExpiredSessions',
  'LoadTranscript',
  'AppendMessages',
  'SetSessionTitle',
  'GetSessionTitle',
  'FindSessionByTitle',
  'NextTitleInLineage',
  'GetSessionLineage',
  'GetLineageTip',
  'SearchSessions',
  'SearchMessages',
  'GetSessionMetadata',
  'ListIdentityLinks',
]);
export const RETRY_POLICY = Object.freeze({
  maxAttempts: 3,
  initialBackoff: '0.05s',
  maxBackoff: '0.5s',
  backoffMultiplier: 2,
  retryableStatusCodes: ['UNAVAILABLE'],
});
const MAX_RECEIVE_BYTES = 64 * 1024 * 1024;
// Callers want whole listings: ask for big pages (the daemon caps them) to save round trips.
const PAGE_SIZE = 10_000;
// grpc gives up retrying a call whose request outgrew this buffer (default 256 KiB).
const RETRY_BUFFER_BYTES = 16 * 1024 * 1024;
const HEALTH_STATUSES = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];
/** A turn's time to live when `beginTurn` or `renewTurn` is given none. */
const TURN_TTL_MS = 60_000;
// The daemon's rule for an agent namespace (GatewayConfig.namespace): checked at construction, so
// that a client set up with a bad one fails at once, not at its first call.
const NAMESPACE = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/**
 * The `namespace` option, checked: null when none is given; a TypeError for a value that is no
 * string, an `InvalidArgumentError` for `namespace` (as the daemon words it) for a string it refuses.
 * @param {unknown} namespace
 * @returns {string | null}
 */
function checkedNamespace(namespace) {
  if (namespace === null || namespace === undefined) return null;
  if (typeof namespace !== 'string') throw new TypeError(`namespace must be a string, got ${typeof namespace}`);
  if (!NAMESPACE.test(namespace)) {
    throw invalidArgument('namespace', `a namespace is 1-64 lower-case letters, digits, '_' and '-', not ${JSON.stringify(namespace)}`);
  }
  return namespace;
}

/**
 * A turn's `ttl` (google.protobuf.Duration) from milliseconds; an `InvalidArgumentError` for
 * `ttl` when it is no number (the daemon refuses one that is not positive, or over a day).
 * @param {unknown} ttlMs
 */
function turnTtl(ttlMs) {
  if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs)) {
    throw invalidArgument('ttl', `not a number of milliseconds: ${String(ttlMs)}`);
  }
  return secondsToDuration(ttlMs / 1000, 'ttl');
}

/**
 * Where a default daemon listens: `$SESSIOND_TARGET`, else its default Unix socket
 * (`$XDG_RUNTIME_DIR/sessiond/sessiond.sock` or `/tmp/sessiond-<uid>/sessiond.sock`).
 */
export function defaultTarget() {
  if (process.env.SESSIOND_TARGET) return process.env.SESSIOND_TARGET;
  const runtime = process.env.XDG_RUNTIME_DIR;
  const base = runtime ? `${runtime}/sessiond` : `/tmp/sessiond-${process.getuid?.() ?? 0}`;
  return `unix:${base}/sessiond.sock`;
}

/**
 * Channel arguments: large responses, and grpc's own retry policy for `retriedMethods`.
 * @param {readonly string[]} retriedMethods
 * @returns {grpc.ChannelOptions}
 */
export function channelOptions(retriedMethods) {
  const names = retriedMethods.map((method) => ({ service: SERVICE, method }));
  const config = names.length ? { methodConfig: [{ name: names, retryPolicy: RETRY_POLICY }] } : {};
  return {
    'grpc.max_receive_message_length': MAX_RECEIVE_BYTES,
    'grpc.per_rpc_retry_buffer_size': RETRY_BUFFER_BYTES,
    'grpc.enable_retries': names.length ? 1 : 0,
    'grpc.service_config': JSON.stringify(config),
  };
}

/**
 * The reference `SessionStore`'s operations over one daemon connection.
 *
 * Where the reference answered None, False or [] for an unknown key, this client resolves to
 * `null`, `false` or `[]`; every other failure rejects with a `SessiondError` subclass.
 */
export class SessionStoreClient {
  /** @type {any} */ #stub;
  /** @type {any} */ #singleAttemptStub;
  /** @type {any} */ #health;
  /** @type {import('./convert.js').Codec} */ #codec;
  /** @type {grpc.Metadata} */ #metadata;

  /**
   * @param {string} [address]  `unix:/absolute/path` or `host:port` (default: `defaultTarget()`)
   * @param {object} [options]
   * @param {number} [options.timeoutMs=5000]  deadline of every call (each page of a listing has its own)
   * @param {string} [options.protosDir]  where the contract's .proto files are (default: the package's own `protos/`)
   * @param {grpc.ChannelOptions} [options.channelOptions]  extra grpc-js channel arguments
   * @param {string} [options.token]  bearer token, sent with every call (a daemon's TCP port may require it)
   * @param {{rootCerts?: Buffer, privateKey?: Buffer, certChain?: Buffer}} [options.tls]  TLS to a TCP port:
   *   the CA to trust (default: the system's), and this client's key and certificate for mutual TLS
   * @param {string | null} [options.namespace]  the agent namespace (profile) this client's gateway works
   *   in: the keys it builds are "agent:<namespace>:..." and its listings, searches, prunes, bulk calls
   *   and event watches see that namespace's keys only (null/omitted: the daemon's namespace for keys,
   *   every key otherwise, and requests exactly as without the option). 1-64 lower-case letters,
   *   digits, "_" and "-", starting with a letter or digit: an `InvalidArgumentError` for `namespace`
   *   otherwise, thrown here
   * @param {boolean | null} [options.linkIdentities]  whether the DM keys this client builds follow identity
   *   links (`linkIdentity`): a DM from a linked user id goes to "agent:<namespace>:identity:dm:<identity>".
   *   Sent as the gateway config's `link_identities` with the calls that build keys; null/omitted:
   *   not sent (the daemon's `sessions.link_identities`, off by default). A TypeError for a value
   *   that is no boolean, thrown here
   */
  constructor(
    address,
    { timeoutMs = 5000, protosDir, channelOptions: extra = {}, token, tls, namespace = null, linkIdentities = null } = {},
  ) {
    if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
      throw new TypeError(`timeoutMs must be a positive number of milliseconds, got ${timeoutMs}`);
    }
    this.address = address || defaultTarget();
    this.timeoutMs = timeoutMs;
    /** @type {string | null} */
    this.namespace = checkedNamespace(namespace);
    if (linkIdentities !== null && linkIdentities !== undefined && typeof linkIdentities !== 'boolean') {
      throw new TypeError(`linkIdentities must be a boolean, got ${typeof linkIdentities}`);
    }
    /** @type {boolean | null} */
    this.linkIdentities = linkIdentities ?? null;
    const contract = loadContract(protosDir);
    this.#codec = createCodec(contract.definition);
    const credentials = tls
      ? grpc.credentials.createSsl(tls.rootCerts ?? null, tls.privateKey ?? null, tls.certChain ?? null)
      : grpc.credentials.createInsecure();
    // Metadata, not call credentials: grpc-js sends those over TLS only, and a token may go over plaintext TCP.
    this.#metadata = new grpc.Metadata();
    if (token) this.#metadata.set('authorization', `Bearer ${token}`);
    this.#stub = new contract.SessionStore(this.address, credentials, {
      ...channelOptions(IDEMPOTENT_METHODS),
      ...extra,
    });
    // Appends with a message lacking an id would be stored twice by a retry, and a second
    // rewind, restore, compaction or branch would do it again: one attempt only.
    this.#singleAttemptStub = new contract.SessionStore(this.address, credentials, {
      ...channelOptions([]),
      ...extra,
    });
    this.#health = new contract.Health(this.address, credentials, { channelOverride: this.#stub.getChannel() });
  }

  // -- plumbing

  /**
   * One RPC with the deadline; grpc errors become `SessiondError` subclasses.
   * @param {any} stub
   * @param {string} method
   * @param {object} request
   * @param {{timeoutMs?: number, waitForReady?: boolean}} [options]
   * @returns {Promise<any>}
   */
  #call(stub, method, request, { timeoutMs = this.timeoutMs, waitForReady = false } = {}) {
    return new Promise((resolve, reject) => {
      const callOptions = { deadline: Date.now() + timeoutMs, waitForReady };
      try {
        const metadata = this.#metadata.clone();
        stub[method](request, metadata, callOptions, (/** @type {unknown} */ error, /** @type {any} */ response) => {
          if (error) reject(fromServiceError(error));
          else resolve(response);
        });
      } catch (error) {
        reject(fromServiceError(error));
      }
    });
  }

  /**
   * Every page of a listing, following `nextPageToken` (each page has its own deadline).
   * @param {string} method
   * @param {Record<string, unknown>} request
   * @param {string} field  the repeated field of the response
   * @param {((first: any) => void) | null} [onFirst]  called with the first page's response
   */
  async #pages(method, request, field, onFirst = null) {
    const items = [];
    let pageToken = '';
    for (;;) {
      const response = await this.#call(this.#stub, method, { ...request, pageToken });
      if (!pageToken) onFirst?.(response);
      items.push(...response[field]);
      if (!response.nextPageToken) return items;
      pageToken = response.nextPageToken;
    }
  }

  /**
   * @template T
   * @param {Promise<T>} promise
   * @param {T | null} fallback  the value for NOT_FOUND (the reference's None/False/[])
   * @returns {Promise<T | null>}
   */
  static async #orOnNotFound(promise, fallback) {
    try {
      return await promise;
    } catch (error) {
      if (error instanceof NotFoundError) return fallback;
      throw error;
    }
  }

  /**
   * The `config` (GatewayConfig) of the calls that build keys: the client's namespace and its
   * `linkIdentities`, each only when given. No field at all without either, so that such a
   * client's requests stay what they were.
   * @returns {{config?: {namespace?: string, linkIdentities?: boolean}}}
   */
  #config() {
    /** @type {{namespace?: string, linkIdentities?: boolean}} */
    const config = {};
    if (this.namespace !== null) config.namespace = this.namespace;
    if (this.linkIdentities !== null) config.linkIdentities = this.linkIdentities;
    return Object.keys(config).length ? { config } : {};
  }

  /**
   * The `fence` (TurnFence) of a write: none at all without one, so that an unfenced request
   * stays what it was. A TypeError for a value that is no fence, before anything is sent.
   * @param {TurnFence | null | undefined} fence
   * @returns {{fence?: {sessionKey: string, fencingToken: number | string}}}
   */
  #fence(fence) {
    const message = this.#codec.fenceToProto(fence);
    return message === null ? {} : { fence: message };
  }

  /**
   * The `namespace` field of the calls scoped to one namespace: the client's; none without one.
   * @returns {{namespace?: string}}
   */
  #scope() {
    return this.namespace === null ? {} : { namespace: this.namespace };
  }

  /**
   * A SessionSelector message: the selector's conditions, and the client's namespace unless the
   * selector names one itself (`namespace: null` is no condition, so the client's applies). A
   * selector without any condition is sent as it is, for the daemon's `InvalidArgumentError` for
   * `selector`: the client's namespace is no condition of the caller's, and `{}` must not become
   * "every session of the namespace".
   * @param {SessionSelector} selector
   */
  #selector(selector) {
    const message = this.#codec.selectorToProto(selector);
    const conditions = Object.values(message).some((value) => !(Array.isArray(value) && value.length === 0));
    return conditions && message.namespace === undefined ? { ...message, ...this.#scope() } : message;
  }

  /**
   * @param {SessionSourceInput | Record<string, unknown>} source
   * @param {{entry?: EntryRef | null, redactPii?: boolean, platforms?: RuntimePlatforms | null}} options
   */
  #contextRequest(source, { entry = null, redactPii = false, platforms = null }) {
    return {
      source: this.#codec.sourceToProto(source),
      entry: entry ? this.#codec.entryRefToProto(entry) : null,
      redactPii: Boolean(redactPii),
      platforms: platforms ?? null,
    };
  }

  // -- pure rules

  /**
   * The session key the daemon files the source under (its configured isolation rules; the
   * client's namespace, when it has one, as the key's second part).
   * @param {SessionSourceInput | Record<string, unknown>} source
   * @returns {Promise<string>}
   */
  async buildSessionKey(source) {
    return (await this.buildSessionKeyDetails(source)).sessionKey;
  }

  /**
   * The key with the sharing flag and the source's description ("DM with Alice").
   * @param {SessionSourceInput | Record<string, unknown>} source
   * @returns {Promise<{sessionKey: string, sharedMultiUserSession: boolean, description: string}>}
   */
  async buildSessionKeyDetails(source) {
    const request = { source: this.#codec.sourceToProto(source), ...this.#config() };
    const { sessionKey, sharedMultiUserSession, description } = await this.#call(this.#stub, 'BuildSessionKey', request);
    return { sessionKey, sharedMultiUserSession, description };
  }

  /**
   * The session context and its prompt section, with the daemon's platforms and home channels
   * (or `platforms`, when given); ids hashed with `redactPii` on PII-safe platforms.
   * @param {SessionSourceInput | Record<string, unknown>} source
   * @param {{entry?: EntryRef | null, redactPii?: boolean, platforms?: RuntimePlatforms | null}} [options]
   * @returns {Promise<SessionContextResult>}
   */
  async buildSessionContext(source, options = {}) {
    const response = await this.#call(this.#stub, 'BuildSessionContext', this.#contextRequest(source, options));
    return {
      context: this.#codec.fromProto('sessiond.v1.SessionContext', response.context ?? {}),
      prompt: response.prompt,
    };
  }

  /**
   * The "## Current Session Context" prompt section only (the Python client's
   * `build_session_context_prompt`).
   * @param {SessionSourceInput | Record<string, unknown>} source
   * @param {{entry?: EntryRef | null, redactPii?: boolean, platforms?: RuntimePlatforms | null}} [options]
   * @returns {Promise<string>}
   */
  async buildSessionContextPrompt(source, options = {}) {
    return (await this.buildSessionContext(source, options)).prompt;
  }

  // -- entries

  /**
   * The current session of the source's key (in the client's namespace, when it has one); a new
   * one when missing, stale, suspended or forced. `title`: the title a session this call starts
   * gets (/new <name>; a kept session's title is not changed); `AlreadyExistsError`, and nothing
   * written, when another session has it.
   * @param {SessionSourceInput | Record<string, unknown>} source
   * @param {{forceNew?: boolean, title?: string | null}} [options]
   * @returns {Promise<SessionEntry>}
   */
  async getOrCreateSession(source, { forceNew = false, title = null } = {}) {
    const request = { source: this.#codec.sourceToProto(source), forceNew: Boolean(forceNew), title, ...this.#config() };
    return this.#codec.entryFromProto((await this.#call(this.#stub, 'GetOrCreateSession', request)).entry);
  }

  /**
   * The key's current entry without touching it; null for an unknown key.
   * @param {string} sessionKey
   * @returns {Promise<SessionEntry | null>}
   */
  async getSession(sessionKey) {
    const response = await SessionStoreClient.#orOnNotFound(
      this.#call(this.#stub, 'GetSession', { sessionKey }),
      null,
    );
    return response ? this.#codec.entryFromProto(response.entry) : null;
  }

  /**
   * Records activity and adds the usage deltas; an unknown key is ignored (resolves to null),
   * as the reference did. Resolves to the updated entry otherwise.
   * @param {string} sessionKey
   * @param {object} [options]
   * @param {number | null} [options.lastPromptTokens]  left as is when null
   * @param {number} [options.inputTokens]
   * @param {number} [options.outputTokens]
   * @param {number} [options.cacheReadTokens]
   * @param {number} [options.cacheWriteTokens]
   * @param {number} [options.totalTokens]
   * @param {number} [options.estimatedCostUsd]
   * @param {string | null} [options.costStatus]  left as is when null
   * @param {number | null} [options.expectedVersion]  `ConflictError` when the entry's version moved on
   * @param {TurnFence | null} [options.fence]  `ConflictError` (and nothing written) unless it is the newest turn begun on its key
   * @returns {Promise<SessionEntry | null>}
   */
  async updateSession(sessionKey, options = {}) {
    const {
      lastPromptTokens = null,
      inputTokens = 0,
      outputTokens = 0,
      cacheReadTokens = 0,
      cacheWriteTokens = 0,
      totalTokens = 0,
      estimatedCostUsd = 0,
      costStatus = null,
      expectedVersion = null,
      fence = null,
    } = options;
    const request = {
      sessionKey,
      lastPromptTokens,
      usage: { inputTokens, outputTokens, cacheReadTokens, cacheWriteTokens, totalTokens, estimatedCostUsd },
      costStatus,
      expectedVersion,
      ...this.#fence(fence),
    };
    const response = await SessionStoreClient.#orOnNotFound(this.#call(this.#stub, 'UpdateSession', request), null);
    return response ? this.#codec.entryFromProto(response.entry) : null;
  }

  /**
   * Makes the key's next access start a new session (/stop); false for an unknown key.
   * @param {string} sessionKey
   * @param {{expectedVersion?: number | null}} [options]
   * @returns {Promise<boolean>}
   */
  async suspendSession(sessionKey, { expectedVersion = null } = {}) {
    const request = { sessionKey, expectedVersion };
    return (await SessionStoreClient.#orOnNotFound(this.#call(this.#stub, 'SuspendSession', request), null)) !== null;
  }

  /**
   * Keeps the session id across a restart; false for an unknown or suspended key, as the reference.
   * @param {string} sessionKey
   * @param {{reason?: string, expectedVersion?: number | null}} [options]  reason defaults to "restart_timeout"
   * @returns {Promise<boolean>}
   */
  async markResumePending(sessionKey, { reason = 'restart_timeout', expectedVersion = null } = {}) {
    try {
      await this.#call(this.#stub, 'MarkResumePending', { sessionKey, reason, expectedVersion });
      return true;
    } catch (error) {
      if (error instanceof NotFoundError || error instanceof FailedPreconditionError) return false;
      throw error;
    }
  }

  /**
   * True when a pending flag was cleared; false when none was set or the key is unknown.
   * @param {string} sessionKey
   * @param {{expectedVersion?: number | null}} [options]
   * @returns {Promise<boolean>}
   */
  async clearResumePending(sessionKey, { expectedVersion = null } = {}) {
    const request = { sessionKey, expectedVersion };
    const response = await SessionStoreClient.#orOnNotFound(this.#call(this.#stub, 'ClearResumePending', request), null);
    return response ? response.cleared : false;
  }

  /**
   * Marks sessions active within `maxAgeSeconds` resume-pending (after a crash); their count.
   * @param {number} [maxAgeSeconds=120]
   * @returns {Promise<number>}
   */
  async suspendRecentlyActive(maxAgeSeconds = 120) {
    return (await this.#call(this.#stub, 'SuspendRecentlyActive', { maxAgeSeconds, ...this.#scope() })).count;
  }

  /**
   * A new session id for the key (/new, /reset), titled `title` if given; null for an unknown
   * key. `AlreadyExistsError`, and nothing written, when another session has the title.
   * @param {string} sessionKey
   * @param {{expectedVersion?: number | null, title?: string | null}} [options]
   * @returns {Promise<SessionEntry | null>}
   */
  async resetSession(sessionKey, { expectedVersion = null, title = null } = {}) {
    const request = { sessionKey, expectedVersion, title };
    const response = await SessionStoreClient.#orOnNotFound(this.#call(this.#stub, 'ResetSession', request), null);
    return response ? this.#codec.entryFromProto(response.entry) : null;
  }

  /**
   * Points the key at an existing session id, or (with `targetSessionId` "" and `targetTitle`)
   * at the session with that title (/resume, /resume <name>); null when the key, the id or the
   * title is unknown.
   * @param {string} sessionKey
   * @param {string} [targetSessionId=""]
   * @param {{expectedVersion?: number | null, targetTitle?: string}} [options]
   * @returns {Promise<SessionEntry | null>}
   */
  async switchSession(sessionKey, targetSessionId = '', { expectedVersion = null, targetTitle = '' } = {}) {
    const request = { sessionKey, targetSessionId, expectedVersion, targetTitle };
    const response = await SessionStoreClient.#orOnNotFound(this.#call(this.#stub, 'SwitchSession', request), null);
    return response ? this.#codec.entryFromProto(response.entry) : null;
  }

  // -- titles

  /**
   * Sets the session's title (an empty one clears it); resolves to the title as stored, in its
   * one spelling (surrounding whitespace removed, inner runs one space), or null when cleared.
   * `AlreadyExistsError` when another session has it, `NotFoundError` for an unknown session.
   * @param {string} sessionId
   * @param {string} title
   * @returns {Promise<string | null>}
   */
  async setSessionTitle(sessionId, title) {
    return (await this.#call(this.#stub, 'SetSessionTitle', { sessionId, title })).title ?? null;
  }

  /**
   * The session's title; null when it has none or the session is unknown.
   * @param {string} sessionId
   * @returns {Promise<string | null>}
   */
  async getSessionTitle(sessionId) {
    const response = await SessionStoreClient.#orOnNotFound(this.#call(this.#stub, 'GetSessionTitle', { sessionId }), null);
    return response?.title ?? null;
  }

  /**
   * The id of the session with this title (normalised as `setSessionTitle` does), or null;
   * `latestInLineage` prefers the newest session titled "<title> #<n>" (where a resumed chain went on).
   * @param {string} title
   * @param {{latestInLineage?: boolean}} [options]
   * @returns {Promise<string | null>}
   */
  async findSessionByTitle(title, { latestInLineage = false } = {}) {
    const request = { title, latestInLineage };
    const response = await SessionStoreClient.#orOnNotFound(this.#call(this.#stub, 'FindSessionByTitle', request), null);
    return response ? response.sessionId : null;
  }

  /**
   * The next free title of the lineage: `title` itself when no session has it, else
   * "<base> #<n>", one more than the highest number in use ("name #3"'s base is "name").
   * @param {string} title
   * @returns {Promise<string>}
   */
  async nextTitleInLineage(title) {
    return (await this.#call(this.#stub, 'NextTitleInLineage', { title })).title;
  }

  // -- lineage

  /**
   * Where the session came from and what came of it: the session's own link, its ancestors
   * (parent first, back to the root) and its children (newest first); null for an unknown session.
   * Each link says why its session started from its parent (`reason`: "reset", "auto_reset",
   * "force_new", "switch" or "branch"; null, as `parentSessionId`, for a root). `handoffs` are the
   * chats the session itself was handed off between (`handoffSession`), oldest first.
   * @param {string} sessionId
   * @returns {Promise<SessionLineage | null>}
   */
  async getSessionLineage(sessionId) {
    const response = await SessionStoreClient.#orOnNotFound(this.#call(this.#stub, 'GetSessionLineage', { sessionId }), null);
    if (!response) return null;
    const link = this.#codec.lineageLinkFromProto;
    return {
      session: link(response.session ?? {}),
      ancestors: response.ancestors.map(link),
      children: response.children.map(link),
      handoffs: (response.handoffs ?? []).map(this.#codec.handoffFromProto),
    };
  }

  /**
   * The newest end of the session's lineage: from it, the newest child at each step (the session
   * itself when it has none); null for an unknown session.
   * @param {string} sessionId
   * @returns {Promise<string | null>}
   */
  async getLineageTip(sessionId) {
    const response = await SessionStoreClient.#orOnNotFound(this.#call(this.#stub, 'GetLineageTip', { sessionId }), null);
    return response ? response.sessionId : null;
  }

  /**
   * Forgets entries idle for `maxAgeDays` (<= 0: none; null/undefined: the daemon's configured
   * age); transcripts stay. Resolves to the number removed. Only the client's namespace's entries
   * when it has one.
   * @param {number | null} [maxAgeDays]
   * @returns {Promise<number>}
   */
  async pruneOldEntries(maxAgeDays = null) {
    return (await this.#call(this.#stub, 'PruneOldEntries', { maxAgeDays, ...this.#scope() })).count;
  }

  /**
   * Every entry (active within `activeMinutes` when given; whose current session's metadata
   * matches every condition of `metadata`, see `searchSessions`; of the client's namespace when it
   * has one), most recently active first; all pages.
   * @param {{activeMinutes?: number | null, metadata?: MetadataFilterInput | null}} [options]
   * @returns {Promise<SessionEntry[]>}
   */
  async listSessions({ activeMinutes = null, metadata = null } = {}) {
    const request = {
      activeMinutes,
      pageSize: PAGE_SIZE,
      metadata: this.#codec.metadataFiltersToProto(metadata),
      ...this.#scope(),
    };
    const entries = await this.#pages('ListSessions', request, 'entries');
    return entries.map(this.#codec.entryFromProto);
  }

  /**
   * Whether more than one session was ever created (ended ones count), in the client's namespace
   * when it has one, else in any.
   * @returns {Promise<boolean>}
   */
  async hasAnySessions() {
    return (await this.#call(this.#stub, 'HasAnySessions', this.#scope())).hasAnySessions;
  }

  /**
   * Entries the policy says expired, not yet finalised nor leased (for the expiry watcher; of the
   * client's namespace when it has one); all pages.
   * @returns {Promise<SessionEntry[]>}
   */
  async listExpiredSessions() {
    return (await this.listExpiredSessionsAndTurns()).entries;
  }

  /**
   * `listExpiredSessions`' entries, and the turns abandoned on the way (for the expiry watcher):
   * turns whose time to live passed without `endTurn` and that no newer turn replaced (their owner
   * died), oldest first, from the first page (at most the daemon's page size); resume them with
   * `beginTurn`. Of the client's namespace when it has one.
   * @returns {Promise<ExpiredSessionsAndTurns>}
   */
  async listExpiredSessionsAndTurns() {
    /** @type {any[]} */
    let abandoned = [];
    const request = { pageSize: PAGE_SIZE, ...this.#scope() };
    const entries = await this.#pages('ListExpiredSessions', request, 'entries', (first) => {
      abandoned = first.abandonedTurns ?? [];
    });
    return { entries: entries.map(this.#codec.entryFromProto), abandonedTurns: abandoned.map(this.#codec.turnFromProto) };
  }

  /**
   * Records that `sessionId` was finalised; `ConflictError` if the key moved on, `NotFoundError`
   * for an unknown key.
   * @param {string} sessionKey
   * @param {string} sessionId
   * @returns {Promise<SessionEntry>}
   */
  async markExpiryFinalized(sessionKey, sessionId) {
    const response = await this.#call(this.#stub, 'MarkExpiryFinalized', { sessionKey, sessionId });
    return this.#codec.entryFromProto(response.entry);
  }

  /**
   * Takes or renews a lease for `ttlSeconds`; `FailedPreconditionError` while another owner holds one.
   * @param {string} sessionKey
   * @param {string} owner
   * @param {number} ttlSeconds
   * @returns {Promise<Lease>}
   */
  async acquireLease(sessionKey, owner, ttlSeconds) {
    const request = { sessionKey, owner, ttl: secondsToDuration(ttlSeconds, 'ttl') };
    return this.#codec.leaseFromProto((await this.#call(this.#stub, 'AcquireLease', request)).lease);
  }

  /**
   * True when `owner` held a live lease that is now released.
   * @param {string} sessionKey
   * @param {string} owner
   * @returns {Promise<boolean>}
   */
  async releaseLease(sessionKey, owner) {
    return (await this.#call(this.#stub, 'ReleaseLease', { sessionKey, owner })).released;
  }

  // -- transcripts

  /**
   * Appends messages in one transaction; those whose `message_id` is stored already are
   * skipped. Retried on UNAVAILABLE only when every message has an id, since only then is a
   * second attempt harmless. `NotFoundError` for an unknown session id. With `fence`,
   * `ConflictError` (and nothing written) unless it is the newest turn begun on its key.
   * @param {string} sessionId
   * @param {Iterable<TranscriptMessage>} messages
   * @param {{fence?: TurnFence | null}} [options]
   * @returns {Promise<AppendResult>}
   */
  async appendMessages(sessionId, messages, { fence = null } = {}) {
    const fenced = this.#fence(fence);
    const protos = Array.from(messages, this.#codec.messageToProto);
    const stub = protos.every((p) => p.messageId) ? this.#stub : this.#singleAttemptStub;
    const { appended, duplicates, messageCount } = await this.#call(stub, 'AppendMessages', {
      sessionId,
      messages: protos,
      ...fenced,
    });
    return { appended, duplicates, messageCount };
  }

  /**
   * Appends one message, under a fresh random `message_id` unless it brings one (so its
   * retries never store it twice). `skipDb: true` sends nothing (the reference's "already
   * written"), resolving to null. `fence` as `appendMessages`'.
   * @param {string} sessionId
   * @param {TranscriptMessage} message
   * @param {{skipDb?: boolean, fence?: TurnFence | null}} [options]
   * @returns {Promise<AppendResult | null>}
   */
  async appendToTranscript(sessionId, message, { skipDb = false, fence = null } = {}) {
    if (skipDb) return null;
    const withId =
      message.message_id === null || message.message_id === undefined
        ? { ...message, message_id: randomUUID().replaceAll('-', '') }
        : message;
    return this.appendMessages(sessionId, [withId], { fence });
  }

  /**
   * Replaces the whole transcript atomically (/retry, /undo, /compress); resolves to its new
   * length. `NotFoundError` for an unknown session id. With `fence`, `ConflictError` (and nothing
   * written) unless it is the newest turn begun on its key.
   * @param {string} sessionId
   * @param {Iterable<TranscriptMessage>} messages
   * @param {{fence?: TurnFence | null}} [options]
   * @returns {Promise<number>}
   */
  async rewriteTranscript(sessionId, messages, { fence = null } = {}) {
    const fenced = this.#fence(fence);
    const request = { sessionId, messages: Array.from(messages, this.#codec.messageToProto), ...fenced };
    return (await this.#call(this.#stub, 'RewriteTranscript', request)).messageCount;
  }

  /**
   * The transcript in the reference's replay shape (all pages); [] for an unknown session id.
   * `raw: true` returns text as stored, without the daemon stripping memory-context blocks and
   * surrounding whitespace as the reference did on replay. `includeHidden: true` returns every
   * stored message in the order written (an archived range before its summary), each with its
   * `position`; the rewound and archived ones also with `visibility` ("rewound" or "archived")
   * and `hidden_by` (the number of the rewind or compaction that hid them). Without it the
   * messages are the visible ones, in the shape they always had.
   * @param {string} sessionId
   * @param {{raw?: boolean, includeHidden?: boolean}} [options]
   * @returns {Promise<TranscriptMessage[]>}
   */
  async loadTranscript(sessionId, { raw = false, includeHidden = false } = {}) {
    const hidden = Boolean(includeHidden);
    const request = { sessionId, pageSize: PAGE_SIZE, raw: Boolean(raw), includeHidden: hidden };
    const messages = await SessionStoreClient.#orOnNotFound(this.#pages('LoadTranscript', request, 'messages'), []);
    const { messageFromProto } = this.#codec;
    if (!hidden) return (messages ?? []).map(messageFromProto);
    // Positions are what compactTranscript and branchSession take; with hidden messages in the
    // list, a message's index is no longer its position.
    return (messages ?? []).map((message) => ({ ...messageFromProto(message), position: Number(message.position) }));
  }

  // -- rewinds, compactions, branches (one attempt each: none is safe to send twice)

  /**
   * Soft-deletes the last `turns` user turns (/undo N): the newest `turns` visible user messages
   * and every visible message after the oldest of them become rewound, kept but left out of
   * `loadTranscript` and `searchMessages`. `append`: messages (in `appendMessages`' shape) added
   * after the rewind in the same transaction (/retry). `FailedPreconditionError` when the
   * transcript has fewer visible user turns, `InvalidArgumentError` (`field` "turns") for turns
   * outside 1..1000, `NotFoundError` for an unknown session id. With `fence`, `ConflictError` (and
   * nothing written) unless it is the newest turn begun on its key.
   * @param {string} sessionId
   * @param {{turns?: number, append?: Iterable<TranscriptMessage>, fence?: TurnFence | null}} [options]
   * @returns {Promise<RewindResult>}
   */
  async rewindTranscript(sessionId, { turns = 1, append = [], fence = null } = {}) {
    const fenced = this.#fence(fence);
    const request = { sessionId, turns, append: Array.from(append ?? [], this.#codec.messageToProto), ...fenced };
    const response = await this.#call(this.#singleAttemptStub, 'RewindTranscript', request);
    const { rewind, rewoundMessages, visibleMessages, appended } = response;
    return { rewind, rewoundMessages, visibleMessages, appended };
  }

  /**
   * Makes a rewind's messages visible again: `rewind` (a `rewindTranscript` result's number), or
   * the newest rewind still rewound when null/omitted. `FailedPreconditionError` when there is
   * nothing to restore, or visible messages were added after the rewound ones (as by a retry's
   * `append`); `NotFoundError` for an unknown session id.
   * @param {string} sessionId
   * @param {{rewind?: number | null}} [options]
   * @returns {Promise<RestoreResult>}
   */
  async restoreTranscript(sessionId, { rewind = null } = {}) {
    const response = await this.#call(this.#singleAttemptStub, 'RestoreTranscript', { sessionId, rewind });
    const { rewind: restored, restoredMessages, visibleMessages } = response;
    return { rewind: restored, restoredMessages, visibleMessages };
  }

  /**
   * Starts a new session whose transcript is a copy of this one's visible messages up to and
   * including `throughPosition` (all of them when null/omitted), its child in the lineage
   * (reason "branch") (/branch). With `sessionKey` (an existing key), the key points at the
   * branch, its current session ended with reason "session_branch", and `entry` is the key's new
   * entry; no key changes otherwise (`entry` null). `title`: the branch's title
   * (`AlreadyExistsError` when another session has it). `NotFoundError` for an unknown session
   * id or key.
   * @param {string} sessionId
   * @param {{throughPosition?: number | null, sessionKey?: string | null, title?: string | null}} [options]
   * @returns {Promise<BranchResult>}
   */
  async branchSession(sessionId, { throughPosition = null, sessionKey = null, title = null } = {}) {
    const request = { sessionId, throughPosition, sessionKey, title };
    const response = await this.#call(this.#singleAttemptStub, 'BranchSession', request);
    return {
      sessionId: response.sessionId,
      copiedMessages: response.copiedMessages,
      entry: response.entry ? this.#codec.entryFromProto(response.entry) : null,
    };
  }

  /**
   * Replaces the visible messages in positions `firstPosition`..`lastPosition` (inclusive) with
   * `summary` (a message in `appendMessages`' shape), in place (/compress): the session id stays,
   * the summary takes the last visible position of the range, and the replaced messages stay
   * stored as archived (`loadTranscript` with `includeHidden` lists them; `searchMessages` finds
   * them). `InvalidArgumentError` naming the field for a bad range (`last_position` before
   * `first_position`) or a missing summary, `FailedPreconditionError` when the range holds no
   * visible message, `NotFoundError` for an unknown session id. With `fence`, `ConflictError` (and
   * nothing written) unless it is the newest turn begun on its key.
   * @param {string} sessionId
   * @param {number} firstPosition
   * @param {number} lastPosition
   * @param {TranscriptMessage} summary
   * @param {{fence?: TurnFence | null}} [options]
   * @returns {Promise<CompactResult>}
   */
  async compactTranscript(sessionId, firstPosition, lastPosition, summary, { fence = null } = {}) {
    const fenced = this.#fence(fence);
    const request = {
      sessionId,
      firstPosition,
      lastPosition,
      // Missing: sent unset, for the daemon's INVALID_ARGUMENT naming `summary`.
      summary: summary === null || summary === undefined ? null : this.#codec.messageToProto(summary),
      ...fenced,
    };
    const response = await this.#call(this.#singleAttemptStub, 'CompactTranscript', request);
    const { compaction, archivedMessages, summaryPosition, visibleMessages } = response;
    return { compaction, archivedMessages, summaryPosition, visibleMessages };
  }

  // -- metadata

  /**
   * Changes the metadata of the key's current session: `set` gives keys their values (a string is
   * a text, a boolean a flag, a bigint or a safe integer an integer, another finite number a
   * double, an array of strings a list of texts; `{number: 3}` and the other explicit forms say
   * the kind; an empty list removes the key), `remove` drops keys (absent ones are ignored; none
   * may also be in `set`), `replace: true` drops every key not in `set` first. With
   * `expectedVersion`, `ConflictError` unless the entry is at that version. `changed` is false
   * when the metadata already was so (no new version, no event). A value of no kind is a
   * TypeError naming the key before anything is sent; `InvalidArgumentError` naming the field for
   * a key or value the daemon refuses (keys: lower-case letters, digits and "_.:-", starting with a
   * letter or digit, at most 64 characters; at most 32 keys, 16 KiB in all), `NotFoundError` for an
   * unknown key.
   * @param {string} sessionKey
   * @param {object} [options]
   * @param {SessionMetadataInput | null} [options.set]  keys to set, with their values
   * @param {Iterable<string> | null} [options.remove]  keys to remove
   * @param {boolean} [options.replace]  `set` becomes the whole metadata
   * @param {number | null} [options.expectedVersion]  `ConflictError` when the entry's version moved on
   * @param {TurnFence | null} [options.fence]  `ConflictError` (and nothing written) unless it is the newest turn begun on its key
   * @returns {Promise<UpdateMetadataResult>}
   */
  async updateSessionMetadata(sessionKey, options = {}) {
    const { set = null, remove = null, replace = false, expectedVersion = null, fence = null } = options;
    const request = {
      sessionKey,
      set: this.#codec.metadataToProto(set, 'set'),
      remove: typeof remove === 'string' ? [remove] : Array.from(remove ?? []),
      replace: Boolean(replace),
      expectedVersion,
      ...this.#fence(fence),
    };
    const response = await this.#call(this.#stub, 'UpdateSessionMetadata', request);
    return { entry: this.#codec.entryFromProto(response.entry), changed: response.changed };
  }

  /**
   * The metadata of any stored session, ended ones too (`{}` when it has none); null for an
   * unknown session. Integers and numbers both come back as numbers (int64 ones beyond 2^53 lose
   * precision, as every int64 of this client), lists of texts as arrays.
   * @param {string} sessionId
   * @returns {Promise<SessionMetadata | null>}
   */
  async getSessionMetadata(sessionId) {
    const response = await SessionStoreClient.#orOnNotFound(this.#call(this.#stub, 'GetSessionMetadata', { sessionId }), null);
    return response ? this.#codec.metadataFromProto(response.metadata) : null;
  }

  // -- search

  /**
   * One page of the sessions whose id starts with `query`, or whose title starts with it
   * ignoring case and punctuation ("my-proj" finds "My Project #2"), newest first; only sessions
   * started for a key of the client's namespace when it has one.
   * @param {string} query
   * @param {object} [options]
   * @param {string | null} [options.platform]  only sessions of this platform
   * @param {number} [options.pageSize]  sessions per page (0: the daemon's 20; at most 100)
   * @param {string} [options.pageToken]  the previous page's `nextPageToken` ("" for the first page)
   * @param {MetadataFilterInput | null} [options.metadata]  only sessions whose metadata matches every
   *   condition: `{key: value}` wants the key with that value (numbers by value, 3 equals 3.0; for a
   *   list of texts, one that holds it), `{key: null}` (or `undefined`) the key with any value
   * @param {boolean} [options.includeArchived]  archived sessions too (see `archiveSessions`)
   * @returns {Promise<SearchSessionsResult>}
   */
  async searchSessions(query, { platform = null, pageSize = 0, pageToken = '', metadata = null, includeArchived = false } = {}) {
    const request = {
      query,
      platform,
      pageSize,
      pageToken,
      metadata: this.#codec.metadataFiltersToProto(metadata),
      includeArchived: Boolean(includeArchived),
      ...this.#scope(),
    };
    const response = await this.#call(this.#stub, 'SearchSessions', request);
    return { sessions: response.sessions.map(this.#codec.summaryFromProto), nextPageToken: response.nextPageToken };
  }

  /**
   * One page of a full-text search over transcripts, best hits first. `query`: words that must
   * all occur, "quoted phrases", `word*` for words starting so (an `InvalidArgumentError` when it
   * has no letter or digit). Each hit has its session, a snippet with the matched words between
   * ">>>" and "<<<", and `window` messages on each side of it (in the replay shape of
   * `loadTranscript`). `FailedPreconditionError` when the daemon has no full-text index. Only
   * messages of sessions started for a key of the client's namespace when it has one.
   * @param {string} query
   * @param {object} [options]
   * @param {string | null} [options.platform]  only messages of sessions on this platform
   * @param {string | null} [options.sessionKey]  only messages of the sessions started for this key (and its current one)
   * @param {string | null} [options.sessionId]  only messages of this session
   * @param {Iterable<string> | null} [options.roles]  only messages of these roles ("user", "assistant", ...)
   * @param {Date | string | number | null} [options.since]  only messages timestamped at or after this
   * @param {Date | string | number | null} [options.until]  only messages timestamped before this
   * @param {number | null} [options.window]  neighbours on each side of a hit (null: the daemon's 1; at most 10)
   * @param {number} [options.pageSize]  hits per page (0: the daemon's 20; at most 100)
   * @param {string} [options.pageToken]  the previous page's `nextPageToken` ("" for the first page)
   * @param {MetadataFilterInput | null} [options.metadata]  only messages of sessions whose metadata
   *   matches every condition (as `searchSessions`' `metadata`)
   * @param {boolean} [options.includeArchived]  messages of archived sessions too (see `archiveSessions`)
   * @returns {Promise<SearchMessagesResult>}
   */
  async searchMessages(query, options = {}) {
    const {
      platform = null,
      sessionKey = null,
      sessionId = null,
      roles = null,
      since = null,
      until = null,
      window = null,
      pageSize = 0,
      pageToken = '',
      metadata = null,
      includeArchived = false,
    } = options;
    const request = {
      query,
      platform,
      sessionKey,
      sessionId,
      roles: typeof roles === 'string' ? [roles] : Array.from(roles ?? []),
      since: since === null || since === undefined ? null : dateToTimestamp(since, 'since'),
      until: until === null || until === undefined ? null : dateToTimestamp(until, 'until'),
      window,
      pageSize,
      pageToken,
      metadata: this.#codec.metadataFiltersToProto(metadata),
      includeArchived: Boolean(includeArchived),
      ...this.#scope(),
    };
    const response = await this.#call(this.#stub, 'SearchMessages', request);
    return {
      hits: response.hits.map(this.#codec.hitFromProto),
      nextPageToken: response.nextPageToken,
      indexBuilding: response.indexBuilding,
    };
  }

  // -- retention (one attempt each: neither call is safe to send twice)

  /**
   * One bulk call, its result as the package shapes it.
   * @param {'DeleteSessions' | 'ArchiveSessions'} method
   * @param {Record<string, unknown>} request
   * @returns {Promise<BulkResult>}
   */
  async #bulk(method, request) {
    const response = await this.#call(this.#singleAttemptStub, method, request);
    const { sessionIds, messages, remaining, remainingMessages, sessionKeys } = response;
    return { sessionIds, messages, remaining, remainingMessages, sessionKeys };
  }

  /**
   * Bulk calls until the selector matches nothing more; each call is a transaction of its own,
   * with its own deadline. Stops early when a call changed nothing (what is left cannot be changed
   * now, as a session that became a leased key's current one): then `remaining` is not 0.
   * @param {'DeleteSessions' | 'ArchiveSessions'} method
   * @param {Record<string, unknown>} request
   * @param {((batch: BulkResult) => void | Promise<void>) | null} onProgress
   * @returns {Promise<BulkResult>}
   */
  async #bulkUntilDone(method, request, onProgress) {
    /** @type {BulkResult} */
    const total = { sessionIds: [], messages: 0, remaining: 0, remainingMessages: 0, sessionKeys: [] };
    for (;;) {
      const batch = await this.#bulk(method, request);
      total.sessionIds.push(...batch.sessionIds);
      total.messages += batch.messages;
      total.sessionKeys.push(...batch.sessionKeys);
      total.remaining = batch.remaining;
      total.remainingMessages = batch.remainingMessages;
      await onProgress?.(batch);
      if (batch.remaining === 0 || batch.sessionIds.length === 0) return total;
    }
  }

  /**
   * Deletes up to `limit` stored sessions the selector matches, least recently active first, with
   * their transcripts (and the entry of a key whose current session one is: the key starts over at
   * its next message), in one transaction; call again while `remaining` is not 0 (or use
   * `deleteAllSessions`). `dryRun: true` writes nothing and says what would go. The selector's
   * conditions must all hold, and one at least must be given (`InvalidArgumentError` for
   * `selector` otherwise); a key or value the selector cannot have is a TypeError before anything
   * is sent. A session that is a leased key's current one is never selected. Each deleted session
   * is a `session_deleted` event. A client with a namespace selects only sessions started for a
   * key of it (`selector.namespace`), unless the selector names a namespace itself; its namespace
   * does not count as a condition (`{}` is still refused).
   * @param {SessionSelector} selector
   * @param {{dryRun?: boolean, limit?: number}} [options]  `limit`: sessions per call (0: the daemon's 100; at most 1000)
   * @returns {Promise<BulkResult>}
   */
  async deleteSessions(selector, { dryRun = false, limit = 0 } = {}) {
    const request = { selector: this.#selector(selector), dryRun: Boolean(dryRun), limit };
    return this.#bulk('DeleteSessions', request);
  }

  /**
   * Archives up to `limit` stored sessions the selector matches (`unarchive: true`: brings
   * archived ones back), as `deleteSessions` selects them: kept whole and loadable, left out of
   * `searchSessions` and `searchMessages` unless `includeArchived`; a key whose current session is
   * archived starts a new session at its next message (`switchSession` back unarchives it).
   * Archived sessions are never selected to archive, nor others to unarchive. Each one changed is a
   * `session_archived` event (reason "archive" or "unarchive"). The client's namespace applies as
   * in `deleteSessions`.
   * @param {SessionSelector} selector
   * @param {{dryRun?: boolean, limit?: number, unarchive?: boolean}} [options]
   * @returns {Promise<BulkResult>}
   */
  async archiveSessions(selector, { dryRun = false, limit = 0, unarchive = false } = {}) {
    const request = {
      selector: this.#selector(selector),
      dryRun: Boolean(dryRun),
      limit,
      unarchive: Boolean(unarchive),
    };
    return this.#bulk('ArchiveSessions', request);
  }

  /**
   * `deleteSessions` in batches of `limit` until the selector matches nothing more (or a batch
   * deleted nothing); `onProgress` is called, and awaited, with each batch's result (throw from
   * it to stop). Resolves to the totals, with the last batch's `remaining`.
   * @param {SessionSelector} selector
   * @param {{limit?: number, onProgress?: ((batch: BulkResult) => void | Promise<void>) | null}} [options]
   * @returns {Promise<BulkResult>}
   */
  async deleteAllSessions(selector, { limit = 0, onProgress = null } = {}) {
    const request = { selector: this.#selector(selector), dryRun: false, limit };
    return this.#bulkUntilDone('DeleteSessions', request, onProgress);
  }

  /**
   * `archiveSessions` in batches, as `deleteAllSessions`.
   * @param {SessionSelector} selector
   * @param {{limit?: number, unarchive?: boolean, onProgress?: ((batch: BulkResult) => void | Promise<void>) | null}} [options]
   * @returns {Promise<BulkResult>}
   */
  async archiveAllSessions(selector, { limit = 0, unarchive = false, onProgress = null } = {}) {
    const request = { selector: this.#selector(selector), dryRun: false, limit, unarchive: Boolean(unarchive) };
    return this.#bulkUntilDone('ArchiveSessions', request, onProgress);
  }

  // -- identity links

  /**
   * Links a platform user id to an identity (a person across platforms); a user id linked to
   * another identity before moves (`previousIdentity` names that one). With `linkIdentities` on
   * (the client's option, or the daemon's `sessions.link_identities`), the DM keys of every user id
   * linked to one identity are one key, "agent:<namespace>:identity:dm:<identity>", in each
   * namespace: those DMs share a session. `changed` is false when the link already was so (then no
   * event); otherwise an `identity_linked` event (reason "link", or "relink" when it moved). An
   * operator's call: it needs full access (`PermissionDeniedError` with scoped credentials).
   * `InvalidArgumentError` naming the field for an identity the daemon refuses (1-128 letters,
   * digits and "._@+-", starting with a letter or digit).
   * @param {string} platform  "telegram", a plugin's name, ...
   * @param {string} userId  the user id as sources carry it in `userId` (a DM source without one: its `chatId`)
   * @param {string} identity
   * @returns {Promise<LinkIdentityResult>}
   */
  async linkIdentity(platform, userId, identity) {
    const response = await this.#call(this.#stub, 'LinkIdentity', { platform, userId, identity });
    return {
      link: this.#codec.identityLinkFromProto(response.link ?? {}),
      previousIdentity: response.previousIdentity ?? null,
      changed: response.changed,
    };
  }

  /**
   * Removes a platform user id's identity link: its next DM message goes to its platform key
   * again; the identity's sessions and transcripts stay. Resolves to the identity it was linked
   * to, or null when it had no link (then nothing changed); an `identity_unlinked` event otherwise.
   * @param {string} platform
   * @param {string} userId
   * @returns {Promise<string | null>}
   */
  async unlinkIdentity(platform, userId) {
    return (await this.#call(this.#stub, 'UnlinkIdentity', { platform, userId })).identity ?? null;
  }

  /**
   * Every identity link (only `identity`'s when given), by platform, then user id; all pages.
   * Links are the daemon's, across namespaces.
   * @param {{identity?: string | null}} [options]
   * @returns {Promise<IdentityLink[]>}
   */
  async listIdentityLinks({ identity = null } = {}) {
    const links = await this.#pages('ListIdentityLinks', { identity, pageSize: PAGE_SIZE }, 'links');
    return links.map(this.#codec.identityLinkFromProto);
  }

  // -- handoffs

  /**
   * Continues the key's current session in another chat (a conversation started on Telegram goes
   * on in a Discord DM): the destination key points at the session, in the same transaction that
   * ends the destination's former session (`replacedSessionId`, end reason "handoff"). The
   * destination is exactly one of `targetSessionKey` (a key with an entry) and `targetSource` (the
   * destination chat's source: its key is built as `getOrCreateSession` builds it, with the
   * client's namespace and `linkIdentities`, and gets an entry if it has none); a TypeError
   * otherwise, before anything is sent. `releaseSource: true` also takes the session from the
   * source key (its entry is removed, the session stays: the source chat's next message starts a
   * new session); by default both keys point at it. Recorded with the session (its lineage's
   * `handoffs`) and announced by a `handed_off` event on each key (`otherSessionKey` the other
   * end). `FailedPreconditionError` across namespaces or onto the same key, `ConflictError` for a
   * stale `expectedVersion` (the source entry's), `NotFoundError` for an unknown key.
   * @param {string} sessionKey  the key whose current session continues elsewhere
   * @param {object} options
   * @param {string | null} [options.targetSessionKey]  the destination key (it must have an entry)
   * @param {SessionSourceInput | Record<string, unknown> | null} [options.targetSource]  the destination chat's source
   * @param {boolean} [options.releaseSource]  remove the source key's entry
   * @param {number | null} [options.expectedVersion]  `ConflictError` when the source entry's version moved on
   * @returns {Promise<HandoffResult>}
   */
  async handoffSession(sessionKey, options) {
    const { targetSessionKey = null, targetSource = null, releaseSource = false, expectedVersion = null } = options ?? {};
    const byKey = targetSessionKey !== null && targetSessionKey !== undefined;
    const bySource = targetSource !== null && targetSource !== undefined;
    if (byKey === bySource) {
      throw new TypeError(`handoffSession takes exactly one of targetSessionKey and targetSource, got ${byKey ? 'both' : 'neither'}`);
    }
    if (byKey && typeof targetSessionKey !== 'string') {
      throw new TypeError(`targetSessionKey must be a string, got ${typeof targetSessionKey}`);
    }
    if (bySource && typeof targetSource !== 'object') throw new TypeError(`targetSource must be a source object, got ${typeof targetSource}`);
    const destination = targetSource ? { targetSource: this.#codec.sourceToProto(targetSource) } : { targetSessionKey };
    const request = { sessionKey, ...destination, releaseSource: Boolean(releaseSource), expectedVersion, ...this.#config() };
    const response = await this.#call(this.#stub, 'HandoffSession', request);
    return { entry: this.#codec.entryFromProto(response.entry), replacedSessionId: response.replacedSessionId ?? null };
  }

  // -- turns

  /**
   * The fence of `renewTurn` and `endTurn`: required.
   * @param {TurnFence} fence
   */
  #requiredFence(fence) {
    const message = this.#codec.fenceToProto(fence);
    if (message === null) throw new TypeError(`fence must be {sessionKey, fencingToken} (or a Turn), not ${fence}`);
    return message;
  }

  /**
   * Begins a turn of the agent on a session key: one at a time per key, with an owner, a time to
   * live and a fencing token that grows with every turn begun on the key (1 for its first). Pass
   * the turn (or `{sessionKey, fencingToken}`) as the `fence` of the turn's writes
   * (`appendMessages`, `rewriteTranscript`, `updateSession`, `rewindTranscript`,
   * `compactTranscript`, `updateSessionMetadata`): once a newer turn began they reject with
   * `ConflictError` and write nothing, so a stale agent loop cannot write. A turn the same owner
   * still runs is replaced (a restarted loop; `interrupted` is the old one). While another
   * owner's live turn runs, `onConflict` decides: "reject" (the default: `started` false, `turn`
   * the running one), "queue" (`started` false, `queuePosition` the caller's place in line, 1 for
   * next: call again after the `turn_ended` or `turn_expired` event; a waiter stays in line for
   * `ttlMs` after its last call) or "interrupt" (the running turn ends, its token stale from now
   * on, `interrupted` is it, and the caller's begins at once). A policy of no other name is an
   * `InvalidArgumentError` for `on_conflict`, thrown before anything is sent. Events:
   * `turn_started`, `turn_interrupted`.
   * @param {string} sessionKey
   * @param {string} owner  the caller's identifier (1-256 bytes): a process, an agent loop
   * @param {{ttlMs?: number, onConflict?: TurnConflict}} [options]  `ttlMs`: how long the turn lives unless
   *   renewed or ended (default 60000; positive, at most a day)
   * @returns {Promise<BeginTurnResult>}
   */
  async beginTurn(sessionKey, owner, { ttlMs = TURN_TTL_MS, onConflict = 'reject' } = {}) {
    const request = { sessionKey, owner, ttl: turnTtl(ttlMs), onConflict: this.#codec.turnConflictToProto(onConflict) };
    const response = await this.#call(this.#stub, 'BeginTurn', request);
    const { turnFromProto } = this.#codec;
    return {
      started: response.started,
      turn: turnFromProto(response.turn ?? {}),
      queuePosition: response.queuePosition,
      interrupted: response.interrupted ? turnFromProto(response.interrupted) : null,
    };
  }

  /**
   * Extends the running turn's time to live to `ttlMs` from now (default 60000); resolves to the
   * turn after the call. `ConflictError` when a newer turn began on the key or the turn ended (or
   * lapsed). A fence that is no fence is a TypeError, before anything is sent.
   * @param {TurnFence} fence  the turn (or its `{sessionKey, fencingToken}`)
   * @param {{ttlMs?: number}} [options]
   * @returns {Promise<Turn>}
   */
  async renewTurn(fence, { ttlMs = TURN_TTL_MS } = {}) {
    const request = { fence: this.#requiredFence(fence), ttl: turnTtl(ttlMs) };
    return this.#codec.turnFromProto((await this.#call(this.#stub, 'RenewTurn', request)).turn ?? {});
  }

  /**
   * Ends a turn (a `turn_ended` event): true when it ended now, false when it had already ended,
   * lapsed or been superseded by a newer turn.
   * @param {TurnFence} fence  the turn (or its `{sessionKey, fencingToken}`)
   * @returns {Promise<boolean>}
   */
  async endTurn(fence) {
    return (await this.#call(this.#stub, 'EndTurn', { fence: this.#requiredFence(fence) })).ended;
  }

  // -- events

  /**
   * The changes of session keys after `afterSequence` (0: from the oldest retained event;
   * `fromNow: true`: only changes from now on), then as they commit; only `kinds` ("created",
   * "expired", "session_deleted", ... see `EVENT_KINDS`) when given. Iterate the watch with
   * `for await`; it has no deadline and lasts until `close()` (or a `break` out of the loop), or
   * until it fails: `UnavailableError` when the daemon stops or cannot be reached (watch again
   * from `watch.cursor`), `OutOfRangeError` when the events after the cursor are no longer
   * retained (resync with `listSessions`). No reconnection is attempted. An unknown kind is an
   * `InvalidArgumentError` for `kinds`, thrown at once. A client with a namespace watches only the
   * events of its namespace's keys (an event without a key, as the deletion of a session no key
   * pointed at, is not delivered to it).
   * @param {{afterSequence?: number, kinds?: Iterable<EventKind> | EventKind | null, fromNow?: boolean}} [options]
   * @returns {EventWatch}
   */
  watchEvents({ afterSequence = 0, kinds = null, fromNow = false } = {}) {
    const request = {
      afterSequence,
      fromNow: Boolean(fromNow),
      kinds: this.#codec.eventKindsToProto(kinds),
      ...this.#scope(),
    };
    let call;
    try {
      call = this.#stub.WatchSessionEvents(request, this.#metadata.clone(), {});
    } catch (error) {
      throw fromServiceError(error);
    }
    return new EventWatch(call, Number(afterSequence) || 0, this.#codec.eventFromProto);
  }

  // -- health and lifetime

  /**
   * The grpc.health.v1 status of `service` ("SERVING", "NOT_SERVING", ...). `waitForReady`
   * makes the call wait (until its deadline) for the daemon to accept connections.
   * @param {string} [service]  "sessiond.v1.SessionStore" (default), "sessiond.writes" or "" (the server)
   * @param {{timeoutMs?: number, waitForReady?: boolean}} [options]
   * @returns {Promise<string>}
   */
  async checkHealth(service = SERVICE, options = {}) {
    const { status } = await this.#call(this.#health, 'Check', { service }, options);
    return typeof status === 'number' ? HEALTH_STATUSES[status] ?? 'UNKNOWN' : status;
  }

  /**
   * Whether the store service reports SERVING.
   * @returns {Promise<boolean>}
   */
  async isServing() {
    return (await this.checkHealth()) === 'SERVING';
  }

  /**
   * Resolves once health says SERVING; retries until `timeoutMs` passed, then rejects with the
   * last reason (`DeadlineExceededError`, or the last call's error). For gateways started
   * alongside their daemon. `signal` (an AbortSignal) stops the waiting early.
   * @param {{timeoutMs?: number, service?: string, signal?: AbortSignal}} [options]
   * @returns {Promise<void>}
   */
  async waitUntilServing({ timeoutMs = 10_000, service = SERVICE, signal } = {}) {
    const deadline = Date.now() + timeoutMs;
    let pause = 25;
    /** @type {unknown} */
    let last = null;
    for (;;) {
      signal?.throwIfAborted();
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      try {
        const status = await this.checkHealth(service, {
          timeoutMs: Math.min(remaining, this.timeoutMs),
          waitForReady: true,
        });
        if (status === 'SERVING') return;
        last = `health of ${JSON.stringify(service)} is ${status}`;
      } catch (error) {
        last = error;
      }
      signal?.throwIfAborted();
      await sleep(Math.min(pause, Math.max(0, deadline - Date.now())), undefined, { signal });
      pause = Math.min(pause * 2, 500);
    }
    if (last instanceof SessiondError && !(last instanceof DeadlineExceededError)) throw last;
    const reason = last instanceof Error ? last.message : String(last ?? 'no answer');
    throw new DeadlineExceededError(Status.DEADLINE_EXCEEDED, `not serving after ${timeoutMs} ms (${reason})`);
  }

  /** Closes the connections; pending calls fail with UNAVAILABLE or CANCELLED. */
  close() {
    this.#health.close();
    this.#stub.close();
    this.#singleAttemptStub.close();
  }
}

/**
 * One `WatchSessionEvents` stream (`SessionStoreClient.watchEvents`): an async iterator of the
 * events, in sequence order, as they commit.
 *
 * `cursor` is where a new watch resumes after this one ends (`afterSequence: watch.cursor`):
 * while the loop body handles an event it is that event's sequence, and it also moves past events
 * the `kinds` filter skipped, so keep it rather than the last event's sequence. `ready` resolves
 * once the daemon's first response came: from then on the watch is live, and a change that
 * commits later will be delivered (watch `fromNow`, await `ready`, then take a snapshot with
 * `listSessions` to start without a gap). `close()` ends the iteration without an error.
 * @implements {AsyncIterableIterator<SessionEvent>}
 */
export class EventWatch {
  /** @type {any} */ #call;
  /** @type {AsyncIterator<any>} */ #responses;
  /** @type {Promise<IteratorResult<any>>} */ #first;
  /** @type {AsyncGenerator<SessionEvent, void, undefined>} */ #events;
  /** @type {(message: Record<string, any>) => SessionEvent} */ #eventFromProto;
  #closed = false;

  /**
   * @param {any} call  grpc-js's readable stream of WatchSessionEventsResponse
   * @param {number} afterSequence
   * @param {(message: Record<string, any>) => SessionEvent} eventFromProto
   */
  constructor(call, afterSequence, eventFromProto) {
    /** @type {number} */
    this.cursor = afterSequence;
    this.#call = call;
    this.#eventFromProto = eventFromProto;
    this.#responses = call[Symbol.asyncIterator]();
    // Read at once, for `ready`: the stream would wait for the first `next()` otherwise.
    this.#first = this.#responses.next();
    /** @type {Promise<void>} */
    this.ready = this.#first.then(
      ({ done, value }) => {
        if (!done && !value.events.length) this.cursor = Number(value.cursor);
      },
      (error) => {
        throw fromServiceError(error);
      },
    );
    this.ready.catch(() => {}); // a watch whose readiness nobody awaits must not be an unhandled rejection
    this.#events = this.#generate();
  }

  async *#generate() {
    try {
      for (let result = await this.#first; !result.done; result = await this.#responses.next()) {
        const { events, cursor } = result.value;
        for (const event of events) {
          this.cursor = Number(event.sequence);
          yield this.#eventFromProto(event);
          if (this.#closed) return;
        }
        this.cursor = Number(cursor);
      }
    } catch (error) {
      if (!this.#closed) throw fromServiceError(error);
    } finally {
      this.close();
      await this.#responses.return?.();
    }
  }

  /** @returns {Promise<IteratorResult<SessionEvent, void>>} */
  next() {
    return this.#events.next();
  }

  /**
   * Ends the watch (what `break` out of a `for await` calls).
   * @returns {Promise<IteratorResult<SessionEvent, void>>}
   */
  return() {
    this.close();
    return this.#events.return(undefined);
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  /** Cancels the stream: the iteration ends (a pending `next()` resolves done), without an error. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#call.cancel();
  }
}
