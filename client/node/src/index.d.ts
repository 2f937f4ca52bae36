// Type declarations of @sessiond/client (hand-written: the code is plain JavaScript with JSDoc).
// Keep them in step with index.js; test/package.test.js fails when the exported names differ.

/// <reference types="node" />

import type { ChannelOptions, Metadata, ServiceClientConstructor, status } from '@grpc/grpc-js';
import type { PackageDefinition } from '@grpc/proto-loader';

// -- values

/** The reference's chat types that the contract's ChatType enum names. */
export type ChatTypeName = 'dm' | 'group' | 'channel' | 'thread';
/**
 * A chat type: one of the enum's names, or any other string ("forum"), which travels in the
 * contract's `chat_type_name`. (`string & {}` keeps the four names offered as completions.)
 */
export type ChatType = ChatTypeName | (string & {});

/**
 * A source as a gateway passes it, in lowerCamelCase. Missing `chatType` means "dm";
 * `null`/`undefined` optionals are not sent.
 */
export interface SessionSourceInput {
  /** "telegram", "discord", ... (an enum-like `{value}` works) */
  platform: string | { value: string };
  chatId?: string | number;
  chatType?: ChatType;
  chatName?: string | null;
  userId?: string | null;
  userName?: string | null;
  threadId?: string | null;
  chatTopic?: string | null;
  userIdAlt?: string | null;
  chatIdAlt?: string | null;
  isBot?: boolean;
  guildId?: string | null;
  parentChatId?: string | null;
  messageId?: string | null;
}

/** A source in the reference's snake_case `SessionSource.to_dict()` shape (camelCase keys win when both are given). */
export interface SessionSourceDict {
  platform: string | { value: string };
  chat_id?: string | number;
  chat_type?: ChatType;
  chat_name?: string | null;
  user_id?: string | null;
  user_name?: string | null;
  thread_id?: string | null;
  chat_topic?: string | null;
  user_id_alt?: string | null;
  chat_id_alt?: string | null;
  is_bot?: boolean;
  guild_id?: string | null;
  parent_chat_id?: string | null;
  message_id?: string | null;
}

/** Where a source argument is expected, either shape works. */
export type SourceArgument = SessionSourceInput | SessionSourceDict;

/** A source as the daemon returns it (an entry's `origin`, a context's `source`); unset optionals are null. */
export interface SessionSource {
  platform: string;
  chatId: string;
  chatType: ChatType;
  chatName: string | null;
  userId: string | null;
  userName: string | null;
  threadId: string | null;
  chatTopic: string | null;
  userIdAlt: string | null;
  chatIdAlt: string | null;
  isBot: boolean;
  guildId: string | null;
  parentChatId: string | null;
  messageId: string | null;
}

/** The current session of a session key (the reference's `SessionEntry` plus `version`). */
export interface SessionEntry {
  sessionKey: string;
  /** "YYYYMMDD_HHMMSS_<8 hex>" */
  sessionId: string;
  createdAt: Date;
  updatedAt: Date;
  origin: SessionSource | null;
  displayName: string | null;
  platform: string | null;
  chatType: ChatType;
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  totalTokens: number;
  estimatedCostUsd: number;
  costStatus: string;
  lastPromptTokens: number;
  wasAutoReset: boolean;
  autoResetReason: string | null;
  resetHadActivity: boolean;
  isFreshReset: boolean;
  expiryFinalized: boolean;
  suspended: boolean;
  resumePending: boolean;
  resumeReason: string | null;
  lastResumeMarkedAt: Date | null;
  /** Pass it back as `expectedVersion` to make a change conditional. */
  version: number;
  /** The current session's metadata ({} when it has none; see `updateSessionMetadata`). */
  metadata: SessionMetadata;
}

/**
 * One value of a session's metadata as the daemon returns it: a text, a number (the contract's
 * `integer` and `number` alike; int64 integers beyond 2^53 lose precision, as every int64 of
 * this client), a flag, or a list of texts (tags).
 */
export type MetadataValue = string | number | boolean | string[];
/** A session's metadata: its keys and their values. */
export type SessionMetadata = Record<string, MetadataValue>;

/**
 * One value of a session's metadata as a gateway gives it: a string is a text, a boolean a flag,
 * a bigint or a safe integer Number an integer, any other finite Number a number (a double), an
 * array of strings a list of texts (an empty one removes the key). The explicit forms say the
 * kind: `{ number: 3 }` sends 3 as a double.
 */
export type MetadataValueInput =
  | string
  | boolean
  | number
  | bigint
  | readonly string[]
  | { text: string }
  | { integer: number | bigint }
  | { number: number }
  | { flag: boolean }
  | { texts: readonly string[] };
/** Metadata keys and the values to give them. */
export type SessionMetadataInput = Record<string, MetadataValueInput>;
/**
 * Metadata conditions, all of which must hold: each key must be present and, unless its value is
 * `null` or `undefined` (any value), equal to the value (numbers by value, 3 equals 3.0) or, for
 * a list of texts, hold it (`{ tags: 'a' }` matches `tags: ['a', 'b']`). A list is no condition
 * (the daemon's `InvalidArgumentError`).
 */
export type MetadataFilterInput = Record<
  string,
  Exclude<MetadataValueInput, readonly string[] | { texts: readonly string[] }> | null | undefined
>;

/** What a context prompt needs of an entry: key, id and times (a `SessionEntry`, or any object with them). */
export interface EntryRef {
  sessionKey: string;
  sessionId: string;
  createdAt: Date | string | number;
  updatedAt: Date | string | number;
}

/** A lease on a session key. */
export interface Lease {
  sessionKey: string;
  owner: string;
  expiresAt: Date | null;
}

/** Why a session started from its parent. */
export type LineageReason = 'reset' | 'auto_reset' | 'force_new' | 'switch' | 'branch';

/** One session in a lineage: where it came from (null for a root) and why. */
export interface LineageLink {
  sessionId: string;
  /** null for a lineage's root. */
  parentSessionId: string | null;
  /**
   * "reset" (`resetSession`), "auto_reset" (stale by policy, or suspended), "force_new"
   * (`getOrCreateSession` with `forceNew`), "switch" (a switch that recorded an unknown target),
   * "branch" (`branchSession`); null for a root. (`string & {}`: a reason a newer daemon adds still fits.)
   */
  reason: LineageReason | (string & {}) | null;
  startedAt: Date;
  title: string | null;
}

/** A session, where it came from and what came of it. */
export interface SessionLineage {
  session: LineageLink;
  /** Its parent, the parent's parent, ... back to the root (at most 1000). */
  ancestors: LineageLink[];
  /** The sessions started from it, newest first. */
  children: LineageLink[];
  /** The chats the session itself was handed off between (`handoffSession`), oldest first. */
  handoffs: Handoff[];
}

/** One handoff of a session from one chat's key to another's (`handoffSession`). */
export interface Handoff {
  /** The key the session continued from. */
  fromSessionKey: string;
  /** The key that points at it since. */
  toSessionKey: string;
  /** The destination's session it ended; null when the key had none. */
  replacedSessionId: string | null;
  time: Date;
}

/** What `handoffSession` did. */
export interface HandoffResult {
  /** The destination's entry after the call (pointing at the session). */
  entry: SessionEntry;
  /** The destination's former session, now ended (end reason "handoff"); null when it had none or it already was this session. */
  replacedSessionId: string | null;
}

/** A platform user id linked to an identity (a person across platforms; see `linkIdentity`). */
export interface IdentityLink {
  /** "telegram", a plugin's name, ... */
  platform: string;
  /** The user id on that platform, as sources carry it in `userId` (a DM source without one: its `chatId`). */
  userId: string;
  /** 1-128 letters, digits and "._@+-", starting with a letter or digit. */
  identity: string;
  /** When the link was made. */
  linkedAt: Date;
}

/** What `linkIdentity` did. */
export interface LinkIdentityResult {
  /** The link as stored. */
  link: IdentityLink;
  /** The identity the user id was linked to before, if another; null otherwise. */
  previousIdentity: string | null;
  /** false when the link already was so: then no event. */
  changed: boolean;
}

/** A turn running (or abandoned) on a session key (`beginTurn`). It works as its own `TurnFence`. */
export interface Turn {
  sessionKey: string;
  /** Who runs it (a process, an agent loop). */
  owner: string;
  /** Grows with every turn begun on the key (1 for its first). */
  fencingToken: number;
  /** The session the key pointed at when the turn began; null when the key had no entry. */
  sessionId: string | null;
  startedAt: Date;
  /** When it lapses unless renewed. */
  expiresAt: Date;
}

/**
 * What a write carries to prove it comes from the newest turn of its key: the key and the token
 * `beginTurn` gave (a `Turn` itself will do).
 */
export interface TurnFence {
  sessionKey: string;
  /** A safe integer Number or a bigint (int64). */
  fencingToken: number | bigint;
}

/**
 * What `beginTurn` does while another owner's live turn runs on the key: "reject" (do not begin;
 * the running turn comes back), "queue" (wait in line) or "interrupt" (end it and begin at once).
 */
export type TurnConflict = 'reject' | 'queue' | 'interrupt';

/** What `beginTurn` did. */
export interface BeginTurnResult {
  /** true when the caller's turn began. */
  started: boolean;
  /** The caller's new turn when started, else the one running. */
  turn: Turn;
  /** With `onConflict: 'queue'` and not started: the caller's place in line (1: next); else 0. */
  queuePosition: number;
  /** The turn this call ended (`onConflict: 'interrupt'`, or the owner's own earlier turn); null when none. */
  interrupted: Turn | null;
}

/** What `listExpiredSessionsAndTurns` found. */
export interface ExpiredSessionsAndTurns {
  /** As `listExpiredSessions`. */
  entries: SessionEntry[];
  /**
   * Turns whose time to live passed without `endTurn` and that no newer turn replaced (their
   * owner died), oldest first (at most the daemon's page size): resume them with `beginTurn`.
   */
  abandonedTurns: Turn[];
}

/** A stored session as search finds it; unset optionals are null. */
export interface SessionSummary {
  sessionId: string;
  title: string | null;
  /** "unknown" for a session created by an append. */
  platform: string;
  /** The key it was started for; null for one created by an append or a switch to a new id. */
  sessionKey: string | null;
  startedAt: Date;
  /** null while it has not ended. */
  endedAt: Date | null;
  endReason: string | null;
  messageCount: number;
  /** null for a lineage's root. */
  parentSessionId: string | null;
  /** Its metadata ({} when it has none). */
  metadata: SessionMetadata;
  /** When it was archived (`archiveSessions`); null while it is not. */
  archivedAt: Date | null;
  /** Its last activity: its newest message, its entry's last activity while it is current, its end. */
  activeAt: Date;
}

/** One message that matched a full-text search. */
export interface SearchHit {
  /** The session the message belongs to. */
  session: SessionSummary;
  /** The message's position in its transcript (0-based). */
  position: number;
  /** "" when the message has none. */
  messageId: string;
  role: string;
  /** The message's timestamp. */
  time: Date | null;
  /** Up to about 40 words around the match, matched words between ">>>" and "<<<", "..." where text was cut. */
  snippet: string;
  /** Relevance, higher is better; only the order means something (the scale is the backend's). */
  score: number;
  /** The message and its neighbours in transcript order (`window` on each side, where the transcript has them), in the replay shape. */
  window: TranscriptMessage[];
}

/** One page of `searchSessions`. */
export interface SearchSessionsResult {
  /** Newest first. */
  sessions: SessionSummary[];
  /** Pass it as `pageToken` for the next page; "" on the last page. */
  nextPageToken: string;
}

/** One page of `searchMessages`. */
export interface SearchMessagesResult {
  /** Best first. */
  hits: SearchHit[];
  /** Pass it as `pageToken` for the next page; "" on the last page. */
  nextPageToken: string;
  /** The index is still being built (after an upgrade or a rebuild): older messages may be missing from the hits. */
  indexBuilding: boolean;
}

/**
 * A transcript message in the OpenAI chat format, with its snake_case keys. Other keys are not
 * stored. Non-string `content` and the structured fields travel as JSON.
 */
export interface TranscriptMessage {
  /** "unknown" when empty */
  role: string;
  content?: unknown;
  /** Messages whose id is stored already are skipped (sent only). */
  message_id?: string | number | null;
  tool_calls?: unknown;
  tool_call_id?: string | null;
  tool_name?: string | null;
  /** Replayed on assistant messages only, as the other reasoning fields. */
  reasoning?: string | null;
  reasoning_content?: string | null;
  reasoning_details?: unknown;
  codex_reasoning_items?: unknown;
  codex_message_items?: unknown;
  finish_reason?: string | null;
  /** Sent only. */
  token_count?: number | null;
  /**
   * Read only, and only on a message a rewind or a compaction hid (`loadTranscript` with
   * `includeHidden`, or a search window around an archived hit); absent on a visible one.
   */
  visibility?: MessageVisibility;
  /** Read only, beside `visibility`: the number of the rewind or compaction that hid the message. */
  hidden_by?: number;
  /** Read only, and only with `includeHidden`: the message's position in the transcript (0-based). */
  position?: number;
}

/**
 * Why a stored message is out of the transcript: soft-deleted by a rewind (/undo, /retry;
 * `restoreTranscript` brings it back), or replaced by a compaction's summary (/compress; still
 * found by `searchMessages`).
 */
export type MessageVisibility = 'rewound' | 'archived';

/** What `rewindTranscript` did. */
export interface RewindResult {
  /** The rewind's number in this session (name it to `restoreTranscript`). */
  rewind: number;
  /** Messages it made rewound. */
  rewoundMessages: number;
  /** Visible messages after the call (the appended ones included). */
  visibleMessages: number;
  /** Messages appended after the rewind. */
  appended: number;
}

/** What `restoreTranscript` did. */
export interface RestoreResult {
  /** The rewind undone. */
  rewind: number;
  /** Messages made visible again. */
  restoredMessages: number;
  /** Visible messages after the call. */
  visibleMessages: number;
}

/** What `branchSession` did. */
export interface BranchResult {
  /** The new session. */
  sessionId: string;
  /** Messages copied into it. */
  copiedMessages: number;
  /** The key's entry after the call when `sessionKey` was given; null otherwise. */
  entry: SessionEntry | null;
}

/** What `compactTranscript` did. */
export interface CompactResult {
  /** The compaction's number in this session (the archived messages' `hidden_by`). */
  compaction: number;
  /** Messages archived. */
  archivedMessages: number;
  /** Where the summary went: the last visible position of the range. */
  summaryPosition: number;
  /** Visible messages after the call. */
  visibleMessages: number;
}

/** What `updateSessionMetadata` did. */
export interface UpdateMetadataResult {
  /** The key's entry after the call (its `version` grew when the metadata changed). */
  entry: SessionEntry;
  /** false when the metadata already was so: then no new version and no event. */
  changed: boolean;
}

/**
 * Which stored sessions `deleteSessions` and `archiveSessions` act on: every condition given must
 * hold, and at least one must be given (the daemon's `InvalidArgumentError` for `selector`
 * otherwise). `null`/`undefined` conditions are not sent; a key not named here, or a value of
 * another type, is a TypeError before anything is sent.
 */
export interface SessionSelector {
  /** Only these sessions (at most 1000; one id may be given as a string). */
  sessionIds?: Iterable<string> | string | null;
  /** Only sessions whose last activity (`SessionSummary.activeAt`) is more than this many days ago; positive. */
  inactiveDays?: number | null;
  /** Only sessions started on this platform. */
  platform?: string | null;
  /** Only sessions started in this kind of chat (sessions stored before sessiond recorded it have none unless they were a key's current one). */
  chatType?: ChatType | null;
  /** Only titled (true) or only untitled (false) sessions. */
  titled?: boolean | null;
  /** Only sessions whose title starts with this, case and punctuation ignored (as `searchSessions`). */
  titlePrefix?: string | null;
  /** Only sessions that ended for one of these reasons ("session_reset", "session_switch", "session_branch", ...). */
  endReasons?: Iterable<string> | string | null;
  /** Only ended (true) or only current (false) sessions. */
  ended?: boolean | null;
  /** Only sessions with at least this many stored messages. */
  minMessages?: number | bigint | null;
  /** Only sessions with at most this many stored messages. */
  maxMessages?: number | bigint | null;
  /** Only sessions whose metadata matches every condition (as `listSessions`' `metadata`). */
  metadata?: MetadataFilterInput | null;
  /** Only archived (true) or only not archived (false) sessions. */
  archived?: boolean | null;
  /**
   * Only sessions started for a key of this agent namespace ("agent:<namespace>:..."). Omitted or
   * null: the client's own `namespace`, if it has one (added to a selector that has another
   * condition: the client's namespace alone is none, so `{}` is still refused).
   */
  namespace?: string | null;
}

/**
 * What one `deleteSessions` or `archiveSessions` call did (with `dryRun`: would do); for
 * `deleteAllSessions` and `archiveAllSessions`, the totals, with the last call's `remaining`.
 */
export interface BulkResult {
  /** The sessions deleted, archived or unarchived (with `dryRun`: the first that would be), least recently active first. */
  sessionIds: string[];
  /** Their stored messages. */
  messages: number;
  /** Sessions the selector still matches after the call (with `dryRun`: all it matches). */
  remaining: number;
  /** Their stored messages. */
  remainingMessages: number;
  /** Session keys whose entry went with their current session (they start over at their next message). */
  sessionKeys: string[];
}

/** The kinds of session events by name (`EVENT_KINDS`' keys). */
export type EventKindName =
  | 'created'
  | 'auto_reset'
  | 'reset'
  | 'switched'
  | 'suspended'
  | 'resume_pending'
  | 'expired'
  | 'pruned'
  | 'lease_expired'
  | 'titled'
  | 'rewound'
  | 'branched'
  | 'compacted'
  | 'metadata_changed'
  | 'session_deleted'
  | 'session_archived'
  | 'identity_linked'
  | 'identity_unlinked'
  | 'handed_off'
  | 'turn_started'
  | 'turn_ended'
  | 'turn_interrupted'
  | 'turn_expired';
/**
 * A kind of session event: the contract's `EventKind` in lower case without its prefix, as the
 * Python client names it. (`string & {}`: a kind a newer contract adds still fits.)
 */
export type EventKind = EventKindName | (string & {});

/** A change of a session key, from `watchEvents`; unset optionals are null. */
export interface SessionEvent {
  /** Its position in the daemon's event log: strictly increasing, never reused. */
  sequence: number;
  kind: EventKind;
  /** The session key ("" for a deleted, archived or unarchived session no key pointed at, a title or rewind of such a session, ...). */
  sessionKey: string;
  /** The key's session id after the change (the removed one for "pruned", the deleted or archived one). */
  sessionId: string;
  /** The session id the key had before: "auto_reset", "reset", "switched" (and "branched" with a key). */
  previousSessionId: string | null;
  /**
   * Why, where the kind has a reason: "idle"/"daily"/"suspended" (auto_reset), "reset"/"force_new",
   * "set"/"cleared" (titled), "rewind"/"restore", "branch", the metadata keys set or removed,
   * comma-separated (metadata_changed), "delete"/"retention" (session_deleted),
   * "archive"/"unarchive"/"retention" (session_archived), the resume reason, "link"/"relink"
   * (identity_linked), "handoff_in"/"handoff_out"/"released" (handed_off),
   * "interrupted"/"replaced" (turn_interrupted).
   */
  reason: string | null;
  /** The entry's version after the change (its last one for "pruned" and "session_deleted"). */
  entryVersion: number;
  /** Who held the lease ("lease_expired"), or runs the turn ("turn_started", "turn_ended", "turn_interrupted", "turn_expired"). */
  leaseOwner: string | null;
  /** When the change happened (the daemon's clock). */
  time: Date;
  /** The identity ("identity_linked", "identity_unlinked"; their `sessionKey` and `sessionId` are ""). */
  identity: string | null;
  /** The platform user id, as "<platform>:<user id>" ("identity_linked", "identity_unlinked"). */
  linkedUser: string | null;
  /** The key at the other end ("handed_off": one event on each key). */
  otherSessionKey: string | null;
  /** The turn's fencing token ("turn_started", "turn_ended", "turn_interrupted", "turn_expired"). */
  fencingToken: number | null;
}

/**
 * One `WatchSessionEvents` stream: iterate it with `for await` for the events, in sequence order,
 * as they commit. The iteration ends with `UnavailableError` when the daemon stops or cannot be
 * reached (watch again from `cursor`), `OutOfRangeError` when the events after the cursor are no
 * longer retained (resync with `listSessions`); `close()` (or `break`) ends it without an error.
 */
export interface EventWatch extends AsyncIterator<SessionEvent, void, undefined>, AsyncIterable<SessionEvent> {
  /**
   * Where a new watch resumes (`afterSequence: watch.cursor`): while the loop body handles an
   * event, that event's sequence; it also moves past events the `kinds` filter skipped.
   */
  readonly cursor: number;
  /**
   * Resolves once the daemon's first response came: the watch is live, so a change committed
   * after it is delivered (watch `fromNow`, await `ready`, then `listSessions` to start without
   * a gap). Rejects as the iteration would when the call fails first.
   */
  readonly ready: Promise<void>;
  next(): Promise<IteratorResult<SessionEvent, void>>;
  /** Ends the watch, as `close()` (what `break` out of a `for await` calls). */
  return(): Promise<IteratorResult<SessionEvent, void>>;
  [Symbol.asyncIterator](): EventWatch;
  /** Cancels the stream: the iteration ends (a pending `next()` resolves done), without an error. */
  close(): void;
}

/** A home channel as given in `RuntimePlatforms`. */
export interface HomeChannelInput {
  platform: string;
  chatId: string;
  name?: string | null;
  threadId?: string | null;
  userId?: string | null;
  scopeId?: string | null;
}

/** A home channel as the daemon returns it. */
export interface HomeChannel {
  platform: string;
  chatId: string;
  /** null: "Home" */
  name: string | null;
  threadId: string | null;
  userId: string | null;
  scopeId: string | null;
}

/** Platforms and home channels the gateway knows at run time (replace the daemon's configured ones). */
export interface RuntimePlatforms {
  connectedPlatforms?: readonly string[];
  homeChannels?: readonly HomeChannelInput[];
}

/** What the agent is told about where it is. */
export interface SessionContext {
  source: SessionSource | null;
  connectedPlatforms: string[];
  homeChannels: HomeChannel[];
  sharedMultiUserSession: boolean;
  /** "" without an entry */
  sessionKey: string;
  /** "" without an entry */
  sessionId: string;
  createdAt: Date | null;
  updatedAt: Date | null;
}

export interface SessionContextResult {
  context: SessionContext;
  /** The "## Current Session Context" section of the system prompt. */
  prompt: string;
}

export interface SessionKeyDetails {
  sessionKey: string;
  sharedMultiUserSession: boolean;
  /** "DM with Alice" */
  description: string;
}

export interface AppendResult {
  appended: number;
  /** Messages skipped because their `message_id` was stored already. */
  duplicates: number;
  messageCount: number;
}

/** A grpc.health.v1 status. */
export type HealthStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

// -- options

export interface SessionStoreClientOptions {
  /** Deadline of every call (each page of a listing has its own); default 5000. */
  timeoutMs?: number;
  /** Where the contract's .proto files are (default: the package's own `protos/`). */
  protosDir?: string;
  /** Extra grpc-js channel arguments. */
  channelOptions?: ChannelOptions;
  /** Bearer token, sent with every call (a daemon's TCP port may require it). */
  token?: string;
  /** TLS to a TCP port: the CA to trust (default: the system's), this client's key and certificate for mutual TLS (PEM). */
  tls?: { rootCerts?: Buffer | null; privateKey?: Buffer | null; certChain?: Buffer | null };
  /**
   * The agent namespace (profile) this client's gateway works in: `getOrCreateSession` and
   * `buildSessionKey` build "agent:<namespace>:..." keys, and `listSessions`, `listExpiredSessions`,
   * `searchSessions`, `searchMessages`, `pruneOldEntries`, the bulk calls and `watchEvents` see that
   * namespace's keys only. Null or omitted: the daemon's namespace ("main" by default) for keys,
   * every key otherwise, and the requests exactly as without the option. 1-64 lower-case letters,
   * digits, "_" and "-", starting with a letter or digit: an `InvalidArgumentError` for `namespace`
   * (a `TypeError` for a value that is no string), thrown by the constructor.
   */
  namespace?: string | null;
  /**
   * Whether the DM keys this client builds (`getOrCreateSession`, `buildSessionKey`,
   * `handoffSession`'s `targetSource`) follow identity links: a DM from a user id linked to an
   * identity goes to "agent:<namespace>:identity:dm:<identity>" (see `linkIdentity`). Sent as the
   * gateway config's `link_identities`; null or omitted: not sent (the daemon's
   * `sessions.link_identities`, off by default). A `TypeError` for a value that is no boolean.
   */
  linkIdentities?: boolean | null;
}

/** The `fence` option of the writes a turn makes. */
export interface FenceOption {
  /**
   * The turn the write belongs to (a `Turn`, or its `{sessionKey, fencingToken}`): `ConflictError`,
   * and nothing written, unless it is the newest turn begun on its key. Null or omitted: not fenced.
   */
  fence?: TurnFence | null;
}

export interface ContextOptions {
  entry?: EntryRef | null;
  /** Hash ids on PII-safe platforms. */
  redactPii?: boolean;
  /** Instead of the daemon's configured platforms and home channels. */
  platforms?: RuntimePlatforms | null;
}

/** `ConflictError` when the entry's version moved on. */
export interface VersionCondition {
  expectedVersion?: number | null;
}

export interface UpdateSessionOptions extends VersionCondition, FenceOption {
  /** Left as is when null. */
  lastPromptTokens?: number | null;
  inputTokens?: number;
  outputTokens?: number;
  cacheReadTokens?: number;
  cacheWriteTokens?: number;
  totalTokens?: number;
  estimatedCostUsd?: number;
  /** Left as is when null. */
  costStatus?: string | null;
}

export interface GetOrCreateSessionOptions {
  /** Start a new session even when the current one is fresh. */
  forceNew?: boolean;
  /**
   * The title of a session this call starts (/new <name>); a kept session's title is not changed.
   * `AlreadyExistsError` (and nothing written) when another session has it. Not sent when null.
   */
  title?: string | null;
}

export interface ResetSessionOptions extends VersionCondition {
  /** The new session's title; `AlreadyExistsError` (and nothing written) when another session has it. */
  title?: string | null;
}

export interface SwitchSessionOptions extends VersionCondition {
  /** Instead of `targetSessionId` (pass ""): the session with this title (/resume <name>). */
  targetTitle?: string;
}

export interface SearchPageOptions {
  /** Results per page (0 or omitted: the daemon's 20; at most 100). */
  pageSize?: number;
  /** The previous page's `nextPageToken` ("" or omitted for the first page). */
  pageToken?: string;
}

/** The `metadata` option of the listing and search calls. */
export interface MetadataFilterOption {
  /**
   * Only sessions whose metadata matches every condition: `{ key: value }` wants the key with
   * that value (for a list of texts, one that holds it), `{ key: null }` (or `undefined`) the key
   * with any value.
   */
  metadata?: MetadataFilterInput | null;
}

export interface ListSessionsOptions extends MetadataFilterOption {
  /** Only entries active within this many minutes. */
  activeMinutes?: number | null;
}

export interface SearchSessionsOptions extends SearchPageOptions, MetadataFilterOption {
  /** Only sessions of this platform. */
  platform?: string | null;
  /** Archived sessions too (see `archiveSessions`). */
  includeArchived?: boolean;
}

export interface SearchMessagesOptions extends SearchPageOptions, MetadataFilterOption {
  /** Only messages of sessions on this platform. */
  platform?: string | null;
  /** Only messages of the sessions started for this key (and of its current session). */
  sessionKey?: string | null;
  /** Only messages of this session. */
  sessionId?: string | null;
  /** Only messages of these roles ("user", "assistant", "tool", ...). */
  roles?: Iterable<string> | null;
  /** Only messages timestamped at or after this. */
  since?: Date | string | number | null;
  /** Only messages timestamped before this. */
  until?: Date | string | number | null;
  /** Neighbouring messages on each side of a hit (null or omitted: the daemon's 1; at most 10). */
  window?: number | null;
  /** Messages of archived sessions too (see `archiveSessions`). */
  includeArchived?: boolean;
}

export interface LoadTranscriptOptions {
  /** Text as stored, without the replay's stripping of memory-context blocks and surrounding whitespace. */
  raw?: boolean;
  /**
   * Every stored message in the order written (an archived range before its summary), each with
   * its `position`; rewound and archived ones with `visibility` and `hidden_by`.
   */
  includeHidden?: boolean;
}

export interface RewindTranscriptOptions extends FenceOption {
  /** User turns to rewind (1 to 1000; default 1). */
  turns?: number;
  /** Messages to append after the rewind, in the same transaction (/retry). */
  append?: Iterable<TranscriptMessage>;
}

export interface RestoreTranscriptOptions {
  /** The rewind to undo; the newest one still rewound when null or omitted. */
  rewind?: number | null;
}

export interface BranchSessionOptions {
  /** Copy the visible messages up to and including this position; all of them when null or omitted. */
  throughPosition?: number | null;
  /** Point this (existing) key at the branch, ending its current session ("session_branch"). */
  sessionKey?: string | null;
  /** The branch's title; `AlreadyExistsError` when another session has it. */
  title?: string | null;
}

export interface UpdateSessionMetadataOptions extends VersionCondition, FenceOption {
  /** Keys to set, with their values (see `MetadataValueInput`). */
  set?: SessionMetadataInput | null;
  /** Keys to remove (absent ones are ignored); none may also be in `set`. */
  remove?: Iterable<string> | null;
  /** Drop every key not in `set` first: `set` becomes the whole metadata. */
  replace?: boolean;
}

export interface BulkOptions {
  /** Say what would change, write nothing. */
  dryRun?: boolean;
  /** Sessions per call, one transaction (0 or omitted: the daemon's 100; at most 1000). */
  limit?: number;
}

export interface ArchiveSessionsOptions extends BulkOptions {
  /** Bring archived sessions back instead. */
  unarchive?: boolean;
}

export interface BulkLoopOptions {
  /** Sessions per call (0 or omitted: the daemon's 100; at most 1000). */
  limit?: number;
  /** Called, and awaited, with each call's result; throw from it to stop. */
  onProgress?: ((batch: BulkResult) => void | Promise<void>) | null;
}

export interface ArchiveAllSessionsOptions extends BulkLoopOptions {
  /** Bring archived sessions back instead. */
  unarchive?: boolean;
}

export interface WatchEventsOptions {
  /** Deliver the events after this sequence (a previous watch's `cursor`); 0 or omitted: from the oldest retained. */
  afterSequence?: number;
  /** Only the changes committed from now on (`afterSequence` must be 0). */
  fromNow?: boolean;
  /** Only these kinds (every kind when empty or omitted); an unknown one is an `InvalidArgumentError` for `kinds`, thrown at once. */
  kinds?: Iterable<EventKind> | EventKind | null;
}

export interface ListIdentityLinksOptions {
  /** Only the links of this identity; all when null or omitted. */
  identity?: string | null;
}

/** Where `handoffSession`'s session continues: exactly one of `targetSessionKey` and `targetSource`. */
export type HandoffDestination =
  | { /** The destination key; it must have an entry. */ targetSessionKey: string; targetSource?: null }
  | {
      /** The destination chat's source: its key is built as `getOrCreateSession` builds it (and gets an entry if it has none). */
      targetSource: SourceArgument;
      targetSessionKey?: null;
    };

export type HandoffSessionOptions = HandoffDestination & {
  /** Also take the session from the source key: its entry is removed (the session stays). */
  releaseSource?: boolean;
  /** `ConflictError` when the source entry's version moved on. */
  expectedVersion?: number | null;
};

export interface BeginTurnOptions {
  /** How long the turn lives unless renewed or ended (default 60000; positive, at most a day). */
  ttlMs?: number;
  /** While another owner's live turn runs: "reject" (default), "queue" or "interrupt". */
  onConflict?: TurnConflict;
}

export interface RenewTurnOptions {
  /** The new time to live from now (default 60000; positive, at most a day). */
  ttlMs?: number;
}

export interface HealthCheckOptions {
  timeoutMs?: number;
  /** Wait (until the deadline) for the daemon to accept connections. */
  waitForReady?: boolean;
}

export interface WaitUntilServingOptions {
  /** Default 10000. */
  timeoutMs?: number;
  service?: string;
  signal?: AbortSignal;
}

// -- the client

/**
 * The reference `SessionStore`'s operations over one daemon connection. Where the reference
 * answered None, False or [] for an unknown key, this client resolves to `null`, `false` or
 * `[]`; every other failure rejects with a `SessiondError` subclass.
 */
export class SessionStoreClient {
  #private;
  /** @param address `unix:/absolute/path` or `host:port` (default: `defaultTarget()`) */
  constructor(address?: string, options?: SessionStoreClientOptions);
  readonly address: string;
  readonly timeoutMs: number;
  /** The `namespace` option; null without one. */
  readonly namespace: string | null;
  /** The `linkIdentities` option; null without one. */
  readonly linkIdentities: boolean | null;

  buildSessionKey(source: SourceArgument): Promise<string>;
  buildSessionKeyDetails(source: SourceArgument): Promise<SessionKeyDetails>;
  buildSessionContext(source: SourceArgument, options?: ContextOptions): Promise<SessionContextResult>;
  buildSessionContextPrompt(source: SourceArgument, options?: ContextOptions): Promise<string>;

  getOrCreateSession(source: SourceArgument, options?: GetOrCreateSessionOptions): Promise<SessionEntry>;
  getSession(sessionKey: string): Promise<SessionEntry | null>;
  /** null: unknown key (ignored, as the reference did). */
  updateSession(sessionKey: string, options?: UpdateSessionOptions): Promise<SessionEntry | null>;
  suspendSession(sessionKey: string, options?: VersionCondition): Promise<boolean>;
  /** `reason` defaults to "restart_timeout"; false for an unknown or suspended key. */
  markResumePending(sessionKey: string, options?: { reason?: string } & VersionCondition): Promise<boolean>;
  clearResumePending(sessionKey: string, options?: VersionCondition): Promise<boolean>;
  suspendRecentlyActive(maxAgeSeconds?: number): Promise<number>;
  /** null: unknown key. */
  resetSession(sessionKey: string, options?: ResetSessionOptions): Promise<SessionEntry | null>;
  /** By id, or by `options.targetTitle` with `targetSessionId` ""; null when the key, the id or the title is unknown. */
  switchSession(sessionKey: string, targetSessionId?: string, options?: SwitchSessionOptions): Promise<SessionEntry | null>;
  /** <= 0: none; null/omitted: the daemon's configured age. */
  pruneOldEntries(maxAgeDays?: number | null): Promise<number>;
  listSessions(options?: ListSessionsOptions): Promise<SessionEntry[]>;
  hasAnySessions(): Promise<boolean>;
  listExpiredSessions(): Promise<SessionEntry[]>;
  /** `listExpiredSessions`' entries, and the turns abandoned without `endTurn` (resume them with `beginTurn`). */
  listExpiredSessionsAndTurns(): Promise<ExpiredSessionsAndTurns>;
  markExpiryFinalized(sessionKey: string, sessionId: string): Promise<SessionEntry>;
  acquireLease(sessionKey: string, owner: string, ttlSeconds: number): Promise<Lease>;
  releaseLease(sessionKey: string, owner: string): Promise<boolean>;

  /**
   * Sets (or, with "", clears) the session's title; the title as stored (whitespace normalised),
   * null when cleared. `AlreadyExistsError` when another session has it, `NotFoundError` for an unknown session.
   */
  setSessionTitle(sessionId: string, title: string): Promise<string | null>;
  /** null when the session has no title or is unknown. */
  getSessionTitle(sessionId: string): Promise<string | null>;
  /** The id of the session with this title; null when none has it. `latestInLineage`: the newest "<title> #<n>" first. */
  findSessionByTitle(title: string, options?: { latestInLineage?: boolean }): Promise<string | null>;
  /** `title` itself when free, else "<base> #<n>" one past the highest number in use. */
  nextTitleInLineage(title: string): Promise<string>;

  /** The session, its ancestors (parent first, back to the root) and its children (newest first); null for an unknown session. */
  getSessionLineage(sessionId: string): Promise<SessionLineage | null>;
  /** From the session, the newest child at each step (the session itself when it has none); null for an unknown session. */
  getLineageTip(sessionId: string): Promise<string | null>;

  /**
   * Changes the metadata of the key's current session (set keys, remove keys, or with `replace`
   * the whole map). A value of no kind is a TypeError naming the key, before anything is sent;
   * `InvalidArgumentError` naming the field for a key or value the daemon refuses, `ConflictError`
   * for a stale `expectedVersion`, `NotFoundError` for an unknown key.
   */
  updateSessionMetadata(sessionKey: string, options?: UpdateSessionMetadataOptions): Promise<UpdateMetadataResult>;
  /** The metadata of any stored session, ended ones too ({} when it has none); null for an unknown session. */
  getSessionMetadata(sessionId: string): Promise<SessionMetadata | null>;

  /** `fence`: `ConflictError`, and nothing written, unless it is the newest turn begun on its key. */
  appendMessages(sessionId: string, messages: Iterable<TranscriptMessage>, options?: FenceOption): Promise<AppendResult>;
  /** Gives the message a random `message_id` unless it has one; `skipDb: true` sends nothing. */
  appendToTranscript(sessionId: string, message: TranscriptMessage, options: { skipDb: true } & FenceOption): Promise<null>;
  appendToTranscript(sessionId: string, message: TranscriptMessage, options?: { skipDb?: false } & FenceOption): Promise<AppendResult>;
  appendToTranscript(sessionId: string, message: TranscriptMessage, options?: { skipDb?: boolean } & FenceOption): Promise<AppendResult | null>;
  rewriteTranscript(sessionId: string, messages: Iterable<TranscriptMessage>, options?: FenceOption): Promise<number>;
  /** The visible transcript; with `includeHidden`, every stored message (see `LoadTranscriptOptions`). [] for an unknown session. */
  loadTranscript(sessionId: string, options?: LoadTranscriptOptions): Promise<TranscriptMessage[]>;

  /**
   * Soft-deletes the last `turns` user turns (/undo N), kept and restorable; `append` adds
   * messages after them in the same transaction (/retry). `FailedPreconditionError` when there
   * are fewer visible user turns; `InvalidArgumentError` (`turns`) outside 1..1000.
   */
  rewindTranscript(sessionId: string, options?: RewindTranscriptOptions): Promise<RewindResult>;
  /**
   * Makes a rewind's messages visible again (the newest rewind by default). `FailedPreconditionError`
   * when there is nothing to restore or messages were added after the rewound ones.
   */
  restoreTranscript(sessionId: string, options?: RestoreTranscriptOptions): Promise<RestoreResult>;
  /** A new session with a copy of the visible messages up to `throughPosition` (/branch), the source's child (reason "branch"). */
  branchSession(sessionId: string, options?: BranchSessionOptions): Promise<BranchResult>;
  /**
   * Replaces the visible messages in `firstPosition..lastPosition` with `summary`, in place
   * (/compress): it takes the range's last visible position; the replaced messages stay stored,
   * archived. `InvalidArgumentError` (`last_position`) when `lastPosition < firstPosition`,
   * `FailedPreconditionError` when the range holds no visible message.
   */
  compactTranscript(
    sessionId: string,
    firstPosition: number,
    lastPosition: number,
    summary: TranscriptMessage,
    options?: FenceOption,
  ): Promise<CompactResult>;

  /** One page of the sessions whose id starts with `query`, or whose title does ignoring case and punctuation; newest first. */
  searchSessions(query: string, options?: SearchSessionsOptions): Promise<SearchSessionsResult>;
  /**
   * One page of a full-text search over transcripts, best first: words that must all occur,
   * "quoted phrases", `word*` prefixes. `InvalidArgumentError` for a query without a letter or
   * digit, `FailedPreconditionError` when the daemon has no full-text index.
   */
  searchMessages(query: string, options?: SearchMessagesOptions): Promise<SearchMessagesResult>;

  /**
   * Deletes up to `limit` stored sessions the selector matches, least recently active first, with
   * their transcripts (and the entry of a key whose current session one is), in one transaction;
   * call again while `remaining` is not 0. `dryRun`: writes nothing. A leased key's current session
   * is never selected. `InvalidArgumentError` (`selector`) for a selector without a condition.
   * Not retried (a second attempt would delete the next batch).
   */
  deleteSessions(selector: SessionSelector, options?: BulkOptions): Promise<BulkResult>;
  /**
   * Archives (with `unarchive`, brings back) up to `limit` sessions, selected as by
   * `deleteSessions`: kept whole and loadable, out of the searches unless `includeArchived`; a key
   * whose current session is archived starts over at its next message.
   */
  archiveSessions(selector: SessionSelector, options?: ArchiveSessionsOptions): Promise<BulkResult>;
  /** `deleteSessions` in batches until the selector matches nothing more (or a batch deleted nothing); the totals. */
  deleteAllSessions(selector: SessionSelector, options?: BulkLoopOptions): Promise<BulkResult>;
  /** `archiveSessions` in batches, as `deleteAllSessions`. */
  archiveAllSessions(selector: SessionSelector, options?: ArchiveAllSessionsOptions): Promise<BulkResult>;

  /**
   * Links a platform user id to an identity (a user id linked to another one moves); with
   * `linkIdentities` on, the DMs of every user id linked to one identity share the key
   * "agent:<namespace>:identity:dm:<identity>". `changed` false: the link already was so.
   * An operator's call (`PermissionDeniedError` with scoped credentials).
   */
  linkIdentity(platform: string, userId: string, identity: string): Promise<LinkIdentityResult>;
  /** Removes the user id's link (its next DM goes to its platform key again; history stays); the identity it had, null when none. */
  unlinkIdentity(platform: string, userId: string): Promise<string | null>;
  /** Every identity link (only `identity`'s when given), by platform, then user id; all pages. */
  listIdentityLinks(options?: ListIdentityLinksOptions): Promise<IdentityLink[]>;

  /**
   * Continues the key's current session in another chat: the destination key points at it, its
   * former session ended (`replacedSessionId`). Exactly one of `targetSessionKey` and
   * `targetSource` (a TypeError otherwise). `FailedPreconditionError` across namespaces or onto
   * the same key; a `handed_off` event on each key.
   */
  handoffSession(sessionKey: string, options: HandoffSessionOptions): Promise<HandoffResult>;

  /**
   * Begins a turn on the key (one at a time per key); its fencing token grows with every turn
   * begun on the key. Pass the turn as the `fence` of its writes: once a newer turn began they
   * reject with `ConflictError`. While another owner's turn runs, `onConflict` decides.
   */
  beginTurn(sessionKey: string, owner: string, options?: BeginTurnOptions): Promise<BeginTurnResult>;
  /** Extends the turn's time to live; `ConflictError` when a newer turn began or the turn ended. */
  renewTurn(fence: TurnFence, options?: RenewTurnOptions): Promise<Turn>;
  /** Ends the turn: true, or false when it had already ended, lapsed or been superseded. */
  endTurn(fence: TurnFence): Promise<boolean>;

  /**
   * The changes of session keys after `afterSequence` (or, `fromNow`, from now on), then as they
   * commit; no deadline, no reconnection (see `EventWatch`). With the client's `namespace`, only
   * the events of that namespace's keys (none of an event without a key).
   */
  watchEvents(options?: WatchEventsOptions): EventWatch;

  /** @param service "sessiond.v1.SessionStore" (default), "sessiond.writes" or "" (the server) */
  checkHealth(service?: string, options?: HealthCheckOptions): Promise<HealthStatus>;
  isServing(): Promise<boolean>;
  waitUntilServing(options?: WaitUntilServingOptions): Promise<void>;
  close(): void;
}

/** `$SESSIOND_TARGET`, else the daemon's default Unix socket. */
export function defaultTarget(): string;
/** Channel arguments: large responses, and grpc's own retry policy for `retriedMethods`. */
export function channelOptions(retriedMethods: readonly string[]): ChannelOptions;

export type IdempotentMethod =
  | 'BuildSessionKey'
  | 'BuildSessionContext'
  | 'GetSession'
  | 'ListSessions'
  | 'HasAnySessions'
  | 'ListExpiredSessions'
  | 'LoadTranscript'
  | 'AppendMessages'
  | 'SetSessionTitle'
  | 'GetSessionTitle'
  | 'FindSessionByTitle'
  | 'NextTitleInLineage'
  | 'GetSessionLineage'
  | 'GetLineageTip'
  | 'SearchSessions'
  | 'SearchMessages'
  | 'GetSessionMetadata'
  | 'ListIdentityLinks';
/**
 * Safe to send twice: reads (the lineage, search, metadata and identity link reads among them), pure rules,
 * AppendMessages once every message has an id, and the title RPCs.
 */
export const IDEMPOTENT_METHODS: readonly IdempotentMethod[];
export const RETRY_POLICY: Readonly<{
  maxAttempts: number;
  initialBackoff: string;
  maxBackoff: string;
  backoffMultiplier: number;
  retryableStatusCodes: readonly string[];
}>;

// -- errors

/** A gRPC status name ("NOT_FOUND"). */
export type StatusName = keyof typeof status;
/** gRPC status codes by name (`Status.NOT_FOUND === 5`). */
export const Status: typeof status;
/** The name of a status code, "UNKNOWN" for a number that is none. */
export function statusName(code: number): StatusName;

/** Any failed call. */
export class SessiondError extends Error {
  /** @param details the server's message (for INVALID_ARGUMENT: "field.path: reason") */
  constructor(code: number, details: string, extra?: { metadata?: Metadata | null; cause?: unknown });
  /** A `Status` value. */
  code: number;
  codeName: StatusName;
  details: string;
  /** The call's trailers. */
  metadata: Metadata | null;
}
/**
 * A request field was rejected. Both properties come from the status's google.rpc.BadRequest
 * detail; without one, from the message ("field.path: reason").
 */
export class InvalidArgumentError extends SessiondError {
  /** @param extra `field` and `description` when known (else read from `metadata`'s detail or `details`) */
  constructor(
    code: number,
    details: string,
    extra?: { metadata?: Metadata | null; cause?: unknown; field?: string; description?: string },
  );
  /** The field (`source.platform`, `messages[3].role`), "" if unknown. */
  field: string;
  /** What is wrong with the field (the whole message if the field is unknown). */
  description: string;
}
/** An unknown session key or session id. */
export class NotFoundError extends SessiondError {}
/** ALREADY_EXISTS: the name is taken (another session has the title); nothing was written. */
export class AlreadyExistsError extends SessiondError {}
/**
 * ABORTED: the entry changed since it was read (`expectedVersion`) or moved on to another id, or
 * a write's `fence` is stale (a newer turn began on its key, or the turn ended); nothing was written.
 */
export class ConflictError extends SessiondError {}
/** The entry's state forbids the change (suspended, leased by another owner; a handoff across namespaces or onto its own key). */
export class FailedPreconditionError extends SessiondError {}
/** The daemon's disk is full or a configured limit was exceeded. */
export class ResourceExhaustedError extends SessiondError {}
/**
 * OUT_OF_RANGE: the events after a watch's cursor are no longer retained (or the cursor is ahead
 * of the daemon's event log, as after a restore); resync with `listSessions`.
 */
export class OutOfRangeError extends SessiondError {}
/** PERMISSION_DENIED: the client's credentials do not reach what the call names (another namespace, a write). */
export class PermissionDeniedError extends SessiondError {}
/** The daemon could not be reached (after the retries that were safe), or it stopped during a watch. */
export class UnavailableError extends SessiondError {}
/** The call's deadline passed; a mutation may or may not have been applied. */
export class DeadlineExceededError extends SessiondError {}

/** The error class for a status code (`SessiondError` itself for the codes without one). */
export function errorClassFor(code: number): typeof SessiondError;
/** The `SessiondError` subclass for a failed grpc-js call; UNKNOWN for anything without a status code. */
export function fromServiceError(error: unknown): SessiondError;

// -- conversions

/** The reference's chat type strings and the contract's enum names. */
export const CHAT_TYPES: Readonly<{
  dm: 'CHAT_TYPE_DM';
  group: 'CHAT_TYPE_GROUP';
  channel: 'CHAT_TYPE_CHANNEL';
  thread: 'CHAT_TYPE_THREAD';
}>;

/** The kinds of session events by this client's names, and the contract's `EventKind` names. */
export const EVENT_KINDS: Readonly<{ [Name in EventKindName]: `EVENT_KIND_${Uppercase<Name>}` }>;

/** The `onConflict` policies of `beginTurn` by this client's names, and the contract's `TurnConflict` names. */
export const TURN_CONFLICTS: Readonly<{ [Name in TurnConflict]: `TURN_CONFLICT_${Uppercase<Name>}` }>;

/** A google.protobuf.Timestamp as proto-loader shapes it. */
export interface Timestamp {
  seconds: number;
  nanos: number;
}
/** Millisecond precision; null when unset. */
export function timestampToDate(timestamp: Partial<Timestamp> | null | undefined): Date | null;
/** @param field names the field in the `InvalidArgumentError` for an invalid time */
export function dateToTimestamp(value: Date | string | number, field: string): Timestamp;

/** A field of a contract message, as read from the loaded descriptors. */
export interface FieldInfo {
  /** lowerCamelCase, as proto-loader names it */
  name: string;
  /** "TYPE_STRING", "TYPE_MESSAGE", ... */
  type: string;
  /** Message or enum type, possibly relative ("SessionSource"); "" for scalars. */
  typeName: string;
  repeated: boolean;
  /** Declared `optional` (has presence). */
  optional: boolean;
  /** A `map<K, V>`: repeated entries on the wire, an object keyed by K in these values. */
  map: boolean;
}

/** Conversions between these values and the messages on the wire (proto-loader's shapes). */
export interface Codec {
  fieldsOf(typeName: string): FieldInfo[];
  /** Every field of the type; unset optionals null. */
  fromProto(typeName: string, message: Record<string, unknown>): Record<string, unknown>;
  sourceToProto(source: SourceArgument): Record<string, unknown>;
  sourceFromProto(message: Record<string, unknown>): SessionSource;
  entryFromProto(message: Record<string, unknown>): SessionEntry;
  leaseFromProto(message: Record<string, unknown>): Lease;
  lineageLinkFromProto(message: Record<string, unknown>): LineageLink;
  summaryFromProto(message: Record<string, unknown>): SessionSummary;
  identityLinkFromProto(message: Record<string, unknown>): IdentityLink;
  handoffFromProto(message: Record<string, unknown>): Handoff;
  turnFromProto(message: Record<string, unknown>): Turn;
  /** A TurnFence message; null for no fence; a TypeError naming the key for anything else (`name`, default "fence", names the argument). */
  fenceToProto(fence: TurnFence | null | undefined, name?: string): { sessionKey: string; fencingToken: number | string } | null;
  /** The contract's TurnConflict name ("reject" for null/undefined); an `InvalidArgumentError` (`on_conflict`) for another name. */
  turnConflictToProto(onConflict: TurnConflict | null | undefined): string;
  /** The window's messages in the replay shape (`messageFromProto`). */
  hitFromProto(message: Record<string, unknown>): SearchHit;
  entryRefToProto(entry: EntryRef): { sessionKey: string; sessionId: string; createdAt: Timestamp; updatedAt: Timestamp };
  messageToProto(message: TranscriptMessage): Record<string, unknown>;
  messageFromProto(proto: Record<string, unknown>): TranscriptMessage;
  /**
   * The wire's `map<string, MetadataValue>` from metadata values; a TypeError naming the key for a
   * value of no kind (`name`, default "metadata", names the argument when it is no object).
   */
  metadataToProto(metadata: SessionMetadataInput | null | undefined, name?: string): Record<string, Record<string, unknown>>;
  /** Plain values from a decoded `map<string, MetadataValue>` ({} when unset; values of no kind this client knows left out). */
  metadataFromProto(map: Record<string, unknown> | null | undefined): SessionMetadata;
  /** Repeated MetadataFilter messages: `equals` unset for a `null`/`undefined` value. */
  metadataFiltersToProto(filters: MetadataFilterInput | null | undefined): { key: string; equals?: Record<string, unknown> }[];
  /** A SessionSelector message; a TypeError naming the key for a key it has not or a value of another type. */
  selectorToProto(selector: SessionSelector): Record<string, unknown>;
  /** The contract's EventKind names; an `InvalidArgumentError` (`kinds`) for a kind the contract does not name. */
  eventKindsToProto(kinds: Iterable<EventKind> | EventKind | null | undefined): string[];
  /** The event's kind by this client's name ("metadata_changed"). */
  eventFromProto(message: Record<string, unknown>): SessionEvent;
}
export function createCodec(definition: PackageDefinition): Codec;

// -- the contract

export interface Contract {
  /** Every loaded type, by full name. */
  definition: PackageDefinition;
  SessionStore: ServiceClientConstructor;
  Health: ServiceClientConstructor;
}
/** The contract loaded from `protosDir` (default: `PROTOS_DIR`), once per directory. */
export function loadContract(protosDir?: string): Contract;
/** The package's `protos/`: the sessiond contract and grpc.health.v1. */
export const PROTOS_DIR: string;
/** How proto-loader shapes messages: lowerCamelCase fields, int64 as numbers, enums as names, defaults, oneof names. */
export const LOADER_OPTIONS: Readonly<{
  keepCase: false;
  longs: NumberConstructor;
  enums: StringConstructor;
  defaults: true;
  oneofs: true;
}>;
export const SERVICE: 'sessiond.v1.SessionStore';
