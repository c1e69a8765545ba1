/**
 * The broker as a process (`node dist/cli.js`): SIGTERM with clients connected exits 0 and flushes
 * persistence; retained messages and a persistent session's queued QoS 1 message survive the restart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { connectMqtt, collectMessages, messagesDuring } from '../support/clients.js';
import { processBrokerConfig, spawnBroker, USERS, type SpawnedBroker } from '../support/broker.js';
import type { TestPki } from '../support/tls.js';

let dir: string;
let pki: TestPki;
let configFile: string;
const running: SpawnedBroker[] = [];

beforeAll(async () => {
  ({ dir, pki, configFile } = await processBrokerConfig('mab-process-'));
});

afterAll(async () => {
  await Promise.all(running.map((b) => b.stop('SIGKILL')));
});

async function start(): Promise<SpawnedBroker> {
  return start2(configFile);
}

async function start2(file: string): Promise<SpawnedBroker> {
  const b = await spawnBroker(['serve', '--config', file], {}, 1);
  running.push(b);
  return b;
}

describe('process lifecycle', () => {
  it('keeps retained messages and queued QoS 1 messages of persistent sessions across a SIGTERM restart', async () => {
    let broker = await start();
    let port = broker.ports[0] ?? 0;
    const ca = pki.ca.cert;

    // Home Assistant style persistent session: subscribe, then go away.
    const ha = await connectMqtt({ port, ca, username: 'bob', password: USERS.bob, clientId: 'homeassistant-1', clean: false });
    await ha.subscribeAsync('home/#', { qos: 1 });
    await ha.endAsync();

    const cam = await connectMqtt({ port, ca, username: 'cam', password: USERS.cam });
    await cam.publishAsync('home/status', 'online', { qos: 1, retain: true });
    await cam.publishAsync('home/door', 'opened', { qos: 1 });
    // A client still connected while SIGTERM arrives must not stop the shutdown.
    const stillConnected = await connectMqtt({ port, ca, username: 'cam', password: USERS.cam });
    const closedByBroker = new Promise<void>((r) => stillConnected.once('close', () => r()));

    const exit = await broker.stop('SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    await closedByBroker;
    expect(broker.logs.find('stopped')).toBeDefined();
    await cam.endAsync(true);
    stillConnected.end(true);

    broker = await start();
    port = broker.ports[0] ?? 0;

    const back = await connectMqtt({ port, ca, username: 'bob', password: USERS.bob, clientId: 'homeassistant-1', clean: false, resubscribe: false });
    const queued = collectMessages(back, 2);
    expect(back.connected).toBe(true);
    // Both were published while the session was offline, so both were queued, in order.
    const messages = await queued;
    expect(messages.map((m) => [m.topic, m.payload, m.qos])).toEqual([
      ['home/status', 'online', 1],
      ['home/door', 'opened', 1],
    ]);
    await back.endAsync();

    const fresh = await connectMqtt({ port, ca, username: 'cam', password: USERS.cam });
    const retained = collectMessages(fresh, 1);
    await fresh.subscribeAsync('home/status', { qos: 1 });
    expect((await retained)[0]).toMatchObject({ topic: 'home/status', payload: 'online', retain: true });
    await fresh.endAsync();

    expect((await broker.stop('SIGTERM')).code).toBe(0);
  });

  it('a clean session after a persistent one discards its stored queue; QoS 2 from clean clients is delivered once', async () => {
    const broker = await start();
    const port = broker.ports[0] ?? 0;
    const ca = pki.ca.cert;
    const offline = await connectMqtt({ port, ca, username: 'bob', password: USERS.bob, clientId: 'switcher', clean: false });
    await offline.subscribeAsync('switch/#', { qos: 1 });
    await offline.endAsync();
    const pub = await connectMqtt({ port, ca, username: 'cam', password: USERS.cam });
    await pub.publishAsync('switch/a', 'queued-1', { qos: 1 });
    await pub.publishAsync('switch/b', 'queued-2', { qos: 1 });

    // Clean session with the same id: MQTT-3.1.2-6, the old session and its queue are gone.
    const clean = await connectMqtt({ port, ca, username: 'bob', password: USERS.bob, clientId: 'switcher', clean: true });
    const nothing = messagesDuring(clean, 500);
    expect(await nothing).toEqual([]);
    // QoS 2 from and to clean clients, exactly once.
    await clean.subscribeAsync('q2/#', { qos: 2 });
    const got = collectMessages(clean, 3);
    for (const m of ['x', 'y', 'z']) await pub.publishAsync('q2/t', m, { qos: 2 });
    expect((await got).map((m) => `${m.payload}@${m.qos}`)).toEqual(['x@2', 'y@2', 'z@2']);
    expect(await messagesDuring(clean, 300)).toEqual([]);
    await clean.endAsync();

    // A persistent session again: nothing of the discarded queue comes back.
    const again = await connectMqtt({ port, ca, username: 'bob', password: USERS.bob, clientId: 'switcher', clean: false });
    expect(await messagesDuring(again, 700)).toEqual([]);
    await Promise.all([again.endAsync(), pub.endAsync()]);
    expect((await broker.stop('SIGTERM')).code).toBe(0);
  });

  it('after a restart, a clean CONNECT still ends the stored persistent session of its client id', async () => {
    let broker = await start();
    const ca = pki.ca.cert;
    const first = await connectMqtt({ port: broker.ports[0] ?? 0, ca, username: 'bob', password: USERS.bob, clientId: 'restart-clean', clean: false });
    await first.subscribeAsync('rc/#', { qos: 1 });
    await first.endAsync();
    expect((await broker.stop('SIGTERM')).code).toBe(0);

    broker = await start();
    const port = broker.ports[0] ?? 0;
    const clean = await connectMqtt({ port, ca, username: 'bob', password: USERS.bob, clientId: 'restart-clean', clean: true });
    await clean.endAsync();
    const pub = await connectMqtt({ port, ca, username: 'cam', password: USERS.cam });
    await pub.publishAsync('rc/x', 'must not be queued', { qos: 1 });
    const again = await connectMqtt({ port, ca, username: 'bob', password: USERS.bob, clientId: 'restart-clean', clean: false, resubscribe: false });
    // Had the old subscription survived, rc/x would have been queued for this session and delivered now.
    expect(await messagesDuring(again, 700)).toEqual([]);
    await Promise.all([again.endAsync(), pub.endAsync()]);
    expect((await broker.stop('SIGTERM')).code).toBe(0);
  });

  it('publishes the will of a client that vanishes, and not that of one that says goodbye', async () => {
    const broker = await start();
    const port = broker.ports[0] ?? 0;
    const ca = pki.ca.cert;
    const watcher = await connectMqtt({ port, ca, username: 'bob', password: USERS.bob });
    await watcher.subscribeAsync('status/#', { qos: 1 });
    const will = (id: string) => ({ topic: `status/${id}`, payload: Buffer.from('offline'), qos: 1 as const, retain: false });
    const polite = await connectMqtt({ port, ca, username: 'cam', password: USERS.cam, clientId: 'polite', will: will('polite') });
    await polite.endAsync();
    const vanishing = await connectMqtt({ port, ca, username: 'cam', password: USERS.cam, clientId: 'vanishing', will: will('vanishing') });
    const got = collectMessages(watcher, 1);
    vanishing.stream.destroy();
    expect((await got)[0]).toMatchObject({ topic: 'status/vanishing', payload: 'offline' });
    expect(await messagesDuring(watcher, 400)).toEqual([]);
    vanishing.end(true);
    await watcher.endAsync();
    expect((await broker.stop('SIGTERM')).code).toBe(0);
  });

  it('caps an offline session queue at max_queued_messages, dropping newer messages as mosquitto does', async () => {
    const cfg = join(dir, 'queue.json');
    const leafConfig = JSON.parse(await readFile(configFile, 'utf8')) as Record<string, unknown>;
    await writeFile(cfg, JSON.stringify({ ...leafConfig, dataDir: join(dir, 'queue-data'), maxQueuedMessages: 3 }));
    const broker = await start2(cfg);
    const port = broker.ports[0] ?? 0;
    const ca = pki.ca.cert;
    const session = { port, ca, username: 'bob', password: USERS.bob, clientId: 'slow-ha', clean: false, resubscribe: false };
    const ha = await connectMqtt(session);
    await ha.subscribeAsync('q/#', { qos: 1 });
    await ha.endAsync();
    const pub = await connectMqtt({ port, ca, username: 'cam', password: USERS.cam });
    for (let i = 1; i <= 5; i += 1) await pub.publishAsync('q/x', `m${i}`, { qos: 1 });

    const back = await connectMqtt(session);
    expect((await messagesDuring(back, 800)).sort()).toEqual(['q/x:m1', 'q/x:m2', 'q/x:m3']);
    expect(broker.logs.find(/max_queued_messages/)).toMatchObject({ level: 'warn', clientId: 'slow-ha' });
    await back.endAsync();
    // The delivered ones freed their places: the next offline period queues again.
    for (let i = 6; i <= 7; i += 1) await pub.publishAsync('q/x', `m${i}`, { qos: 1 });
    const again = await connectMqtt(session);
    expect((await messagesDuring(again, 800)).sort()).toEqual(['q/x:m6', 'q/x:m7']);
    await Promise.all([again.endAsync(), pub.endAsync()]);
    expect((await broker.stop('SIGTERM')).code).toBe(0);
  });

  it('a second signal exits at once', async () => {
    const broker = await start();
    const port = broker.ports[0] ?? 0;
    // Keep the shutdown busy: a client that never answers holds no lock, so send both signals back to back.
    const client = await connectMqtt({ port, ca: pki.ca.cert, username: 'cam', password: USERS.cam });
    broker.child.kill('SIGTERM');
    broker.child.kill('SIGINT');
    const exit = await broker.exit;
    expect([0, 1]).toContain(exit.code);
    client.end(true);
  });

  it('with no certificate configured serves a self-signed one made once in the data directory, logs so, and reuses it', async () => {
    const cfg = join(dir, 'selfsigned.json');
    const dataDir = join(dir, 'selfsigned-data');
    await writeFile(cfg, JSON.stringify({ listeners: [{ port: 0, host: '127.0.0.1', selfSigned: true }], passwordFile: join(dir, 'passwd'), dataDir, ops: { port: -1 } }));
    const serials: string[] = [];
    for (let round = 0; round < 2; round += 1) {
      const broker = await start2(cfg);
      expect(broker.logs.find(/SELF-SIGNED/)).toMatchObject({ level: 'warn', created: round === 0 });
      const cert = await readFile(join(dataDir, 'selfsigned', 'cert.pem'), 'utf8');
      serials.push(new X509Certificate(cert).serialNumber);
      const client = await connectMqtt({ port: broker.ports[0] ?? 0, ca: cert, username: 'cam', password: USERS.cam });
      await client.endAsync();
      expect((await broker.stop()).code).toBe(0);
    }
    expect(serials[1]).toBe(serials[0]);
    expect((await stat(join(dataDir, 'selfsigned', 'key.pem'))).mode & 0o777).toBe(0o600);
  });

  it('refuses to start with a clear reason when the password file is broken, and names the file', async () => {
    const bad = join(dir, 'bad-config.json');
    await writeFile(join(dir, 'bad-passwd'), 'cam:$6$nonsense\n');
    await writeFile(bad, JSON.stringify({ listeners: [{ port: 0, host: '127.0.0.1', selfSigned: true }], passwordFile: join(dir, 'bad-passwd'), dataDir: join(dir, 'data2'), ops: { port: -1 } }));
    await expect(spawnBroker(['--config', bad], {}, 1)).rejects.toThrow(/bad-passwd/);
  });
});
