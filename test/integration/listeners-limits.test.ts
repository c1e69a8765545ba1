/**
 * Websocket listeners (plain and TLS, as mosquitto's `protocol websockets`), a plain TCP listener, and
 * mosquitto's limits: max_keepalive, retain_available, max_connections.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { connectMqtt, collectMessages } from '../support/clients.js';
import { startTestBroker, USERS, type TestBroker } from '../support/broker.js';
import { waitFor } from '../support/wait.js';

let broker: TestBroker;
beforeAll(async () => {
  const base = await startTestBroker({ config: { persistence: false } });
  const listener = base.config.listeners[0];
  await base.close();
  // Reuse the PKI and certificate of the first start for a broker with every kind of listener.
  broker = await startTestBroker({
    dir: base.dir,
    pki: base.pki,
    config: { maxKeepalive: 120, retainAvailable: false, maxConnections: 6 },
    extraListeners: [
      { protocol: 'mqtt' },
      { protocol: 'websockets' },
      { protocol: 'websockets', certfile: listener?.certfile, keyfile: listener?.keyfile },
    ],
  });
});
afterAll(async () => {
  await broker?.close();
});

const portOf = (name: string): number => {
  const l = broker.running.listeners.find((x) => x.name.startsWith(`${name}:`));
  if (!l) throw new Error(`no ${name} listener`);
  return l.port;
};

function connectUrl(url: string, extra: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  const client = mqtt.connect(url, { username: 'cam', password: USERS.cam, reconnectPeriod: 0, ca: broker.pki.ca.cert, ...extra });
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
  });
}

describe('listeners', () => {
  it('serves MQTT over plain TCP, websockets and secure websockets to the same broker', async () => {
    const tcp = await connectUrl(`mqtt://127.0.0.1:${portOf('mqtt')}`);
    const ws = await connectUrl(`ws://127.0.0.1:${portOf('ws')}`);
    const wss = await connectUrl(`wss://localhost:${portOf('wss')}`);
    await ws.subscribeAsync('x/#', { qos: 1 });
    await wss.subscribeAsync('x/#', { qos: 1 });
    const a = collectMessages(ws, 1);
    const b = collectMessages(wss, 1);
    await tcp.publishAsync('x/1', 'over tcp', { qos: 1 });
    expect((await a)[0]?.payload).toBe('over tcp');
    expect((await b)[0]?.payload).toBe('over tcp');
    await Promise.all([tcp.endAsync(), ws.endAsync(), wss.endAsync()]);
  });
});

describe('limits', () => {
  it('refuses a keepalive above max_keepalive with CONNACK 0x02, as mosquitto does for v3 clients', async () => {
    await expect(connectMqtt({ port: broker.port, ca: broker.pki.ca.cert, username: 'cam', password: USERS.cam, keepalive: 300 })).rejects.toThrow(/Identifier rejected/i);
    const ok = await connectMqtt({ port: broker.port, ca: broker.pki.ca.cert, username: 'cam', password: USERS.cam, keepalive: 60 });
    await ok.endAsync();
  });

  it('disconnects a client that publishes a retained message when retain_available is false', async () => {
    const c = await connectMqtt({ port: broker.port, ca: broker.pki.ca.cert, username: 'cam', password: USERS.cam });
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    c.publish('r/x', 'keep', { qos: 0, retain: true });
    await closed;
    expect(broker.logs.text()).toMatch(/retain_available false/);
  });

  it('refuses connections beyond max_connections on a listener and accepts again once one leaves', async () => {
    const clients = [];
    for (let i = 0; i < 6; i += 1) clients.push(await connectMqtt({ port: broker.port, ca: broker.pki.ca.cert, username: 'cam', password: USERS.cam }));
    await expect(connectMqtt({ port: broker.port, ca: broker.pki.ca.cert, username: 'cam', password: USERS.cam, connectTimeout: 3000 })).rejects.toThrow();
    expect(broker.logs.text()).toMatch(/max_connections reached/);
    await clients.pop()?.endAsync();
    const again = await waitFor('a free connection slot', () =>
      connectMqtt({ port: broker.port, ca: broker.pki.ca.cert, username: 'cam', password: USERS.cam }).catch(() => undefined),
    );
    await Promise.all([again.endAsync(), ...clients.map((c) => c.endAsync())]);
  });
});
