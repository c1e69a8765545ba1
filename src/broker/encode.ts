/**
 * Encoding of every packet the broker sends (MQTT 3.1, 3.1.1 and 5), each into one Buffer.
 *
 * The packets we send are few and simple: written here, each is a single allocation that the outbox
 * gathers, with no stream machinery per packet.
 */
import type { MessageProperties } from './message.js';

/** Bytes of a Variable Byte Integer (MQTT 5 section 1.5.5). */
export function varintSize(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

function writeVarint(out: Buffer, at: number, n: number): number {
  let rest = n;
  do {
    let digit = rest % 128;
    rest = Math.floor(rest / 128);
    if (rest > 0) digit |= 0x80;
    out[at++] = digit;
  } while (rest > 0);
  return at;
}

/** A v5 property block being built: parts gathered, then joined once with its length prefix. */
export class Properties {
  private readonly parts: Buffer[] = [];
  private size = 0;

  get empty(): boolean {
    return this.size === 0;
  }

  private push(b: Buffer): this {
    this.parts.push(b);
    this.size += b.length;
    return this;
  }

  byte(id: number, value: number): this {
    return this.push(Buffer.from([id, value]));
  }

  u16(id: number, value: number): this {
    const b = Buffer.allocUnsafe(3);
    b[0] = id;
    b.writeUInt16BE(value, 1);
    return this.push(b);
  }

  u32(id: number, value: number): this {
    const b = Buffer.allocUnsafe(5);
    b[0] = id;
    b.writeUInt32BE(value, 1);
    return this.push(b);
  }

  varint(id: number, value: number): this {
    const b = Buffer.allocUnsafe(1 + varintSize(value));
    b[0] = id;
    writeVarint(b, 1, value);
    return this.push(b);
  }

  binary(id: number, value: Buffer | string): this {
    const data = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    const b = Buffer.allocUnsafe(3 + data.length);
    b[0] = id;
    b.writeUInt16BE(data.length, 1);
    data.copy(b, 3);
    return this.push(b);
  }

  string(id: number, value: string): this {
    return this.binary(id, value);
  }

  pair(id: number, name: string, value: string): this {
    const n = Buffer.from(name, 'utf8');
    const v = Buffer.from(value, 'utf8');
    const b = Buffer.allocUnsafe(5 + n.length + v.length);
    b[0] = id;
    b.writeUInt16BE(n.length, 1);
    n.copy(b, 3);
    b.writeUInt16BE(v.length, 3 + n.length);
    v.copy(b, 5 + n.length);
    return this.push(b);
  }

  userProperties(props: readonly [string, string][] | undefined): this {
    if (props === undefined) return this;
    for (const [name, value] of props) this.pair(0x26, name, value);
    return this;
  }

  append(block: Buffer): this {
    return block.length === 0 ? this : this.push(block);
  }

  /** The properties without their length prefix. */
  body(): Buffer {
    return this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.size);
  }

  get length(): number {
    return this.size;
  }
}

/** The forwarded PUBLISH properties of a message, without length prefix (encoded once per message). */
export function messagePropertiesBlock(p: MessageProperties | undefined): Buffer {
  if (p === undefined) return EMPTY;
  const props = new Properties();
  if (p.payloadFormatIndicator !== undefined) props.byte(0x01, p.payloadFormatIndicator ? 1 : 0);
  if (p.contentType !== undefined) props.string(0x03, p.contentType);
  if (p.responseTopic !== undefined) props.string(0x08, p.responseTopic);
  if (p.correlationData !== undefined) props.binary(0x09, p.correlationData);
  props.userProperties(p.userProperties);
  return props.body();
}

const EMPTY = Buffer.alloc(0);

/** A packet with a fixed header byte and a body made of parts. */
function packet(header: number, parts: readonly Buffer[], bodyLength: number): Buffer {
  const out = Buffer.allocUnsafe(1 + varintSize(bodyLength) + bodyLength);
  out[0] = header;
  let at = writeVarint(out, 1, bodyLength);
  for (const part of parts) at += part.copy(out, at);
  return out;
}

function withLength(props: Properties | undefined): Buffer[] {
  if (props === undefined) return [];
  const len = props.length;
  const prefix = Buffer.allocUnsafe(varintSize(len));
  writeVarint(prefix, 0, len);
  return len === 0 ? [prefix] : [prefix, props.body()];
}

export interface PublishEncoding {
  /** 3/4 = v3 packet, 5 = v5 packet. */
  version: number;
  /** Topic name; '' when an existing topic alias stands for it (v5). */
  topic: string;
  payload: Buffer;
  qos: number;
  retain: boolean;
  dup: boolean;
  packetId?: number;
  /** v5: the message's forwarded properties, encoded once per message (messagePropertiesBlock). */
  properties?: Buffer;
  /** v5: Message Expiry Interval left, in seconds. */
  expiry?: number;
  /** v5: Topic Alias. */
  topicAlias?: number;
  /** v5: Subscription Identifiers. */
  subscriptionIds?: readonly number[];
}

/**
 * A PUBLISH packet in one buffer: sizes first, then one allocation written front to back (the per-subscriber
 * v5 properties, expiry, alias and subscription identifiers, are written in place, not gathered).
 */
export function encodePublish(p: PublishEncoding): Buffer {
  const topicLength = p.topic.length === 0 ? 0 : Buffer.byteLength(p.topic, 'utf8');
  let propsLength = -1;
  if (p.version === 5) {
    propsLength = p.properties?.length ?? 0;
    if (p.expiry !== undefined) propsLength += 5;
    if (p.topicAlias !== undefined) propsLength += 3;
    if (p.subscriptionIds !== undefined) for (const id of p.subscriptionIds) propsLength += 1 + varintSize(id);
  }
  const propsHeader = propsLength < 0 ? 0 : varintSize(propsLength) + propsLength;
  const remaining = 2 + topicLength + (p.qos > 0 ? 2 : 0) + propsHeader + p.payload.length;
  const out = Buffer.allocUnsafe(1 + varintSize(remaining) + remaining);
  out[0] = 0x30 | (p.dup ? 0x08 : 0) | (p.qos << 1) | (p.retain ? 0x01 : 0);
  let at = writeVarint(out, 1, remaining);
  out[at++] = topicLength >> 8;
  out[at++] = topicLength & 0xff;
  if (topicLength > 0) at += out.write(p.topic, at, topicLength, topicLength === p.topic.length ? 'latin1' : 'utf8');
  if (p.qos > 0) {
    const id = p.packetId ?? 0;
    out[at++] = id >> 8;
    out[at++] = id & 0xff;
  }
  if (propsLength >= 0) {
    at = writeVarint(out, at, propsLength);
    if (p.properties !== undefined) at += p.properties.copy(out, at);
    if (p.expiry !== undefined) {
      out[at] = 0x02;
      out.writeUInt32BE(p.expiry, at + 1);
      at += 5;
    }
    if (p.topicAlias !== undefined) {
      out[at] = 0x23;
      out.writeUInt16BE(p.topicAlias, at + 1);
      at += 3;
    }
    if (p.subscriptionIds !== undefined) {
      for (const id of p.subscriptionIds) {
        out[at++] = 0x0b;
        at = writeVarint(out, at, id);
      }
    }
  }
  p.payload.copy(out, at);
  return out;
}

const ACK_HEADERS = { puback: 0x40, pubrec: 0x50, pubrel: 0x62, pubcomp: 0x70 } as const;
export type AckKind = keyof typeof ACK_HEADERS;

/** PUBACK, PUBREC, PUBREL or PUBCOMP; v5 with a reason code when it is not 0 (or a reason string). */
export function encodeAck(kind: AckKind, packetId: number, version: number, reasonCode = 0, reasonString?: string): Buffer {
  if (version < 5 || (reasonCode === 0 && reasonString === undefined)) {
    const out = Buffer.allocUnsafe(4);
    out[0] = ACK_HEADERS[kind];
    out[1] = 2;
    out[2] = packetId >> 8;
    out[3] = packetId & 0xff;
    return out;
  }
  const id = Buffer.from([packetId >> 8, packetId & 0xff, reasonCode]);
  if (reasonString === undefined) return packet(ACK_HEADERS[kind], [id], 3);
  const props = withLength(new Properties().string(0x1f, reasonString));
  return packet(ACK_HEADERS[kind], [id, ...props], 3 + props.reduce((n, b) => n + b.length, 0));
}

export const PINGRESP = Buffer.from([0xd0, 0x00]);

export interface ConnackFields {
  version: number;
  sessionPresent: boolean;
  /** v5 reason code, or for v3 the CONNACK return code. */
  code: number;
  properties?: Properties;
}

export function encodeConnack(c: ConnackFields): Buffer {
  const head = Buffer.from([c.sessionPresent ? 1 : 0, c.code]);
  if (c.version < 5) return packet(0x20, [head], 2);
  const props = withLength(c.properties ?? new Properties());
  return packet(0x20, [head, ...props], 2 + props.reduce((n, b) => n + b.length, 0));
}

/** SUBACK (codes = granted QoS or failure codes) or UNSUBACK (v5 only has codes). */
export function encodeSubscriptionAck(kind: 'suback' | 'unsuback', packetId: number, version: number, codes: number[], reasonString?: string): Buffer {
  const header = kind === 'suback' ? 0x90 : 0xb0;
  const id = Buffer.from([packetId >> 8, packetId & 0xff]);
  if (version < 5) {
    if (kind === 'unsuback') return packet(header, [id], 2);
    return packet(header, [id, Buffer.from(codes)], 2 + codes.length);
  }
  const props = withLength(reasonString === undefined ? new Properties() : new Properties().string(0x1f, reasonString));
  const parts = [id, ...props, Buffer.from(codes)];
  return packet(header, parts, parts.reduce((n, b) => n + b.length, 0));
}

/** v5 DISCONNECT from the server (v3 has none: the server just closes). */
export function encodeDisconnect(reasonCode: number, reasonString?: string): Buffer {
  if (reasonCode === 0 && reasonString === undefined) return Buffer.from([0xe0, 0x00]);
  const parts = [Buffer.from([reasonCode]), ...withLength(reasonString === undefined ? new Properties() : new Properties().string(0x1f, reasonString))];
  return packet(0xe0, parts, parts.reduce((n, b) => n + b.length, 0));
}
