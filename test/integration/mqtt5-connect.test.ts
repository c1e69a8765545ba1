/**
 * MQTT 5 CONNECT and CONNACK with real clients (mqtt.js 5, Debian's paho-mqtt 1.6.1 as Home Assistant's
 * client family, mosquitto_pub/mosquitto_sub 2.0.11): the limits the broker announces, assigned client
 * identifiers, refusals with v5 reason codes and reason strings (v3 clients keep their v3 codes), user
 * properties on CONNECT, and Home Assistant's birth / will / discovery pattern.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { collectMessages, connectMqtt, messagesDuring, mosquittoArgs, run, runPaho, startMosquittoSub } from '../support/clients.js';
import { startTestBroker, USERS, type TestBroker } from '../support/broker.js';
import { connectV5, mosquittoV5Args, RC, refusedV5, runPahoV5, spawnPahoV5, type PahoV5Process, type V5Connection, type V5Options } from '../support/mqtt5.js';
import { waitFor } from '../support/wait.js';

/** Default limits: maxInflightMessages 20, maxTopicAlias 10, no maxPacketSize, maxKeepalive 65535. */
let broker: TestBroker;
/** Every limit set to something else than its default. */
let limited: TestBroker;
const LIMITS = { maxInflightMessages: 5, maxTopicAlias: 3, maxPacketSize: 65_536, maxKeepalive: 30 };

beforeAll(async () => {
  [broker, limited] = await Promise.all([
    startTestBroker({ config: { logLevel: 'info' } }),
    startTestBroker({ config: { logLevel: 'info', ...LIMITS } }),
  ]);
});
afterAll(async () => {
  await Promise.all([broker?.close(), limited?.close()]);
});

const clients: MqttClient[] = [];
const pahos: PahoV5Process[] = [];
afterEach(async () => {
  for (const p of pahos.splice(0)) p.kill();
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
});

const ca = (b: TestBroker = broker): string => b.pki.ca.cert;

async function v5(b: TestBroker, options: Omit<V5Options, 'port' | 'ca'>): Promise<V5Connection> {
  const result = await connectV5({ port: b.port, ca: ca(b), ...options });
  clients.push(result.client);
  return result;
}

describe('CONNACK properties', () => {
  it('tells a v5 client our Receive Maximum and Topic Alias Maximum, and no Maximum Packet Size or Server Keep Alive by default', async () => {
    const { connack } = await v5(broker, { username: 'cam', password: USERS.cam, clientId: 'props-default', keepalive: 60 });
    expect(connack.reasonCode).toBe(0);
    expect(connack.sessionPresent).toBe(false);
    expect(connack.properties?.receiveMaximum).toBe(20);
    expect(connack.properties?.topicAliasMaximum).toBe(10);
    expect(connack.properties?.maximumPacketSize).toBeUndefined();
    expect(connack.properties?.serverKeepAlive).toBeUndefined();
    // Everything is available: the properties that would say otherwise are absent.
    expect(connack.properties?.retainAvailable).toBeUndefined();
    expect(connack.properties?.wildcardSubscriptionAvailable).toBeUndefined();
    expect(connack.properties?.subscriptionIdentifiersAvailable).toBeUndefined();
    expect(connack.properties?.sharedSubscriptionAvailable).toBeUndefined();
    expect(connack.properties?.assignedClientIdentifier).toBeUndefined();

    // paho (Home Assistant's client family) reads the same.
    const { code, result } = await runPahoV5({ port: broker.port, cafile: broker.pki.caFile, username: 'bob', password: USERS.bob, client_id: 'props-paho' });
    expect(code).toBe(0);
    expect(result.connack?.properties).toMatchObject({ ReceiveMaximum: 20, TopicAliasMaximum: 10 });
    expect(result.connack?.properties).not.toHaveProperty('MaximumPacketSize');
    expect(result.connack?.properties).not.toHaveProperty('ServerKeepAlive');
  });

  it('announces the configured Receive Maximum, Topic Alias Maximum and Maximum Packet Size (paho v5, mqtt.js)', async () => {
    const { code, result } = await runPahoV5({ port: limited.port, cafile: limited.pki.caFile, username: 'cam', password: USERS.cam, client_id: 'props-limited', keepalive: 20 });
    expect(code).toBe(0);
    expect(result.connack?.properties).toMatchObject({
      ReceiveMaximum: LIMITS.maxInflightMessages,
      TopicAliasMaximum: LIMITS.maxTopicAlias,
      MaximumPacketSize: LIMITS.maxPacketSize,
    });
    // keepalive 20 <= maxKeepalive 30: nothing to correct.
    expect(result.connack?.properties).not.toHaveProperty('ServerKeepAlive');

    const { connack } = await v5(limited, { username: 'bob', password: USERS.bob, clientId: 'props-limited-js', keepalive: 30 });
    expect(connack.properties).toMatchObject({ receiveMaximum: 5, topicAliasMaximum: 3, maximumPacketSize: 65_536 });
    expect(connack.properties?.serverKeepAlive).toBeUndefined();
  });

  it('answers a v5 client asking for more than maxKeepalive with Server Keep Alive; a v3 client is refused with 0x02', async () => {
    const { client, connack } = await v5(limited, { username: 'cam', password: USERS.cam, clientId: 'ka-js', keepalive: 120 });
    expect(connack.reasonCode).toBe(0);
    expect(connack.properties?.serverKeepAlive).toBe(LIMITS.maxKeepalive);
    // mqtt.js pings at the server's value from now on (MQTT-3.2.2-21).
    expect(client.keepalive).toBe(LIMITS.maxKeepalive);

    const paho = await runPahoV5({ port: limited.port, cafile: limited.pki.caFile, username: 'cam', password: USERS.cam, client_id: 'ka-paho', keepalive: 3600 });
    expect(paho.code).toBe(0);
    expect(paho.result.connack?.properties.ServerKeepAlive).toBe(LIMITS.maxKeepalive);

    // The v3 answer stays as before: identifier rejected.
    await expect(connectMqtt({ port: limited.port, ca: ca(limited), username: 'cam', password: USERS.cam, clientId: 'ka-v3', keepalive: 120 })).rejects.toThrow(
      /Identifier rejected/i,
    );
  });

  it('assigns a client identifier for an empty one (paho v5, mosquitto_sub -V mqttv5 without -i, mqtt.js)', async () => {
    const paho = await runPahoV5({ port: broker.port, cafile: broker.pki.caFile, username: 'cam', password: USERS.cam, client_id: '' });
    expect(paho.code).toBe(0);
    const assignedPaho = paho.result.connack?.properties.AssignedClientIdentifier;
    expect(assignedPaho).toEqual(expect.any(String));
    expect(String(assignedPaho).length).toBeGreaterThan(0);

    // mosquitto_sub in v5 mode sends an empty client id when given no -i (and refuses `-i ''` itself, before
    // connecting); its -d output names the client by the identifier it was assigned.
    const sub = await run('stdbuf', ['-oL', 'mosquitto_sub', ...mosquittoV5Args(broker.port, broker.pki.caFile, 'cam', USERS.cam), '-t', 'assigned/x', '-d', '-W', '1']);
    expect(sub.stdout).toMatch(/Client \(null\) sending CONNECT/);
    const named = /Client (\S+) received CONNACK \(0\)/.exec(sub.stdout)?.[1];
    expect(named).toBeDefined();
    expect(named).not.toBe('(null)');
    expect(named).not.toBe(assignedPaho);

    const a = await v5(broker, { username: 'cam', password: USERS.cam, clientId: '' });
    const b = await v5(broker, { username: 'cam', password: USERS.cam, clientId: '' });
    const idA = a.connack.properties?.assignedClientIdentifier;
    const idB = b.connack.properties?.assignedClientIdentifier;
    expect(idA).toEqual(expect.any(String));
    expect(idB).toEqual(expect.any(String));
    expect(idA).not.toBe(idB);
    // Both stay connected: the identifiers are distinct sessions, no takeover.
    await a.client.publishAsync('assigned/check', 'x', { qos: 1 });
    await b.client.publishAsync('assigned/check', 'x', { qos: 1 });
    expect(a.client.connected && b.client.connected).toBe(true);
  });
});

describe('refusals', () => {
  it('refuses a wrong password with 0x86 and a reason string (paho v5, as Home Assistant connects)', async () => {
    const { code, result } = await runPahoV5({ port: broker.port, cafile: broker.pki.caFile, username: 'cam', password: 'wrong-pass', client_id: 'ha-wrong' });
    expect(code).toBe(3);
    expect(result.connack?.rc).toBe(RC.badUserNameOrPassword);
    expect(result.connack?.reason).toBe('Bad user name or password');
    expect(result.connack?.properties.ReasonString).toEqual(expect.any(String));
    expect(String(result.connack?.properties.ReasonString).length).toBeGreaterThan(0);
    expect(String(result.connack?.properties.ReasonString)).not.toContain('wrong-pass');
    // An unknown user is the same answer: nothing tells a caller which user names exist.
    const unknown = await runPahoV5({ port: broker.port, cafile: broker.pki.caFile, username: 'nobody', password: 'x', client_id: 'ha-nobody' });
    expect(unknown.result.connack?.rc).toBe(RC.badUserNameOrPassword);
  });

  it('mosquitto_pub -V mqttv5 reports a wrong password as "Bad User Name or Password" and anonymous as "Not authorized"', async () => {
    const wrong = await run('mosquitto_pub', [...mosquittoV5Args(broker.port, broker.pki.caFile, 'cam', 'wrong-pass'), '-t', 'refused/x', '-m', 'x']);
    expect(wrong.code).toBe(RC.badUserNameOrPassword);
    expect(wrong.stderr).toMatch(/Connection error: Bad User Name or Password/);
    const anonymous = await run('mosquitto_pub', [...mosquittoV5Args(broker.port, broker.pki.caFile), '-t', 'refused/x', '-m', 'x']);
    expect(anonymous.code).toBe(RC.notAuthorized);
    expect(anonymous.stderr).toMatch(/Connection error: Not authorized/);
  });

  it('refuses an anonymous v5 client with 0x87 and a reason string (paho v5, mqtt.js)', async () => {
    const { code, result } = await runPahoV5({ port: broker.port, cafile: broker.pki.caFile, client_id: 'anon-paho' });
    expect(code).toBe(3);
    expect(result.connack?.rc).toBe(RC.notAuthorized);
    expect(result.connack?.properties.ReasonString).toEqual(expect.any(String));
    const connack = await refusedV5({ port: broker.port, ca: ca(), clientId: 'anon-js' });
    expect(connack.reasonCode).toBe(RC.notAuthorized);
  });

  it('refuses an Authentication Method in CONNECT with 0x8C (mqtt.js, paho v5)', async () => {
    const connack = await refusedV5({
      port: broker.port,
      ca: ca(),
      username: 'cam',
      password: USERS.cam,
      clientId: 'auth-js',
      properties: { authenticationMethod: 'SCRAM-SHA-256', authenticationData: Buffer.from('client-first') },
    });
    expect(connack.reasonCode).toBe(RC.badAuthenticationMethod);
    expect(connack.properties?.reasonString).toEqual(expect.any(String));

    const { code, result } = await runPahoV5({
      port: broker.port,
      cafile: broker.pki.caFile,
      username: 'cam',
      password: USERS.cam,
      client_id: 'auth-paho',
      properties: { AuthenticationMethod: 'SCRAM-SHA-1' },
    });
    expect(code).toBe(3);
    expect(result.connack?.rc).toBe(RC.badAuthenticationMethod);
  });

  it('suppresses the reason string when the client sets Request Problem Information to 0 (mqtt.js, paho v5)', async () => {
    const plain = await refusedV5({ port: broker.port, ca: ca(), username: 'cam', password: 'wrong', clientId: 'rpi-1' });
    expect(plain.reasonCode).toBe(RC.badUserNameOrPassword);
    expect(plain.properties?.reasonString).toEqual(expect.any(String));

    const quiet = await refusedV5({ port: broker.port, ca: ca(), username: 'cam', password: 'wrong', clientId: 'rpi-0', properties: { requestProblemInformation: false } });
    expect(quiet.reasonCode).toBe(RC.badUserNameOrPassword);
    expect(quiet.properties?.reasonString).toBeUndefined();
    expect(quiet.properties?.userProperties).toBeUndefined();

    const paho = await runPahoV5({
      port: broker.port,
      cafile: broker.pki.caFile,
      client_id: 'rpi-paho',
      properties: { RequestProblemInformation: 0 },
    });
    expect(paho.result.connack?.rc).toBe(RC.notAuthorized);
    expect(paho.result.connack?.properties).not.toHaveProperty('ReasonString');
  });

  it('keeps the v3 return codes for v3 clients (mqtt.js 3.1.1, paho 3.1.1, mosquitto_pub 3.1 and 3.1.1)', async () => {
    const returnCodes: (number | undefined)[] = [];
    for (const password of ['wrong', undefined]) {
      const connack = await refusedV5({
        port: broker.port,
        ca: ca(),
        protocolVersion: 4,
        clientId: 'v3-refused',
        ...(password === undefined ? {} : { username: 'cam', password }),
      });
      expect(connack.reasonCode).toBeUndefined();
      returnCodes.push(connack.returnCode);
    }
    expect(returnCodes).toEqual([5, 5]);

    const paho = await runPaho({ port: broker.port, cafile: broker.pki.caFile, username: 'cam', password: 'wrong' });
    expect(paho.result.rc).toBe(5);

    for (const version of ['mqttv311', 'mqttv31']) {
      const args = mosquittoArgs(broker.port, broker.pki.caFile, 'cam', 'wrong').map((a) => (a === 'mqttv311' ? version : a));
      const out = await run('mosquitto_pub', [...args, '-t', 'refused/x', '-m', 'x']);
      expect(out.stderr).toMatch(/Connection Refused: not authorised/);
    }
  });
});

describe('CONNECT properties', () => {
  it('accepts user properties on CONNECT (mosquitto_pub -D connect user-property, mqtt.js, paho v5)', async () => {
    const { client: watcher } = await v5(broker, { username: 'bob', password: USERS.bob, clientId: 'up-watcher' });
    await watcher.subscribeAsync('userprops/#', { qos: 1 });
    const got = collectMessages(watcher, 3);

    const pub = await run('mosquitto_pub', [
      ...mosquittoV5Args(broker.port, broker.pki.caFile, 'cam', USERS.cam),
      '-D', 'connect', 'user-property', 'site', 'garage',
      '-D', 'connect', 'user-property', 'firmware', '2.0.11',
      '-t', 'userprops/mosquitto', '-m', 'from-mosquitto', '-q', '1',
    ]);
    expect(pub.code, pub.stderr).toBe(0);

    const { client } = await v5(broker, { username: 'cam', password: USERS.cam, clientId: 'up-js', properties: { userProperties: { site: 'garage', tag: ['a', 'b'] } } });
    await client.publishAsync('userprops/js', 'from-mqttjs', { qos: 1 });

    const paho = await runPahoV5({
      port: broker.port,
      cafile: broker.pki.caFile,
      username: 'cam',
      password: USERS.cam,
      client_id: 'up-paho',
      properties: { UserProperty: [['site', 'garage'], ['site', 'attic']] },
      publish: [{ topic: 'userprops/paho', payload: 'from-paho', qos: 1 }],
    });
    expect(paho.code).toBe(0);
    expect((await got).map((m) => m.payload).sort()).toEqual(['from-mosquitto', 'from-mqttjs', 'from-paho']);
  });
});

describe("Home Assistant's pattern", () => {
  it('paho v5 with clean start, a retained will on homeassistant/status, a birth message and retained discovery configs', async () => {
    const caFile = broker.pki.caFile;
    const discovery = JSON.stringify({ name: 'Garage temperature', state_topic: 'garage/temperature', unit_of_measurement: '°C', unique_id: 'garage-t1' });
    // A device announces itself first (retained, as Zigbee2MQTT and ESPHome do).
    const device = await run('mosquitto_pub', [...mosquittoV5Args(broker.port, caFile, 'cam', USERS.cam), '-t', 'homeassistant/sensor/garage/temperature/config', '-m', discovery, '-r', '-q', '1']);
    expect(device.code, device.stderr).toBe(0);

    // Something that follows Home Assistant's availability.
    const { client: watcher } = await v5(broker, { username: 'cam', password: USERS.cam, clientId: 'ha-watcher' });
    await watcher.subscribeAsync('homeassistant/status', { qos: 1 });
    const birth = collectMessages(watcher, 1);

    // Home Assistant: clean start, will "offline" (retained), subscribe to its discovery prefix, birth "online".
    const ha = spawnPahoV5({
      port: broker.port,
      cafile: caFile,
      username: 'bob',
      password: USERS.bob,
      client_id: 'homeassistant-core',
      clean_start: true,
      keepalive: 60,
      will: { topic: 'homeassistant/status', payload: 'offline', qos: 1, retain: true },
      subscribe: [{ topic: 'homeassistant/#', qos: 1 }],
      publish: [{ topic: 'homeassistant/status', payload: 'online', qos: 1, retain: true }],
      count: 2,
      hold: 60,
      timeout: 60,
    });
    pahos.push(ha);
    const connack = await ha.waitEvent('connack');
    expect(connack.rc).toBe(0);
    expect(connack.session_present).toBe(false);
    expect(await birth).toEqual([{ topic: 'homeassistant/status', payload: 'online', qos: 1, retain: false }]);

    // Home Assistant got the retained discovery config when it subscribed (and its own birth message).
    await waitFor('Home Assistant to get the config and its birth message', () => ha.events.filter((e) => e.event === 'message').length >= 2);
    const messages = ha.events.filter((e) => e.event === 'message');
    expect(messages).toContainEqual(
      expect.objectContaining({ topic: 'homeassistant/sensor/garage/temperature/config', payload: discovery, retain: true }),
    );
    expect(messages).toContainEqual(expect.objectContaining({ topic: 'homeassistant/status', payload: 'online' }));

    // A second client arriving now sees the retained config and "online".
    const late = await startMosquittoSub([...mosquittoV5Args(broker.port, caFile, 'cam', USERS.cam), '-t', 'homeassistant/#', '-q', '1', '-F', '%r %t %p'], 2);
    expect((await late.done).lines.sort()).toEqual([`1 homeassistant/sensor/garage/temperature/config ${discovery}`, '1 homeassistant/status online'].sort());

    // Home Assistant dies (no DISCONNECT): the will says so, live and retained.
    const offline = collectMessages(watcher, 1);
    ha.kill();
    expect(await offline).toEqual([{ topic: 'homeassistant/status', payload: 'offline', qos: 1, retain: false }]);
    const after = await startMosquittoSub([...mosquittoV5Args(broker.port, caFile, 'cam', USERS.cam), '-t', 'homeassistant/status', '-F', '%r %t %p'], 1);
    expect((await after.done).lines).toEqual(['1 homeassistant/status offline']);
    // Nothing else arrived for the watcher meanwhile.
    expect(await messagesDuring(watcher, 300)).toEqual([]);
  });
});
