/**
 * One broker, one listener, clients of every protocol version at once: MQTT 3.1 (MQIsdp), 3.1.1 and 5, with
 * mqtt.js, mosquitto_pub/mosquitto_sub and paho-mqtt 1.6.1 MQTTv5. Messages, retained messages, wills and
 * QoS 2 cross versions; v5 properties are dropped for v3 receivers while the payload stays intact.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IPublishPacket, IPubrecPacket, IPubcompPacket } from 'mqtt-packet';
import { run } from '../support/clients.js';
import {
  clientId,
  mosqArgs,
  mosquittoSub,
  mqttjs,
  pahoV5,
  rawConnect,
  settle,
  startPubSubBroker,
  type PubSubBroker,
  type RawClient,
} from '../support/mqtt5-pubsub.js';

let broker: PubSubBroker;
beforeAll(async () => {
  broker = await startPubSubBroker();
});
afterAll(async () => {
  await broker?.close();
});

const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const V5_PROPERTIES: IPublishPacket['properties'] = {
  payloadFormatIndicator: false,
  contentType: 'application/octet-stream',
  responseTopic: 'mix/reply',
  correlationData: Buffer.from('corr'),
  messageExpiryInterval: 300,
  userProperties: { origin: 'v5' },
};

/** mqtt.js MQTT 3.1 (protocol name MQIsdp, level 3). */
const v31 = { protocolVersion: 3, protocolId: 'MQIsdp' } as const;

describe('messages across versions', () => {
  it('v3.1.1 and v3.1 subscribers get a v5 publisher\'s message: properties dropped, payload byte for byte', async () => {
    const v3 = await mqttjs(broker, { protocolVersion: 4 });
    const old = await mqttjs(broker, v31);
    const cli = await mosquittoSub([...mosqArgs(broker, 'mqttv311'), '-t', 'mix/v5to3', '-q', '1'], '%t|%x|%C|%R|%P|%E');
    const pub = await mqttjs(broker);
    try {
      await v3.client.subscribeAsync('mix/v5to3', { qos: 1 });
      await old.client.subscribeAsync('mix/v5to3', { qos: 1 });
      await pub.client.publishAsync('mix/v5to3', ALL_BYTES, { qos: 1, properties: V5_PROPERTIES });
      for (const rec of [v3, old]) {
        const [m] = await rec.waitMessages(1);
        expect(Buffer.compare(m?.packet.payload as Buffer, ALL_BYTES)).toBe(0);
        expect(m?.topic).toBe('mix/v5to3');
        expect(m?.packet.qos).toBe(1);
        expect(m?.packet.properties).toBeUndefined();
      }
      expect(await cli.waitLines(1)).toEqual([`mix/v5to3|${ALL_BYTES.toString('hex')}||||`]);
    } finally {
      await Promise.all([v3.end(), old.end(), cli.stop(), pub.end()]);
    }
  });

  it('v5 subscribers (mqtt.js, paho, mosquitto_sub) get v3.1.1 publishers\' messages without properties', async () => {
    const js = await mqttjs(broker);
    const paho = await pahoV5(broker);
    const cli = await mosquittoSub([...mosqArgs(broker, 'mqttv5'), '-t', 'mix/v3to5/#', '-q', '1'], '%t|%p|%C|%R|%P|%E');
    const v3pub = await mqttjs(broker, { protocolVersion: 4 });
    try {
      await js.client.subscribeAsync('mix/v3to5/#', { qos: 1 });
      expect(await paho.subscribe('mix/v3to5/#', { qos: 1 })).toEqual([1]);
      await v3pub.client.publishAsync('mix/v3to5/js', 'from-mqttjs-v4', { qos: 1 });
      const cliPub = await run('mosquitto_pub', [...mosqArgs(broker, 'mqttv311'), '-t', 'mix/v3to5/cli', '-q', '1', '-m', 'from-mosquitto_pub-v311']);
      expect(cliPub.code, cliPub.stderr).toBe(0);

      const expected = ['mix/v3to5/js:from-mqttjs-v4', 'mix/v3to5/cli:from-mosquitto_pub-v311'];
      await js.waitMessages(2);
      expect(js.messages.map((m) => `${m.topic}:${m.payload}`)).toEqual(expected);
      for (const m of js.messages) expect(m.packet.properties ?? {}).toEqual({});
      await paho.waitEvent('2 messages', () => paho.messages().length >= 2);
      expect(paho.messages().map((e) => `${e.topic}:${e.payload}`)).toEqual(expected);
      for (const e of paho.messages()) expect(e.properties).toEqual({});
      expect(await cli.waitLines(2)).toEqual(['mix/v3to5/js|from-mqttjs-v4||||', 'mix/v3to5/cli|from-mosquitto_pub-v311||||']);
    } finally {
      await Promise.all([js.end(), paho.close(), cli.stop(), v3pub.end()]);
    }
  });

  it('MQTT 3.1: mosquitto_pub -V mqttv31 reaches v5 and v3.1.1 subscribers; mosquitto_sub -V mqttv31 gets a v5 message', async () => {
    const v5 = await mqttjs(broker);
    const v3 = await mqttjs(broker, { protocolVersion: 4 });
    const old = await mosquittoSub([...mosqArgs(broker, 'mqttv31'), '-i', clientId('sub31'), '-t', 'mix/31/#', '-q', '1'], '%t|%p');
    try {
      for (const rec of [v5, v3]) await rec.client.subscribeAsync('mix/31/#', { qos: 1 });
      const pub31 = await run('mosquitto_pub', [...mosqArgs(broker, 'mqttv31'), '-i', clientId('pub31'), '-t', 'mix/31/old', '-q', '1', '-m', 'from-3.1']);
      expect(pub31.code, pub31.stderr).toBe(0);
      const pub5 = await run('mosquitto_pub', [...mosqArgs(broker, 'mqttv5'), '-t', 'mix/31/new', '-q', '1', '-m', 'from-5', '-D', 'publish', 'user-property', 'k', 'v']);
      expect(pub5.code, pub5.stderr).toBe(0);
      for (const rec of [v5, v3]) {
        await rec.waitMessages(2);
        expect(rec.messages.map((m) => `${m.topic}:${m.payload}`)).toEqual(['mix/31/old:from-3.1', 'mix/31/new:from-5']);
      }
      expect(v5.messages[1]?.packet.properties?.userProperties).toEqual({ k: 'v' });
      expect(await old.waitLines(2)).toEqual(['mix/31/old|from-3.1', 'mix/31/new|from-5']);
    } finally {
      await Promise.all([v5.end(), v3.end(), old.stop()]);
    }
  });
});

describe('retained messages across versions', () => {
  it('set by a v5 client (with properties), read by v3.1.1 and v3.1 subscribers', async () => {
    const pub = await run('mosquitto_pub', [
      ...mosqArgs(broker, 'mqttv5'),
      '-t', 'mix/ret/from5', '-q', '1', '-r', '-m', 'retained-by-5',
      '-D', 'publish', 'content-type', 'text/plain', '-D', 'publish', 'user-property', 'k', 'v',
    ]);
    expect(pub.code, pub.stderr).toBe(0);
    const v3 = await mqttjs(broker, { protocolVersion: 4 });
    try {
      await v3.client.subscribeAsync('mix/ret/from5', { qos: 1 });
      const [m] = await v3.waitMessages(1);
      expect(m).toMatchObject({ topic: 'mix/ret/from5', payload: 'retained-by-5' });
      expect(m?.packet.retain).toBe(true);
      expect(m?.packet.properties).toBeUndefined();
      const old = await run('mosquitto_sub', [...mosqArgs(broker, 'mqttv31'), '-i', clientId('ret31'), '-t', 'mix/ret/from5', '-F', '%r|%t|%p', '-C', '1', '-W', '10']);
      expect(old.stdout.trim()).toBe('1|mix/ret/from5|retained-by-5');
      // And a v5 reader still sees the properties that came with it.
      const v5 = await run('mosquitto_sub', [...mosqArgs(broker, 'mqttv5'), '-t', 'mix/ret/from5', '-F', '%r|%p|%C|%P', '-C', '1', '-W', '10']);
      expect(v5.stdout.trim()).toBe('1|retained-by-5|text/plain|k:v');
    } finally {
      await v3.end();
      await run('mosquitto_pub', [...mosqArgs(broker, 'mqttv5'), '-t', 'mix/ret/from5', '-r', '-n']);
    }
  });

  it('set by v3.1.1 and v3.1 clients, read by v5 subscribers (mqtt.js, paho)', async () => {
    const v3 = await mqttjs(broker, { protocolVersion: 4 });
    const js = await mqttjs(broker);
    const paho = await pahoV5(broker);
    try {
      await v3.client.publishAsync('mix/ret/from3/a', 'retained-by-311', { qos: 1, retain: true });
      const old = await run('mosquitto_pub', [...mosqArgs(broker, 'mqttv31'), '-i', clientId('retpub31'), '-t', 'mix/ret/from3/b', '-q', '1', '-r', '-m', 'retained-by-31']);
      expect(old.code, old.stderr).toBe(0);
      await js.client.subscribeAsync('mix/ret/from3/#', { qos: 1 });
      expect(await paho.subscribe('mix/ret/from3/#', { qos: 1 })).toEqual([1]);
      const got = await js.waitMessages(2);
      expect(got.map((m) => `${m.topic}:${m.payload}:${m.packet.retain}`).sort()).toEqual([
        'mix/ret/from3/a:retained-by-311:true',
        'mix/ret/from3/b:retained-by-31:true',
      ]);
      await paho.waitEvent('2 retained messages', () => paho.messages().length >= 2);
      expect(paho.messages().map((e) => `${e.topic}:${e.payload}:${e.retain}`).sort()).toEqual([
        'mix/ret/from3/a:retained-by-311:true',
        'mix/ret/from3/b:retained-by-31:true',
      ]);
    } finally {
      await v3.client.publishAsync('mix/ret/from3/a', '', { qos: 1, retain: true });
      await v3.client.publishAsync('mix/ret/from3/b', '', { qos: 1, retain: true });
      await Promise.all([v3.end(), js.end(), paho.close()]);
    }
  });
});

describe('wills across versions', () => {
  it('a v3.1.1 client\'s will (mqtt.js, connection lost) and a v3.1 one (mosquitto_sub killed) reach v5 subscribers', async () => {
    const js = await mqttjs(broker);
    const paho = await pahoV5(broker);
    try {
      await js.client.subscribeAsync('mix/will/#', { qos: 1 });
      expect(await paho.subscribe('mix/will/#', { qos: 1 })).toEqual([1]);

      const v3 = await mqttjs(broker, { protocolVersion: 4, will: { topic: 'mix/will/v311', payload: Buffer.from('gone-311'), qos: 1, retain: false } });
      v3.client.stream.destroy(); // no DISCONNECT
      const old = await mosquittoSub(
        [...mosqArgs(broker, 'mqttv31'), '-i', clientId('will31'), '-t', 'mix/nothing', '--will-topic', 'mix/will/v31', '--will-payload', 'gone-31', '--will-qos', '1'],
        '%t',
      );
      await old.kill(); // SIGKILL: the connection just closes

      await js.waitMessages(2);
      expect(js.messages.map((m) => `${m.topic}:${m.payload}`).sort()).toEqual(['mix/will/v31:gone-31', 'mix/will/v311:gone-311'].sort());
      for (const m of js.messages) expect(m.packet.properties ?? {}).toEqual({});
      await paho.waitEvent('both wills', () => paho.messages().length >= 2);
      expect(paho.messages().map((e) => `${e.topic}:${e.payload}`).sort()).toEqual(['mix/will/v31:gone-31', 'mix/will/v311:gone-311'].sort());
      v3.client.end(true);
    } finally {
      await Promise.all([js.end(), paho.close()]);
    }
  });

  it('a v5 client\'s will (with properties) reaches v3.1.1 subscribers without them; a paho v5 will too', async () => {
    const v3 = await mqttjs(broker, { protocolVersion: 4 });
    const cli = await mosquittoSub([...mosqArgs(broker, 'mqttv311'), '-t', 'mix/will5/#', '-q', '1'], '%t|%p|%C|%P');
    const v5watch = await mqttjs(broker);
    try {
      await v3.client.subscribeAsync('mix/will5/#', { qos: 1 });
      await v5watch.client.subscribeAsync('mix/will5/#', { qos: 1 });

      const v5 = await mqttjs(broker, {
        will: {
          topic: 'mix/will5/js',
          payload: Buffer.from('gone-5'),
          qos: 1,
          retain: false,
          properties: { contentType: 'text/plain', userProperties: { why: 'lost' }, willDelayInterval: 0 },
        },
      });
      v5.client.stream.destroy();
      const paho = await pahoV5(broker, { will: { topic: 'mix/will5/paho', payload: 'gone-paho', qos: 1, properties: { ContentType: 'text/x' } } });
      await paho.kill();

      await v3.waitMessages(2);
      expect(v3.messages.map((m) => `${m.topic}:${m.payload}`).sort()).toEqual(['mix/will5/js:gone-5', 'mix/will5/paho:gone-paho']);
      for (const m of v3.messages) expect(m.packet.properties).toBeUndefined();
      expect((await cli.waitLines(2)).sort()).toEqual(['mix/will5/js|gone-5||', 'mix/will5/paho|gone-paho||']);
      // A v5 subscriber gets the will properties.
      const [js] = await v5watch.waitMessages(1, (m) => m.topic === 'mix/will5/js');
      expect(js?.packet.properties).toMatchObject({ contentType: 'text/plain', userProperties: { why: 'lost' } });
      v5.client.end(true);
    } finally {
      await Promise.all([v3.end(), cli.stop(), v5watch.end()]);
    }
  });
});

describe('QoS 2 across versions, exactly once', () => {
  const count = 20;
  const payloads = Array.from({ length: count }, (_, i) => `q2-${i}`);
  const exactlyOnce = (got: string[]): void => {
    expect(got.slice().sort()).toEqual(payloads.slice().sort());
  };

  it('v5 publisher -> v3.1.1 (mqtt.js, mosquitto_sub) and v3.1 (mosquitto_sub) subscribers at QoS 2', async () => {
    const v3 = await mqttjs(broker, { protocolVersion: 4 });
    const cli311 = await mosquittoSub([...mosqArgs(broker, 'mqttv311'), '-t', 'mix/q2/5to3', '-q', '2'], '%q|%p');
    const cli31 = await mosquittoSub([...mosqArgs(broker, 'mqttv31'), '-i', clientId('q2sub31'), '-t', 'mix/q2/5to3', '-q', '2'], '%q|%p');
    const pub = await mqttjs(broker);
    try {
      await v3.client.subscribeAsync('mix/q2/5to3', { qos: 2 });
      for (const p of payloads) await pub.client.publishAsync('mix/q2/5to3', p, { qos: 2 });
      await v3.waitMessages(count);
      await cli311.waitLines(count);
      await cli31.waitLines(count);
      await settle(500);
      exactlyOnce(v3.messages.map((m) => m.payload));
      expect(v3.messages.every((m) => m.packet.qos === 2)).toBe(true);
      for (const cli of [cli311, cli31]) {
        exactlyOnce(cli.lines.map((l) => l.replace(/^2\|/, '')));
        expect(cli.lines.every((l) => l.startsWith('2|'))).toBe(true);
      }
    } finally {
      await Promise.all([v3.end(), cli311.stop(), cli31.stop(), pub.end()]);
    }
  });

  it('v3.1.1 and v3.1 publishers -> v5 subscribers (mqtt.js, paho) at QoS 2', async () => {
    const js = await mqttjs(broker);
    const paho = await pahoV5(broker);
    const v3 = await mqttjs(broker, { protocolVersion: 4 });
    const old = await mqttjs(broker, v31);
    try {
      await js.client.subscribeAsync('mix/q2/3to5', { qos: 2 });
      expect(await paho.subscribe('mix/q2/3to5', { qos: 2 })).toEqual([2]);
      for (const [i, p] of payloads.entries()) await (i % 2 === 0 ? v3 : old).client.publishAsync('mix/q2/3to5', p, { qos: 2 });
      await js.waitMessages(count);
      await paho.waitEvent(`${count} messages`, () => paho.messages().length >= count);
      await settle(500);
      exactlyOnce(js.messages.map((m) => m.payload));
      exactlyOnce(paho.messages().map((e) => e.payload ?? ''));
      expect(js.messages.every((m) => m.packet.qos === 2)).toBe(true);
      expect(paho.messages().every((e) => e.qos === 2)).toBe(true);
    } finally {
      await Promise.all([js.end(), paho.close(), v3.end(), old.end()]);
    }
  });

  it.each([
    [4, 5],
    [5, 4],
  ] as const)('a v%i publisher that resends its QoS 2 PUBLISH (DUP) after a reconnect, before PUBREL: the v%i subscriber gets one copy', async (pubVersion, subVersion) => {
    const sub = await mqttjs(broker, { protocolVersion: subVersion });
    const topic = `mix/q2/dup/${pubVersion}`;
    const id = clientId('dup');
    const session = pubVersion === 5 ? { clean: false, clientId: id, properties: { sessionExpiryInterval: 300 } } : { clean: false, clientId: id };
    let raw: RawClient | undefined;
    try {
      await sub.client.subscribeAsync(topic, { qos: 2 });
      const publish = { cmd: 'publish', topic, payload: 'only-once', qos: 2, messageId: 7, retain: false } as const;
      const first = await rawConnect(broker, { protocolVersion: pubVersion, ...session });
      raw = first.raw;
      raw.send({ ...publish, dup: false });
      await raw.waitPacket<IPubrecPacket>('pubrec', (p) => p.messageId === 7);
      raw.destroy(); // lost before PUBREL

      const second = await rawConnect(broker, { protocolVersion: pubVersion, ...session });
      raw = second.raw;
      expect(second.connack).toMatchObject({ sessionPresent: true });
      raw.send({ ...publish, dup: true });
      await raw.waitPacket<IPubrecPacket>('pubrec', (p) => p.messageId === 7);
      raw.send({ cmd: 'pubrel', messageId: 7 });
      await raw.waitPacket<IPubcompPacket>('pubcomp', (p) => p.messageId === 7);

      await sub.waitMessages(1);
      await settle(500);
      expect(sub.messages.map((m) => `${m.topic}:${m.payload}`)).toEqual([`${topic}:only-once`]);
    } finally {
      raw?.destroy();
      await sub.end();
      // End the raw publisher's session.
      const cleanup = await rawConnect(broker, { protocolVersion: pubVersion, clientId: id, clean: true });
      cleanup.raw.send({ cmd: 'disconnect' });
      await Promise.race([cleanup.raw.closed, settle(2000)]);
      cleanup.raw.destroy();
    }
  });
});
