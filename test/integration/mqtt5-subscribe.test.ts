/**
 * MQTT 5 SUBSCRIBE with real clients (mqtt.js 5, paho-mqtt 1.6.1 MQTTv5, mosquitto_sub 2.0.11 -V mqttv5):
 * subscription options (no local, retain as published, retain handling), subscription identifiers, SUBACK
 * reason codes per filter, shared subscriptions and UNSUBACK reason codes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../support/clients.js';
import {
  mosqArgs,
  mosquittoSub,
  mqttjs,
  pahoV5,
  settle,
  startPubSubBroker,
  subscribeCodes,
  subscriptionIds,
  unsubscribeCodes,
  waitFor,
  type PubSubBroker,
  type Recorder,
} from '../support/mqtt5-pubsub.js';

const ACL = `user bob
topic readwrite #
topic deny secret/#

user cam
topic readwrite cam/#
topic read cmd/#
`;

let broker: PubSubBroker;
beforeAll(async () => {
  broker = await startPubSubBroker({ acl: ACL });
});
afterAll(async () => {
  await broker?.close();
});

const texts = (rec: Recorder): string[] => rec.messages.map((m) => `${m.topic}:${m.payload}`);

/** Publish a live marker on `topic` and wait until `rec` has it: what the broker sent before has arrived. */
async function marker(pub: Recorder, rec: Recorder, topic: string, payload: string): Promise<void> {
  await pub.client.publishAsync(topic, payload, { qos: 1 });
  await rec.waitMessages(1, (m) => m.payload === payload);
  await settle(200);
}

describe('no local', () => {
  it('mqtt.js: a noLocal subscriber does not get its own messages, others do; without noLocal it does', async () => {
    const a = await mqttjs(broker);
    const b = await mqttjs(broker);
    try {
      expect(await subscribeCodes(a, { 'nl/t': { qos: 1, nl: true } })).toEqual([1]);
      expect(await subscribeCodes(b, { 'nl/t': { qos: 1 } })).toEqual([1]);
      await a.client.publishAsync('nl/t', 'from-a', { qos: 1 });
      await b.client.publishAsync('nl/t', 'from-b', { qos: 1 });
      await a.waitMessages(1, (m) => m.payload === 'from-b');
      await b.waitMessages(2);
      await settle(300);
      expect(texts(a)).toEqual(['nl/t:from-b']);
      expect(texts(b)).toEqual(['nl/t:from-a', 'nl/t:from-b']);
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  });

  it('paho v5 with no_local: its own PUBLISH is not echoed, an mqtt.js one is', async () => {
    const paho = await pahoV5(broker);
    const other = await mqttjs(broker);
    try {
      expect(await paho.subscribe('nl/paho', { qos: 1, no_local: true })).toEqual([1]);
      paho.send({ op: 'publish', topic: 'nl/paho', payload: 'own', qos: 1 });
      await paho.waitEvent('PUBACK of its own message', (e) => e.event === 'published');
      await other.client.publishAsync('nl/paho', 'foreign', { qos: 1 });
      await paho.waitEvent('the foreign message', (e) => e.event === 'message' && e.payload === 'foreign');
      await settle(300);
      expect(paho.messages().map((e) => e.payload)).toEqual(['foreign']);
    } finally {
      await Promise.all([paho.close(), other.end()]);
    }
  });
});

describe('retain as published', () => {
  it('mqtt.js: live messages keep retain=1 only with rap; retained messages sent at SUBSCRIBE always have retain=1', async () => {
    const pub = await mqttjs(broker);
    const rap = await mqttjs(broker);
    const plain = await mqttjs(broker);
    try {
      await pub.client.publishAsync('rap/old', 'old', { qos: 1, retain: true });
      await rap.client.subscribeAsync('rap/#', { qos: 1, rap: true });
      await plain.client.subscribeAsync('rap/#', { qos: 1, rap: false });
      for (const rec of [rap, plain]) {
        const [old] = await rec.waitMessages(1, (m) => m.payload === 'old');
        expect(old?.packet.retain).toBe(true);
      }
      await pub.client.publishAsync('rap/live', 'live-retained', { qos: 1, retain: true });
      await pub.client.publishAsync('rap/live', 'live-plain', { qos: 1, retain: false });
      for (const rec of [rap, plain]) await rec.waitMessages(3);
      const flags = (rec: Recorder): string[] => rec.messages.map((m) => `${m.payload}:${m.packet.retain ? 1 : 0}`);
      expect(flags(rap)).toEqual(['old:1', 'live-retained:1', 'live-plain:0']);
      expect(flags(plain)).toEqual(['old:1', 'live-retained:0', 'live-plain:0']);
    } finally {
      await pub.client.publishAsync('rap/old', '', { qos: 1, retain: true });
      await pub.client.publishAsync('rap/live', '', { qos: 1, retain: true });
      await Promise.all([pub.end(), rap.end(), plain.end()]);
    }
  });

  it('mosquitto_sub --retain-as-published prints %r 1 for a live retained message, plain mosquitto_sub 0', async () => {
    const withRap = await mosquittoSub([...mosqArgs(broker, 'mqttv5'), '-t', 'rap/cli', '-q', '1', '--retain-as-published'], '%r|%p');
    const without = await mosquittoSub([...mosqArgs(broker, 'mqttv5'), '-t', 'rap/cli', '-q', '1'], '%r|%p');
    try {
      const pub = await run('mosquitto_pub', [...mosqArgs(broker, 'mqttv5'), '-t', 'rap/cli', '-q', '1', '-r', '-m', 'live']);
      expect(pub.code, pub.stderr).toBe(0);
      expect(await withRap.waitLines(1)).toEqual(['1|live']);
      expect(await without.waitLines(1)).toEqual(['0|live']);
    } finally {
      await Promise.all([withRap.stop(), without.stop()]);
      await run('mosquitto_pub', [...mosqArgs(broker, 'mqttv5'), '-t', 'rap/cli', '-r', '-n']);
    }
  });
});

describe('retain handling', () => {
  it('mqtt.js: rh 0 sends retained on every SUBSCRIBE, rh 1 only for a new subscription, rh 2 never', async () => {
    const pub = await mqttjs(broker);
    const clients: Recorder[] = [];
    try {
      await pub.client.publishAsync('rh/t', 'kept', { qos: 1, retain: true });
      const retainedCount = (rec: Recorder): number => rec.messages.filter((m) => m.payload === 'kept').length;
      const counts: Record<number, number[]> = {};
      for (const rh of [0, 1, 2]) {
        const rec = await mqttjs(broker);
        clients.push(rec);
        counts[rh] = [];
        for (const round of [1, 2]) {
          expect(await subscribeCodes(rec, { 'rh/t': { qos: 1, rh } })).toEqual([1]);
          await marker(pub, rec, 'rh/t', `marker-${rh}-${round}`); // a live, non-retained message
          counts[rh]?.push(retainedCount(rec));
        }
        for (const m of rec.messages) expect(m.packet.retain).toBe(m.payload === 'kept');
      }
      // Retained messages so far after the first and the second SUBSCRIBE.
      expect(counts).toEqual({ 0: [1, 2], 1: [1, 1], 2: [0, 0] });
    } finally {
      await pub.client.publishAsync('rh/t', '', { qos: 1, retain: true });
      await Promise.all([pub.end(), ...clients.map((c) => c.end())]);
    }
  });

  it('paho v5: retain_handling 1 gets the retained message once, retain_handling 2 not at all', async () => {
    const pub = await mqttjs(broker);
    const once = await pahoV5(broker);
    const never = await pahoV5(broker);
    try {
      await pub.client.publishAsync('rh/paho', 'kept', { qos: 1, retain: true });
      expect(await once.subscribe('rh/paho', { qos: 1, retain_handling: 1 })).toEqual([1]);
      await once.waitEvent('the retained message', (e) => e.event === 'message' && e.payload === 'kept');
      expect(await once.subscribe('rh/paho', { qos: 1, retain_handling: 1 })).toEqual([1]);
      expect(await never.subscribe('rh/paho', { qos: 1, retain_handling: 2 })).toEqual([1]);
      await pub.client.publishAsync('rh/paho', 'live', { qos: 1 });
      for (const p of [once, never]) await p.waitEvent('the live message', (e) => e.event === 'message' && e.payload === 'live');
      await settle(300);
      expect(once.messages().map((e) => `${e.payload}:${e.retain}`)).toEqual(['kept:true', 'live:false']);
      expect(never.messages().map((e) => `${e.payload}:${e.retain}`)).toEqual(['live:false']);
    } finally {
      await pub.client.publishAsync('rh/paho', '', { qos: 1, retain: true });
      await Promise.all([pub.end(), once.close(), never.close()]);
    }
  });
});

describe('subscription identifiers', () => {
  it('mqtt.js: one copy carrying the identifiers of every matching subscription, at the highest granted QoS', async () => {
    const sub = await mqttjs(broker);
    const pub = await mqttjs(broker);
    try {
      expect(await subscribeCodes(sub, { 'sid/+/x': { qos: 0 } }, { subscriptionIdentifier: 1 })).toEqual([0]);
      expect(await subscribeCodes(sub, { 'sid/#': { qos: 1 } }, { subscriptionIdentifier: 2 })).toEqual([1]);
      expect(await subscribeCodes(sub, { 'sid/a/+': { qos: 1 } })).toEqual([1]); // no identifier
      expect(await subscribeCodes(sub, { 'sid/big/+': { qos: 2 } }, { subscriptionIdentifier: 268_435_455 })).toEqual([2]);

      const cases: [string, number[], number][] = [
        ['sid/a/x', [1, 2], 1], // three subscriptions match, two with identifiers
        ['sid/b/y', [2], 1],
        ['sid/a/z', [2], 1], // sid/# and sid/a/+ (none)
        ['sid/c/x', [1, 2], 1],
        ['sid/big/x', [1, 2, 268_435_455], 2],
      ];
      for (const [topic] of cases) await pub.client.publishAsync(topic, topic, { qos: 2 });
      await sub.waitMessages(cases.length);
      await settle(300);
      expect(sub.messages.map((m) => m.topic)).toEqual(cases.map(([t]) => t)); // one copy each
      for (const [topic, ids, qos] of cases) {
        const m = sub.messages.find((x) => x.topic === topic);
        expect({ topic, ids: m && subscriptionIds(m.packet), qos: m?.packet.qos }).toEqual({ topic, ids, qos });
      }

      // A new SUBSCRIBE for the same filter replaces its identifier.
      expect(await subscribeCodes(sub, { 'sid/#': { qos: 1 } }, { subscriptionIdentifier: 9 })).toEqual([1]);
      await pub.client.publishAsync('sid/b/y', 'again', { qos: 1 });
      const [again] = await sub.waitMessages(1, (m) => m.payload === 'again');
      expect(again && subscriptionIds(again.packet)).toEqual([9]);
    } finally {
      await Promise.all([sub.end(), pub.end()]);
    }
  });

  it('mosquitto_sub -D subscribe subscription-identifier: %S shows it, one line per message for overlapping filters', async () => {
    const withId = await mosquittoSub([...mosqArgs(broker, 'mqttv5'), '-t', 'sid/cli/+', '-t', 'sid/cli/#', '-q', '1', '-D', 'subscribe', 'subscription-identifier', '7'], '%t|%S|%p');
    const noId = await mosquittoSub([...mosqArgs(broker, 'mqttv5'), '-t', 'sid/cli/#', '-q', '1'], '%t|%S|%p');
    try {
      for (const n of [1, 2]) {
        const pub = await run('mosquitto_pub', [...mosqArgs(broker, 'mqttv5'), '-t', 'sid/cli/x', '-q', '1', '-m', `m${n}`]);
        expect(pub.code, pub.stderr).toBe(0);
      }
      await withId.waitLines(2);
      await noId.waitLines(2);
      await settle(300);
      expect(withId.lines).toEqual(['sid/cli/x|7|m1', 'sid/cli/x|7|m2']);
      expect(noId.lines).toEqual(['sid/cli/x||m1', 'sid/cli/x||m2']);
    } finally {
      await Promise.all([withId.stop(), noId.stop()]);
    }
  });

  it('paho v5: two SUBSCRIBEs with identifiers 5 and 6 matching one message -> one message with [5, 6]', async () => {
    const paho = await pahoV5(broker);
    const pub = await mqttjs(broker);
    try {
      expect(await paho.subscribe('sid/paho/#', { qos: 1, sub_id: 5 })).toEqual([1]);
      expect(await paho.subscribe('sid/paho/+', { qos: 1, sub_id: 6 })).toEqual([1]);
      await pub.client.publishAsync('sid/paho/t', 'both', { qos: 1 });
      await pub.client.publishAsync('sid/paho/t/deeper', 'one', { qos: 1 });
      await paho.waitEvent('the second message', (e) => e.event === 'message' && e.payload === 'one');
      await settle(300);
      const got = paho.messages().map((e) => ({ payload: e.payload, ids: [...((e.properties?.SubscriptionIdentifier as number[] | undefined) ?? [])].sort() }));
      expect(got).toEqual([
        { payload: 'both', ids: [5, 6] },
        { payload: 'one', ids: [5] },
      ]);
    } finally {
      await Promise.all([paho.close(), pub.end()]);
    }
  });
});

describe('SUBACK reason codes per filter', () => {
  it('mqtt.js v5: 0x87 for the filter the ACL denies, granted QoS for the others in the same SUBSCRIBE; v3.1.1 gets 0x80', async () => {
    const v5 = await mqttjs(broker, { user: 'cam' });
    const v3 = await mqttjs(broker, { user: 'cam', protocolVersion: 4 });
    try {
      const filters = { 'cmd/cam/#': { qos: 1 as const }, 'bob/#': { qos: 1 as const }, 'cam/x': { qos: 2 as const } };
      expect(await subscribeCodes(v5, filters)).toEqual([1, 0x87, 2]);
      expect(await subscribeCodes(v3, filters)).toEqual([1, 0x80, 2]);
      // The granted ones work, the refused one delivers nothing.
      const bob = await mqttjs(broker);
      try {
        await bob.client.publishAsync('bob/x', 'not-for-cam', { qos: 1 });
        await bob.client.publishAsync('cmd/cam/go', 'go', { qos: 1 });
        for (const rec of [v5, v3]) await rec.waitMessages(1, (m) => m.payload === 'go');
        await settle(200);
        for (const rec of [v5, v3]) expect(texts(rec)).toEqual(['cmd/cam/go:go']);
      } finally {
        await bob.end();
      }
      expect(v5.client.connected && v3.client.connected).toBe(true);
    } finally {
      await Promise.all([v5.end(), v3.end()]);
    }
  });

  it('mosquitto_sub -d shows 135 (v5) and 128 (v3.1.1) next to the granted QoS', async () => {
    for (const [version, refused] of [
      ['mqttv5', 135],
      ['mqttv311', 128],
    ] as const) {
      const sub = await mosquittoSub([...mosqArgs(broker, version, 'cam'), '-t', 'cmd/cam/#', '-t', 'secret/x', '-q', '1'], '%t');
      try {
        expect(sub.granted).toEqual([1, refused]);
      } finally {
        await sub.stop();
      }
    }
  });
});

describe('shared subscriptions', () => {
  it('$share/g/topic with an mqtt.js, a paho v5 and a mosquitto_sub member: each message to exactly one, spread over all; leavers stop getting any', async () => {
    const filter = '$share/g1/shared/t';
    const js = await mqttjs(broker);
    const paho = await pahoV5(broker);
    const cli = await mosquittoSub([...mosqArgs(broker, 'mqttv5'), '-t', filter, '-q', '1'], '%p');
    const normal = await mqttjs(broker); // a plain subscription on the same topic gets everything
    const pub = await mqttjs(broker);
    try {
      expect(await subscribeCodes(js, { [filter]: { qos: 1 } })).toEqual([1]);
      expect(await paho.subscribe(filter, { qos: 1 })).toEqual([1]);
      expect(cli.granted).toEqual([1]);
      await normal.client.subscribeAsync('shared/t', { qos: 1 });

      const received = (prefix: string): { js: string[]; paho: string[]; cli: string[] } => ({
        js: js.messages.map((m) => m.payload).filter((p) => p.startsWith(prefix)),
        paho: paho
          .messages()
          .map((e) => e.payload ?? '')
          .filter((p) => p.startsWith(prefix)),
        cli: cli.lines.filter((p) => p.startsWith(prefix)),
      });
      const round = async (prefix: string, count: number): Promise<{ js: string[]; paho: string[]; cli: string[] }> => {
        const sent = Array.from({ length: count }, (_, i) => `${prefix}${i}`);
        for (const payload of sent) await pub.client.publishAsync('shared/t', payload, { qos: 1 });
        await waitFor(`${count} ${prefix} messages over the group: ${JSON.stringify(received(prefix))}`, () => {
          const r = received(prefix);
          return r.js.length + r.paho.length + r.cli.length >= count;
        });
        await normal.waitMessages(count, (m) => m.payload.startsWith(prefix));
        await settle(400);
        const r = received(prefix);
        // Exactly once over the group: together they got every message, none twice.
        expect([...r.js, ...r.paho, ...r.cli].sort()).toEqual(sent.slice().sort());
        expect(normal.messages.filter((m) => m.payload.startsWith(prefix)).map((m) => m.payload)).toEqual(sent);
        return r;
      };

      const all = await round('a', 30);
      expect(all.js.length).toBeGreaterThan(0);
      expect(all.paho.length).toBeGreaterThan(0);
      expect(all.cli.length).toBeGreaterThan(0);

      // mqtt.js leaves the group (UNSUBSCRIBE, stays connected): the two others share everything.
      expect(await unsubscribeCodes(js, [filter])).toEqual([0]);
      const two = await round('b', 12);
      expect(two.js).toEqual([]);
      expect(two.paho.length).toBeGreaterThan(0);
      expect(two.cli.length).toBeGreaterThan(0);

      // paho disconnects: mosquitto_sub alone gets them all.
      await paho.close();
      const one = await round('c', 6);
      expect(one.cli).toHaveLength(6);
      expect(one.js).toEqual([]);
    } finally {
      await Promise.all([js.end(), paho.close(), cli.stop(), normal.end(), pub.end()]);
    }
  });
});

describe('UNSUBSCRIBE', () => {
  it('mqtt.js: UNSUBACK 0x00 for an existing subscription and 0x11 for none; messages stop for the removed one', async () => {
    const sub = await mqttjs(broker);
    const pub = await mqttjs(broker);
    try {
      await sub.client.subscribeAsync({ 'uns/a': { qos: 1 }, 'uns/b': { qos: 1 } });
      expect(await unsubscribeCodes(sub, ['uns/a', 'uns/never'])).toEqual([0x00, 0x11]);
      expect(await unsubscribeCodes(sub, ['uns/a'])).toEqual([0x11]); // already gone
      await pub.client.publishAsync('uns/a', 'removed', { qos: 1 });
      await pub.client.publishAsync('uns/b', 'kept', { qos: 1 });
      await sub.waitMessages(1, (m) => m.payload === 'kept');
      await settle(300);
      expect(texts(sub)).toEqual(['uns/b:kept']);
    } finally {
      await Promise.all([sub.end(), pub.end()]);
    }
  });

  it('paho v5: UNSUBACK reason codes [0, 17]', async () => {
    const paho = await pahoV5(broker);
    try {
      expect(await paho.subscribe('uns/paho', { qos: 0 })).toEqual([0]);
      expect(await paho.unsubscribe(['uns/paho', 'uns/paho/none'])).toEqual([0, 17]);
    } finally {
      await paho.close();
    }
  });
});
