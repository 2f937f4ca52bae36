import assert from 'node:assert/strict';

import { SessiondError } from '../../src/index.js';

/**
 * Asserts that `promise` rejects with an instance of `type` carrying `code`; returns the error.
 * @template {typeof SessiondError} T
 * @param {Promise<unknown>} promise
 * @param {T} type
 * @param {number} code
 * @returns {Promise<InstanceType<T>>}
 */
export async function rejectsWith(promise, type, code) {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof type, `expected ${type.name}, got ${/** @type {Error} */ (error)?.constructor?.name}: ${error}`);
    assert.ok(error instanceof SessiondError);
    assert.equal(/** @type {SessiondError} */ (error).code, code);
    return /** @type {InstanceType<T>} */ (error);
  }
  assert.fail(`expected a ${type.name}, but the call succeeded`);
}
