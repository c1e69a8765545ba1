/**
 * Reading a LevelDB written by aedes-persistence-level 9 (the Aedes-era broker), so that an upgrade keeps
 * what users would notice losing: retained messages (Home Assistant's discovery configs are retained: lose
 * them and devices disappear), the persistent sessions' subscriptions and their queued QoS 1/2 messages,
 * the inbound QoS 2 packet ids and the wills.
 *
 * That format: values are msgpack (msgpack-lite: Buffers as bin, numbers past 2^31 as float64), keys
 *   retained:<topic>                                       the PUBLISH packet
 *   subscriptions:<encodeURIComponent(id)>:<filter>        { clientId, topic, qos, rh?, rap?, nl? }
 *   outgoing:<encodeURIComponent(id)>:<brokerId>:<counter> the packet queued or in flight (a 'pubrel'
 *                                                          packet once PUBREC came: the message is gone)
 *   outgoing-id:<encodeURIComponent(id)>:<packet id>       the same packet again, by packet id
 *   incoming:<encodeURIComponent(id)>:<packet id>          an inbound QoS 2 PUBLISH waiting for PUBREL
 *   will:<encodeURIComponent(id)>                          the will message
 * Aedes stored subscriptions only for clean-session-false clients, so a client id with subscriptions,
 * queued messages or inbound ids becomes a session that never expires (protocol level 4: Aedes spoke
 * 3.1/3.1.1 only). Queue order is key order (a queue that spans Aedes restarts has several broker ids;
 * nothing records their order). level.ts writes the result and deletes the old keys in one batch, so a
 * crash during the upgrade leaves the old database as it was.
 */
import { decode } from '@msgpack/msgpack';
import type { Level } from 'level';
import type { Logger } from '../../log.js';
import type { Message, MessageProperties, QoS } from '../message.js';
import type { QueuedEntry, StoreSnapshot, StoredSubscription } from './store.js';

const PREFIXES = ['retained:', 'subscriptions:', 'outgoing:', 'outgoing-id:', 'incoming:', 'will:'] as const;

interface LegacyImport {
  snapshot: StoreSnapshot;
  /** Every key of the old format, to delete once the snapshot is written. */
  keys: string[];
  /** Values that could not be decoded (their keys are in `keys` too), at most 20 named. */
  unreadable: { count: number; keys: string[] };
}

type Obj = Record<string, unknown>;

function qosOf(v: unknown): QoS {
  return v === 1 || v === 2 ? v : 0;
}

function bufferOf(v: unknown): Buffer | undefined {
  if (v instanceof Uint8Array) return Buffer.from(v);
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  return undefined;
}

function propertiesOf(v: unknown): MessageProperties | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const p = v as Obj;
  const out: MessageProperties = {};
  if (p.payloadFormatIndicator !== undefined && p.payloadFormatIndicator !== null) {
    out.payloadFormatIndicator = p.payloadFormatIndicator === true || p.payloadFormatIndicator === 1;
  }
  if (typeof p.contentType === 'string') out.contentType = p.contentType;
  if (typeof p.responseTopic === 'string') out.responseTopic = p.responseTopic;
  const correlation = bufferOf(p.correlationData);
  if (correlation !== undefined) out.correlationData = correlation;
  if (typeof p.userProperties === 'object' && p.userProperties !== null) {
    const user: [string, string][] = [];
    for (const [key, value] of Object.entries(p.userProperties as Obj)) {
      if (typeof value === 'string') user.push([key, value]);
      else if (Array.isArray(value)) for (const v of value) user.push([key, String(v)]);
    }
    out.userProperties = user;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

function messageOf(packet: Obj, retain: boolean): Message | undefined {
  if (typeof packet.topic !== 'string' || packet.topic === '') return undefined;
  const message: Message = {
    topic: packet.topic,
    payload: bufferOf(packet.payload) ?? Buffer.alloc(0),
    qos: qosOf(packet.qos),
    retain,
  };
  const properties = propertiesOf(packet.properties);
  if (properties !== undefined) message.properties = properties;
  if (typeof packet.messageExpiry === 'number') message.expiresAt = packet.messageExpiry;
  return message;
}

/** `<prefix><encodeURIComponent(id)>[:...]` -> id; undefined when the key is malformed. */
function clientIdOf(key: string, prefix: string): string | undefined {
  const end = key.indexOf(':', prefix.length);
  try {
    return decodeURIComponent(key.slice(prefix.length, end < 0 ? undefined : end));
  } catch {
    return undefined;
  }
}

/**
 * Imports an aedes-persistence-level database: `write` stores the snapshot and deletes the old keys (one
 * batch). False when there is nothing of the old format.
 */
export async function importAedesLegacy(
  db: Level<string, Buffer>,
  location: string,
  logger: Logger,
  write: (snapshot: StoreSnapshot, oldKeys: string[]) => Promise<void>,
): Promise<boolean> {
  const legacy = await readAedesLegacy(db);
  if (legacy === undefined) return false;
  const { snapshot, keys, unreadable } = legacy;
  await write(snapshot, keys);
  const sum = (f: (s: StoreSnapshot['sessions'][number]) => number) => snapshot.sessions.reduce((n, s) => n + f(s), 0);
  logger.info(
    {
      location,
      retained: snapshot.retained.length,
      sessions: snapshot.sessions.length,
      subscriptions: sum((s) => s.session.subscriptions.length),
      queued: sum((s) => s.queue.length),
      incomingQoS2: sum((s) => s.incomingQoS2.length),
      wills: snapshot.wills.length,
      oldKeysDeleted: keys.length,
    },
    'store: imported the aedes-persistence-level database (retained messages, persistent sessions, queues, wills)',
  );
  if (unreadable.count > 0) logger.warn({ location, ...unreadable }, 'store: aedes records that could not be read were dropped');
  return true;
}

/** The old database's content in our terms, or undefined when it has no key of the old format. */
async function readAedesLegacy(db: Level<string, Buffer>): Promise<LegacyImport | undefined> {
  const keys: string[] = [];
  const unreadable = { count: 0, keys: [] as string[] };
  const retained: Message[] = [];
  const wills: StoreSnapshot['wills'] = [];
  const sessions = new Map<string, { subscriptions: Map<string, StoredSubscription>; queue: QueuedEntry[]; incoming: number[] }>();
  const sessionOf = (id: string) => {
    let s = sessions.get(id);
    if (s === undefined) sessions.set(id, (s = { subscriptions: new Map(), queue: [], incoming: [] }));
    return s;
  };
  const bad = (key: string) => {
    unreadable.count += 1;
    if (unreadable.keys.length < 20) unreadable.keys.push(key);
  };

  for (const prefix of PREFIXES) {
    // Every old key under the prefix and nothing else: ';' is the byte after ':'.
    for await (const [key, value] of db.iterator({ gte: prefix, lt: `${prefix.slice(0, -1)};` })) {
      keys.push(key);
      if (prefix === 'outgoing-id:') continue; // a second copy of an outgoing: entry
      let packet: Obj;
      try {
        packet = decode(value) as Obj;
        if (typeof packet !== 'object' || packet === null) throw new Error('not a map');
      } catch {
        bad(key);
        continue;
      }
      const id = prefix === 'retained:' ? '' : clientIdOf(key, prefix);
      if (id === undefined) {
        bad(key);
        continue;
      }
      if (prefix === 'retained:') {
        const message = messageOf(packet, true);
        if (message === undefined) bad(key);
        else if (message.payload.length > 0) retained.push(message);
      } else if (prefix === 'subscriptions:') {
        if (typeof packet.topic !== 'string' || packet.topic === '') {
          bad(key);
          continue;
        }
        const rh = packet.rh;
        sessionOf(id).subscriptions.set(packet.topic, {
          filter: packet.topic,
          qos: qosOf(packet.qos),
          noLocal: packet.nl === true,
          retainAsPublished: packet.rap === true,
          retainHandling: rh === 1 || rh === 2 ? rh : 0,
        });
      } else if (prefix === 'outgoing:') {
        const queue = sessionOf(id).queue;
        const packetId = typeof packet.messageId === 'number' && packet.messageId > 0 ? packet.messageId : undefined;
        if (packet.cmd === 'pubrel') {
          if (packetId === undefined) {
            bad(key);
            continue;
          }
          // PUBREC came for it: only the PUBREL is left to send; the message itself is not stored any more.
          const message: Message = { topic: '', payload: Buffer.alloc(0), qos: 2, retain: false };
          queue.push({ seq: queue.length + 1, qos: 2, message, retain: false, packetId, state: 'released' });
          continue;
        }
        const message = messageOf(packet, packet.retain === true);
        if (message === undefined) {
          bad(key);
          continue;
        }
        const entry: QueuedEntry = { seq: queue.length + 1, qos: message.qos, message, retain: message.retain, state: 'queued' };
        if (packetId !== undefined) {
          entry.packetId = packetId;
          entry.state = 'sent';
        }
        queue.push(entry);
      } else if (prefix === 'incoming:') {
        const packetId = Number.parseInt(key.slice(key.lastIndexOf(':') + 1), 10);
        if (packetId > 0 && packetId <= 0xffff) sessionOf(id).incoming.push(packetId);
        else bad(key);
      } else {
        const message = messageOf(packet, packet.retain === true);
        if (message === undefined) bad(key);
        else wills.push({ clientId: id, message, delayInterval: 0 });
      }
    }
  }
  if (keys.length === 0) return undefined;
  const snapshot: StoreSnapshot = { sessions: [], retained, wills };
  for (const [clientId, s] of sessions) {
    snapshot.sessions.push({
      session: { clientId, expiryInterval: 0xffffffff, protocolVersion: 4, subscriptions: [...s.subscriptions.values()] },
      queue: s.queue,
      incomingQoS2: s.incoming.sort((a, b) => a - b),
    });
  }
  return { snapshot, keys, unreadable };
}
