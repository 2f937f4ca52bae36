// INVALID_ARGUMENT from a scripted @grpc/grpc-js server: the field and its description come from the
// status's google.rpc.BadRequest detail (the `grpc-status-details-bin` trailer) whatever the message
// says, and from the message only when there is no usable detail (a proxy dropped it, say).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';

import { InvalidArgumentError, PROTOS_DIR, SessionStoreClient, Status, loadContract } from '../src/index.js';

// The test's own encoder, from the package's copies of google/rpc/*.proto.
const root = new protobuf.Root();
root.resolvePath = (/** @type {string} */ _origin, /** @type {string} */ target) => join(PROTOS_DIR, target);
root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: true });
const RpcStatus = root.lookupType('google.rpc.Status');
const BadRequest = root.lookupType('google.rpc.BadRequest');
const ErrorInfo = root.lookupType('google.rpc.ErrorInfo');

/**
 * A google.rpc.Any of `message` as `type`.
 * @param {protobuf.Type} type
 * @param {Record<string, unknown>} message
 */
function any(type, message) {
  return { type_url: `type.googleapis.com/${type.fullName.slice(1)}`, value: type.encode(type.fromObject(message)).finish() };
}

/** @param {[string, string][]} violations */
function badRequest(...violations) {
  return any(BadRequest, { field_violations: violations.map(([field, description]) => ({ field, description })) });
}

/**
 * The serialized google.rpc.Status the daemon puts in `grpc-status-details-bin`.
 * @param {string} message
 * @param {{type_url: string, value: Uint8Array}[]} details
 * @param {number} [code]
 */
function richStatus(message, details, code = Status.INVALID_ARGUMENT) {
  return Buffer.from(RpcStatus.encode(RpcStatus.fromObject({ code, message, details })).finish());
}

const MISLEADING = 'messages[0].role: required'; // names another field than the detail does

/** @type {{message: string, trailer: Buffer | null} | null} */
let script = null;
/** @type {grpc.Server} */
let server;
/** @type {SessionStoreClient} */
let store;

before(async () => {
  server = new grpc.Server();
  server.addService(loadContract().SessionStore.service, {
    GetSession: (/** @type {unknown} */ _call, /** @type {grpc.sendUnaryData<unknown>} */ callback) => {
      const metadata = new grpc.Metadata();
      if (script?.trailer) metadata.set('grpc-status-details-bin', script.trailer);
      callback({ code: Status.INVALID_ARGUMENT, details: script?.message ?? '', metadata });
    },
  });
  const port = await new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  store = new SessionStoreClient(`127.0.0.1:${port}`, { timeoutMs: 5000 });
});

after(() => {
  store?.close();
  server?.forceShutdown();
});

/**
 * The InvalidArgumentError a call gets when the server answers `message` with `trailer`.
 * @param {string} message
 * @param {Buffer | null} trailer
 */
async function rejection(message, trailer) {
  script = { message, trailer };
  const error = await store.getSession('k').then(
    () => assert.fail('the call succeeded'),
    (/** @type {unknown} */ rejected) => rejected,
  );
  assert.ok(error instanceof InvalidArgumentError, String(error));
  assert.equal(error.details, message);
  return { field: error.field, description: error.description };
}

describe('INVALID_ARGUMENT from a scripted grpc-js server', () => {
  it('takes the field and description from the BadRequest detail, not from the message', async () => {
    const detail = richStatus(MISLEADING, [badRequest(['source.platform', 'unknown platform'])]);
    assert.deepEqual(await rejection(MISLEADING, detail), { field: 'source.platform', description: 'unknown platform' });
    const unparsable = richStatus('rejected', [badRequest(['messages[3].role', 'required'])]);
    assert.deepEqual(await rejection('rejected', unparsable), { field: 'messages[3].role', description: 'required' });
    const second = richStatus(MISLEADING, [any(ErrorInfo, { reason: 'x' }), badRequest(['a.b', 'c'], ['d', 'e'])]);
    assert.deepEqual(await rejection(MISLEADING, second), { field: 'a.b', description: 'c' });
  });

  it('falls back to the message without a usable detail', async () => {
    const fallback = { field: 'messages[0].role', description: 'required' };
    assert.deepEqual(await rejection(MISLEADING, null), fallback, 'no trailer');
    assert.deepEqual(await rejection('a sentence: with a colon', null), { field: '', description: 'a sentence: with a colon' });
    assert.deepEqual(await rejection(MISLEADING, richStatus(MISLEADING, [badRequest()])), fallback, 'no violation');
    assert.deepEqual(await rejection(MISLEADING, richStatus(MISLEADING, [any(ErrorInfo, { reason: 'x' })])), fallback, 'no BadRequest');
    // A rich status that is not the call's (as grpcio-status, which refuses it in the Python client).
    const otherMessage = richStatus('source.platform: x', [badRequest(['source.platform', 'x'])]);
    assert.deepEqual(await rejection(MISLEADING, otherMessage), fallback, 'another message');
    const otherCode = richStatus(MISLEADING, [badRequest(['a', 'b'])], Status.NOT_FOUND);
    assert.deepEqual(await rejection(MISLEADING, otherCode), fallback, 'another code');
    assert.deepEqual(await rejection(MISLEADING, Buffer.from([0xff, 0xff, 0x20])), fallback, 'bytes that are no Status');
  });
});
