/**
 * Bad input on one connection closes that connection only; a subscriber that stalls under a flood and then
 * goes away leaves the broker alive (vanilla aedes 1.2.0 dies there with "Maximum call stack size exceeded").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { connect as netConnect } from 'node:net';
import mqttPacket from 'mqtt-packet';
import { connectMqtt, collectMessages } from '../support/clients.js';
import { startTestBroker, USERS, type TestBroker } from '../support/broker.js';

let broker: TestBroker;

beforeAll(async () => {
  broker = await startTestBroker({ config: { messageSizeLimit: 1024, logLevel: 'info' }, extraListeners: [{ protocol: 'mqtt' }] });
});
afterAll(async () => {
  await broker?.close();
});

function rawTls(): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: broker.port, ca: broker.pki.ca.cert, servername: 'localhost' }, () => resolve(socket));
    socket.once('error', reject);
  });
}

function closed(socket: TLSSocket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) resolve();
    socket.once('close', () => resolve());
  });
}

const connectPacket = (clientId: string): Buffer =>
  mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 30, username: 'cam', password: Buffer.from(USERS.cam) });

/** A witness: a connected subscriber that must keep receiving while other connections misbehave. */
async function witness(): Promise<{ check(): Promise<void>; end(): Promise<void> }> {
  const sub = await connectMqtt({ port: broker.port, ca: broker.pki.ca.cert, username: 'cam', password: USERS.cam });
  const pub = await connectMqtt({ port: broker.port, ca: broker.pki.ca.cert, username: 'bob', password: USERS.bob });
  await sub.subscribeAsync('witness', { qos: 1 });
  let n = 0;
  return {
    async check() {
      n += 1;
      const got = collectMessages(sub, 1);
      await pub.publishAsync('witness', `alive-${n}`, { qos: 1 });
      expect((await got)[0]?.payload).toBe(`alive-${n}`);
      expect(sub.connected).toBe(true);
    },
    async end() {
      await Promise.all([sub.endAsync(), pub.endAsync()]);
    },
  };
}

describe('bad input', () => {
  it('garbage bytes close that connection only', async () => {
    const w = await witness();
    const before = broker.logs.lines.length;
    for (const garbage of [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x01])]) {
      const socket = await rawTls();
      socket.write(garbage);
      await closed(socket);
    }
    // Garbage after a valid CONNECT, too.
    const socket = await rawTls();
    socket.write(connectPacket('garbage-after-connect'));
    await new Promise((r) => socket.once('data', r)); // CONNACK
    socket.write(Buffer.from([0x00, 0x00, 0x13, 0x37]));
    await closed(socket);
    await w.check();
    const logged = broker.logs.lines.slice(before).filter((l) => /closed on error|before CONNECT/.test(String(l.msg)));
    expect(logged.length).toBeGreaterThanOrEqual(1);
    await w.end();
  });

  it('an oversize packet closes that connection before it is buffered; a slightly large payload is only dropped', async () => {
    const w = await witness();
    // Announce a 10 MB PUBLISH after CONNECT: closed as soon as the length is parsed.
    const socket = await rawTls();
    socket.write(connectPacket('oversize'));
    await new Promise((r) => socket.once('data', r));
    const header = mqttPacket.generate({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(10), qos: 0, retain: false, dup: false });
    // Rewrite the remaining length to 10 MB and send only the start of it.
    const bigHeader = Buffer.from([0x30, 0x80, 0x80, 0x80, 0x05]);
    socket.write(Buffer.concat([bigHeader, header.subarray(2)]));
    await closed(socket);
    expect(broker.logs.text()).toMatch(/exceeds the limit of/);

    // An unauthenticated client cannot announce a huge CONNECT either.
    const pre = await rawTls();
    pre.write(Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f]));
    await closed(pre);

    // A payload just above message_size_limit (1024) is dropped like mosquitto does; the publisher stays.
    const sub = await connectMqtt({ port: broker.port, ca: broker.pki.ca.cert, username: 'cam', password: USERS.cam });
    await sub.subscribeAsync('sized', { qos: 1 });
    const pub = await connectMqtt({ port: broker.port, ca: broker.pki.ca.cert, username: 'bob', password: USERS.bob });
    const got = collectMessages(sub, 1);
    await pub.publishAsync('sized', Buffer.alloc(2000, 1), { qos: 1 });
    await pub.publishAsync('sized', 'small', { qos: 1 });
    expect((await got).map((m) => m.payload)).toEqual(['small']);
    expect(pub.connected).toBe(true);
    await Promise.all([sub.endAsync(), pub.endAsync()]);
    await w.check();
    await w.end();
  });
});

describe('a stalled subscriber under a flood', () => {
  it('leaves the broker alive and serving after it disconnects', async () => {
    const w = await witness();
    // On the plain TCP listener, so that the flood is large enough in a few seconds.
    const plainPort = broker.running.listeners[1]?.port ?? 0;
    // The stalled subscriber: a raw socket that subscribes and then never reads.
    const stalled = netConnect(plainPort, '127.0.0.1');
    stalled.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'stalled', keepalive: 0, username: 'cam', password: Buffer.from(USERS.cam) }));
    await new Promise((r) => stalled.once('data', r));
    stalled.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'flood/#', qos: 0 }] }));
    await new Promise((r) => stalled.once('data', r)); // SUBACK
    stalled.pause();

    const publishers = await Promise.all(
      Array.from({ length: 8 }, () => connectMqtt({ port: plainPort, tls: false, username: 'bob', password: USERS.bob })),
    );
    const payload = Buffer.alloc(100, 7);
    const deadline = Date.now() + 3_000;
    let sent = 0;
    // Flood until the stalled socket's buffers are full and the broker holds a backlog, bounded in time.
    while (Date.now() < deadline && sent < 1_000_000) {
      for (const p of publishers) p.publish('flood/a', payload, { qos: 0 });
      sent += publishers.length;
      if (sent % 800 === 0) await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setTimeout(r, 1_000));
    // Now the stalled subscriber goes away with its backlog.
    stalled.destroy();
    await new Promise((r) => setTimeout(r, 2_000));
    await w.check();
    const fresh = await connectMqtt({ port: broker.port, ca: broker.pki.ca.cert, username: 'cam', password: USERS.cam });
    expect(fresh.connected).toBe(true);
    await fresh.endAsync();
    await Promise.all(publishers.map((p) => p.endAsync()));
    await w.end();
    expect(sent).toBeGreaterThan(1000);
  });
});
