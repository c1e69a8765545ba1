/**
 * The binary encoding of the values the level store keeps (format 1, see `meta:format` in level.ts).
 *
 * Why binary: every persistent QoS 1/2 message is written once per subscriber queue, so the hot records
 * (queue entries, retained messages) carry the payload as raw bytes at the end of the value, with no
 * base64 and no copy beyond the one into the value buffer. Sizes are computed first and the value is
 * written into one exact allocation. The session record is small and rare: it is JSON.
 *
 * Layouts (integers little-endian; `str` = varint byte length + UTF-8; `bytes` = varint length + bytes):
 *   message   = flags u8 (bits 0-1 qos, 2 retain, 3 expiresAt, 4 origin, 5 properties), topic str,
 *               [expiresAt f64], [origin str], [properties], payload = every byte left
 *   properties= flags u8 (bit 0 payloadFormatIndicator present, 1 its value, 2 contentType,
 *               3 responseTopic, 4 correlationData, 5 userProperties), [contentType str],
 *               [responseTopic str], [correlationData bytes], [varint count, per pair: name str, value str (in the order received)]
 *   queued    = 'Q', flags u8 (bits 0-1 qos, 2 retain, 3-4 state, 5 packetId, 6 subscriptionIds),
 *               [packetId u16], [varint count, varints], message   (the seq is in the key)
 *   retained  = 'R', message
 *   will      = 'W', delayInterval u32, message                     (the client id is in the key)
 *   session   = 'S', JSON of the StoredSession
 */
import type { Message, MessageProperties, QoS } from '../message.js';
import type { QueuedEntry, StoredSession, StoredWill } from './store.js';

/** The value of `meta:format` this code writes and reads. */
export const FORMAT_VERSION = 1;

const TAG_QUEUED = 0x51; // 'Q'
const TAG_RETAINED = 0x52; // 'R'
const TAG_WILL = 0x57; // 'W'
const TAG_SESSION = 0x53; // 'S'
const STATES = ['queued', 'sent', 'released'] as const;

/** A stored value that this format cannot read (truncated, wrong record kind, bad field). */
export class CorruptValueError extends Error {}

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    size += 1;
  }
  return size;
}

function strSize(s: string): number {
  const n = Buffer.byteLength(s);
  return varintSize(n) + n;
}

class Writer {
  readonly buf: Buffer;
  off = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }
  u8(v: number): void {
    this.buf[this.off++] = v;
  }
  varint(n: number): void {
    while (n >= 0x80) {
      this.buf[this.off++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.off++] = n;
  }
  str(s: string): void {
    this.varint(Buffer.byteLength(s));
    this.off += this.buf.write(s, this.off);
  }
  bytes(b: Uint8Array, withLength: boolean): void {
    if (withLength) this.varint(b.length);
    this.buf.set(b, this.off);
    this.off += b.length;
  }
}

class Reader {
  off = 0;
  constructor(readonly buf: Buffer) {}
  #need(n: number): void {
    if (this.off + n > this.buf.length) throw new CorruptValueError(`value truncated (${this.buf.length} bytes)`);
  }
  u8(): number {
    this.#need(1);
    return this.buf[this.off++]!;
  }
  u16(): number {
    this.#need(2);
    const v = this.buf.readUInt16LE(this.off);
    this.off += 2;
    return v;
  }
  u32(): number {
    this.#need(4);
    const v = this.buf.readUInt32LE(this.off);
    this.off += 4;
    return v;
  }
  f64(): number {
    this.#need(8);
    const v = this.buf.readDoubleLE(this.off);
    this.off += 8;
    return v;
  }
  varint(): number {
    let n = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.u8();
      n += (b & 0x7f) * scale;
      if (b < 0x80) return n;
      scale *= 0x80;
    }
    throw new CorruptValueError('varint too long');
  }
  bytes(): Buffer {
    const n = this.varint();
    this.#need(n);
    // A copy: the broker keeps these for a long time, the value buffer they came in need not stay alive.
    const b = Buffer.from(this.buf.subarray(this.off, this.off + n));
    this.off += n;
    return b;
  }
  str(): string {
    const n = this.varint();
    this.#need(n);
    const s = this.buf.toString('utf8', this.off, this.off + n);
    this.off += n;
    return s;
  }
  rest(): Buffer {
    const b = Buffer.from(this.buf.subarray(this.off));
    this.off = this.buf.length;
    return b;
  }
  tag(expected: number, what: string): void {
    const t = this.u8();
    if (t !== expected) throw new CorruptValueError(`not a ${what} record (tag 0x${t.toString(16)})`);
  }
}

function propertiesSize(p: MessageProperties): number {
  let size = 1;
  if (p.contentType !== undefined) size += strSize(p.contentType);
  if (p.responseTopic !== undefined) size += strSize(p.responseTopic);
  if (p.correlationData !== undefined) size += varintSize(p.correlationData.length) + p.correlationData.length;
  if (p.userProperties !== undefined) {
    size += varintSize(p.userProperties.length);
    for (const [name, value] of p.userProperties) size += strSize(name) + strSize(value);
  }
  return size;
}

function writeProperties(w: Writer, p: MessageProperties): void {
  w.u8(
    (p.payloadFormatIndicator !== undefined ? 1 : 0) |
      (p.payloadFormatIndicator === true ? 2 : 0) |
      (p.contentType !== undefined ? 4 : 0) |
      (p.responseTopic !== undefined ? 8 : 0) |
      (p.correlationData !== undefined ? 16 : 0) |
      (p.userProperties !== undefined ? 32 : 0),
  );
  if (p.contentType !== undefined) w.str(p.contentType);
  if (p.responseTopic !== undefined) w.str(p.responseTopic);
  if (p.correlationData !== undefined) w.bytes(p.correlationData, true);
  if (p.userProperties !== undefined) {
    w.varint(p.userProperties.length);
    for (const [name, value] of p.userProperties) {
      w.str(name);
      w.str(value);
    }
  }
}

function readProperties(r: Reader): MessageProperties {
  const flags = r.u8();
  const p: MessageProperties = {};
  if (flags & 1) p.payloadFormatIndicator = (flags & 2) !== 0;
  if (flags & 4) p.contentType = r.str();
  if (flags & 8) p.responseTopic = r.str();
  if (flags & 16) p.correlationData = r.bytes();
  if (flags & 32) {
    const user: [string, string][] = [];
    for (let n = r.varint(); n > 0; n--) {
      const name = r.str();
      user.push([name, r.str()]);
    }
    p.userProperties = user;
  }
  return p;
}

function messageSize(m: Message): number {
  let size = 1 + strSize(m.topic) + m.payload.length;
  if (m.expiresAt !== undefined) size += 8;
  if (m.origin !== undefined) size += strSize(m.origin);
  if (m.properties !== undefined) size += propertiesSize(m.properties);
  return size;
}

function writeMessage(w: Writer, m: Message): void {
  w.u8(
    m.qos | (m.retain ? 4 : 0) | (m.expiresAt !== undefined ? 8 : 0) | (m.origin !== undefined ? 16 : 0) |
      (m.properties !== undefined ? 32 : 0),
  );
  w.str(m.topic);
  if (m.expiresAt !== undefined) {
    w.buf.writeDoubleLE(m.expiresAt, w.off);
    w.off += 8;
  }
  if (m.origin !== undefined) w.str(m.origin);
  if (m.properties !== undefined) writeProperties(w, m.properties);
  w.bytes(m.payload, false);
}

function readMessage(r: Reader): Message {
  const flags = r.u8();
  const qos = flags & 3;
  if (qos === 3) throw new CorruptValueError('message with QoS 3');
  const m: Message = { topic: r.str(), payload: Buffer.alloc(0), qos: qos as QoS, retain: (flags & 4) !== 0 };
  if (flags & 8) m.expiresAt = r.f64();
  if (flags & 16) m.origin = r.str();
  if (flags & 32) m.properties = readProperties(r);
  m.payload = r.rest();
  return m;
}

export function encodeQueued(e: QueuedEntry): Buffer {
  const ids = e.subscriptionIds;
  let size = 2 + messageSize(e.message);
  if (e.packetId !== undefined) size += 2;
  if (ids !== undefined) {
    size += varintSize(ids.length);
    for (const id of ids) size += varintSize(id);
  }
  const w = new Writer(size);
  w.u8(TAG_QUEUED);
  w.u8(
    e.qos | (e.retain ? 4 : 0) | (STATES.indexOf(e.state) << 3) | (e.packetId !== undefined ? 32 : 0) |
      (ids !== undefined ? 64 : 0),
  );
  if (e.packetId !== undefined) {
    w.buf.writeUInt16LE(e.packetId, w.off);
    w.off += 2;
  }
  if (ids !== undefined) {
    w.varint(ids.length);
    for (const id of ids) w.varint(id);
  }
  writeMessage(w, e.message);
  return w.buf;
}

export function decodeQueued(value: Buffer, seq: number): QueuedEntry {
  const r = new Reader(value);
  r.tag(TAG_QUEUED, 'queue entry');
  const flags = r.u8();
  const state = STATES[(flags >> 3) & 3];
  if (state === undefined || (flags & 3) === 3) throw new CorruptValueError('bad queue entry flags');
  const packetId = flags & 32 ? r.u16() : undefined;
  let subscriptionIds: number[] | undefined;
  if (flags & 64) {
    subscriptionIds = [];
    for (let n = r.varint(); n > 0; n--) subscriptionIds.push(r.varint());
  }
  const e: QueuedEntry = { seq, qos: (flags & 3) as QoS, message: readMessage(r), retain: (flags & 4) !== 0, state };
  if (packetId !== undefined) e.packetId = packetId;
  if (subscriptionIds !== undefined) e.subscriptionIds = subscriptionIds;
  return e;
}

export function encodeRetained(m: Message): Buffer {
  const w = new Writer(1 + messageSize(m));
  w.u8(TAG_RETAINED);
  writeMessage(w, m);
  return w.buf;
}

export function decodeRetained(value: Buffer): Message {
  const r = new Reader(value);
  r.tag(TAG_RETAINED, 'retained message');
  return readMessage(r);
}

export function encodeWill(will: StoredWill): Buffer {
  const w = new Writer(5 + messageSize(will.message));
  w.u8(TAG_WILL);
  w.buf.writeUInt32LE(will.delayInterval, w.off);
  w.off += 4;
  writeMessage(w, will.message);
  return w.buf;
}

export function decodeWill(value: Buffer, clientId: string): StoredWill {
  const r = new Reader(value);
  r.tag(TAG_WILL, 'will');
  const delayInterval = r.u32();
  return { clientId, delayInterval, message: readMessage(r) };
}

export function encodeSession(s: StoredSession): Buffer {
  const json = JSON.stringify(s);
  const w = new Writer(1 + Buffer.byteLength(json));
  w.u8(TAG_SESSION);
  w.buf.write(json, 1);
  return w.buf;
}

export function decodeSession(value: Buffer): StoredSession {
  const r = new Reader(value);
  r.tag(TAG_SESSION, 'session');
  let s: StoredSession;
  try {
    s = JSON.parse(value.toString('utf8', 1)) as StoredSession;
  } catch (err) {
    throw new CorruptValueError(`session JSON: ${(err as Error).message}`);
  }
  if (
    typeof s !== 'object' || s === null || typeof s.clientId !== 'string' || typeof s.expiryInterval !== 'number' ||
    ![3, 4, 5].includes(s.protocolVersion) || !Array.isArray(s.subscriptions) ||
    !s.subscriptions.every((sub) => typeof sub?.filter === 'string' && [0, 1, 2].includes(sub.qos))
  ) {
    throw new CorruptValueError('session record lacks required fields');
  }
  return s;
}
