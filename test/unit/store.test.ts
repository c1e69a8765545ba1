/**
 * The broker's durable store: the value codec, the LevelDB journal (round trips through a real database,
 * close and reopen, ordering and coalescing of writes, group commit, failures, the format marker, the
 * lock), the import of an aedes-persistence-level database, and the memory store.
 */
import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Level } from 'level';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/log.js';
import type { Message } from '../../src/broker/message.js';
import * as codec from '../../src/broker/store/codec.js';
import { LevelStore } from '../../src/broker/store/level.js';
import { MemoryStore } from '../../src/broker/store/memory.js';
import { openStore } from '../../src/broker/store/open.js';
import type { QueuedEntry, StoredSession, StoredWill } from '../../src/broker/store/store.js';
import { tempDirs } from '../support/temp-dirs.js';

const tempDir = tempDirs();
const quiet = createLogger('silent');
const dir = () => tempDir(join(tmpdir(), 'mab-store-'));
const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

const v5: Message = {
  topic: 'a/ü/b:c', payload: allBytes, qos: 2, retain: true, expiresAt: 1_900_000_000_123, origin: 'pub:1',
  properties: {
    payloadFormatIndicator: false, contentType: 'application/json', responseTopic: 'reply/x', correlationData: Buffer.from([0, 255, 7]),
    userProperties: [['a', 'b'], ['many', '1'], ['x', ''], ['many', '3'], ['one', 'x']],
  },
};
const v3: Message = { topic: 't', payload: Buffer.alloc(0), qos: 0, retain: false };
const session = (clientId: string, extra: Partial<StoredSession> = {}): StoredSession => ({
  clientId, expiryInterval: 0xffffffff, protocolVersion: 5, disconnectedAt: 1_700_000_000_000,
  subscriptions: [{ filter: '$share/g/x/#', qos: 1, noLocal: true, retainAsPublished: false, retainHandling: 2, identifier: 268435455 }],
  ...extra,
});
const entry = (seq: number, extra: Partial<QueuedEntry> = {}): QueuedEntry => ({
  seq, qos: 1, retain: false, state: 'queued', message: { topic: `q/${seq}`, payload: Buffer.from(`m${seq}`), qos: 1, retain: false }, ...extra,
});

function capture() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({ write(chunk: Buffer, _e, cb) { lines.push(...chunk.toString().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)); cb(); } });
  return { logger: createLogger('info', sink), lines };
}

const opened: LevelStore[] = [];
async function openLoaded(location: string, logger = quiet) {
  const store = await LevelStore.open(location, logger);
  opened.push(store);
  return { store, snapshot: await store.load() };
}
async function reopen(store: LevelStore) {
  await store.close();
  return openLoaded(store.location);
}
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(opened.splice(0).map((s) => s.close().catch(() => undefined)));
});

describe('codec', () => {
  it('round-trips messages with every property, and bare v3 messages', () => {
    for (const m of [v5, v3, { ...v3, properties: {} }]) expect(codec.decodeRetained(codec.encodeRetained(m))).toEqual(m);
  });

  it('round-trips queue entries in each state, wills and sessions', () => {
    for (const e of [entry(1), entry(2, { state: 'sent', packetId: 65535, qos: 2, retain: true, subscriptionIds: [1, 300, 268435455], message: v5 }), entry(3, { state: 'released', packetId: 1 })]) {
      expect(codec.decodeQueued(codec.encodeQueued(e), e.seq)).toEqual(e);
    }
    const will: StoredWill = { clientId: 'c', message: v5, delayInterval: 0xffffffff };
    expect(codec.decodeWill(codec.encodeWill(will), 'c')).toEqual(will);
    expect(codec.decodeSession(codec.encodeSession(session('ü:%')))).toEqual(session('ü:%'));
  });

  it('keeps the payload as raw bytes (no base64) and refuses truncated or foreign values', () => {
    const big = Buffer.alloc(10_000, 0xab);
    const value = codec.encodeQueued(entry(1, { message: { ...v3, payload: big } }));
    expect(value.length).toBeLessThan(big.length + 20);
    expect(() => codec.decodeQueued(codec.encodeQueued(entry(1, { message: v5 })).subarray(0, 20), 1)).toThrow(codec.CorruptValueError);
    expect(() => codec.decodeRetained(value)).toThrow(/not a retained message/);
  });
});

describe('LevelStore', () => {
  it('round-trips every record through the disk, for client ids that share prefixes and contain separators', async () => {
    const ids = ['a', 'a:b', 'a%3Ab', 'ü/😀', ''];
    const { store, snapshot } = await openLoaded(await dir());
    expect(snapshot).toEqual({ sessions: [], retained: [], wills: [] });
    for (const id of ids) {
      store.putSession(session(id));
      for (const seq of [2, 17, 0x1000000000]) store.putQueued(id, entry(seq, { message: { ...v5, origin: id } }));
      store.putIncoming(id, 65535);
      store.putIncoming(id, 1);
      store.putWill({ clientId: id, message: v5, delayInterval: 5 });
    }
    store.putRetained(v5);
    store.putRetained({ ...v3, topic: 'r:x', retain: true });
    await store.flush();
    const again = (await reopen(store)).snapshot;
    expect(again.sessions.map((s) => s.session.clientId).sort()).toEqual([...ids].sort());
    for (const s of again.sessions) {
      expect(s.session).toEqual(session(s.session.clientId));
      expect(s.queue).toEqual([2, 17, 0x1000000000].map((seq) => entry(seq, { message: { ...v5, origin: s.session.clientId } })));
      expect(s.incomingQoS2).toEqual([1, 65535]);
    }
    expect(again.wills.map((w) => w.clientId).sort()).toEqual([...ids].sort());
    expect(again.retained.sort((x, y) => x.topic.localeCompare(y.topic))).toEqual([v5, { ...v3, topic: 'r:x', retain: true }]);
  });

  it('applies writes in call order: put then delete drops the key, delete then put keeps it', async () => {
    const { store } = await openLoaded(await dir());
    store.putSession(session('c'));
    store.putQueued('c', entry(1));
    store.putQueued('c', entry(2));
    store.putRetained({ ...v3, topic: 'kept', retain: true });
    await store.flush();
    store.putQueued('c', entry(1, { state: 'sent', packetId: 9 })); // an update of a stored entry...
    store.deleteQueued('c', 1); // ...then its removal, in the same batch
    store.deleteQueued('c', 2);
    store.putQueued('c', entry(2, { state: 'sent', packetId: 10 }));
    store.putQueued('c', entry(3));
    store.deleteQueued('c', 3); // never on disk
    store.deleteRetained('kept');
    store.putRetained({ ...v3, topic: 'kept', payload: Buffer.from('new'), retain: true });
    store.putRetained({ ...v3, topic: 'gone', retain: true });
    store.deleteRetained('gone');
    await store.flush();
    const { snapshot } = await reopen(store);
    expect(snapshot.sessions[0]!.queue).toEqual([entry(2, { state: 'sent', packetId: 10 })]);
    expect(snapshot.retained).toEqual([{ ...v3, topic: 'kept', payload: Buffer.from('new'), retain: true }]);
  });

  it('deleteSession removes the session, its queue, inbound ids and will, and no other client', async () => {
    const { store } = await openLoaded(await dir());
    for (const id of ['x', 'x:1', 'x%']) {
      store.putSession(session(id));
      store.putQueued(id, entry(1));
      store.putIncoming(id, 5);
      store.putWill({ clientId: id, message: v3, delayInterval: 0 });
    }
    await store.flush();
    const { store: second } = await reopen(store); // what it deletes now it learnt from load()
    second.deleteSession('x');
    second.putQueued('x:1', entry(2));
    await second.flush();
    const { store: third, snapshot: afterDelete } = await reopen(second);
    expect(afterDelete.sessions.map((s) => [s.session.clientId, s.queue.map((e) => e.seq), s.incomingQoS2]).sort()).toEqual([['x%', [1], [5]], ['x:1', [1, 2], [5]]]);
    expect(afterDelete.wills.map((w) => w.clientId).sort()).toEqual(['x%', 'x:1']);
    // A session deleted and recreated in one batch: the old entries go, the new ones stay.
    third.deleteSession('x:1');
    third.putSession(session('x:1'));
    third.putQueued('x:1', entry(1, { qos: 2 }));
    third.deleteQueued('x:1', 1);
    third.putQueued('x:1', entry(7));
    await third.flush();
    const { snapshot } = await reopen(third);
    const x1 = snapshot.sessions.find((s) => s.session.clientId === 'x:1')!;
    expect([x1.queue.map((e) => e.seq), x1.incomingQoS2]).toEqual([[7], []]);
  });

  it('keeps a will without a session, and drops queue entries and inbound ids that have no session', async () => {
    const location = await dir();
    const { store } = await openLoaded(location);
    store.putWill({ clientId: 'clean', message: v3, delayInterval: 0 });
    store.putQueued('orphan', entry(1));
    store.putIncoming('orphan', 3);
    await store.flush();
    const { store: second, snapshot } = await reopen(store);
    expect([snapshot.sessions, snapshot.wills.map((w) => w.clientId)]).toEqual([[], ['clean']]);
    await second.close();
    const db = new Level<string, Buffer>(location, { valueEncoding: 'buffer' });
    const keys = await db.keys().all();
    await db.close();
    expect(keys).toEqual(['meta:format', 'w:clean']);
  });

  it('flush() covers every write before it, and concurrent flushes share batches (group commit)', async () => {
    const { store } = await openLoaded(await dir());
    const batch = vi.spyOn(Level.prototype, 'batch');
    store.putSession(session('g'));
    const flushes: Promise<void>[] = [];
    for (let i = 0; i < 500; i++) {
      store.putQueued('g', entry(i));
      flushes.push(store.flush());
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(flushes);
    expect(batch.mock.calls.length).toBeGreaterThanOrEqual(2);
    expect(batch.mock.calls.length).toBeLessThanOrEqual(20);
    expect(await store.flush()).toBeUndefined();
    vi.restoreAllMocks();
    const { snapshot } = await reopen(store);
    expect(snapshot.sessions[0]!.queue.map((e) => e.seq)).toEqual(Array.from({ length: 500 }, (_, i) => i));
  });

  it('flush() resolves only once the batch holding its writes has been written', async () => {
    const { store } = await openLoaded(await dir());
    const original = Level.prototype.batch as unknown as (this: Level<string, Buffer>, ops: { type: string }[]) => Promise<void>;
    let written = 0;
    vi.spyOn(Level.prototype, 'batch').mockImplementation(async function (this: Level<string, Buffer>, ops: { type: string }[]) {
      await new Promise((r) => setTimeout(r, 3)); // a slow disk
      await original.call(this, ops);
      written += ops.filter((op) => op.type === 'put').length;
    } as never);
    const checks: Promise<void>[] = [];
    for (let i = 0; i < 60; i++) {
      store.putRetained({ ...v3, topic: `t/${i}` });
      checks.push(store.flush().then(() => expect(written).toBeGreaterThanOrEqual(i + 1)));
      if (i % 7 === 0) await new Promise((r) => setTimeout(r, i % 3));
    }
    await Promise.all(checks);
    // Writes queued while a batch is on its way are written after it, with no further call to prompt them.
    store.putRetained({ ...v3, topic: 'first' });
    void store.flush();
    await new Promise((r) => setImmediate(r)); // the batch with 'first' is being written
    store.putRetained({ ...v3, topic: 'second' });
    const second = store.flush();
    await Promise.race([second, new Promise((_, reject) => setTimeout(() => reject(new Error('the second batch was never written')), 2000))]);
    expect(written).toBe(62);
  });

  it('a failed batch rejects its flush() with the location; its writes are retried and the store goes on working', async () => {
    const { logger, lines } = capture();
    const { store } = await openLoaded(await dir(), logger);
    const batch = vi.spyOn(Level.prototype, 'batch').mockImplementationOnce((() => new Promise((_, reject) => setTimeout(() => reject(new Error('disk on fire')), 20))) as never);
    store.putSession(session('f'));
    store.putQueued('f', entry(1));
    const failed = store.flush();
    await new Promise((r) => setImmediate(r)); // that batch is on its way: a newer write of the same key wins over its retry
    store.putQueued('f', entry(1, { state: 'sent', packetId: 4 }));
    await expect(failed).rejects.toThrow(`writing 2 changes to the store in ${store.location} failed: disk on fire`);
    expect(lines.some((l) => l.level === 'error' && l.msg === 'store: a batch of writes failed (retried with the next one)')).toBe(true);
    store.putQueued('f', entry(2));
    store.putQueued('f', entry(3));
    await store.flush();
    batch.mockRejectedValueOnce(new Error('disk on fire again'));
    store.deleteQueued('f', 3);
    await expect(store.flush()).rejects.toThrow(/disk on fire again/);
    await store.flush(); // nothing new: the retried delete alone
    expect(batch).toHaveBeenCalledTimes(4);
    expect(lines.some((l) => l.msg === 'store: writes succeed again')).toBe(true);
    const { snapshot } = await reopen(store);
    expect(snapshot.sessions[0]!.queue).toEqual([entry(1, { state: 'sent', packetId: 4 }), entry(2)]);
  });

  it('refuses writes before load() and after close()', async () => {
    const store = await LevelStore.open(await dir(), quiet);
    opened.push(store);
    expect(() => store.putRetained(v3)).toThrow(/before load/);
    await store.load();
    await store.close();
    expect(() => store.putRetained(v3)).toThrow(/after close/);
  });

  it('marks a new database with format 1 and refuses one written by a newer version', async () => {
    const location = await dir();
    await (await openLoaded(location)).store.close();
    const db = new Level<string, Buffer>(location, { valueEncoding: 'buffer' });
    expect((await db.get('meta:format'))?.toString()).toBe('1');
    await db.put('meta:format', Buffer.from('2'));
    await db.close();
    await expect(LevelStore.open(location, quiet)).rejects.toThrow(/written by a newer version of the broker \(format 2; this version reads format 1\)/);
  });

  it('refuses a database another process holds, saying so', async () => {
    const location = await dir();
    await openLoaded(location);
    await expect(openStore({ enabled: true, location, logger: quiet })).rejects.toThrow(/another broker process is using it; stop it first/);
  });
});

// Values written by msgpack-lite 0.1.27 as aedes-persistence-level 9.2 stores them (aedes-packet Packets).
const AEDES = {
  retainedConfig: '89a3636d64a77075626c697368a862726f6b65724964ae62316438653266302d6165646573ad62726f6b6572436f756e7465722aa5746f706963d920686f6d65617373697374616e742f73656e736f722f63616d312f636f6e666967a77061796c6f6164c4377b226e616d65223a2263616d31206d6f74696f6e222c2273746174655f746f706963223a2263616d732f63616d312f6d6f74696f6e227da3716f7301a672657461696ec3a3647570c2a96d6573736167654964c0',
  sub1: '83a5746f706963ad63616d732f2b2f6d6f74696f6ea3716f7301a8636c69656e744964a768613a6d61696e',
  sub2: '86a5746f706963b4686f6d65617373697374616e742f737461747573a3716f7302a2726800a3726170c3a26e6cc2a8636c69656e744964a768613a6d61696e',
  subU: '83a5746f706963ad7a6967626565326d7174742f23a3716f7301a8636c69656e744964a96b616d6572612dc3bc',
  outQueued: '89a3636d64a77075626c697368a862726f6b65724964ae62316438653266302d6165646573ad62726f6b6572436f756e7465722ca5746f706963b063616d732f63616d312f6d6f74696f6ea77061796c6f6164c4024f4ea3716f7301a672657461696ec2a3647570c2a96d6573736167654964c0',
  outSent: '89a3636d64a77075626c697368a862726f6b65724964ae62316438653266302d6165646573ad62726f6b6572436f756e7465722da5746f706963b063616d732f63616d322f6d6f74696f6ea77061796c6f6164c4034f4646a3716f7302a672657461696ec2a3647570c2a96d657373616765496407',
  outPubrel: '84a3636d64a670756272656ca96d657373616765496408a862726f6b65724964ae62316438653266302d6165646573ad62726f6b6572436f756e74657228',
  incoming: '89a3636d64a77075626c697368a862726f6b65724964ae62316438653266302d6165646573ad62726f6b6572436f756e7465722ea5746f706963a5636d642f78a77061796c6f6164c402676fa3716f7302a672657461696ec2a3647570c2a96d65737361676549642a',
  will: '86a5746f706963b063616d732f63616d312f737461747573a77061796c6f6164c4076f66666c696e65a3716f7301a672657461696ec3a862726f6b65724964ae62316438653266302d6165646573a8636c69656e744964a96b616d6572612dc3bc',
};

describe('import of an aedes-persistence-level database', () => {
  it('keeps retained messages, persistent sessions, their queues, inbound ids and wills, and removes the old keys', async () => {
    const location = await dir();
    const old = new Level<string, Buffer>(location, { valueEncoding: 'buffer' });
    const ha = encodeURIComponent('ha:main');
    const cam = encodeURIComponent('kamera-ü');
    const v = (k: keyof typeof AEDES) => Buffer.from(AEDES[k], 'hex');
    const binary = Buffer.from(Array.from({ length: 300 }, (_, i) => i & 255));
    await old.batch([
      { type: 'put', key: 'retained:homeassistant/sensor/cam1/config', value: v('retainedConfig') },
      // as msgpack-lite writes a 300-byte Buffer (bin 16) in a retained packet
      { type: 'put', key: 'retained:cams/cam1/snapshot', value: Buffer.concat([Buffer.from('84a5746f706963b263616d732f63616d312f736e617073686f74a77061796c6f6164c5012c', 'hex'), binary, Buffer.from('a3716f7300a672657461696ec3', 'hex')]) },
      { type: 'put', key: `subscriptions:${ha}:cams/+/motion`, value: v('sub1') },
      { type: 'put', key: `subscriptions:${ha}:homeassistant/status`, value: v('sub2') },
      { type: 'put', key: `subscriptions:${cam}:zigbee2mqtt/#`, value: v('subU') },
      { type: 'put', key: `outgoing:${ha}:b1d8e2f0-aedes:0000000000000040`, value: v('outPubrel') },
      { type: 'put', key: `outgoing:${ha}:b1d8e2f0-aedes:0000000000000044`, value: v('outQueued') },
      { type: 'put', key: `outgoing:${ha}:b1d8e2f0-aedes:0000000000000045`, value: v('outSent') },
      { type: 'put', key: `outgoing-id:${ha}:0000000000000007`, value: v('outSent') },
      { type: 'put', key: `incoming:${cam}:0000000000000042`, value: v('incoming') },
      { type: 'put', key: `will:${cam}`, value: v('will') },
      { type: 'put', key: 'retained:broken', value: Buffer.from('c1', 'hex') },
    ]);
    await old.close();

    const { logger, lines } = capture();
    const store = await openStore({ enabled: true, location, logger });
    opened.push(store as LevelStore);
    const snapshot = await store.load();
    const msg = (topic: string, payload: string | Buffer, qos: 0 | 1 | 2, retain: boolean): Message => ({ topic, payload: Buffer.from(payload), qos, retain });
    expect(snapshot.retained.sort((a, b) => a.topic.localeCompare(b.topic))).toEqual([
      msg('cams/cam1/snapshot', binary, 0, true),
      msg('homeassistant/sensor/cam1/config', '{"name":"cam1 motion","state_topic":"cams/cam1/motion"}', 1, true),
    ]);
    const byId = new Map(snapshot.sessions.map((s) => [s.session.clientId, s]));
    expect(byId.get('ha:main')).toEqual({
      session: { clientId: 'ha:main', expiryInterval: 0xffffffff, protocolVersion: 4, subscriptions: [
        { filter: 'cams/+/motion', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 },
        { filter: 'homeassistant/status', qos: 2, noLocal: false, retainAsPublished: true, retainHandling: 0 },
      ] },
      queue: [
        { seq: 1, qos: 2, retain: false, state: 'released', packetId: 8, message: msg('', '', 2, false) },
        { seq: 2, qos: 1, retain: false, state: 'queued', message: msg('cams/cam1/motion', 'ON', 1, false) },
        { seq: 3, qos: 2, retain: false, state: 'sent', packetId: 7, message: msg('cams/cam2/motion', 'OFF', 2, false) },
      ],
      incomingQoS2: [],
    });
    expect(byId.get('kamera-ü')?.incomingQoS2).toEqual([42]);
    expect(byId.get('kamera-ü')?.session.subscriptions.map((s) => s.filter)).toEqual(['zigbee2mqtt/#']);
    expect(snapshot.wills).toEqual([{ clientId: 'kamera-ü', delayInterval: 0, message: msg('cams/cam1/status', 'offline', 1, true) }]);
    const imported = lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('store: imported the aedes'));
    expect(imported).toMatchObject({ retained: 2, sessions: 2, subscriptions: 3, queued: 3, incomingQoS2: 1, wills: 1, oldKeysDeleted: 12 });
    expect(lines.find((l) => l.level === 'warn')).toMatchObject({ count: 1, keys: ['retained:broken'] });

    // Written in our format, the old keys gone: the next start reads the same and imports nothing.
    const { snapshot: again } = await reopen(store as LevelStore);
    expect(again.sessions.length).toBe(2);
    expect(again.retained.length).toBe(2);
    await Promise.all(opened.splice(0).map((s) => s.close()));
    const db = new Level<string, Buffer>(location, { valueEncoding: 'buffer' });
    const keys = await db.keys().all();
    await db.close();
    expect(keys.filter((k) => /^(retained|subscriptions|outgoing|outgoing-id|incoming|will):/.test(k))).toEqual([]);
    expect(keys).toContain('meta:format');
  });
});

describe('MemoryStore and openStore', () => {
  it('keeps nothing, flushes without allocating, and openStore picks it when persistence is off', async () => {
    const store = await openStore({ enabled: false, location: '/nonexistent', logger: quiet });
    expect(store).toBeInstanceOf(MemoryStore);
    store.putRetained(v3);
    expect(store.flush()).toBe(store.flush());
    expect(await store.load()).toEqual({ sessions: [], retained: [], wills: [] });
  });

  it('creates the database directory with mode 0700', async () => {
    const location = join(await dir(), 'deep', 'db');
    opened.push((await openStore({ enabled: true, location, logger: quiet })) as LevelStore);
    expect((await stat(location)).mode & 0o777).toBe(0o700);
  });
});
