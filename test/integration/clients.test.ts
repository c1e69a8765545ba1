/**
 * The three real clients our users run (mqtt.js, Debian's mosquitto_pub/mosquitto_sub, python3 paho-mqtt as
 * Home Assistant uses it) against the broker over TLS with passwd users.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import mqttPacket from 'mqtt-packet';
import { connectMqtt, collectMessages, mosquittoArgs, run, runPaho, startMosquittoSub } from '../support/clients.js';
import { startTestBroker, USERS, type TestBroker } from '../support/broker.js';

let broker: TestBroker;

beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(async () => {
  await broker?.close();
});

const ca = (): string => broker.pki.ca.cert;

describe('mqtt.js', () => {
  it.each([0, 1, 2] as const)('publishes and receives at QoS %i with a passwd user', async (qos) => {
    const sub = await connectMqtt({ port: broker.port, ca: ca(), username: 'cam', password: USERS.cam });
    const pub = await connectMqtt({ port: broker.port, ca: ca(), username: 'bob', password: USERS.bob });
    await sub.subscribeAsync(`js/q${qos}`, { qos });
    const got = collectMessages(sub, 3);
    for (let i = 0; i < 3; i += 1) await pub.publishAsync(`js/q${qos}`, `m${i}`, { qos });
    const messages = await got;
    expect(messages.map((m) => m.payload)).toEqual(['m0', 'm1', 'm2']);
    expect(messages.every((m) => m.qos === qos)).toBe(true);
    await Promise.all([sub.endAsync(), pub.endAsync()]);
  });

  it('is refused with a wrong password and as anonymous, and the refusal is logged without the password', async () => {
    await expect(connectMqtt({ port: broker.port, ca: ca(), username: 'cam', password: 'wrong-pass-123' })).rejects.toThrow(/Not authorized/i);
    await expect(connectMqtt({ port: broker.port, ca: ca(), username: 'nobody', password: 'x' })).rejects.toThrow(/Not authorized/i);
    await expect(connectMqtt({ port: broker.port, ca: ca() })).rejects.toThrow(/Not authorized/i);
    const refusals = broker.logs.lines.filter((l) => l.msg?.toString().startsWith('connection refused'));
    expect(refusals.length).toBeGreaterThanOrEqual(3);
    const wrong = refusals.find((l) => l.username === 'cam');
    expect(wrong).toMatchObject({ reason: 'bad_credentials', remoteAddress: '127.0.0.1' });
    expect(wrong?.clientId).toEqual(expect.any(String));
    expect(broker.logs.text()).not.toContain('wrong-pass-123');
  });

  it('refuses an empty client id with clean session off (CONNACK 0x02)', async () => {
    // mqtt.js and paho refuse to send such a CONNECT, so send it raw.
    const socket = tlsConnect({ host: '127.0.0.1', port: broker.port, ca: ca(), servername: 'localhost' });
    const str = (v: string): Buffer => Buffer.concat([Buffer.from([0, Buffer.byteLength(v)]), Buffer.from(v)]);
    // MQTT 3.1.1 CONNECT: flags 0xC0 = username + password, clean session off; client id ''.
    const body = Buffer.concat([str('MQTT'), Buffer.from([4, 0xc0, 0, 30]), str(''), str('cam'), str(USERS.cam)]);
    socket.write(Buffer.concat([Buffer.from([0x10, body.length]), body]));
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    const connack = await new Promise<{ cmd: string; returnCode?: number }>((resolve) => {
      parser.once('packet', resolve);
      socket.on('data', (d: Buffer) => parser.parse(d));
    });
    expect(connack).toMatchObject({ cmd: 'connack', returnCode: 2 });
    await new Promise((r) => socket.once('close', r));
    // With clean session on, an empty id is fine (the broker assigns one).
    const ok = await connectMqtt({ port: broker.port, ca: ca(), username: 'cam', password: USERS.cam, clientId: '', clean: true });
    await ok.endAsync();
  });

  it('resumes a TLS session from its ticket: no certificate on the wire, and MQTT works over it', async () => {
    const first = await connectMqtt({ port: broker.port, ca: ca(), username: 'cam', password: USERS.cam });
    const firstSocket = first.stream as TLSSocket;
    expect(firstSocket.isSessionReused()).toBe(false);
    // TLS 1.3: the server sent its NewSessionTicket right after the handshake, before our CONNACK.
    const session = firstSocket.getSession();
    expect(session).toBeInstanceOf(Buffer);
    await first.endAsync();

    const resumed = await connectMqtt({ port: broker.port, ca: ca(), username: 'cam', password: USERS.cam, session });
    const socket = resumed.stream as TLSSocket;
    expect(socket.isSessionReused()).toBe(true);
    expect(socket.getProtocol()).toBe('TLSv1.3');
    const got = collectMessages(resumed, 1);
    await resumed.subscribeAsync('cam/resumed', { qos: 1 });
    await resumed.publishAsync('cam/resumed', 'over a resumed session', { qos: 1 });
    expect((await got)[0]?.payload).toBe('over a resumed session');
    await resumed.endAsync();
  });

  it('refuses a client that does not trust the certificate', async () => {
    await expect(connectMqtt({ port: broker.port, username: 'cam', password: USERS.cam })).rejects.toThrow(/self.signed|unable to (get|verify)/i);
  });
});

describe('mosquitto_pub / mosquitto_sub (Debian mosquitto-clients)', () => {
  it.each([0, 1, 2])('deliver at QoS %i', async (qos) => {
    const topic = `cam/dafang/q${qos}`;
    const sub = await startMosquittoSub([...mosquittoArgs(broker.port, broker.pki.caFile, 'cam', USERS.cam), '-t', topic, '-q', String(qos), '-v'], 2);
    for (const m of ['motion', 'still']) {
      const pub = await run('mosquitto_pub', [...mosquittoArgs(broker.port, broker.pki.caFile, 'bob', USERS.bob), '-t', topic, '-q', String(qos), '-m', m]);
      expect(pub.code, pub.stderr).toBe(0);
    }
    const result = await sub.done;
    expect(result.lines).toEqual([`${topic} motion`, `${topic} still`]);
  });

  it('mosquitto_pub is refused with a wrong password', async () => {
    const pub = await run('mosquitto_pub', [...mosquittoArgs(broker.port, broker.pki.caFile, 'cam', 'nope'), '-t', 'x', '-m', 'y']);
    expect(pub.code).not.toBe(0);
    expect(pub.stderr).toMatch(/not authori[sz]ed/i);
  });
});

describe('python3 paho-mqtt (as Home Assistant)', () => {
  it.each([0, 1, 2])('subscribes and publishes at QoS %i', async (qos) => {
    const { code, result, stderr } = await runPaho({
      port: broker.port,
      cafile: broker.pki.caFile,
      username: 'cam',
      password: USERS.cam,
      topic: `homeassistant/q${qos}`,
      qos,
      count: 3,
      publish: 'state',
    });
    expect(code, stderr).toBe(0);
    expect(result.rc).toBe(0);
    expect(result.subscribed).toEqual([qos]);
    expect((result.received as { payload: string }[]).map((m) => m.payload)).toEqual(['state-0', 'state-1', 'state-2']);
  });

  it('gets CONNACK 5 for a wrong password', async () => {
    const { code, result } = await runPaho({ port: broker.port, cafile: broker.pki.caFile, username: 'bob', password: 'bad' });
    expect(code).toBe(3);
    expect(result.rc).toBe(5);
  });
});
