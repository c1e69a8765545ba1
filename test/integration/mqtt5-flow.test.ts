/**
 * MQTT 5 flow control and limits: the client's Receive Maximum bounds our unacknowledged sends, ours bounds
 * the client's (DISCONNECT 0x93), a subscriber's Maximum Packet Size skips larger messages for it alone, our
 * maximum packet size closes only the offending connection (v5: DISCONNECT 0x95), and a connection that never
 * sends CONNECT is closed after connectTimeout. Raw clients (mqtt-packet) only where a real client cannot
 * misbehave on purpose (withholding acknowledgements, flooding, staying silent).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import type { IPublishPacket } from 'mqtt-packet';
import { connectMqtt, mosquittoArgs, startMosquittoSub } from '../support/clients.js';
import { startTestBroker, USERS, type TestBroker } from '../support/broker.js';
import { publishesDuring } from '../support/clients.js';
import { closedClient, collectPublishes, connectV5, mosquittoV5Args, nextDisconnect, RawMqtt, RC, runPahoV5, type V5Connection, type V5Options } from '../support/mqtt5.js';

/** Default limits (maxInflightMessages 20, no maxPacketSize). */
let broker: TestBroker;
/** Small limits: Receive Maximum 3, packets up to 1024 bytes, 1 s to send CONNECT; a plain TCP listener too. */
let small: TestBroker;
const SMALL = { maxInflightMessages: 3, maxPacketSize: 1024, connectTimeout: 1 };

beforeAll(async () => {
  [broker, small] = await Promise.all([
    startTestBroker({ config: { logLevel: 'info' } }),
    startTestBroker({ config: { logLevel: 'info', ...SMALL }, extraListeners: [{ protocol: 'mqtt' }] }),
  ]);
});
afterAll(async () => {
  await Promise.all([broker?.close(), small?.close()]);
});

const clients: MqttClient[] = [];
const raws: RawMqtt[] = [];
afterEach(async () => {
  for (const r of raws.splice(0)) r.destroy();
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function v5(b: TestBroker, options: Omit<V5Options, 'port' | 'ca'>): Promise<V5Connection> {
  const result = await connectV5({ port: b.port, ca: b.pki.ca.cert, username: 'cam', password: USERS.cam, ...options });
  clients.push(result.client);
  return result;
}

async function raw(b: TestBroker, clientId: string, properties: Record<string, number> = {}): Promise<RawMqtt> {
  const { raw: r, connack } = await RawMqtt.connect(
    { port: b.port, ca: b.pki.ca.cert },
    { clientId, username: 'cam', password: Buffer.from(USERS.cam), properties },
  );
  raws.push(r);
  expect(connack.reasonCode).toBe(0);
  return r;
}

async function rawSubscribe(r: RawMqtt, topic: string, qos: 0 | 1 | 2): Promise<void> {
  r.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos }] });
  const suback = await r.next('suback');
  expect(suback.granted).toEqual([qos]);
}

const payloads = (packets: IPublishPacket[]): string[] => packets.map((p) => String(p.payload));

describe("the client's Receive Maximum", () => {
  it('never has more unacknowledged QoS 1 PUBLISHes to a client than its Receive Maximum; each PUBACK releases the next', async () => {
    const sub = await raw(broker, 'rm-q1', { receiveMaximum: 2 });
    await rawSubscribe(sub, 'flow/rm/q1', 1);
    const { client: pub } = await v5(broker, { username: 'bob', password: USERS.bob, clientId: 'rm-q1-pub' });
    for (let i = 0; i < 6; i++) await pub.publishAsync('flow/rm/q1', `m${i}`, { qos: 1 });

    await sub.until('2 PUBLISHes', (got) => got.filter((p) => p.cmd === 'publish').length >= 2);
    await sleep(700);
    expect(payloads(sub.all('publish'))).toEqual(['m0', 'm1']);

    const first = sub.all('publish')[0];
    sub.send({ cmd: 'puback', messageId: first?.messageId ?? 0, reasonCode: 0 });
    await sub.until('a 3rd PUBLISH', (got) => got.filter((p) => p.cmd === 'publish').length >= 3);
    await sleep(500);
    expect(payloads(sub.all('publish'))).toEqual(['m0', 'm1', 'm2']);

    // Acknowledge everything as it comes: the rest arrives, in order, and never more than 2 at once.
    const acked = new Set<number>([first?.messageId ?? 0]);
    let maxOpen = 0;
    await sub.until('all 6 messages', (got) => {
      const publishes = got.filter((p): p is IPublishPacket => p.cmd === 'publish');
      maxOpen = Math.max(maxOpen, publishes.filter((p) => !acked.has(p.messageId ?? -1)).length);
      for (const p of publishes) {
        if (p.messageId !== undefined && !acked.has(p.messageId)) {
          acked.add(p.messageId);
          sub.send({ cmd: 'puback', messageId: p.messageId, reasonCode: 0 });
        }
      }
      return publishes.length >= 6;
    });
    expect(maxOpen).toBeLessThanOrEqual(2);
    await sleep(300);
    expect(payloads(sub.all('publish'))).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
    expect(sub.all('publish').every((p) => !p.dup)).toBe(true);
  });

  it('counts a QoS 2 message against the Receive Maximum until its PUBCOMP, not its PUBREC', async () => {
    const sub = await raw(broker, 'rm-q2', { receiveMaximum: 2 });
    await rawSubscribe(sub, 'flow/rm/q2', 2);
    const { client: pub } = await v5(broker, { username: 'bob', password: USERS.bob, clientId: 'rm-q2-pub' });
    for (let i = 0; i < 4; i++) await pub.publishAsync('flow/rm/q2', `m${i}`, { qos: 2 });

    await sub.until('2 PUBLISHes', (got) => got.filter((p) => p.cmd === 'publish').length >= 2);
    const [p0] = sub.all('publish');
    sub.send({ cmd: 'pubrec', messageId: p0?.messageId ?? 0, reasonCode: 0 });
    const pubrel = await sub.next('pubrel');
    expect(pubrel.messageId).toBe(p0?.messageId);
    await sleep(700);
    expect(payloads(sub.all('publish'))).toEqual(['m0', 'm1']);

    sub.send({ cmd: 'pubcomp', messageId: p0?.messageId ?? 0, reasonCode: 0 });
    await sub.until('a 3rd PUBLISH', (got) => got.filter((p) => p.cmd === 'publish').length >= 3);
    await sleep(500);
    expect(payloads(sub.all('publish'))).toEqual(['m0', 'm1', 'm2']);
  });
});

describe('our Receive Maximum', () => {
  it('disconnects a v5 client with 0x93 when it sends more unacknowledged QoS 2 PUBLISHes than we announced', async () => {
    const { raw: r, connack } = await RawMqtt.connect({ port: small.port, ca: small.pki.ca.cert }, { clientId: 'rm-flood', username: 'cam', password: Buffer.from(USERS.cam) });
    raws.push(r);
    expect(connack.properties?.receiveMaximum).toBe(SMALL.maxInflightMessages);
    // QoS 2 without ever sending PUBREL: each stays unacknowledged until the PUBCOMP we never ask for.
    for (let id = 1; id <= SMALL.maxInflightMessages; id++) {
      r.send({ cmd: 'publish', topic: 'flow/in', payload: Buffer.from(`q2-${id}`), qos: 2, messageId: id, retain: false, dup: false });
    }
    await r.until(`${SMALL.maxInflightMessages} PUBRECs`, (got) => got.filter((p) => p.cmd === 'pubrec').length >= SMALL.maxInflightMessages);
    expect(r.all('disconnect')).toEqual([]);
    expect(r.isOpen).toBe(true);

    r.send({ cmd: 'publish', topic: 'flow/in', payload: Buffer.from('one-too-many'), qos: 2, messageId: SMALL.maxInflightMessages + 1, retain: false, dup: false });
    const disconnect = await r.next('disconnect');
    expect(disconnect.reasonCode).toBe(RC.receiveMaximumExceeded);
    await r.waitClosed();
  });

  it('lets a v5 client that completes its QoS 2 flows send any number of messages (paho v5)', async () => {
    const { client: watch } = await v5(small, { username: 'bob', password: USERS.bob, clientId: 'rm-ok-watch' });
    await watch.subscribeAsync('flow/ok', { qos: 2 });
    const got = collectPublishes(watch, 10);
    const publish = Array.from({ length: 10 }, (_, i) => ({ topic: 'flow/ok', payload: `ok-${i}`, qos: 2 as const }));
    const paho = await runPahoV5({ port: small.port, cafile: small.pki.caFile, username: 'cam', password: USERS.cam, client_id: 'rm-ok-paho', publish });
    expect(paho.code).toBe(0);
    expect(paho.result.disconnect?.from_broker).toBe(false);
    expect(payloads(await got)).toEqual(publish.map((p) => p.payload));
  });
});

describe('Maximum Packet Size', () => {
  it("skips a message larger than a subscriber's Maximum Packet Size for that subscriber only (mqtt.js, mosquitto_sub)", async () => {
    const big = 'B'.repeat(500);
    const limitedJs = await v5(broker, { clientId: 'mps-200', properties: { maximumPacketSize: 200 } });
    await limitedJs.client.subscribeAsync('flow/mps', { qos: 1 });
    const errors: Error[] = [];
    limitedJs.client.on('error', (err) => errors.push(err));
    const { client: full } = await v5(broker, { clientId: 'mps-none' });
    await full.subscribeAsync('flow/mps', { qos: 1 });
    const fullGot = collectPublishes(full, 2);
    const limitedGot = collectPublishes(limitedJs.client, 1);
    // mosquitto_sub announcing 200 bytes: its first message must be the small one.
    const mosq = await startMosquittoSub([...mosquittoV5Args(broker.port, broker.pki.caFile, 'cam', USERS.cam), '-D', 'connect', 'maximum-packet-size', '200', '-t', 'flow/mps', '-q', '1'], 1);

    const { client: pub } = await v5(broker, { username: 'bob', password: USERS.bob, clientId: 'mps-pub' });
    await pub.publishAsync('flow/mps', big, { qos: 1 });
    await pub.publishAsync('flow/mps', 'small', { qos: 1 });

    expect(payloads(await fullGot)).toEqual([big, 'small']);
    expect(payloads(await limitedGot)).toEqual(['small']);
    expect((await mosq.done).lines).toEqual(['small']);
    // The limited client was not punished: no error, still connected, nothing more arrives.
    expect(errors).toEqual([]);
    expect(limitedJs.client.connected).toBe(true);
    expect(await publishesDuring(limitedJs.client, 300)).toEqual([]);
  });

  it('closes a client that sends a packet above maxPacketSize, v5 with DISCONNECT 0x95 (mqtt.js 5 and 3.1.1); others stay', async () => {
    const { client: witness } = await v5(small, { username: 'bob', password: USERS.bob, clientId: 'mps-witness' });
    await witness.subscribeAsync('flow/limit/#', { qos: 1 });
    const { client: offender, connack } = await v5(small, { clientId: 'mps-offender-v5' });
    expect(connack.properties?.maximumPacketSize).toBe(SMALL.maxPacketSize);
    const disconnect = nextDisconnect(offender);
    offender.publish('flow/limit/big', Buffer.alloc(2000, 0x41), { qos: 0 });
    expect((await disconnect).reasonCode).toBe(RC.packetTooLarge);
    await closedClient(offender);

    const v3 = await connectMqtt({ port: small.port, ca: small.pki.ca.cert, username: 'cam', password: USERS.cam, clientId: 'mps-offender-v3' });
    clients.push(v3);
    const v3Closed = closedClient(v3);
    const v3Disconnect: unknown[] = [];
    v3.on('packetreceive', (p) => {
      if (p.cmd === 'disconnect') v3Disconnect.push(p);
    });
    v3.publish('flow/limit/big', Buffer.alloc(2000, 0x42), { qos: 0 });
    await v3Closed;
    expect(v3Disconnect).toEqual([]); // MQTT 3.1.1 has no DISCONNECT from the server

    // A message just under the limit still goes through, and the witness never noticed anything.
    const got = collectPublishes(witness, 1);
    const { client: pub } = await v5(small, { username: 'bob', password: USERS.bob, clientId: 'mps-ok' });
    await pub.publishAsync('flow/limit/ok', Buffer.alloc(900, 0x43), { qos: 1 });
    expect((await got).map((p) => p.payload.length)).toEqual([900]);
    expect(witness.connected).toBe(true);
  });
});

describe('connectTimeout', () => {
  /** plain: the plain TCP listener; tls: a finished TLS handshake; tcp-on-tls: TCP to the TLS listener, no handshake. */
  const rawOpen = async (b: TestBroker, kind: 'plain' | 'tls' | 'tcp-on-tls'): Promise<RawMqtt> => {
    const r = await RawMqtt.open(
      kind === 'tls' ? { port: b.port, ca: b.pki.ca.cert } : { port: kind === 'plain' ? (b.running.listeners[1]?.port ?? 0) : b.port },
    );
    raws.push(r);
    return r;
  };

  it('closes a connection that sends nothing after connectTimeout (plain listener, after a TLS handshake, before one)', async () => {
    const kinds = ['plain', 'tls', 'tcp-on-tls'] as const;
    const silent = await Promise.all(kinds.map((k) => rawOpen(small, k)));
    await sleep(300);
    expect(silent.map((r) => r.isOpen)).toEqual([true, true, true]); // waiting for CONNECT, not closed at once
    const outcome = await Promise.all(silent.map((r, i) => r.waitClosed(10_000).then(() => `${kinds[i]}: closed`, () => `${kinds[i]}: still open after 10 s`)));
    expect(outcome).toEqual(kinds.map((k) => `${k}: closed`));
    expect(silent.flatMap((r) => r.received)).toEqual([]); // no CONNACK for a connection that never spoke
  });

  it('keeps a connection that sends its CONNECT in time, also once connectTimeout has passed', async () => {
    const r = await rawOpen(small, 'plain');
    await sleep(500);
    r.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'ct-in-time', keepalive: 60, username: 'cam', password: Buffer.from(USERS.cam) });
    const connack = await r.next('connack');
    expect(connack.reasonCode).toBe(0);
    await sleep(1500);
    expect(r.isOpen).toBe(true);
    r.send({ cmd: 'pingreq' });
    await r.next('pingresp');
    // A v3.1.1 mosquitto_sub on the same listener is unaffected as well.
    const sub = await startMosquittoSub([...mosquittoArgs(small.running.listeners[1]?.port ?? 0, undefined, 'cam', USERS.cam), '-t', 'flow/ct', '-q', '1'], 1, 10);
    const { client: pub } = await v5(small, { username: 'bob', password: USERS.bob, clientId: 'ct-pub' });
    await sleep(1500); // beyond connectTimeout for the subscriber's connection
    await pub.publishAsync('flow/ct', 'still-here', { qos: 1 });
    expect((await sub.done).lines).toEqual(['still-here']);
  });
});
