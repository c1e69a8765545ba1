/**
 * mosquitto's $SYS/broker/... topics, published every sys_interval as retained messages, readable only
 * where the ACL allows (`#` does not match $SYS; `topic read $SYS/#` does), as mosquitto does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, USERS, type TestBroker } from '../support/broker.js';
import { connectMqtt, messagesDuring } from '../support/clients.js';
import { waitFor } from '../support/wait.js';

const ACL = `user bob
topic read $SYS/#
topic readwrite #

user cam
topic readwrite #
`;

let broker: TestBroker;

beforeAll(async () => {
  broker = await startTestBroker({ acl: ACL, config: { sysInterval: 1, logLevel: 'warn' } });
});
afterAll(async () => {
  await broker?.close();
});

const as = (user: 'bob' | 'cam') => ({ port: broker.port, ca: broker.pki.ca.cert, username: user, password: USERS[user] });

describe('$SYS topics', () => {
  it('publishes version, clients, messages and load figures, updated every sys_interval, to readers the ACL allows', async () => {
    const reader = await connectMqtt({ ...as('bob'), protocolVersion: 5 });
    const seen = new Map<string, string>();
    reader.on('message', (topic, payload) => seen.set(topic, payload.toString()));
    await reader.subscribeAsync('$SYS/broker/#', { qos: 0 });
    await waitFor('the version', () => seen.get('$SYS/broker/version'));
    expect(seen.get('$SYS/broker/version')).toMatch(/^mqtt-acme-broker version \d+\.\d+\.\d+/);

    // Traffic, then the next interval shows it.
    const pub = await connectMqtt(as('cam'));
    for (let i = 0; i < 5; i++) await pub.publishAsync('house/sensor', `v${i}`, { qos: 1 });
    await waitFor('messages received to count the five', () => Number(seen.get('$SYS/broker/messages/received') ?? 0) >= 5);
    await waitFor('two clients connected', () => seen.get('$SYS/broker/clients/connected') === '2');
    expect(Number(seen.get('$SYS/broker/bytes/received'))).toBeGreaterThanOrEqual(10);
    expect(seen.get('$SYS/broker/uptime')).toMatch(/^\d+ seconds$/);
    await waitFor('a messages load figure', () => Number(seen.get('$SYS/broker/load/messages/received/1min') ?? 0) > 0);
    expect(seen.has('$SYS/broker/subscriptions/count')).toBe(true);
    expect(seen.has('$SYS/broker/retained messages/count')).toBe(true);
    await pub.endAsync();
    await reader.endAsync();
  });

  it('gives nothing under $SYS to a client whose ACL reads only `#`, and a `#` subscription never sees $SYS', async () => {
    const cam = await connectMqtt(as('cam'));
    await cam.subscribeAsync('#', { qos: 0 });
    // Its ACL has no read rule under $SYS: the subscription itself is refused (0x80).
    await expect(cam.subscribeAsync('$SYS/broker/version', { qos: 0 })).rejects.toThrow(/Unspecified error/);
    const got = await messagesDuring(cam, 2500);
    expect(got.filter((m) => m.startsWith('$SYS'))).toEqual([]);
    await cam.endAsync();
  });
});
