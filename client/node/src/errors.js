// The errors the client rejects with: one class per status a gateway reacts to differently, so
// a gateway tells "the key is gone" from "someone else changed the entry" from "the daemon is
// down" with `instanceof`, without importing grpc. Mirrors sessiond_client.errors (Python).

import { isAbsolute, join } from 'node:path';

import grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';

import { PROTOS_DIR } from './proto.js';

/** gRPC status codes by name (`Status.NOT_FOUND === 5`), as `@grpc/grpc-js` numbers them. */
export const Status = grpc.status;

/** @type {Map<number, string>} */
const NAMES = new Map(
  Object.entries(grpc.status)
    .filter(([, value]) => typeof value === 'number')
    .map(([name, value]) => [/** @type {number} */ (value), name]),
);

/**
 * The name of a status code ("NOT_FOUND"), or "UNKNOWN" for a number that is none.
 * @param {number} code
 */
export function statusName(code) {
  return NAMES.get(code) ?? 'UNKNOWN';
}

/** Any failed call: `code` is the gRPC status number, `codeName` its name, `details` the server's message. */
export class SessiondError extends Error {
  /**
   * @param {number} code  a `Status` value
   * @param {string} details  the server's message (for INVALID_ARGUMENT: "field.path: reason")
   * @param {{metadata?: grpc.Metadata | null, cause?: unknown}} [extra]  the call's trailers, the grpc error
   */
  constructor(code, details, { metadata = null, cause } = {}) {
    super(`${statusName(code)}: ${details}`, cause === undefined ? undefined : { cause });
    this.name = new.target.name;
    /** @type {number} */
    this.code = code;
    /** @type {string} */
    this.codeName = statusName(code);
    /** @type {string} */
    this.details = details;
    /** @type {grpc.Metadata | null} */
    this.metadata = metadata;
  }
}

/** The trailer of the standard rich status: a serialized google.rpc.Status. */
const DETAILS_KEY = 'grpc-status-details-bin';

/** @type {{Status: protobuf.Type, BadRequest: protobuf.Type} | undefined} */
let richStatusTypes;

/**
 * google.rpc.Status and google.rpc.BadRequest, parsed once from the copies in the package's
 * `protos/google/rpc/` (google/protobuf/any and duration are protobufjs's bundled ones).
 */
function richStatus() {
  if (!richStatusTypes) {
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) => (isAbsolute(target) ? target : join(PROTOS_DIR, target));
    root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: true });
    richStatusTypes = { Status: root.lookupType('google.rpc.Status'), BadRequest: root.lookupType('google.rpc.BadRequest') };
  }
  return richStatusTypes;
}

/**
 * The first field violation of the google.rpc.BadRequest in a status's `grpc-status-details-bin`
 * trailer, or null without one. As grpcio-status's `from_call` (the Python client), the rich
 * status counts only when its code and message are the call's; one that does not decode counts
 * as absent.
 * @param {grpc.Metadata | null} metadata  the call's trailers
 * @param {number} code
 * @param {string} details
 * @returns {{field: string, description: string} | null}
 */
export function fieldViolationOf(metadata, code, details) {
  const [bytes] = metadata?.get(DETAILS_KEY) ?? [];
  if (!(bytes instanceof Uint8Array)) return null;
  const { Status, BadRequest } = richStatus();
  const status = /** @type {any} */ (decoded(Status, bytes));
  if (status?.code !== code || status.message !== details) return null;
  for (const detail of status.details) {
    const typeUrl = String(detail.type_url);
    if (typeUrl.slice(typeUrl.lastIndexOf('/') + 1) !== 'google.rpc.BadRequest') continue;
    const [violation] = /** @type {any} */ (decoded(BadRequest, detail.value))?.field_violations ?? [];
    if (violation) return { field: violation.field, description: violation.description };
  }
  return null;
}

/**
 * `bytes` decoded as `type`, or null if they are not one (protobufjs throws on malformed input).
 * @param {protobuf.Type} type
 * @param {Uint8Array} bytes
 */
function decoded(type, bytes) {
  try {
    return type.decode(bytes);
  } catch {
    return null;
  }
}

/**
 * A field and reason read from a message worded like the daemon's ("field.path: reason"): the
 * part before ": " when it holds no space, else "" and the whole message.
 * @param {string} details
 */
function fieldViolationIn(details) {
  const separator = details.indexOf(': ');
  const field = separator >= 0 ? details.slice(0, separator) : '';
  if (!field || field.includes(' ')) return { field: '', description: details };
  return { field, description: details.slice(separator + 2) };
}

/**
 * A request field was rejected; `field` names it (`source.platform`), or is "" if unknown, and
 * `description` says what is wrong with it. The daemon sends both in a google.rpc.BadRequest
 * detail (the `grpc-status-details-bin` trailer), where they are read from; a status without
 * that detail (a proxy that dropped it) falls back to the message, which the daemon words
 * `field.path: reason`.
 */
export class InvalidArgumentError extends SessiondError {
  /**
   * @param {number} code  a `Status` value
   * @param {string} details  the server's message
   * @param {{metadata?: grpc.Metadata | null, cause?: unknown, field?: string, description?: string}} [extra]
   *   the call's trailers, the grpc error; `field` and `description` when known (else read from the trailers or `details`)
   */
  constructor(code, details, extra = {}) {
    super(code, details, extra);
    const { field, description } =
      extra.field !== undefined
        ? { field: extra.field, description: extra.description ?? details }
        : (fieldViolationOf(this.metadata, code, details) ?? fieldViolationIn(details));
    /** @type {string} */
    this.field = field;
    /** @type {string} */
    this.description = description;
  }
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

/** @type {Map<number, typeof SessiondError>} */
const BY_CODE = new Map([
  [Status.INVALID_ARGUMENT, InvalidArgumentError],
  [Status.NOT_FOUND, NotFoundError],
  [Status.ALREADY_EXISTS, AlreadyExistsError],
  [Status.ABORTED, ConflictError],
  [Status.FAILED_PRECONDITION, FailedPreconditionError],
  [Status.RESOURCE_EXHAUSTED, ResourceExhaustedError],
  [Status.OUT_OF_RANGE, OutOfRangeError],
  [Status.PERMISSION_DENIED, PermissionDeniedError],
  [Status.UNAVAILABLE, UnavailableError],
  [Status.DEADLINE_EXCEEDED, DeadlineExceededError],
]);

/**
 * The error class for a status code (`SessiondError` itself for the codes without one).
 * @param {number} code
 */
export function errorClassFor(code) {
  return BY_CODE.get(code) ?? SessiondError;
}

/**
 * The `SessiondError` subclass for a failed grpc-js call; anything without a numeric status
 * code becomes the base class with UNKNOWN, as the Python client does.
 * @param {unknown} error
 * @returns {SessiondError}
 */
export function fromServiceError(error) {
  if (error instanceof SessiondError) return error;
  const candidate = /** @type {{code?: unknown, details?: unknown, message?: unknown, metadata?: unknown}} */ (
    error ?? {}
  );
  if (typeof candidate.code === 'number') {
    const details = typeof candidate.details === 'string' ? candidate.details : String(candidate.message ?? '');
    const metadata = candidate.metadata instanceof grpc.Metadata ? candidate.metadata : null;
    return new (errorClassFor(candidate.code))(candidate.code, details, { metadata, cause: error });
  }
  const details = error instanceof Error ? error.message : String(error);
  return new SessiondError(Status.UNKNOWN, details, { cause: error });
}

/**
 * A client-side INVALID_ARGUMENT, worded like the daemon's ("field.path: reason").
 * @param {string} field
 * @param {string} reason
 */
export function invalidArgument(field, reason) {
  return new InvalidArgumentError(Status.INVALID_ARGUMENT, `${field}: ${reason}`, { field, description: reason });
}
