// The package as a new user gets it: `npm pack` this directory, `npm install` the tarball into a
// project outside the checkout, then, importing the package by its name there, type-check a strict
// TypeScript gateway against the declarations and run a plain ESM gateway against a real daemon.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import * as api from '../src/index.js';
import { PACKAGE_DIR, startDaemon } from './helpers/daemon.js';

const TSC = join(PACKAGE_DIR, 'node_modules/.bin/tsc');
const TSC_ARGS = ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022'];
// The install may fetch the dependencies' metadata from the registry, on a shared machine.
const INSTALL_TIMEOUT_MS = 300_000;
const SESSION_ID = /^\d{8}_\d{6}_[0-9a-f]{8}$/;

/** Without the npm_* variables `npm test` sets: their local prefix would point npm back at this checkout. */
const CHILD_ENV = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('npm_')));

/**
 * Runs a command to its end (killed after `timeoutMs`); resolves to its exit code and output.
 * @param {string} command
 * @param {string[]} args
 * @param {{cwd: string, timeoutMs?: number}} options
 * @returns {Promise<{code: number | null, stdout: string, output: string}>}
 */
function run(command, args, { cwd, timeoutMs = 60_000 }) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: CHILD_ENV, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, output: stdout + stderr }));
  });
}

/**
 * `run`, asserting exit status 0; resolves to its stdout.
 * @param {Parameters<typeof run>} args
 */
async function runOk(...args) {
  const { code, stdout, output } = await run(...args);
  assert.equal(code, 0, `${args[0]} ${args[1].join(' ')} failed:\n${output}`);
  return stdout;
}

/** A gateway as a TypeScript user writes it; only type-checked (gateway.mjs is the one that runs). */
const GATEWAY_TS = `
import * as api from '@sessiond/client';
import {
  AlreadyExistsError,
  ConflictError,
  InvalidArgumentError,
  SessionStoreClient,
  type HealthStatus,
  type SessionEntry,
  type SessionSourceInput,
  type TranscriptMessage,
} from '@sessiond/client';

const store = new SessionStoreClient(process.env.SESSIOND_TARGET, { timeoutMs: 5000 });
const source: SessionSourceInput = { platform: 'telegram', chatId: 12345, chatType: 'dm', userId: '12345' };

export async function onMessage(text: string): Promise<string> {
  const entry: SessionEntry = await store.getOrCreateSession(source);
  const prompt: string = await store.buildSessionContextPrompt(source, { entry, redactPii: true });
  const { messageCount } = await store.appendToTranscript(entry.sessionId, { role: 'user', content: text });
  const history: TranscriptMessage[] = await store.loadTranscript(entry.sessionId);
  try {
    await store.updateSession(entry.sessionKey, { totalTokens: messageCount, expectedVersion: entry.version });
  } catch (error) {
    if (error instanceof InvalidArgumentError) console.warn(error.field, error.description satisfies string);
    if (!(error instanceof ConflictError)) throw error;
    console.warn(error.codeName, error.details);
  }
  const { context } = await store.buildSessionContext(entry.origin ?? { platform: 'telegram', chat_id: '12345' });
  const status: HealthStatus = await store.checkHealth();
  // Titles: set/get resolve to string | null, find to string | null, next to a string.
  const titled = await store.getOrCreateSession(source, { forceNew: true, title: 'Trip' });
  const stored: string | null = await store.setSessionTitle(titled.sessionId, 'Trip to Paris');
  const next: string = await store.nextTitleInLineage(stored ?? 'Trip');
  await store.resetSession(titled.sessionKey, { title: next, expectedVersion: titled.version });
  await store.switchSession(titled.sessionKey, '', { targetTitle: 'Trip' });
  // @ts-expect-error findSessionByTitle resolves to null when no session has the title
  const found: string = await store.findSessionByTitle('Trip');
  // @ts-expect-error a title is a string
  await store.setSessionTitle(titled.sessionId, 42);
  try {
    await store.setSessionTitle(titled.sessionId, 'Taken');
  } catch (error) {
    if (!(error instanceof AlreadyExistsError)) throw error;
  }
  // Lineage: null for an unknown session; a link's reason and parent are null for a root, startedAt a Date.
  const lineage = await store.getSessionLineage(titled.sessionId);
  const startedAt: Date | undefined = lineage?.ancestors[0]?.startedAt;
  const reason: string | null | undefined = lineage?.session.reason;
  const tip: string | null = await store.getLineageTip(titled.sessionId);
  // @ts-expect-error getSessionLineage resolves to null for an unknown session
  const rootId: string = (await store.getSessionLineage('nope')).session.sessionId;
  // @ts-expect-error getLineageTip resolves to null for an unknown session
  const tipId: string = await store.getLineageTip('nope');
  // Search: one page each; times are Dates, a summary's optionals null, window messages transcript messages.
  const searched: api.SearchMessagesResult = await store.searchMessages('zebra', { roles: ['user'], since: new Date(0), window: 2, pageSize: 5 });
  const hit: api.SearchHit | undefined = searched.hits[0];
  const hitTime: Date | null | undefined = hit?.time;
  const around: TranscriptMessage[] | undefined = hit?.window;
  const sessions: api.SessionSummary[] = (await store.searchSessions('trip', { platform: 'telegram', pageToken: searched.nextPageToken })).sessions;
  const endedAt: Date | null | undefined = sessions[0]?.endedAt;
  // @ts-expect-error a summary's title may be null
  const summaryTitle: string = sessions[0].title;
  // @ts-expect-error roles are strings
  await store.searchMessages('zebra', { roles: [1] });
  // @ts-expect-error getSession resolves to null for an unknown key
  const missing: SessionEntry = await store.getSession('agent:main:telegram:dm:nobody');
  // Rewinds, compactions, branches: counts are numbers, a branch's entry null without a key.
  const undone: api.RewindResult = await store.rewindTranscript(entry.sessionId, { turns: 2, append: [{ role: 'user', content: 'again' }] });
  const restored: api.RestoreResult = await store.restoreTranscript(entry.sessionId, { rewind: undone.rewind });
  await store.restoreTranscript(entry.sessionId);
  const everything = await store.loadTranscript(entry.sessionId, { includeHidden: true, raw: true });
  const visibility: api.MessageVisibility | undefined = everything[0]?.visibility;
  const hiddenBy: number | undefined = everything[0]?.hidden_by;
  const compacted: api.CompactResult = await store.compactTranscript(entry.sessionId, 0, everything[1]?.position ?? 1, { role: 'assistant', content: 'summary' });
  const branched: api.BranchResult = await store.branchSession(entry.sessionId, { throughPosition: compacted.summaryPosition, sessionKey: entry.sessionKey, title: null });
  const branchEntry: SessionEntry | null = branched.entry;
  await store.branchSession(entry.sessionId);
  // @ts-expect-error a branch's entry is null when no sessionKey was given
  const branchKey: string = branched.entry.sessionKey;
  // @ts-expect-error turns is a number
  await store.rewindTranscript(entry.sessionId, { turns: '2' });
  // @ts-expect-error a visibility is 'rewound' or 'archived'
  const wrongVisibility: api.MessageVisibility = 'visible';
  // @ts-expect-error compactTranscript takes the summary message
  await store.compactTranscript(entry.sessionId, 0, 1);
  // Metadata: plain values both ways (explicit forms and bigints too); filters on the listings and searches.
  const tagged: api.UpdateMetadataResult = await store.updateSessionMetadata(entry.sessionKey, {
    set: { model: 'gpt-5', priority: 2, ratio: { number: 3 }, pinned: true, tags: ['a'], big: 2n ** 62n, exact: { integer: 7n } },
    remove: ['old'],
    expectedVersion: entry.version,
  });
  const changed: boolean = tagged.changed;
  const tags: api.MetadataValue | undefined = tagged.entry.metadata.tags;
  const metadata: api.SessionMetadata | null = await store.getSessionMetadata(tagged.entry.sessionId);
  const listed: SessionEntry[] = await store.listSessions({ activeMinutes: 5, metadata: { tags: 'a', model: null } });
  const summaryMetadata: api.SessionMetadata | undefined = (await store.searchSessions('trip', { metadata: { priority: 2 } })).sessions[0]?.metadata;
  await store.searchMessages('zebra', { metadata: { pinned: true, owner: undefined } });
  await store.updateSessionMetadata(entry.sessionKey, { set: {}, replace: true });
  // @ts-expect-error a metadata value is no Date
  await store.updateSessionMetadata(entry.sessionKey, { set: { when: new Date() } });
  // @ts-expect-error getSessionMetadata resolves to null for an unknown session
  const noMetadata: api.SessionMetadata = await store.getSessionMetadata('nope');
  // @ts-expect-error a list is no filter
  await store.listSessions({ metadata: { tags: ['a'] } });
  // Retention: selectors in camelCase, numbers back; archived sessions in search on request.
  const planned: api.BulkResult = await store.deleteSessions({ inactiveDays: 30, titled: false, endReasons: ['session_reset'], metadata: { pinned: null } }, { dryRun: true, limit: 10 });
  const remaining: number = planned.remaining;
  await store.archiveSessions({ sessionIds: planned.sessionIds, minMessages: 2n }, { unarchive: true });
  const total: api.BulkResult = await store.deleteAllSessions({ archived: true }, { onProgress: (batch: api.BulkResult) => console.log(batch.sessionKeys) });
  await store.archiveAllSessions({ platform: 'discord' }, { limit: 100, onProgress: async () => {} });
  const archivedAt: Date | null | undefined = (await store.searchSessions('trip', { includeArchived: true })).sessions[0]?.archivedAt;
  await store.searchMessages('zebra', { includeArchived: true });
  // @ts-expect-error the selector's keys are camelCase
  await store.deleteSessions({ inactive_days: 30 });
  // @ts-expect-error titled is a boolean
  await store.archiveSessions({ titled: 'yes' });
  // Events: an async iterable of plain events, its cursor and readiness; kinds by name.
  const watch: api.EventWatch = store.watchEvents({ fromNow: true, kinds: ['created', 'session_deleted'] });
  await watch.ready;
  for await (const event of watch) {
    const kind: api.EventKind = event.kind;
    const when: Date = event.time;
    const previous: string | null = event.previousSessionId;
    const fencingToken: number | null = event.fencingToken;
    const otherSessionKey: string | null = event.otherSessionKey;
    console.log(fencingToken, otherSessionKey);
    if (kind === 'session_deleted') watch.close();
    console.log(when, previous, event.sequence + watch.cursor);
  }
  store.watchEvents({ afterSequence: watch.cursor, kinds: 'expired' }).close();
  const eventNames: api.EventKindName[] = Object.keys(api.EVENT_KINDS) as api.EventKindName[];
  // @ts-expect-error afterSequence is a number
  store.watchEvents({ afterSequence: '5' });
  try {
    await watch.next();
  } catch (error) {
    if (error instanceof api.OutOfRangeError) console.warn('resync', error.details);
  }
  // Identity links, handoffs and turns: results typed, a destination exactly one, a fence a Turn or {sessionKey, fencingToken}.
  const linking = new SessionStoreClient(process.env.SESSIOND_TARGET, { linkIdentities: true });
  const linkResult: api.LinkIdentityResult = await linking.linkIdentity('telegram', '12345', 'alice');
  const previousIdentity: string | null = linkResult.previousIdentity;
  const unlinked: string | null = await store.unlinkIdentity('telegram', '12345');
  const links: api.IdentityLink[] = await store.listIdentityLinks({ identity: 'alice' });
  const handed: api.HandoffResult = await store.handoffSession(entry.sessionKey, { targetSource: { platform: 'discord', chatId: '9' }, releaseSource: true });
  await store.handoffSession(entry.sessionKey, { targetSessionKey: handed.entry.sessionKey, expectedVersion: entry.version });
  // @ts-expect-error exactly one destination
  await store.handoffSession(entry.sessionKey, { targetSessionKey: 'k', targetSource: { platform: 'discord' } });
  // @ts-expect-error a destination is required
  await store.handoffSession(entry.sessionKey, { releaseSource: true });
  const handoffs: api.Handoff[] | undefined = (await store.getSessionLineage(entry.sessionId))?.handoffs;
  const begun: api.BeginTurnResult = await store.beginTurn(entry.sessionKey, 'loop-a', { ttlMs: 30_000, onConflict: 'queue' });
  const interruptedToken: number | undefined = begun.interrupted?.fencingToken;
  await store.appendMessages(entry.sessionId, [{ role: 'user', content: 'x' }], { fence: begun.turn });
  await store.updateSessionMetadata(entry.sessionKey, { set: { a: 1 }, fence: { sessionKey: entry.sessionKey, fencingToken: 2n } });
  await store.compactTranscript(entry.sessionId, 0, 1, { role: 'assistant', content: 's' }, { fence: begun.turn });
  const renewedTurn: api.Turn = await store.renewTurn(begun.turn, { ttlMs: 60_000 });
  const endedTurn: boolean = await store.endTurn(renewedTurn);
  const { abandonedTurns }: api.ExpiredSessionsAndTurns = await store.listExpiredSessionsAndTurns();
  // @ts-expect-error not a conflict policy
  await store.beginTurn(entry.sessionKey, 'loop-a', { onConflict: 'wait' });
  // @ts-expect-error a fence's token is a number or a bigint
  await store.endTurn({ sessionKey: entry.sessionKey, fencingToken: '1' });
  console.log(previousIdentity, unlinked, links.length, handoffs?.length, interruptedToken, endedTurn, abandonedTurns.length);
  // Any string is a chat type ("forum" is none of the enum's names); anything else is not.
  await store.buildSessionKey({ platform: 'telegram', chatId: '-100', chatType: 'forum' });
  // @ts-expect-error not a chat type
  await store.buildSessionKey({ platform: 'telegram', chatType: 3 });
  return [prompt, history.length, context.connectedPlatforms.join(), status, missing.sessionId, found, await store.getSessionTitle(titled.sessionId), startedAt?.toISOString(), reason, tip, rootId, tipId, hitTime, around?.length, endedAt, summaryTitle, searched.indexBuilding, restored.visibleMessages, visibility, hiddenBy, branchEntry?.sessionId, branchKey, wrongVisibility, changed, tags, metadata, listed.length, summaryMetadata, noMetadata, remaining, total.messages, archivedAt, eventNames.length].join(' ');
}

// The declarations export exactly the names index.js does ("Property 'x' is missing" otherwise).
type Runtime = ${Object.keys(api).map((name) => JSON.stringify(name)).join(' | ')};
export const undeclared: Record<Exclude<Runtime, keyof typeof api>, never> = {};
export const notExported: Record<Exclude<keyof typeof api, Runtime>, never> = {};
`;

/** The deliberate mistake: a number where a source is required. */
const MISUSE_TS = `
import { SessionStoreClient } from '@sessiond/client';

await new SessionStoreClient().getOrCreateSession(42);
`;

/** A gateway's loop with the installed package: session for the source, message in, transcript, prompt. */
const GATEWAY_MJS = `
import { PROTOS_DIR, SessionStoreClient } from '@sessiond/client';

const [address, sourceJson] = process.argv.slice(2);
const source = JSON.parse(sourceJson);
const store = new SessionStoreClient(address, { timeoutMs: 10_000 });
try {
  const entry = await store.getOrCreateSession(source);
  const append = await store.appendToTranscript(entry.sessionId, { role: 'user', content: 'hello from the tarball' });
  const transcript = await store.loadTranscript(entry.sessionId);
  const prompt = await store.buildSessionContextPrompt(source, { entry });
  // The google.rpc.BadRequest detail decodes with the package's own protos and dependencies.
  const error = await store.getOrCreateSession({ ...source, platform: 'myspace' }).catch((rejected) => rejected);
  const { fieldViolationOf } = await import('./node_modules/@sessiond/client/src/errors.js');
  const rejected = {
    name: error.name,
    field: error.field,
    description: error.description,
    detail: fieldViolationOf(error.metadata, error.code, error.details),
  };
  console.log(JSON.stringify({ protosDir: PROTOS_DIR, entry, append, transcript, prompt, rejected }));
} finally {
  store.close();
}
`;

/** @type {string} */
let work;
/** @type {string} */
let project;
/** @type {{filename: string, files: {path: string}[]}} */
let tarball;
/** @type {import('./helpers/daemon.js').Daemon | undefined} */
let daemon;

async function packAndInstall() {
  [tarball] = JSON.parse(await runOk('npm', ['pack', '--json', '--pack-destination', work], { cwd: PACKAGE_DIR }));
  await mkdir(project);
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'gateway', private: true, type: 'module' }));
  await runOk('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(work, tarball.filename)], {
    cwd: project,
    timeoutMs: INSTALL_TIMEOUT_MS,
  });
  await Promise.all(
    Object.entries({ 'gateway.ts': GATEWAY_TS, 'misuse.ts': MISUSE_TS, 'gateway.mjs': GATEWAY_MJS }).map(([name, text]) =>
      writeFile(join(project, name), text),
    ),
  );
}

before(
  async () => {
    work = await mkdtemp(join(tmpdir(), 'sessiond-package-'));
    project = join(work, 'gateway');
    // The daemon starts while npm works; both settle before a failure is thrown, so after() can stop it.
    const [started, installed] = await Promise.allSettled([startDaemon(), packAndInstall()]);
    if (started.status === 'fulfilled') daemon = started.value;
    for (const result of [started, installed]) if (result.status === 'rejected') throw result.reason;
  },
  { timeout: INSTALL_TIMEOUT_MS + 60_000 },
);

after(async () => {
  await daemon?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the package installed from its tarball', () => {
  it('holds src/ with the declarations, the .proto files and the README, nothing else', async () => {
    const files = tarball.files.map(({ path }) => path);
    const contract = (await readdir(join(PACKAGE_DIR, 'protos/sessiond/v1'))).map((name) => `protos/sessiond/v1/${name}`);
    const rpc = ['protos/google/rpc/status.proto', 'protos/google/rpc/error_details.proto'];
    for (const path of ['package.json', 'README.md', 'src/index.js', 'src/index.d.ts', 'protos/grpc/health/v1/health.proto', ...rpc, ...contract]) {
      assert.ok(files.includes(path), `${path} is not in ${tarball.filename}`);
    }
    assert.deepEqual(files.filter((path) => !/^(src\/|protos\/|package\.json$|README\.md$)/.test(path)), []);
  });

  it('type-checks a strict TypeScript gateway, and rejects a number for a source', async () => {
    const [gateway, misuse] = await Promise.all([
      run(TSC, [...TSC_ARGS, 'gateway.ts'], { cwd: project }),
      // Only the mistake matters here: the declarations are checked with gateway.ts (this saves seconds).
      run(TSC, [...TSC_ARGS, '--skipLibCheck', 'misuse.ts'], { cwd: project }),
    ]);
    assert.equal(gateway.code, 0, gateway.output);
    assert.notEqual(misuse.code, 0);
    assert.match(misuse.output, /misuse\.ts\(4,\d+\): error TS2345: Argument of type 'number' is not assignable to parameter of type 'SourceArgument'/);
    assert.equal(misuse.output.match(/error TS/g)?.length, 1, misuse.output);
  });

  it('runs a gateway loop against the daemon with the contract inside the package', async () => {
    const source = { platform: 'telegram', chatId: '31337', chatType: /** @type {const} */ ('dm'), userId: '31337', userName: 'Carol' };
    const address = /** @type {import('./helpers/daemon.js').Daemon} */ (daemon).address;
    const out = JSON.parse(await runOk(process.execPath, ['gateway.mjs', address, JSON.stringify(source)], { cwd: project }));

    assert.equal(out.protosDir, join(await realpath(join(project, 'node_modules/@sessiond/client')), 'protos'));
    assert.match(out.entry.sessionId, SESSION_ID);
    assert.deepEqual(out.append, { appended: 1, duplicates: 0, messageCount: 1 });
    assert.deepEqual(out.transcript, [{ role: 'user', content: 'hello from the tarball' }]);
    const violation = { field: 'source.platform', description: "unknown platform 'myspace' (not built in, not a configured plugin)" };
    assert.deepEqual(out.rejected, { name: 'InvalidArgumentError', ...violation, detail: violation });
    // The checkout's client agrees on the key and the prompt.
    const store = new api.SessionStoreClient(address);
    try {
      assert.equal(out.entry.sessionKey, await store.buildSessionKey(source));
      assert.ok(out.prompt.startsWith('## Current Session Context\n'));
      assert.equal(out.prompt, await store.buildSessionContextPrompt(source, { entry: out.entry }));
    } finally {
      store.close();
    }
  });
});
