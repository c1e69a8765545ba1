/**
 * The child of test/unit/store-crash.test.ts: writes to a LevelStore as fast as it can until it is killed.
 * Usage: node store-crash-child.mjs DIR PRODUCERS WINDOW. Each producer (client id `p:N`) queues entries
 * with increasing seq, deleting the one WINDOW places back, in groups of 1-20, awaits flush() after each
 * group and then prints `N SEQ` (every seq below SEQ is durable). The producers run concurrently, so
 * their flushes share batches. Bounded: it stops by itself after 20 s or 1,000,000 entries per producer.
 * It runs the built code (dist/): `npm test` builds first.
 */
import { pino } from 'pino';
import { LevelStore } from '../../dist/broker/store/level.js';

const [dir, producers, window] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const store = await LevelStore.open(dir, pino({ level: 'silent' }));
await store.load();
const deadline = Date.now() + 20_000;

function payload(p, seq) {
  const b = Buffer.alloc(100, 0x2e);
  b.write(`${p}:${seq}:`);
  return b;
}

async function produce(p) {
  const clientId = `p:${p}`;
  store.putSession({ clientId, expiryInterval: 0xffffffff, protocolVersion: 4, subscriptions: [] });
  let seq = 0;
  while (seq < 1_000_000 && Date.now() < deadline) {
    for (let n = 1 + Math.floor(Math.random() * 20); n > 0; n--, seq++) {
      const message = { topic: `t/${p}`, payload: payload(p, seq), qos: 1, retain: false };
      store.putQueued(clientId, { seq, qos: 1, retain: false, state: 'queued', message });
      if (seq >= window) store.deleteQueued(clientId, seq - window);
    }
    await store.flush();
    process.stdout.write(`${p} ${seq}\n`); // a pipe: written synchronously, before anything else runs
  }
}

await Promise.all(Array.from({ length: producers }, (_, p) => produce(p)));
await store.close();
