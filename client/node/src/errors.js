// The errors the client rejects with: one class per status a gateway reacts to differently, so
// a gateway tells "the key is gone" from "someone else changed the entry" from "the daemon is
// down" with `instanceof`, without importing grpc. Mirrors sessiond_client.errors (Python).

import grpc from '@grpc/grpc-js';

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

/**
 * A request field was rejected; `field` names it (`source.platform`), or is "" if unknown.
 * The daemon phrases these as `field.path: reason`, so the field is the part before the colon.
 */
export class InvalidArgumentError extends SessiondError {
  /** @param {ConstructorParameters<typeof SessiondError>} args */
  constructor(...args) {
    super(...args);
    const separator = this.details.indexOf(': ');
    const field = separator >= 0 ? this.details.slice(0, separator) : '';
    /** @type {string} */
    this.field = field.includes(' ') ? '' : field;
  }
}

/** An unknown session key or session id. */
export class NotFoundError extends SessiondError {}

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

/** @type {Map<number, typeof SessiondError>} */
const BY_CODE = new Map([
  [Status.INVALID_ARGUMENT, InvalidArgumentError],
  [Status.NOT_FOUND, NotFoundError],
  [Status.ABORTED, ConflictError],
  [Status.FAILED_PRECONDITION, FailedPreconditionError],
  [Status.RESOURCE_EXHAUSTED, ResourceExhaustedError],
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
  return new InvalidArgumentError(Status.INVALID_ARGUMENT, `${field}: ${reason}`);
}
