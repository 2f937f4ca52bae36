// Loading the contract at run time with @grpc/proto-loader: no generated code, no build step,
// always in step with the .proto files of the checkout.

import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const HERE = dirname(fileURLToPath(import.meta.url));

/** The contract: `protos/` of the repository (this package lives in `client/node/`). */
export const PROTOS_DIR = resolve(HERE, '../../../protos');
/** The standard grpc.health.v1 service, vendored (the contract does not include it). */
export const VENDORED_PROTOS_DIR = resolve(HERE, '../protos');

export const SERVICE = 'sessiond.v1.SessionStore';
export const PACKAGE = 'sessiond.v1';

/**
 * How proto-loader shapes messages in JavaScript. Field names are converted to lowerCamelCase
 * (`keepCase: false`, as in the protobuf JSON mapping): `sessionKey`, `chatId`. int64 values
 * are plain numbers, enums their names, unset scalars their defaults; fields declared
 * `optional` and oneof members stay absent when unset, and `oneofs: true` says which member of
 * a oneof is set (`content: 'text'`).
 */
export const LOADER_OPTIONS = Object.freeze({
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
});

/**
 * @typedef {object} Contract
 * @property {protoLoader.PackageDefinition} definition  every loaded type, by full name
 * @property {grpc.ServiceClientConstructor} SessionStore  client constructor of the store
 * @property {grpc.ServiceClientConstructor} Health  client constructor of grpc.health.v1.Health
 */

/** @type {Map<string, Contract>} */
const cache = new Map();

/**
 * The contract loaded from `protosDir` (default: the repository's `protos/`), once per dir.
 * @param {string} [protosDir]
 * @returns {Contract}
 */
export function loadContract(protosDir = PROTOS_DIR) {
  const cached = cache.get(protosDir);
  if (cached) return cached;
  const definition = protoLoader.loadSync(
    ['sessiond/v1/session_store.proto', 'grpc/health/v1/health.proto'],
    { ...LOADER_OPTIONS, includeDirs: [protosDir, VENDORED_PROTOS_DIR] },
  );
  const loaded = /** @type {any} */ (grpc.loadPackageDefinition(definition));
  const contract = {
    definition,
    SessionStore: loaded.sessiond.v1.SessionStore,
    Health: loaded.grpc.health.v1.Health,
  };
  cache.set(protosDir, contract);
  return contract;
}
