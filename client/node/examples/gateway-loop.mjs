#!/usr/bin/env node
// A gateway's message loop against sessiond, with the platform side simulated:
// receive a message → getOrCreateSession → buildSessionContext prompt → appendToTranscript
// (the user's message and the agent's reply) → loadTranscript.
//
//   node examples/gateway-loop.mjs unix:/path/to/sessiond.sock
//   node examples/gateway-loop.mjs 127.0.0.1:50051
//   node examples/gateway-loop.mjs            # $SESSIOND_TARGET or the default socket

import { SessionStoreClient, SessiondError, defaultTarget } from '@sessiond/client';

const address = process.argv[2] ?? defaultTarget();

/** What the platform adapter would deliver (here: two turns of one Telegram DM). */
const inbox = [
  {
    source: { platform: 'telegram', chatId: '12345', chatType: 'dm', userId: '12345', userName: 'Alice' },
    text: 'Hi! Can you remind me what we talked about?',
  },
  {
    source: { platform: 'telegram', chatId: '12345', chatType: 'dm', userId: '12345', userName: 'Alice' },
    text: 'Thanks, that is all for now.',
  },
];

/** Stands in for the model call. */
function agentReply(/** @type {string} */ systemPrompt, /** @type {{role: string}[]} */ history) {
  const userTurns = history.filter((m) => m.role === 'user').length;
  return `(agent, ${systemPrompt.length}-char context, ${userTurns} user turn(s) so far) Noted.`;
}

const store = new SessionStoreClient(address, { timeoutMs: 5000 });
try {
  await store.waitUntilServing({ timeoutMs: 5000 });
  console.log(`connected to sessiond at ${address}`);
  for (const { source, text } of inbox) {
    console.log(`\n<- message from ${source.platform}:${source.chatId}: ${JSON.stringify(text)}`);

    const entry = await store.getOrCreateSession(source);
    console.log(`session ${entry.sessionKey} -> ${entry.sessionId} (version ${entry.version})`);
    if (entry.wasAutoReset) console.log(`   (previous session reset: ${entry.autoResetReason})`);

    const prompt = await store.buildSessionContextPrompt(source, { entry });
    console.log('context prompt:');
    console.log(prompt.replace(/^/gm, '   | '));

    await store.appendToTranscript(entry.sessionId, { role: 'user', content: text });
    const history = await store.loadTranscript(entry.sessionId);
    const reply = agentReply(prompt, history);
    await store.appendToTranscript(entry.sessionId, { role: 'assistant', content: reply, finish_reason: 'stop' });
    await store.updateSession(entry.sessionKey, { inputTokens: 120, outputTokens: 30, totalTokens: 150 });
    console.log(`-> reply: ${reply}`);

    const transcript = await store.loadTranscript(entry.sessionId);
    console.log(`transcript of ${entry.sessionId}: ${transcript.length} messages`);
    for (const message of transcript) console.log(`   ${message.role}: ${JSON.stringify(message.content)}`);
  }
} catch (error) {
  if (error instanceof SessiondError) {
    console.error(`sessiond call failed: ${error.message}`);
    process.exitCode = 1;
  } else {
    throw error;
  }
} finally {
  store.close();
}
