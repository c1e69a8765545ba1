/**
 * /healthz, /readyz and /metrics of a running broker, scraped with a real HTTP client while real MQTT
 * clients connect, publish and fail to log in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectMqtt, collectMessages } from '../support/clients.js';
import { startTestBroker, USERS, type TestBroker } from '../support/broker.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ acl: 'user cam\ntopic readwrite cam/#\nuser bob\ntopic readwrite #\n', config: { persistence: true } });
});
afterAll(async () => {
  await broker?.close();
});

const url = (path: string): string => `http://127.0.0.1:${broker.running.opsPort}${path}`;

async function scrape(): Promise<Map<string, number>> {
  const res = await fetch(url('/metrics'));
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/text\/plain/);
  const values = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const at = line.lastIndexOf(' ');
    values.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return values;
}

const get = (m: Map<string, number>, name: string): number => {
  const v = m.get(`mqtt_acme_broker_${name}`);
  if (v === undefined) throw new Error(`metric ${name} missing`);
  return v;
};

describe('ops endpoints', () => {
  it('/healthz and /readyz answer 200 on a started broker', async () => {
    expect((await fetch(url('/healthz'))).status).toBe(200);
    const ready = await fetch(url('/readyz'));
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready' });
  });

  it('metrics move with connections, messages, refused logins and denials, and hold no client data', async () => {
    const before = await scrape();
    const sub = await connectMqtt({ port: broker.port, ca: broker.pki.ca.cert, username: 'bob', password: USERS.bob, clientId: 'metrics-sub-client' });
    const pub = await connectMqtt({ port: broker.port, ca: broker.pki.ca.cert, username: 'cam', password: USERS.cam });
    await sub.subscribeAsync('cam/#', { qos: 1 });
    const got = collectMessages(sub, 2);
    await pub.publishAsync('cam/a', 'hello', { qos: 1 });
    await pub.publishAsync('cam/b', 'retained-payload', { qos: 1, retain: true });
    await got;
    await pub.publishAsync('forbidden/x', 'no', { qos: 1 });
    await expect(connectMqtt({ port: broker.port, ca: broker.pki.ca.cert, username: 'cam', password: 'Wr0ng-Pa55' })).rejects.toThrow();

    const after = await scrape();
    expect(get(after, 'connected_clients')).toBe(get(before, 'connected_clients') + 2);
    expect(get(after, 'messages_received_total') - get(before, 'messages_received_total')).toBeGreaterThanOrEqual(2);
    expect(get(after, 'messages_sent_total') - get(before, 'messages_sent_total')).toBeGreaterThanOrEqual(2);
    expect(get(after, 'authentication_failures_total')).toBe(get(before, 'authentication_failures_total') + 1);
    expect(after.get('mqtt_acme_broker_connections_refused_total{reason="bad_credentials"}')).toBe(
      (before.get('mqtt_acme_broker_connections_refused_total{reason="bad_credentials"}') ?? 0) + 1,
    );
    expect(after.get('mqtt_acme_broker_authorization_denials_total{action="publish"}')).toBeGreaterThanOrEqual(1);
    expect(get(after, 'retained_messages')).toBeGreaterThanOrEqual(1);
    const text = await (await fetch(url('/metrics'))).text();
    for (const secret of ['metrics-sub-client', 'retained-payload', 'cam/a', USERS.cam, 'Wr0ng-Pa55']) expect(text).not.toContain(secret);

    await Promise.all([sub.endAsync(), pub.endAsync()]);
    const end = await scrape();
    expect(get(end, 'connected_clients')).toBe(get(before, 'connected_clients'));
  });

  it('/readyz turns 503 once shutdown starts', async () => {
    const other = await startTestBroker();
    const port = other.running.opsPort;
    const closing = other.close();
    const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
    // Either the ops server answered "not ready" or it was already closed: never "ready".
    if (res) expect(res.status).toBe(503);
    await closing;
  });
});
