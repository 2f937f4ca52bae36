// Reading an `EventWatch` in the tests: wait for the events themselves, with a deadline, never
// for a fixed time.

import assert from 'node:assert/strict';

/** How long a test waits for the events it expects. */
export const EVENT_TIMEOUT_MS = 10_000;

/**
 * The watch's next `count` events, waiting for them until `timeoutMs`; fails with the events seen
 * so far when the watch ends or the time is up (and then closes the watch, so nothing stays
 * pending).
 * @param {import('../../src/index.js').EventWatch} watch
 * @param {number} count
 * @param {{timeoutMs?: number}} [options]
 * @returns {Promise<import('../../src/index.js').SessionEvent[]>}
 */
export async function takeEvents(watch, count, { timeoutMs = EVENT_TIMEOUT_MS } = {}) {
  /** @type {import('../../src/index.js').SessionEvent[]} */
  const events = [];
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  const TIMED_OUT = Symbol('timed out');
  /** @type {Promise<typeof TIMED_OUT>} */
  const deadline = new Promise((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), timeoutMs);
  });
  try {
    while (events.length < count) {
      const result = await Promise.race([watch.next(), deadline]);
      const seen = () => `${events.length} of ${count} events: ${JSON.stringify(events)}`;
      if (result === TIMED_OUT) {
        watch.close();
        assert.fail(`no more events within ${timeoutMs} ms after ${seen()}`);
      }
      if (result.done) assert.fail(`the watch ended after ${seen()}`);
      events.push(result.value);
    }
    return events;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The fields a test compares of each event: kind, key, id, reason.
 * @param {import('../../src/index.js').SessionEvent[]} events
 */
export function summaries(events) {
  return events.map(({ kind, sessionKey, sessionId, reason }) => ({ kind, sessionKey, sessionId, reason }));
}
