/**
 * MQTT 5 sessions and the end of connections with real clients (mqtt.js 5, paho-mqtt 1.6.1 v5): session expiry
 * (also across a restart), wills with a delay and properties, DISCONNECT 0x04, and the DISCONNECT reason codes
 * the broker sends: 0x8E takeover, 0x8B shutdown, 0x8D keep-alive timeout (a raw client: a real one pings),
 * 0x98 when a passwd reload changes the user's password.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { rename, writeFile } from 'node:fs/promises';
import type { MqttClient } from 'mqtt';
import { hashPassword } from '../../src/auth/passwd.js';
import { connectMqtt, publishesDuring } from '../support/clients.js';
import { PASSWD, processBrokerConfig, spawnBroker, startTestBroker, USERS, type SpawnedBroker, type TestBroker } from '../support/broker.js';
import {
  closedClient,
  collectPublishes,
  connectV5,
  nextDisconnect,
  RawMqtt,
  RC,
  runPahoV5,
  spawnPahoV5,
  type PahoV5Process,
  type V5Connection,
  type V5Options,
} from '../support/mqtt5.js';
import { waitFor } from '../support/wait.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ config: { logLevel: 'info' } });
});
afterAll(async () => {
  await broker?.close();
});

const clients: MqttClient[] = [];
const pahos: PahoV5Process[] = [];
const raws: RawMqtt[] = [];
const spawned: SpawnedBroker[] = [];
afterEach(async () => {
  for (const p of pahos.splice(0)) p.kill();
  for (const r of raws.splice(0)) r.destroy();
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  await Promise.all(spawned.splice(0).map((b) => b.stop('SIGKILL')));
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** mqtt.js v5 on `port` (TLS with our test CA) as cam unless told otherwise; stopped after the test. */
async function v5(options: Omit<V5Options, 'port' | 'ca'> & { port?: number; ca?: string | Buffer }): Promise<V5Connection> {
  const result = await connectV5({ port: broker.port, ca: broker.pki.ca.cert, username: 'cam', password: USERS.cam, ...options });
  clients.push(result.client);
  return result;
}

/** A v5 subscriber (bob) to `topic` at QoS 1, to watch wills and deliveries. */
async function watcher(topic: string, options: { port?: number; ca?: string | Buffer } = {}): Promise<MqttClient> {
  const { client } = await v5({ username: 'bob', password: USERS.bob, clientId: `watch-${Math.random().toString(16).slice(2, 8)}`, ...options });
  await client.subscribeAsync(topic, { qos: 1 });
  return client;
}

function paho(args: Parameters<typeof spawnPahoV5>[0]): PahoV5Process {
  const p = spawnPahoV5(args);
  pahos.push(p);
  return p;
}

describe('session expiry', () => {
  it('keeps a session with an expiry interval: sessionPresent and the QoS 1 messages queued while away (paho v5, mqtt.js)', async () => {
    const first = await runPahoV5({
      port: broker.port,
      cafile: broker.pki.caFile,
      username: 'cam',
      password: USERS.cam,
      client_id: 'sess-keep',
      clean_start: true,
      properties: { SessionExpiryInterval: 120 },
      subscribe: [{ topic: 'sess/keep/#', qos: 1 }],
    });
    expect(first.code).toBe(0);
    expect(first.result.connack?.session_present).toBe(false);

    const { client: pub } = await v5({ username: 'bob', password: USERS.bob, clientId: 'sess-keep-pub' });
    await pub.publishAsync('sess/keep/a', 'while-away-1', { qos: 1 });
    await pub.publishAsync('sess/keep/b', 'while-away-2', { qos: 1 });
    await pub.publishAsync('sess/keep/c', 'while-away-0', { qos: 0 });

    // Back with clean start off, without subscribing again: the session has the subscription and the messages.
    const back = await runPahoV5({
      port: broker.port,
      cafile: broker.pki.caFile,
      username: 'cam',
      password: USERS.cam,
      client_id: 'sess-keep',
      clean_start: false,
      properties: { SessionExpiryInterval: 120 },
      count: 2,
    });
    expect(back.code).toBe(0);
    expect(back.result.connack?.session_present).toBe(true);
    expect(back.result.received.filter((m) => m.qos === 1).map((m) => m.payload)).toEqual(['while-away-1', 'while-away-2']);

    // mqtt.js sees the same session (its subscription still delivers).
    const { client, connack } = await v5({ clientId: 'sess-keep', clean: false, properties: { sessionExpiryInterval: 120 }, resubscribe: false });
    expect(connack.sessionPresent).toBe(true);
    const got = collectPublishes(client, 1);
    await pub.publishAsync('sess/keep/live', 'live', { qos: 1 });
    expect((await got).map((p) => String(p.payload))).toEqual(['live']);
    // Clean start ends it: the next connection starts with no session.
    await client.endAsync();
    const fresh = await v5({ clientId: 'sess-keep', clean: true });
    expect(fresh.connack.sessionPresent).toBe(false);
  });

  it('drops a session when its expiry interval has passed, and keeps none without an interval', async () => {
    const { client: pub } = await v5({ username: 'bob', password: USERS.bob, clientId: 'sess-exp-pub' });
    const { client: short } = await v5({ clientId: 'sess-exp-1s', clean: true, properties: { sessionExpiryInterval: 1 } });
    await short.subscribeAsync('sess/exp/short', { qos: 1 });
    const { client: none } = await v5({ clientId: 'sess-exp-0', clean: true });
    await none.subscribeAsync('sess/exp/none', { qos: 1 });
    const { client: long } = await v5({ clientId: 'sess-exp-60', clean: true, properties: { sessionExpiryInterval: 60 } });
    await long.subscribeAsync('sess/exp/long', { qos: 1 });
    await Promise.all([short.endAsync(), none.endAsync(), long.endAsync()]);

    for (const t of ['short', 'none', 'long']) await pub.publishAsync(`sess/exp/${t}`, `queued-${t}`, { qos: 1 });
    await sleep(2500); // beyond the 1 s interval

    const shortBack = await v5({ clientId: 'sess-exp-1s', clean: false, properties: { sessionExpiryInterval: 1 }, resubscribe: false });
    const noneBack = await v5({ clientId: 'sess-exp-0', clean: false, resubscribe: false });
    const longBack = await v5({ clientId: 'sess-exp-60', clean: false, properties: { sessionExpiryInterval: 60 }, resubscribe: false });
    expect(shortBack.connack.sessionPresent).toBe(false);
    expect(noneBack.connack.sessionPresent).toBe(false);
    expect(longBack.connack.sessionPresent).toBe(true);
    await waitFor('the queued message of the kept session', () => longBack.received.length >= 1);
    expect(longBack.received.map((p) => String(p.payload))).toEqual(['queued-long']);
    // Nothing of the expired sessions arrives.
    const [a, b] = await Promise.all([publishesDuring(shortBack.client, 500), publishesDuring(noneBack.client, 500)]);
    expect([...a, ...b]).toEqual([]);
  });

  it('counts the expiry interval across a broker restart (persistence on)', async () => {
    const { pki, configFile } = await processBrokerConfig('mab-v5-restart-', { persistence: true });
    const start = async (): Promise<{ b: SpawnedBroker; port: number }> => {
      const b = await spawnBroker(['serve', '--config', configFile], {}, 1);
      spawned.push(b);
      return { b, port: b.ports[0] ?? 0 };
    };
    const at = (port: number): { port: number; ca: string } => ({ port, ca: pki.ca.cert });

    let { b, port } = await start();
    // expiry 3 s: gone while the broker is down; 10 s: outlives the restart (D shows it) but not the wait after
    // it (B shows that: the downtime counts); 600 s: survives everything, also when it began with clean start (E).
    const sessions = { A: 3, B: 10, D: 10, C: 600, E: 600 } as const;
    for (const [name, interval] of Object.entries(sessions)) {
      const { client } = await v5({ ...at(port), clientId: `restart-${name}`, clean: name === 'E', properties: { sessionExpiryInterval: interval } });
      await client.subscribeAsync(`restart/${name}`, { qos: 1 });
      await client.endAsync();
    }
    const t0 = Date.now();
    const { client: pub } = await v5({ ...at(port), username: 'bob', password: USERS.bob, clientId: 'restart-pub' });
    for (const name of Object.keys(sessions)) await pub.publishAsync(`restart/${name}`, `queued-${name}`, { qos: 1 });
    await pub.endAsync();
    expect(await b.stop('SIGTERM')).toEqual({ code: 0, signal: null });

    await sleep(Math.max(0, t0 + 4000 - Date.now()));
    ({ b, port } = await start());

    const back = async (name: keyof typeof sessions): Promise<{ present: boolean; payloads: string[] }> => {
      const { client, connack, received } = await v5({
        ...at(port),
        clientId: `restart-${name}`,
        clean: false,
        properties: { sessionExpiryInterval: sessions[name] },
        resubscribe: false,
      });
      if (connack.sessionPresent) await waitFor(`the queued message of ${name}`, () => received.length >= 1, 5000).catch(() => undefined);
      await sleep(300); // anything more would show up here
      await client.endAsync();
      return { present: connack.sessionPresent, payloads: received.map((p) => String(p.payload)) };
    };
    expect(await back('A')).toEqual({ present: false, payloads: [] });
    expect(await back('D')).toEqual({ present: true, payloads: ['queued-D'] });
    expect(await back('C')).toEqual({ present: true, payloads: ['queued-C'] });
    expect(await back('E')).toEqual({ present: true, payloads: ['queued-E'] });

    await sleep(Math.max(0, t0 + 11_500 - Date.now()));
    expect(await back('B')).toEqual({ present: false, payloads: [] });
    expect(await b.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });
});

describe('wills', () => {
  it('does not publish a delayed will when the client comes back within the delay (paho v5, then mqtt.js)', async () => {
    const watch = await watcher('wills/delay-back');
    const dying = paho({
      port: broker.port,
      cafile: broker.pki.caFile,
      username: 'cam',
      password: USERS.cam,
      client_id: 'will-back',
      properties: { SessionExpiryInterval: 60 },
      will: { topic: 'wills/delay-back', payload: 'gone', qos: 1, properties: { WillDelayInterval: 3 } },
      hold: 30,
      timeout: 30,
    });
    expect((await dying.waitEvent('connack')).rc).toBe(0);
    const during = publishesDuring(watch, 4500);
    dying.kill(); // the connection drops without DISCONNECT
    await sleep(300);
    // Back within the delay, continuing the session.
    const { connack } = await v5({ clientId: 'will-back', clean: false, properties: { sessionExpiryInterval: 60 } });
    expect(connack.sessionPresent).toBe(true);
    expect((await during).map((p) => String(p.payload))).toEqual([]);
  });

  it('publishes a delayed will after the delay when the client stays away, with its properties (paho v5)', async () => {
    const watch = await watcher('wills/delay-away');
    const dying = paho({
      port: broker.port,
      cafile: broker.pki.caFile,
      username: 'cam',
      password: USERS.cam,
      client_id: 'will-away',
      properties: { SessionExpiryInterval: 60 },
      will: {
        topic: 'wills/delay-away',
        payload: '{"state":"offline"}',
        qos: 1,
        properties: {
          WillDelayInterval: 2,
          PayloadFormatIndicator: 1,
          ContentType: 'application/json',
          ResponseTopic: 'wills/reply',
          CorrelationData: 'corr-42',
          UserProperty: [['origin', 'paho'], ['room', 'garage']],
        },
      },
      hold: 30,
      timeout: 30,
    });
    expect((await dying.waitEvent('connack')).rc).toBe(0);
    const early = publishesDuring(watch, 1000);
    const will = collectPublishes(watch, 1, 10_000);
    dying.kill();
    expect(await early).toEqual([]); // not before the delay
    const [packet] = await will;
    expect(packet?.topic).toBe('wills/delay-away');
    expect(String(packet?.payload)).toBe('{"state":"offline"}');
    expect(packet?.properties).toMatchObject({
      payloadFormatIndicator: true,
      contentType: 'application/json',
      responseTopic: 'wills/reply',
      userProperties: { origin: 'paho', room: 'garage' },
    });
    expect(packet?.properties?.correlationData?.toString()).toBe('corr-42');
  });

  it('publishes the will on DISCONNECT 0x04 and not on a normal DISCONNECT (paho v5, mqtt.js)', async () => {
    const watch = await watcher('wills/disconnect/#');
    const got = collectPublishes(watch, 2);
    const withWill = await runPahoV5({
      port: broker.port,
      cafile: broker.pki.caFile,
      username: 'cam',
      password: USERS.cam,
      client_id: 'will-0x04-paho',
      will: { topic: 'wills/disconnect/paho', payload: 'paho-will', qos: 1 },
      end: 'disconnect_with_will',
    });
    expect(withWill.code).toBe(0);
    const { client } = await v5({ clientId: 'will-0x04-js', will: { topic: 'wills/disconnect/js', payload: Buffer.from('js-will'), qos: 1, retain: false } });
    await client.endAsync(false, { reasonCode: RC.disconnectWithWill });
    expect((await got).map((p) => String(p.payload)).sort()).toEqual(['js-will', 'paho-will']);

    const quiet = publishesDuring(watch, 1500);
    const normal = await runPahoV5({
      port: broker.port,
      cafile: broker.pki.caFile,
      username: 'cam',
      password: USERS.cam,
      client_id: 'will-normal-paho',
      will: { topic: 'wills/disconnect/paho', payload: 'must-not-appear', qos: 1 },
      end: 'disconnect',
    });
    expect(normal.code).toBe(0);
    const { client: js } = await v5({ clientId: 'will-normal-js', will: { topic: 'wills/disconnect/js', payload: Buffer.from('must-not-appear'), qos: 1, retain: false } });
    await js.endAsync();
    expect((await quiet).map((p) => String(p.payload))).toEqual([]);
  });
});

describe('DISCONNECT from the broker', () => {
  it('sends 0x8E (session taken over) to the old v5 connection (mqtt.js taken over by paho, paho by mqtt.js)', async () => {
    const { client: old } = await v5({ clientId: 'takeover-1' });
    const gone = nextDisconnect(old);
    const newer = paho({ port: broker.port, cafile: broker.pki.caFile, username: 'cam', password: USERS.cam, client_id: 'takeover-1', hold: 2, timeout: 15 });
    expect((await newer.waitEvent('connack')).rc).toBe(0);
    expect((await gone).reasonCode).toBe(RC.sessionTakenOver);
    await closedClient(old);

    const oldPaho = paho({ port: broker.port, cafile: broker.pki.caFile, username: 'cam', password: USERS.cam, client_id: 'takeover-2', until_disconnected: true, timeout: 20 });
    expect((await oldPaho.waitEvent('connack')).rc).toBe(0);
    const { client: newJs } = await v5({ clientId: 'takeover-2' });
    const { result } = await oldPaho.done;
    expect(result.disconnect).toMatchObject({ rc: RC.sessionTakenOver, from_broker: true });
    expect(newJs.connected).toBe(true);
  });

  it('sends 0x8B (server shutting down) to v5 clients on SIGTERM; v3 clients are closed', async () => {
    const { pki, configFile } = await processBrokerConfig('mab-v5-sigterm-', { persistence: false });
    const b = await spawnBroker(['serve', '--config', configFile], {}, 1);
    spawned.push(b);
    const port = b.ports[0] ?? 0;
    const { client: js } = await v5({ port, ca: pki.ca.cert, clientId: 'term-js' });
    const jsDisconnect = nextDisconnect(js);
    const p = paho({ port, cafile: pki.caFile, username: 'cam', password: USERS.cam, client_id: 'term-paho', until_disconnected: true, timeout: 20 });
    expect((await p.waitEvent('connack')).rc).toBe(0);
    const v3 = await connectMqtt({ port, ca: pki.ca.cert, username: 'cam', password: USERS.cam, clientId: 'term-v3' });
    clients.push(v3);
    const v3Closed = closedClient(v3);

    expect(await b.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect((await jsDisconnect).reasonCode).toBe(RC.serverShuttingDown);
    expect((await p.done).result.disconnect).toMatchObject({ rc: RC.serverShuttingDown, from_broker: true });
    await v3Closed;
  });

  it('sends 0x8D (keep alive timeout) to a v5 client that stays silent, and not to one that pings (raw client)', async () => {
    const endpoint = { port: broker.port, ca: broker.pki.ca.cert };
    const silent = await RawMqtt.connect(endpoint, { clientId: 'ka-silent', keepalive: 1, username: 'cam', password: Buffer.from(USERS.cam) });
    raws.push(silent.raw);
    expect(silent.connack.reasonCode).toBe(0);
    const since = Date.now();
    const pinging = await RawMqtt.connect(endpoint, { clientId: 'ka-pinging', keepalive: 1, username: 'cam', password: Buffer.from(USERS.cam) });
    raws.push(pinging.raw);
    const pinger = setInterval(() => pinging.raw.send({ cmd: 'pingreq' }), 500);
    try {
      const disconnect = await silent.raw.next('disconnect', 10_000);
      expect(disconnect.reasonCode).toBe(RC.keepAliveTimeout);
      // Not before the keep-alive period (the specification allows 1.5 times it).
      expect(Date.now() - since).toBeGreaterThanOrEqual(1000);
      await silent.raw.waitClosed();
      await sleep(1500);
      expect(pinging.raw.isOpen).toBe(true);
      expect(pinging.raw.all('disconnect')).toEqual([]);
      expect(pinging.raw.all('pingresp').length).toBeGreaterThanOrEqual(2);
    } finally {
      clearInterval(pinger);
    }
  });

  it('sends 0x98 to a v5 client whose password changed in the passwd file; a v3 client is disconnected; others stay', async () => {
    const own = await startTestBroker({ config: { logLevel: 'info' } });
    try {
      const at = { port: own.port, ca: own.pki.ca.cert };
      const { client: js5 } = await v5({ ...at, clientId: 'reload-js5' });
      const js5Disconnect = nextDisconnect(js5, 20_000);
      const p = paho({ port: own.port, cafile: own.pki.caFile, username: 'cam', password: USERS.cam, client_id: 'reload-paho', until_disconnected: true, timeout: 30 });
      expect((await p.waitEvent('connack')).rc).toBe(0);
      const v3 = await connectMqtt({ port: own.port, ca: own.pki.ca.cert, username: 'cam', password: USERS.cam, clientId: 'reload-v3' });
      clients.push(v3);
      const v3Closed = closedClient(v3, 20_000);
      const { client: bob } = await v5({ ...at, username: 'bob', password: USERS.bob, clientId: 'reload-bob' });
      await bob.subscribeAsync('reload/check', { qos: 1 });

      // cam's password changes (written the way mosquitto_passwd and editors do: a new file renamed over).
      const camLine = `cam:${await hashPassword('n3w-secret', 'sha512-pbkdf2')}`;
      await writeFile(`${own.passwdFile}.new`, PASSWD.replace(/^cam:.*$/m, camLine));
      await rename(`${own.passwdFile}.new`, own.passwdFile);

      expect((await js5Disconnect).reasonCode).toBe(RC.administrativeAction);
      expect((await p.done).result.disconnect).toMatchObject({ rc: RC.administrativeAction, from_broker: true });
      await v3Closed;
      // bob is untouched, and cam gets in with the new password only.
      const got = collectPublishes(bob, 1);
      await bob.publishAsync('reload/check', 'still-here', { qos: 1 });
      expect((await got).map((x) => String(x.payload))).toEqual(['still-here']);
      expect(bob.connected).toBe(true);
      const fresh = await waitFor('cam to get in with the new password', () => connectV5({ ...at, username: 'cam', password: 'n3w-secret', clientId: 'reload-new' }).catch(() => undefined));
      clients.push(fresh.client);
    } finally {
      await own.close();
    }
  });
});
