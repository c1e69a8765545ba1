// The load generator, a child process of bench/run.js (pinned to its own core): receives one
// { kind, target, params, ctx } over IPC, runs it, answers { result } or { error }, and exits.
// It exits too when the harness goes away.
import { kinds } from './lib/scenarios.js';

process.on('disconnect', () => process.exit(0));

process.once('message', async (msg) => {
  let reply;
  try {
    const run = kinds[msg.kind];
    if (run === undefined) throw new Error(`unknown scenario kind ${msg.kind}`);
    reply = { result: await run(msg.target, msg.params, msg.ctx) };
  } catch (err) {
    reply = { error: err instanceof Error ? `${err.message}\n${err.stack}` : String(err) };
  }
  process.send(reply, () => process.exit(0));
});

process.send({ ready: true });
