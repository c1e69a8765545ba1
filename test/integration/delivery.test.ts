/**
 * Delivery through the broker's write path (one encoded buffer per packet, one write per connection per
 * turn) and read path (input parsed 4 KiB at a time): large payloads that span many reads, bursts of
 * thousands of pipelined messages, complete and in order, with mqtt.js and mosquitto_pub/mosquitto_sub.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connectMqtt, collectMessages, messagesDuring, mosquittoArgs, startMosquittoSub } from '../support/clients.js';
import { startTestBroker, USERS, type TestBroker } from '../support/broker.js';
/** Payload sizes around the 4 KiB pieces a socket read often comes in. */
const READ_BATCH = 4 * 1024;

let broker: TestBroker;
let caFile: string;

beforeAll(async () => {
  broker = await startTestBroker({ config: { logLevel: 'warn' } });
  caFile = join(broker.dir, 'ca.pem');
  await writeFile(caFile, broker.pki.ca.cert);
});
afterAll(async () => {
  await broker?.close();
});

const options = (user: 'cam' | 'bob'): Parameters<typeof connectMqtt>[0] => ({
  port: broker.port,
  ca: broker.pki.ca.cert,
  username: user,
  password: USERS[user],
});

describe('large payloads', () => {
  it.each([
    [0, 300 * 1024],
    [1, 1024 * 1024],
    [2, 3 * READ_BATCH + 1],
  ] as const)('a QoS %i message of %i bytes arrives intact', async (qos, size) => {
    const sub = await connectMqtt(options('cam'));
    const pub = await connectMqtt(options('bob'));
    await sub.subscribeAsync(`big/${qos}`, { qos });
    const payload = Buffer.alloc(size);
    for (let i = 0; i < size; i += 1) payload[i] = (i * 31 + qos) & 0xff;
    const got = new Promise<Buffer>((resolve) => sub.once('message', (_t, p: Buffer) => resolve(p)));
    await pub.publishAsync(`big/${qos}`, payload, { qos });
    const received = await got;
    expect(received.length).toBe(size);
    expect(received.equals(payload)).toBe(true);
    await Promise.all([sub.endAsync(), pub.endAsync()]);
  });
});

describe('bursts', () => {
  it.each([0, 1] as const)('5,000 pipelined QoS %i messages from each of two publishers all arrive, in order per publisher', async (qos) => {
    const sub = await connectMqtt(options('cam'));
    await sub.subscribeAsync(`burst/${qos}/+`, { qos });
    const pubs = await Promise.all([connectMqtt(options('bob')), connectMqtt(options('bob'))]);
    const n = 5000;
    const got = collectMessages(sub, 2 * n, 60_000);
    // Not awaited one by one: mqtt.js writes them back to back, so the broker reads many per chunk.
    const sent = pubs.flatMap((pub, p) => Array.from({ length: n }, (_, i) => pub.publishAsync(`burst/${qos}/${p}`, `${i}`, { qos })));
    await Promise.all(sent);
    const messages = await got;
    for (const p of [0, 1]) {
      const seq = messages.filter((m) => m.topic === `burst/${qos}/${p}`).map((m) => Number(m.payload));
      expect(seq).toEqual(Array.from({ length: n }, (_, i) => i));
    }
    await Promise.all([sub.endAsync(), ...pubs.map((pub) => pub.endAsync())]);
  });

  it('mosquitto_pub -l sends 3,000 lines in one go; mosquitto_sub gets every one in order', async () => {
    const n = 3000;
    const sub = await startMosquittoSub([...mosquittoArgs(broker.port, caFile, 'cam', USERS.cam), '-t', 'cam/lines', '-q', '1'], n, 30);
    const pub = spawn('mosquitto_pub', [...mosquittoArgs(broker.port, caFile, 'bob', USERS.bob), '-t', 'cam/lines', '-q', '1', '-l'], {
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    let stderr = '';
    pub.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    pub.stdin.end(Array.from({ length: n }, (_, i) => `line ${i}`).join('\n') + '\n');
    const code = await new Promise<number | null>((resolve) => pub.on('exit', resolve));
    expect(code, stderr).toBe(0);
    const { lines, stderr: subErr } = await sub.done;
    const missing = Array.from({ length: n }, (_, i) => `line ${i}`).filter((l) => !lines.includes(l));
    expect(missing, `${lines.length} lines; not received: ${missing.slice(0, 20).join(', ')}; ${subErr}; last: ${lines.slice(-3).join(' | ')}`).toEqual([]);
    expect(lines).toEqual(Array.from({ length: n }, (_, i) => `line ${i}`));
  });
});

describe('QoS 0 delivery', () => {
  it('reaches a client once per message however many of its subscriptions match', async () => {
    const sub = await connectMqtt(options('cam'));
    const pub = await connectMqtt(options('bob'));
    await sub.subscribeAsync(['ov/#', 'ov/+', 'ov/a'], { qos: 0 });
    const got = messagesDuring(sub, 700);
    for (const m of ['1', '2', '3']) await pub.publishAsync('ov/a', m, { qos: 0 });
    expect(await got).toEqual(['ov/a:1', 'ov/a:2', 'ov/a:3']);
    await Promise.all([sub.endAsync(), pub.endAsync()]);
  });

  it('downgrades to QoS 0 for a QoS 1 subscription and keeps the retain flag of a retained message', async () => {
    const pub = await connectMqtt(options('bob'));
    await pub.publishAsync('dg/kept', 'old', { qos: 0, retain: true });
    const sub = await connectMqtt(options('cam'));
    const got = collectMessages(sub, 3);
    await sub.subscribeAsync('dg/#', { qos: 1 });
    await pub.publishAsync('dg/live', 'a', { qos: 0 });
    await pub.publishAsync('dg/live', 'b', { qos: 1 });
    const messages = await got;
    expect(messages).toEqual([
      { topic: 'dg/kept', payload: 'old', qos: 0, retain: true },
      { topic: 'dg/live', payload: 'a', qos: 0, retain: false },
      { topic: 'dg/live', payload: 'b', qos: 1, retain: false },
    ]);
    await pub.publishAsync('dg/kept', '', { qos: 0, retain: true });
    await Promise.all([sub.endAsync(), pub.endAsync()]);
  });
});
