// Starts the real sessiond daemon for the tests: a child process on a temporary Unix socket and
// database, ready once grpc.health.v1 says SERVING.

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { SessionStoreClient } from '../../src/index.js';

/** client/node/ */
export const PACKAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * The Python that runs the daemon: `$SESSIOND_PYTHON` (a path relative to the working
 * directory, or a command on PATH), else the repository's `.venv/bin/python`.
 */
export function pythonPath() {
  const configured = process.env.SESSIOND_PYTHON;
  if (!configured) return resolve(PACKAGE_DIR, '../../.venv/bin/python');
  return configured.includes('/') ? resolve(configured) : configured;
}

/** The child's environment: no inherited configuration or target of another daemon. */
function childEnv() {
  /** @type {NodeJS.ProcessEnv} */
  const env = { ...process.env, PYTHONUNBUFFERED: '1' };
  delete env.SESSIOND_CONFIG;
  delete env.SESSIOND_TARGET;
  return env;
}

/**
 * Runs `python args...` with `input` on stdin; resolves to its stdout, rejects with its stderr.
 * @param {string[]} args
 * @param {string} [input]
 * @returns {Promise<string>}
 */
export function runPython(args, input = '') {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(pythonPath(), args, { env: childEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolvePromise(stdout);
      else reject(new Error(`${pythonPath()} ${args.join(' ')} exited ${code}:\n${stderr}`));
    });
    child.stdin.end(input);
  });
}

/**
 * @typedef {object} Daemon
 * @property {string} address  "unix:/tmp/.../sessiond.sock"
 * @property {string} socket
 * @property {string} database
 * @property {import('node:child_process').ChildProcess} process
 * @property {() => string} stderr  everything the daemon logged so far
 * @property {() => Promise<{code: number | null, signal: string | null}>} stop  SIGTERM, wait for the exit, remove the files
 */

/**
 * Starts `python -m sessiond.cli serve` on a temporary socket and database and waits until its
 * health check answers SERVING (retrying until `readyTimeoutMs`; fails early if it exits).
 * `args` are more arguments of `serve`, `env` more environment variables.
 * @param {{readyTimeoutMs?: number, args?: string[], env?: NodeJS.ProcessEnv}} [options]
 * @returns {Promise<Daemon>}
 */
export async function startDaemon({ readyTimeoutMs = 30_000, args = [], env = {} } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'sessiond-node-'));
  const socket = join(dir, 'sessiond.sock');
  const database = join(dir, 'sessiond.db');
  const python = pythonPath();
  const child = spawn(python, ['-m', 'sessiond.cli', 'serve', '--socket', socket, '--db', database, ...args], {
    cwd: dir,
    env: { ...childEnv(), ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
  /** @type {Promise<{code: number | null, signal: string | null}>} */
  const exited = new Promise((resolveExit) => {
    child.once('error', (error) => {
      stderr += `\ncannot run ${python}: ${error.message} (set SESSIOND_PYTHON to the venv's python)`;
      resolveExit({ code: null, signal: null });
    });
    child.once('exit', (code, signal) => resolveExit({ code, signal }));
  });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const address = `unix:${socket}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const result = await exited;
    clearTimeout(timer);
    process.removeListener('exit', killOnExit);
    await rm(dir, { recursive: true, force: true });
    return result;
  };

  const giveUp = new AbortController();
  /** @type {SessionStoreClient | undefined} */
  let probe;
  try {
    // Created in here, so that a client that cannot be created (a bad proto copy) still stops the
    // child instead of leaving it running and the test run hanging. Short reconnect backoff: the
    // socket appears a moment after the process starts.
    probe = new SessionStoreClient(address, {
      timeoutMs: 2000,
      channelOptions: { 'grpc.initial_reconnect_backoff_ms': 50, 'grpc.max_reconnect_backoff_ms': 250 },
    });
    const early = exited.then(({ code, signal }) => {
      throw new Error(`sessiond exited (code ${code}, signal ${signal}) before serving`);
    });
    early.catch(() => {}); // once serving, the daemon's exit is stop()'s business
    await Promise.race([probe.waitUntilServing({ timeoutMs: readyTimeoutMs, signal: giveUp.signal }), early]);
  } catch (error) {
    await stop();
    throw new Error(`sessiond did not become SERVING: ${/** @type {Error} */ (error).message}\n${stderr}`);
  } finally {
    giveUp.abort();
    probe?.close();
  }
  return { address, socket, database, process: child, stderr: () => stderr, stop };
}
