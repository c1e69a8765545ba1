/**
 * MQTT 5 PUBLISH with real clients (mqtt.js 5, mosquitto_pub/mosquitto_sub 2.0.11 -V mqttv5, paho-mqtt 1.6.1
 * MQTTv5): properties forwarded unchanged, message expiry, topic aliases in both directions, and the
 * PUBACK / PUBREC reason codes. A raw mqtt-packet socket only for what no real client will send.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IDisconnectPacket, IPublishPacket } from 'mqtt-packet';
import { run } from '../support/clients.js';
import {
  clientId,
  mosqArgs,
  mosquittoSub,
  mqttjs,
  pahoV5,
  publishAck,
  rawConnect,
  settle,
  startPubSubBroker,
  waitFor,
  type PubSubBroker,
} from '../support/mqtt5-pubsub.js';

const ACL = `user bob
topic readwrite #
topic deny secret/#

user cam
topic readwrite cam/#
`;
const MESSAGE_SIZE_LIMIT = 1024;
const MAX_TOPIC_ALIAS = 10;

let broker: PubSubBroker;
beforeAll(async () => {
  broker = await startPubSubBroker({ acl: ACL, config: { messageSizeLimit: MESSAGE_SIZE_LIMIT, maxTopicAlias: MAX_TOPIC_ALIAS } });
});
afterAll(async () => {
  await broker?.close();
});

const publishPackets = (packets: { cmd: string }[]): IPublishPacket[] => packets.filter((p): p is IPublishPacket => p.cmd === 'publish');

describe('PUBLISH properties are forwarded unchanged', () => {
  it('mosquitto_pub -D ... reaches mosquitto_sub -F with every property, user properties in order with a repeated key', async () => {
    const topic = 'props/cli';
    const sub = await mosquittoSub([...mosqArgs(broker, 'mqttv5'), '-t', topic, '-q', '1'], '%t|%p|%F|%C|%R|%D|%P|%E');
    try {
      const props = [
        ['payload-format-indicator', '1'],
        ['content-type', 'application/json'],
        ['response-topic', 'replies/cli'],
        ['correlation-data', 'corr-42'],
        ['message-expiry-interval', '3600'],
      ].flatMap(([name, value]) => ['-D', 'publish', name ?? '', value ?? '']);
      const users = ['-D', 'publish', 'user-property', 'a', '1', '-D', 'publish', 'user-property', 'b', '2', '-D', 'publish', 'user-property', 'a', '3'];
      const pub = await run('mosquitto_pub', [...mosqArgs(broker, 'mqttv5'), '-t', topic, '-q', '1', '-m', '{"t":21}', ...props, ...users]);
      expect(pub.code, pub.stderr).toBe(0);
      // The same topic without properties: nothing of the first message's properties sticks to it.
      const plain = await run('mosquitto_pub', [...mosqArgs(broker, 'mqttv5'), '-t', topic, '-q', '1', '-m', 'plain']);
      expect(plain.code, plain.stderr).toBe(0);
      const [first, second] = await sub.waitLines(2);
      const fields = (first ?? '').split('|');
      expect(fields.slice(0, 7)).toEqual([topic, '{"t":21}', '1', 'application/json', 'replies/cli', 'corr-42', 'a:1 b:2 a:3']);
      // The expiry interval is forwarded (less the seconds it waited in the broker: a few at most here).
      const expiry = Number(fields[7]);
      expect(expiry).toBeGreaterThan(3500);
      expect(expiry).toBeLessThanOrEqual(3600);
      expect(second).toBe(`${topic}|plain||||||`);
    } finally {
      await sub.stop();
    }
  });

  it.each([0, 1, 2] as const)('mqtt.js at QoS %i -> mqtt.js and paho v5 subscribers get every property unchanged', async (qos) => {
    const topic = `props/js/q${qos}`;
    const sub = await mqttjs(broker);
    const paho = await pahoV5(broker);
    const pub = await mqttjs(broker);
    try {
      await sub.client.subscribeAsync(topic, { qos: 2 });
      expect(await paho.subscribe(topic, { qos: 2 })).toEqual([2]);
      const properties: IPublishPacket['properties'] = {
        payloadFormatIndicator: true,
        contentType: 'text/plain; charset=utf-8',
        responseTopic: 'replies/js',
        correlationData: Buffer.from([0, 1, 2, 0xff]),
        messageExpiryInterval: 600,
        userProperties: { k: ['v1', 'v2'], z: 'last' },
      };
      await pub.client.publishAsync(topic, 'grüße', { qos, properties });

      const [got] = await sub.waitMessages(1);
      expect(got?.payload).toBe('grüße');
      expect(got?.packet.qos).toBe(qos);
      const p = got?.packet.properties ?? {};
      expect(p.payloadFormatIndicator).toBe(true);
      expect(p.contentType).toBe('text/plain; charset=utf-8');
      expect(p.responseTopic).toBe('replies/js');
      expect(Buffer.from(p.correlationData ?? []).toString('hex')).toBe('000102ff');
      expect(p.userProperties).toEqual({ k: ['v1', 'v2'], z: 'last' });
      expect(p.messageExpiryInterval).toBeGreaterThan(500);
      expect(p.messageExpiryInterval).toBeLessThanOrEqual(600);
      expect(p.subscriptionIdentifier).toBeUndefined(); // none was given
      expect(p.topicAlias).toBeUndefined(); // the subscriber announced no Topic Alias Maximum

      const m = await paho.waitEvent('message', (e) => e.event === 'message' && e.topic === topic);
      expect(m.payload).toBe('grüße');
      expect(m.properties).toMatchObject({
        PayloadFormatIndicator: 1,
        ContentType: 'text/plain; charset=utf-8',
        ResponseTopic: 'replies/js',
        CorrelationData: '000102ff',
        UserProperty: [
          ['k', 'v1'],
          ['k', 'v2'],
          ['z', 'last'],
        ],
      });
    } finally {
      await Promise.all([sub.end(), pub.end(), paho.close()]);
    }
  });

  it('paho v5 -> mqtt.js and paho v5: user properties with a repeated key keep their values and their order', async () => {
    const topic = 'props/paho';
    const sub = await mqttjs(broker);
    const reader = await pahoV5(broker);
    const paho = await pahoV5(broker);
    try {
      await sub.client.subscribeAsync(topic, { qos: 1 });
      expect(await reader.subscribe(topic, { qos: 1 })).toEqual([1]);
      const userProperty = [
        ['dup', 'one'],
        ['other', 'x'],
        ['dup', 'two'],
      ];
      paho.send({ op: 'publish', topic, payload: 'from-paho', qos: 1, properties: { UserProperty: userProperty, ResponseTopic: 'r/paho', CorrelationData: 'cd' } });
      const [got] = await sub.waitMessages(1);
      expect(got?.payload).toBe('from-paho');
      expect(got?.packet.properties?.userProperties).toEqual({ dup: ['one', 'two'], other: 'x' }); // mqtt.js groups by name
      expect(got?.packet.properties?.responseTopic).toBe('r/paho');
      expect(Buffer.from(got?.packet.properties?.correlationData ?? []).toString()).toBe('cd');
      // paho keeps the pairs as they came: the broker must forward them in order (MQTT-3.3.2-18).
      const m = await reader.waitEvent('message', (e) => e.event === 'message' && e.topic === topic);
      expect(m.properties?.UserProperty).toEqual(userProperty);
    } finally {
      await Promise.all([sub.end(), reader.close(), paho.close()]);
    }
  });
});

describe('message expiry', () => {
  it('an offline session does not get a message that expired meanwhile; the others come with the interval decremented (mqtt.js)', async () => {
    const id = clientId('expiry');
    const session = { clientId: id, clean: false, properties: { sessionExpiryInterval: 300 } };
    const first = await mqttjs(broker, session);
    await first.client.subscribeAsync('exp/off/#', { qos: 1 });
    await first.end();

    const pub = await mqttjs(broker);
    try {
      await pub.client.publishAsync('exp/off/short', 'short', { qos: 1, properties: { messageExpiryInterval: 1 } });
      await pub.client.publishAsync('exp/off/long', 'long', { qos: 1, properties: { messageExpiryInterval: 60 } });
      await pub.client.publishAsync('exp/off/none', 'none', { qos: 1 });
      await settle(2500); // the 1 s message expires; the 60 s one loses at least 2 s

      const back = await mqttjs(broker, session);
      try {
        const connack = back.packets.find((p) => p.cmd === 'connack');
        expect(connack).toMatchObject({ sessionPresent: true });
        await back.waitMessages(2);
        await settle(300);
        expect(back.messages.map((m) => m.payload)).toEqual(['long', 'none']);
        const long = back.messages[0]?.packet.properties?.messageExpiryInterval;
        expect(long).toBeGreaterThanOrEqual(1);
        expect(long).toBeLessThanOrEqual(58);
        expect(back.messages[1]?.packet.properties?.messageExpiryInterval).toBeUndefined();
      } finally {
        // A clean start with session expiry 0 ends the session.
        await back.end();
        const gone = await mqttjs(broker, { clientId: id, clean: true });
        await gone.end();
      }
    } finally {
      await pub.end();
    }
  });

  it('mosquitto_sub -c -x: a queued message shows the decremented interval in %E, the expired one is skipped', async () => {
    const id = clientId('expcli');
    const subArgs = [...mosqArgs(broker, 'mqttv5'), '-i', id, '-c', '-x', '300', '-q', '1', '-t', 'exp/cli'];
    const subscribe = await run('mosquitto_sub', [...subArgs, '-E']);
    expect(subscribe.code, subscribe.stderr).toBe(0);
    for (const [payload, expiry] of [
      ['short', '1'],
      ['long', '60'],
    ] as const) {
      const pub = await run('mosquitto_pub', [...mosqArgs(broker, 'mqttv5'), '-t', 'exp/cli', '-q', '1', '-m', payload, '-D', 'publish', 'message-expiry-interval', expiry]);
      expect(pub.code, pub.stderr).toBe(0);
    }
    const none = await run('mosquitto_pub', [...mosqArgs(broker, 'mqttv5'), '-t', 'exp/cli', '-q', '1', '-m', 'none']);
    expect(none.code, none.stderr).toBe(0);
    await settle(2500);
    // Queued messages come in publishing order: had `short` been kept, it would be the first line.
    const back = await run('mosquitto_sub', [...subArgs, '-F', '%p|%E', '-C', '2', '-W', '10']);
    expect(back.code, back.stderr).toBe(0);
    const [long, plain] = back.stdout.trim().split('\n');
    expect(long).toMatch(/^long\|\d+$/);
    const remaining = Number(long?.split('|')[1]);
    expect(remaining).toBeGreaterThanOrEqual(1);
    expect(remaining).toBeLessThanOrEqual(58);
    expect(plain).toBe('none|');
    const end = await run('mosquitto_sub', [...mosqArgs(broker, 'mqttv5'), '-i', id, '-t', 'exp/cli', '-E']); // clean start ends it
    expect(end.code).toBe(0);
  });

  it('a retained message with an expiry is given to new subscribers until it expires, then no more', async () => {
    const pub = await mqttjs(broker);
    try {
      await pub.client.publishAsync('exp/ret/brief', 'brief', { qos: 1, retain: true, properties: { messageExpiryInterval: 2 } });
      await pub.client.publishAsync('exp/ret/keep', 'keep', { qos: 1, retain: true });

      const early = await mqttjs(broker);
      await early.client.subscribeAsync('exp/ret/#', { qos: 1 });
      const got = await early.waitMessages(2);
      expect(got.map((m) => m.payload).sort()).toEqual(['brief', 'keep']);
      expect(got.every((m) => m.packet.retain)).toBe(true);
      const brief = got.find((m) => m.payload === 'brief');
      expect(brief?.packet.properties?.messageExpiryInterval).toBeLessThanOrEqual(2);
      await early.end();

      await settle(3000);
      const late = await mqttjs(broker);
      try {
        await late.client.subscribeAsync('exp/ret/#', { qos: 1 });
        await late.waitMessages(1, (m) => m.payload === 'keep');
        await settle(500);
        expect(late.messages.map((m) => m.payload)).toEqual(['keep']);
      } finally {
        await late.end();
      }
      // A mosquitto_sub asking for retained messages only sees the kept one as well.
      const cli = await run('mosquitto_sub', [...mosqArgs(broker, 'mqttv5'), '-t', 'exp/ret/#', '--retained-only', '-F', '%t|%p', '-W', '2']);
      expect(cli.stdout.trim().split('\n')).toEqual(['exp/ret/keep|keep']);
    } finally {
      await pub.client.publishAsync('exp/ret/keep', '', { qos: 1, retain: true });
      await pub.end();
    }
  });
});

describe('topic aliases from the client', () => {
  it('mqtt.js: topic + alias, then the alias alone, then the alias redefined: subscribers get the full topics', async () => {
    const v5sub = await mqttjs(broker);
    const v3sub = await mqttjs(broker, { protocolVersion: 4 });
    const pub = await mqttjs(broker);
    try {
      const connack = pub.packets.find((p) => p.cmd === 'connack');
      expect(connack).toMatchObject({ properties: { topicAliasMaximum: MAX_TOPIC_ALIAS } });
      await v5sub.client.subscribeAsync('alias/in/#', { qos: 1 });
      await v3sub.client.subscribeAsync('alias/in/#', { qos: 1 });

      expect((await publishAck(pub, 'alias/in/x', 'one', { qos: 1, properties: { topicAlias: 3 } })).reasonCode).toBe(0);
      expect((await publishAck(pub, '', 'two', { qos: 1, properties: { topicAlias: 3 } })).reasonCode).toBe(0);
      await pub.client.publishAsync('alias/in/y', 'three', { qos: 1, properties: { topicAlias: 3 } });
      await pub.client.publishAsync('', 'four', { qos: 1, properties: { topicAlias: 3 } });

      const expected = ['alias/in/x:one', 'alias/in/x:two', 'alias/in/y:three', 'alias/in/y:four'];
      for (const sub of [v5sub, v3sub]) {
        await sub.waitMessages(4);
        expect(sub.messages.slice(0, 4).map((m) => `${m.topic}:${m.payload}`)).toEqual(expected);
        // The broker resolved the alias: what it sends carries the topic itself.
        expect(sub.messages.every((m) => m.packet.topic !== '')).toBe(true);
      }
      expect(pub.client.connected).toBe(true);
    } finally {
      await Promise.all([v5sub.end(), v3sub.end(), pub.end()]);
    }
  });

  it('mosquitto_pub -D publish topic-alias with --repeat sends the alias alone after the first PUBLISH', async () => {
    const sub = await mosquittoSub([...mosqArgs(broker, 'mqttv5'), '-t', 'alias/cli', '-q', '1'], '%t|%p');
    try {
      const pub = await run('mosquitto_pub', [...mosqArgs(broker, 'mqttv5'), '-t', 'alias/cli', '-q', '1', '-m', 'hi', '-D', 'publish', 'topic-alias', '2', '--repeat', '3', '-d']);
      expect(pub.code, pub.stderr).toBe(0);
      // It really sent the later PUBLISHes without a topic.
      expect(pub.stdout.match(/sending PUBLISH \(d0, q1, r0, m\d+, '\(null\)'/g)?.length).toBe(2);
      expect(await sub.waitLines(3)).toEqual(['alias/cli|hi', 'alias/cli|hi', 'alias/cli|hi']);
    } finally {
      await sub.stop();
    }
  });

  it('an alias above Topic Alias Maximum gets DISCONNECT 0x94 and is not delivered (mosquitto_pub)', async () => {
    const sub = await mqttjs(broker);
    try {
      await sub.client.subscribeAsync('alias/over', { qos: 1 });
      const pub = await run('mosquitto_pub', [
        ...mosqArgs(broker, 'mqttv5'),
        '-t', 'alias/over', '-q', '1', '-m', 'over', '-D', 'publish', 'topic-alias', String(MAX_TOPIC_ALIAS + 1), '-d',
      ]);
      expect(pub.stdout).toMatch(/Received DISCONNECT \(148\)/);
      expect(pub.stdout).not.toMatch(/received PUBACK/);
      await settle(300);
      expect(sub.messages).toEqual([]);
    } finally {
      await sub.end();
    }
  });

  it.each([
    ['0', 0],
    ['Topic Alias Maximum + 1', MAX_TOPIC_ALIAS + 1],
  ])('raw socket: alias %s gets DISCONNECT 0x94 and the connection closes', async (_name, alias) => {
    const sub = await mqttjs(broker);
    const { raw, connack } = await rawConnect(broker, { protocolVersion: 5 });
    try {
      expect(connack).toMatchObject({ reasonCode: 0, properties: { topicAliasMaximum: MAX_TOPIC_ALIAS } });
      await sub.client.subscribeAsync('alias/raw', { qos: 1 });
      raw.send({ cmd: 'publish', topic: 'alias/raw', payload: 'bad', qos: 1, messageId: 1, dup: false, retain: false, properties: { topicAlias: alias } });
      const disconnect = await raw.waitPacket<IDisconnectPacket>('disconnect');
      expect(disconnect.reasonCode).toBe(0x94);
      await waitFor('the connection to close', () => raw.isClosed());
      expect(raw.packets.some((p) => p.cmd === 'puback')).toBe(false);
      await settle(200);
      expect(sub.messages).toEqual([]);
    } finally {
      raw.destroy();
      await sub.end();
    }
  });
});

describe('topic aliases from the broker', () => {
  it('a subscriber that announced topicAliasMaximum gets topic + alias first, then the alias alone; mqtt.js reports the topic', async () => {
    const sub = await mqttjs(broker, { properties: { topicAliasMaximum: 4 } });
    const pub = await mqttjs(broker);
    try {
      await sub.client.subscribeAsync('alias/out/#', { qos: 1 });
      for (const t of ['a', 'a', 'a', 'b', 'b', 'a']) await pub.client.publishAsync(`alias/out/${t}`, t, { qos: 1 });
      await sub.waitMessages(6);
      expect(sub.messages.map((m) => `${m.topic}:${m.payload}`)).toEqual(['a', 'a', 'a', 'b', 'b', 'a'].map((t) => `alias/out/${t}:${t}`));

      const wire = publishPackets(sub.packets).map((p) => ({ topic: p.topic, alias: p.properties?.topicAlias }));
      const aliasA = wire[0]?.alias;
      const aliasB = wire[3]?.alias;
      expect(aliasA).toBeGreaterThanOrEqual(1);
      expect(aliasA).toBeLessThanOrEqual(4);
      expect(aliasB).toBeGreaterThanOrEqual(1);
      expect(aliasB).toBeLessThanOrEqual(4);
      expect(aliasB).not.toBe(aliasA);
      expect(wire).toEqual([
        { topic: 'alias/out/a', alias: aliasA },
        { topic: '', alias: aliasA },
        { topic: '', alias: aliasA },
        { topic: 'alias/out/b', alias: aliasB },
        { topic: '', alias: aliasB },
        { topic: '', alias: aliasA },
      ]);
    } finally {
      await Promise.all([sub.end(), pub.end()]);
    }
  });

  it('never an alias above the subscriber\'s maximum, and none for a subscriber that announced none', async () => {
    const small = await mqttjs(broker, { properties: { topicAliasMaximum: 2 } });
    const none = await mqttjs(broker);
    const pub = await mqttjs(broker);
    try {
      await small.client.subscribeAsync('alias/many/#', { qos: 1 });
      await none.client.subscribeAsync('alias/many/#', { qos: 1 });
      // Immediate repeats: whichever way the broker reuses its 2 aliases, a topic just sent goes out as an alias alone.
      const order = ['t1', 't1', 't2', 't2', 't3', 't3', 't4', 't4', 't1', 't1', 't3', 't2'];
      for (const t of order) await pub.client.publishAsync(`alias/many/${t}`, t, { qos: 1 });
      const expected = order.map((t) => `alias/many/${t}:${t}`);
      await small.waitMessages(order.length);
      await none.waitMessages(order.length);
      expect(small.messages.map((m) => `${m.topic}:${m.payload}`)).toEqual(expected);
      expect(none.messages.map((m) => `${m.topic}:${m.payload}`)).toEqual(expected);
      for (const p of publishPackets(small.packets)) {
        const alias = p.properties?.topicAlias;
        if (alias !== undefined) {
          expect(alias).toBeGreaterThanOrEqual(1);
          expect(alias).toBeLessThanOrEqual(2);
        }
      }
      // The repeats went out as an alias alone (the broker did assign aliases).
      expect(publishPackets(small.packets).some((p) => p.topic === '' && p.properties?.topicAlias !== undefined)).toBe(true);
      expect(publishPackets(none.packets).every((p) => p.topic !== '' && p.properties?.topicAlias === undefined)).toBe(true);
      expect(small.errors).toEqual([]);
    } finally {
      await Promise.all([small.end(), none.end(), pub.end()]);
    }
  });
});

describe('PUBACK and PUBREC reason codes', () => {
  it('0x10 when no subscriber matched, 0x00 once one does (mqtt.js, QoS 1 and 2)', async () => {
    const pub = await mqttjs(broker);
    const sub = await mqttjs(broker);
    try {
      for (const qos of [1, 2] as const) {
        const topic = `rc/nosub/q${qos}`;
        const alone = await publishAck(pub, topic, 'nobody', { qos });
        expect(alone).toMatchObject({ cmd: qos === 1 ? 'puback' : 'pubrec', reasonCode: 0x10, error: undefined });
        await sub.client.subscribeAsync(topic, { qos: 1 });
        expect((await publishAck(pub, topic, 'somebody', { qos })).reasonCode).toBe(0);
        await sub.waitMessages(1, (m) => m.topic === topic);
      }
      expect(pub.client.connected).toBe(true);
    } finally {
      await Promise.all([pub.end(), sub.end()]);
    }
  });

  it('mosquitto_pub -d shows PUBACK RC:16 with no subscriber', async () => {
    const pub = await run('mosquitto_pub', [...mosqArgs(broker, 'mqttv5'), '-t', 'rc/nosub/cli', '-q', '1', '-m', 'x', '-d']);
    expect(pub.code, pub.stderr).toBe(0);
    expect(pub.stdout).toMatch(/received PUBACK \(Mid: \d+, RC:16\)/);
  });

  it.each([1, 2] as const)('0x87 at QoS %i when the ACL denies the topic: dropped, the client stays connected', async (qos) => {
    const watcher = await mqttjs(broker); // bob reads everything but secret/#
    const pub = await mqttjs(broker, { user: 'cam' }); // cam may write cam/# only
    try {
      await watcher.client.subscribeAsync({ 'bob/#': { qos: 1 }, 'cam/#': { qos: 1 } });
      const denied = await publishAck(pub, `bob/q${qos}`, 'denied', { qos });
      expect(denied.cmd).toBe(qos === 1 ? 'puback' : 'pubrec');
      expect(denied.reasonCode).toBe(0x87);
      expect(denied.error).toBeDefined();
      // Still connected and still allowed on its own topics.
      expect((await publishAck(pub, `cam/q${qos}`, 'allowed', { qos })).reasonCode).toBe(0);
      await watcher.waitMessages(1, (m) => m.topic === `cam/q${qos}`);
      await settle(200);
      expect(watcher.messages.map((m) => `${m.topic}:${m.payload}`)).toEqual([`cam/q${qos}:allowed`]);
      expect(pub.client.connected).toBe(true);
      expect(pub.packets.some((p) => p.cmd === 'disconnect')).toBe(false);
    } finally {
      await Promise.all([watcher.end(), pub.end()]);
    }
  });

  it('mosquitto_pub -d (v5) shows RC:135 for a denied topic; a v3.1.1 mosquitto_pub gets a plain PUBACK', async () => {
    const v5 = await run('mosquitto_pub', [...mosqArgs(broker, 'mqttv5', 'cam'), '-t', 'bob/only', '-q', '1', '-m', 'x', '-d']);
    expect(v5.stdout).toMatch(/received PUBACK \(Mid: \d+, RC:135\)/);
    const v3 = await run('mosquitto_pub', [...mosqArgs(broker, 'mqttv311', 'cam'), '-t', 'bob/only', '-q', '1', '-m', 'x', '-d']);
    expect(v3.code, v3.stderr).toBe(0);
    expect(v3.stdout).toMatch(/received PUBACK \(Mid: \d+, RC:0\)|received PUBACK \(Mid: \d+\)/);
  });

  it.each([1, 2] as const)('0x83 at QoS %i for a payload over message_size_limit; a payload at the limit passes', async (qos) => {
    const sub = await mqttjs(broker);
    const pub = await mqttjs(broker);
    try {
      const topic = `rc/size/q${qos}`;
      await sub.client.subscribeAsync(topic, { qos: 2 });
      const big = await publishAck(pub, topic, Buffer.alloc(MESSAGE_SIZE_LIMIT + 1, 0x61), { qos });
      expect(big.cmd).toBe(qos === 1 ? 'puback' : 'pubrec');
      expect(big.reasonCode).toBe(0x83);
      const fits = await publishAck(pub, topic, Buffer.alloc(MESSAGE_SIZE_LIMIT, 0x62), { qos });
      expect(fits.reasonCode).toBe(0);
      await sub.waitMessages(1);
      await settle(200);
      expect(sub.messages.map((m) => m.payload.length)).toEqual([MESSAGE_SIZE_LIMIT]);
      expect(pub.client.connected).toBe(true);
      // mosquitto_pub shows the same code.
      const cli = await run('mosquitto_pub', [...mosqArgs(broker, 'mqttv5'), '-t', topic, '-q', String(qos), '-m', 'c'.repeat(MESSAGE_SIZE_LIMIT + 1), '-d']);
      expect(cli.stderr).toMatch(/Publish \d+ failed: Implementation specific error/);
      if (qos === 1) expect(cli.stdout).toMatch(/received PUBACK \(Mid: \d+, RC:131\)/); // it prints no PUBREC code
    } finally {
      await Promise.all([sub.end(), pub.end()]);
    }
  });
});
