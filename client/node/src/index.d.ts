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
}

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

export interface UpdateSessionOptions extends VersionCondition {
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

export interface SearchSessionsOptions extends SearchPageOptions {
  /** Only sessions of this platform. */
  platform?: string | null;
}

export interface SearchMessagesOptions extends SearchPageOptions {
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

export interface RewindTranscriptOptions {
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
  listSessions(options?: { activeMinutes?: number | null }): Promise<SessionEntry[]>;
  hasAnySessions(): Promise<boolean>;
  listExpiredSessions(): Promise<SessionEntry[]>;
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

  appendMessages(sessionId: string, messages: Iterable<TranscriptMessage>): Promise<AppendResult>;
  /** Gives the message a random `message_id` unless it has one; `skipDb: true` sends nothing. */
  appendToTranscript(sessionId: string, message: TranscriptMessage, options: { skipDb: true }): Promise<null>;
  appendToTranscript(sessionId: string, message: TranscriptMessage, options?: { skipDb?: false }): Promise<AppendResult>;
  appendToTranscript(sessionId: string, message: TranscriptMessage, options?: { skipDb?: boolean }): Promise<AppendResult | null>;
  rewriteTranscript(sessionId: string, messages: Iterable<TranscriptMessage>): Promise<number>;
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
  compactTranscript(sessionId: string, firstPosition: number, lastPosition: number, summary: TranscriptMessage): Promise<CompactResult>;

  /** One page of the sessions whose id starts with `query`, or whose title does ignoring case and punctuation; newest first. */
  searchSessions(query: string, options?: SearchSessionsOptions): Promise<SearchSessionsResult>;
  /**
   * One page of a full-text search over transcripts, best first: words that must all occur,
   * "quoted phrases", `word*` prefixes. `InvalidArgumentError` for a query without a letter or
   * digit, `FailedPreconditionError` when the daemon has no full-text index.
   */
  searchMessages(query: string, options?: SearchMessagesOptions): Promise<SearchMessagesResult>;

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
  | 'SearchMessages';
/** Safe to send twice: reads (the lineage and search RPCs among them), pure rules, AppendMessages once every message has an id, and the title RPCs. */
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
/** ABORTED: the entry changed since it was read (`expectedVersion`) or moved on to another id. */
export class ConflictError extends SessiondError {}
/** The entry's state forbids the change (suspended, leased by another owner). */
export class FailedPreconditionError extends SessiondError {}
/** The daemon's disk is full or a configured limit was exceeded. */
export class ResourceExhaustedError extends SessiondError {}
/** The daemon could not be reached (after the retries that were safe). */
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
  /** The window's messages in the replay shape (`messageFromProto`). */
  hitFromProto(message: Record<string, unknown>): SearchHit;
  entryRefToProto(entry: EntryRef): { sessionKey: string; sessionId: string; createdAt: Timestamp; updatedAt: Timestamp };
  messageToProto(message: TranscriptMessage): Record<string, unknown>;
  messageFromProto(proto: Record<string, unknown>): TranscriptMessage;
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
