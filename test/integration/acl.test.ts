/**
 * mosquitto-style ACLs enforced by the running broker on subscribe (0x80 in the SUBACK), publish (dropped,
 * the client stays) and delivery (a message on a denied topic never reaches the client), with real clients.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectMqtt, collectMessages, messagesDuring, mosquittoArgs, run, startMosquittoSub, subscribeGranted } from '../support/clients.js';
import { startTestBroker, USERS, type TestBroker } from '../support/broker.js';

const ACL = `# cameras publish their own topics and read their commands
user cam
topic write cam/#
topic read cmd/cam/#

user bob
topic readwrite #
topic deny secret/#

pattern readwrite clients/%c/#
pattern read users/%u/#
`;

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ acl: ACL });
});
afterAll(async () => {
  await broker?.close();
});

const ca = (): string => broker.pki.ca.cert;
const cam = (clientId?: string) => connectMqtt({ port: broker.port, ca: ca(), username: 'cam', password: USERS.cam, ...(clientId ? { clientId } : {}) });
const bob = () => connectMqtt({ port: broker.port, ca: ca(), username: 'bob', password: USERS.bob });

describe('ACL', () => {
  it('answers a denied subscription with 0x80 and grants the allowed ones in the same SUBSCRIBE', async () => {
    const c = await cam();
    const byTopic = await subscribeGranted(c, { 'cmd/cam/#': { qos: 1 }, 'other/#': { qos: 1 }, 'cam/#': { qos: 0 } });
    expect(byTopic).toEqual({ 'cmd/cam/#': 1, 'other/#': 128, 'cam/#': 128 });
    await c.endAsync();
  });

  it('drops a denied publish and keeps the publisher connected; allowed ones go through', async () => {
    const watcher = await bob();
    await watcher.subscribeAsync('#', { qos: 1 });
    const c = await cam();
    const during = messagesDuring(watcher, 600);
    await c.publishAsync('other/topic', 'denied', { qos: 1 }); // PUBACK still comes, like mosquitto
    c.publish('other/topic', 'denied-qos0', { qos: 0 });
    await c.publishAsync('cam/motion', 'allowed', { qos: 1 });
    const seen = await during;
    expect(seen).toContain('cam/motion:allowed');
    expect(seen.filter((m) => m.startsWith('other/'))).toEqual([]);
    expect(c.connected).toBe(true);
    await Promise.all([c.endAsync(), watcher.endAsync()]);
  });

  it('filters delivery: a wildcard subscriber never receives a denied topic, retained ones included', async () => {
    const b = await bob();
    const publisher = await cam('secret-writer');
    // clients/%c/# lets this client write under its own id, and bob may read everything but secret/#.
    await publisher.publishAsync('clients/secret-writer/state', 'visible', { qos: 1, retain: true });
    const got = collectMessages(b, 1);
    await b.subscribeAsync('clients/#', { qos: 1 });
    expect((await got)[0]).toMatchObject({ topic: 'clients/secret-writer/state', payload: 'visible', retain: true });

    // A client may not write into another client's %c space, nor read a user's %u space of another user.
    const during = messagesDuring(b, 500);
    await publisher.publishAsync('clients/someone-else/state', 'forged', { qos: 1 });
    expect(await during).toEqual([]);
    expect(await subscribeGranted(publisher, { 'users/bob/#': { qos: 0 }, 'users/cam/#': { qos: 0 } })).toEqual({ 'users/bob/#': 128, 'users/cam/#': 0 });
    await Promise.all([b.endAsync(), publisher.endAsync()]);
  });

  it('bob subscribed to # does not receive secret/# (deny wins at delivery)', async () => {
    const b = await bob();
    await b.subscribeAsync('#', { qos: 0 });
    const other = await bob();
    const during = messagesDuring(b, 500);
    await other.publishAsync('secret/key', 'x', { qos: 1 });
    await other.publishAsync('public/news', 'y', { qos: 1 });
    const seen = await during;
    expect(seen).toContain('public/news:y');
    expect(seen.some((m) => m.startsWith('secret/'))).toBe(false);
    // Retained messages on a denied topic are filtered when a later wildcard SUBSCRIBE replays them.
    await other.publishAsync('secret/retained', 'r', { qos: 1, retain: true });
    await other.publishAsync('public/retained', 'r', { qos: 1, retain: true });
    const late = await bob();
    const replay = messagesDuring(late, 600);
    await late.subscribeAsync('#', { qos: 0 });
    const replayed = await replay;
    expect(replayed).toContain('public/retained:r');
    expect(replayed.some((m) => m.startsWith('secret/'))).toBe(false);
    await Promise.all([b.endAsync(), other.endAsync(), late.endAsync()]);
  });

  it('works for mosquitto_sub/mosquitto_pub too: a camera reads its commands and cannot read others', async () => {
    const sub = await startMosquittoSub([...mosquittoArgs(broker.port, broker.pki.caFile, 'cam', USERS.cam), '-t', 'cmd/cam/#', '-q', '1', '-v'], 1);
    const denied = await run('mosquitto_sub', [...mosquittoArgs(broker.port, broker.pki.caFile, 'cam', USERS.cam), '-t', 'other/#', '-W', '2', '-d']);
    expect(denied.stdout).toMatch(/Subscribed \(mid: \d+\): 128/);
    const pub = await run('mosquitto_pub', [...mosquittoArgs(broker.port, broker.pki.caFile, 'bob', USERS.bob), '-t', 'cmd/cam/snapshot', '-q', '1', '-m', 'now']);
    expect(pub.code).toBe(0);
    expect((await sub.done).lines).toEqual(['cmd/cam/snapshot now']);
  });
});
