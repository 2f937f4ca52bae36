// Loading the contract at run time with @grpc/proto-loader: no generated code, no build step.
// The .proto files travel inside the package (`protos/`, a copy of the repository's that
// `make proto` refreshes), so an installed copy needs nothing outside itself.

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const HERE = dirname(fileURLToPath(import.meta.url));

/** The package's `protos/`: the sessiond contract and the standard grpc.health.v1 service. */
export const PROTOS_DIR = resolve(HERE, '../protos');
const STORE_PROTO = 'sessiond/v1/session_store.proto';

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
 * The contract loaded from `protosDir` (default: the package's `protos/`), once per dir.
 * Another `protosDir` (e.g. a checkout's `protos/`) needs only the sessiond files: grpc.health
 * comes from the package's.
 * @param {string} [protosDir]
 * @returns {Contract}
 */
export function loadContract(protosDir = PROTOS_DIR) {
  const cached = cache.get(protosDir);
  if (cached) return cached;
  // Checked here because proto-loader would quietly take the package's copy from the second include dir.
  if (!existsSync(join(protosDir, STORE_PROTO))) throw new Error(`sessiond client: no ${STORE_PROTO} in ${protosDir}`);
  const definition = protoLoader.loadSync([STORE_PROTO, 'grpc/health/v1/health.proto'], {
    ...LOADER_OPTIONS,
    includeDirs: [protosDir, PROTOS_DIR],
  });
  const loaded = /** @type {any} */ (grpc.loadPackageDefinition(definition));
  const contract = {
    definition,
    SessionStore: loaded.sessiond.v1.SessionStore,
    Health: loaded.grpc.health.v1.Health,
  };
  cache.set(protosDir, contract);
  return contract;
}
