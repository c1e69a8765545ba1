/**
 * An acknowledged message survives kill -9: a QoS 1/2 PUBLISH is acknowledged only after it is stored for
 * every persistent session it is queued for (and, when retained, as the retained message). The broker runs
 * as a process (`node dist/cli.js`) and is killed with SIGKILL right after a PUBACK, mid-stream and after
 * the last one; after the restart every acknowledged message reaches every persistent session.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { connectMqtt, collectMessages, messagesDuring } from '../support/clients.js';
import { PASSWD, spawnBroker, USERS, type SpawnedBroker } from '../support/broker.js';

let dir: string;
const running: SpawnedBroker[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mab-durability-'));
  await writeFile(join(dir, 'passwd'), PASSWD);
});

afterAll(async () => {
  await Promise.all(running.map((b) => b.stop('SIGKILL')));
});

async function start(name: string): Promise<SpawnedBroker> {
  const file = join(dir, `${name}.json`);
  await writeFile(
    file,
    JSON.stringify({
      listeners: [{ port: 0, host: '127.0.0.1', protocol: 'mqtt' }],
      passwordFile: join(dir, 'passwd'),
      dataDir: join(dir, name),
      persistence: true,
      maxQueuedMessages: 0,
      logLevel: 'warn',
      ops: { port: -1 },
    }),
  );
  const b = await spawnBroker(['serve', '--config', file], {}, 1);
  running.push(b);
  return b;
}

const bob = { username: 'bob', password: USERS.bob, tls: false } as const;

/** Two persistent sessions (v3.1.1 clean session off, v5 with a session expiry) subscribed to dur/#, then offline. */
async function persistentSubscribers(port: number): Promise<void> {
  const v3 = await connectMqtt({ ...bob, port, clientId: 'dur-v3', clean: false });
  await v3.subscribeAsync('dur/#', { qos: 1 });
  await v3.endAsync();
  const v5 = await connectMqtt({ ...bob, port, clientId: 'dur-v5', clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 } });
  await v5.subscribeAsync('dur/#', { qos: 2 });
  await v5.endAsync();
}

/** Publish `count` QoS 1/2 messages as fast as mqtt.js sends them; calls onAck with each acknowledged payload. */
function publishAll(client: MqttClient, count: number, onAck: (payload: string, n: number) => void): void {
  let acked = 0;
  // 16 KiB each, so that a batch takes the store long enough that a kill lands inside a write.
  const padding = 'x'.repeat(16 * 1024);
  for (let i = 0; i < count; i++) {
    const payload = `m-${i}`;
    client.publish('dur/x', `${payload}:${padding}`, { qos: i % 2 === 0 ? 1 : 2 }, (err) => {
      if (err === undefined || err === null) onAck(payload, ++acked);
    });
  }
}

/** Every message a resumed session gets until none came for a while (bounded). */
async function drain(port: number, clientId: string, v5: boolean): Promise<Set<string>> {
  const got = new Set<string>();
  const client = await connectMqtt({ ...bob, port, clientId, clean: false, resubscribe: false, ...(v5 ? { protocolVersion: 5, properties: { sessionExpiryInterval: 3600 } } : {}) });
  for (const m of await messagesDuring(client, 500)) got.add(m.split(':')[1] ?? '');
  client.on('message', (_topic, payload) => got.add(payload.toString().split(':')[0] ?? ''));
  let size = -1;
  for (let rounds = 0; rounds < 60 && size !== got.size; rounds++) {
    size = got.size;
    await new Promise((r) => setTimeout(r, 500));
  }
  await client.endAsync();
  return got;
}

describe('kill -9', () => {
  it.each([
    ['mid-stream, right after a random PUBACK', 'mid'],
    ['right after the last of 2000 PUBACKs', 'end'],
  ])('loses no acknowledged message: %s', async (_label, mode) => {
    const total = 2000;
    const killAt = mode === 'end' ? total : 300 + Math.floor(Math.random() * 1400);
    let broker = await start(`kill-${mode}`);
    const port = broker.ports[0] ?? 0;
    await persistentSubscribers(port);

    const publisher = await connectMqtt({ username: 'cam', password: USERS.cam, tls: false, port, reconnectPeriod: 0 });
    publisher.on('error', () => undefined);
    // A retained message, acknowledged before the stream starts.
    await publisher.publishAsync('dur/retained', 'kept', { qos: 1, retain: true });
    const acked: string[] = [];
    const killed = new Promise<void>((resolve) => {
      publishAll(publisher, total, (payload, n) => {
        if (n > killAt) return;
        acked.push(payload);
        if (n === killAt) {
          broker.child.kill('SIGKILL');
          resolve();
        }
      });
    });
    await killed;
    const exit = await broker.exit;
    expect(exit.signal).toBe('SIGKILL');
    publisher.end(true);
    expect(acked.length).toBe(killAt);

    broker = await start(`kill-${mode}`);
    const again = broker.ports[0] ?? 0;
    for (const [clientId, v5] of [['dur-v3', false], ['dur-v5', true]] as const) {
      const got = await drain(again, clientId, v5);
      const missing = acked.filter((p) => !got.has(p));
      expect(missing, `${clientId}: ${missing.length} of ${acked.length} acknowledged messages lost`).toEqual([]);
    }
    const reader = await connectMqtt({ ...bob, port: again });
    const retained = collectMessages(reader, 1);
    await reader.subscribeAsync('dur/retained', { qos: 1 });
    expect((await retained)[0]).toMatchObject({ payload: 'kept', retain: true });
    await reader.endAsync();
    await broker.stop('SIGTERM');
  });
});
