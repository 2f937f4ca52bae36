// @sessiond/client: the Node.js client of sessiond. See README.md.

export { SessionStoreClient, defaultTarget, channelOptions, IDEMPOTENT_METHODS, RETRY_POLICY } from './client.js';
export {
  SessiondError,
  InvalidArgumentError,
  NotFoundError,
  AlreadyExistsError,
  ConflictError,
  FailedPreconditionError,
  ResourceExhaustedError,
  OutOfRangeError,
  PermissionDeniedError,
  UnavailableError,
  DeadlineExceededError,
  Status,
  statusName,
  errorClassFor,
  fromServiceError,
} from './errors.js';
export { CHAT_TYPES, EVENT_KINDS, TURN_CONFLICTS, createCodec, timestampToDate, dateToTimestamp } from './convert.js';
export { loadContract, PROTOS_DIR, LOADER_OPTIONS, SERVICE } from './proto.js';
