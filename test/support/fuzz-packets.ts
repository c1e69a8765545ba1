/**
 * MQTT fuzzing for the broker tests: a seeded PRNG, valid packets of every type for MQTT 3.1 (MQIsdp, level
 * 3), 3.1.1 (4) and 5 (encoded by mqtt-packet), byte-level mutations, hand-encoded malformed packets with a
 * known correct outcome (the defects of v0.1 in FACTS.md and the rules of the specifications), and a driver
 * that plays one case on one fresh connection and records what the broker answered and whether it closed.
 *
 * Everything is deterministic for a seed: case `i` is built from its own generator seeded by (seed, i), so a
 * failing case is reproduced alone with the same seed and index whatever ran before it.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import mqttPacket, { type Packet, type PacketCmd } from 'mqtt-packet';

export type Version = 3 | 4 | 5;
export const VERSIONS: readonly Version[] = [3, 4, 5];

// ---------------------------------------------------------------------------------------------------------
// PRNG: xoshiro128** seeded through splitmix32 (both public-domain algorithms, written out here).

export class Rng {
  private s: Uint32Array;

  constructor(...seeds: number[]) {
    let x = 0x9e3779b9;
    for (const seed of seeds) x = (Math.imul(x ^ (seed >>> 0), 0x85ebca6b) + 0x6a09e667) >>> 0;
    const splitmix = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s = new Uint32Array([splitmix(), splitmix(), splitmix(), splitmix()]);
    if (this.s.every((v) => v === 0)) this.s[0] = 1;
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** [0, 1) */
  next(): number {
    return this.u32() / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[this.int(items.length)]!;
  }

  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

// ---------------------------------------------------------------------------------------------------------
// Hand encoding (for packets mqtt-packet refuses to generate).

/** MQTT Variable Byte Integer; `minBytes` pads it with continuation bytes (a non-minimal encoding). */
export function varint(n: number, minBytes = 1): Buffer {
  const out: number[] = [];
  let rest = n;
  do {
    let digit = rest % 128;
    rest = Math.floor(rest / 128);
    if (rest > 0 || out.length + 1 < minBytes) digit |= 0x80;
    out.push(digit);
  } while (rest > 0 || out.length < minBytes);
  return Buffer.from(out);
}

export const u8 = (n: number): Buffer => Buffer.from([n & 0xff]);
export const u16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
export const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

/** A length-prefixed string or binary field. */
export function str(s: string | Buffer): Buffer {
  const bytes = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  return Buffer.concat([u16(bytes.length), bytes]);
}

/** A whole packet: first byte, remaining length, body. */
export function frame(first: number, ...body: Buffer[]): Buffer {
  const b = Buffer.concat(body);
  return Buffer.concat([u8(first), varint(b.length), b]);
}

/** MQTT 5 property identifiers. */
export const PROP = {
  payloadFormatIndicator: 0x01,
  messageExpiryInterval: 0x02,
  contentType: 0x03,
  responseTopic: 0x08,
  correlationData: 0x09,
  subscriptionIdentifier: 0x0b,
  sessionExpiryInterval: 0x11,
  assignedClientIdentifier: 0x12,
  serverKeepAlive: 0x13,
  authenticationMethod: 0x15,
  authenticationData: 0x16,
  requestProblemInformation: 0x17,
  willDelayInterval: 0x18,
  requestResponseInformation: 0x19,
  receiveMaximum: 0x21,
  topicAliasMaximum: 0x22,
  topicAlias: 0x23,
  maximumQoS: 0x24,
  userProperty: 0x26,
  maximumPacketSize: 0x27,
} as const;

/** One property: identifier and value bytes (build the value with u8/u16/u32/varint/str). */
export const prop = (id: number, value: Buffer): Buffer => Buffer.concat([varint(id), value]);
/** A property block: its length, then the properties. */
export const props = (...list: Buffer[]): Buffer => {
  const b = Buffer.concat(list);
  return Buffer.concat([varint(b.length), b]);
};

/** Bytes that are not valid UTF-8 (an overlong '/'), and the null character. */
export const BAD_UTF8 = Buffer.from([0xc0, 0xaf]);
export const NUL = Buffer.from([0x00]);
/** Replace `~~` in `text` with `bytes` (to put invalid bytes into an otherwise normal string). */
export function withBytes(text: string, bytes: Buffer): Buffer {
  const [before, after] = text.split('~~') as [string, string | undefined];
  return after === undefined ? Buffer.from(text) : Buffer.concat([Buffer.from(before), bytes, Buffer.from(after)]);
}

export interface RawConnect {
  version: Version;
  /** Protocol name (default MQIsdp for 3, MQTT otherwise) and level (default: the version). */
  name?: string | Buffer;
  level?: number;
  /** First byte (default 0x10). */
  header?: number;
  /** Connect flags; computed from the fields below when not given. */
  flags?: number;
  clean?: boolean;
  keepalive?: number;
  /** MQTT 5 properties block (default: empty). */
  props?: Buffer;
  clientId?: string | Buffer;
  will?: { topic: string | Buffer; payload?: Buffer; qos?: number; retain?: boolean; props?: Buffer };
  username?: string | Buffer;
  password?: string | Buffer;
}

export function rawConnect(c: RawConnect): Buffer {
  const v5 = (c.level ?? c.version) === 5 || c.version === 5;
  const name = c.name ?? (c.version === 3 ? 'MQIsdp' : 'MQTT');
  let flags = c.flags;
  if (flags === undefined) {
    flags = 0;
    if (c.clean ?? true) flags |= 0x02;
    if (c.will) flags |= 0x04 | ((c.will.qos ?? 0) << 3) | (c.will.retain ? 0x20 : 0);
    if (c.password !== undefined) flags |= 0x40;
    if (c.username !== undefined) flags |= 0x80;
  }
  const parts: Buffer[] = [str(name), u8(c.level ?? c.version), u8(flags), u16(c.keepalive ?? 30)];
  if (v5) parts.push(c.props ?? props());
  parts.push(str(c.clientId ?? 'fz'));
  if (c.will) {
    if (v5) parts.push(c.will.props ?? props());
    parts.push(str(c.will.topic), str(c.will.payload ?? Buffer.from('bye')));
  }
  if (c.username !== undefined) parts.push(str(c.username));
  if (c.password !== undefined) parts.push(str(c.password));
  return frame(c.header ?? 0x10, ...parts);
}

export interface RawPublish {
  version: Version;
  qos?: number;
  topic: string | Buffer;
  id?: number;
  props?: Buffer;
  payload?: Buffer;
  dup?: boolean;
  retain?: boolean;
  /** First byte; overrides qos/dup/retain. */
  header?: number;
}

export function rawPublish(p: RawPublish): Buffer {
  const qos = p.qos ?? 0;
  const header = p.header ?? (0x30 | (p.dup ? 0x08 : 0) | ((qos & 3) << 1) | (p.retain ? 1 : 0));
  const parts = [str(p.topic)];
  if (qos > 0 || p.id !== undefined) parts.push(u16(p.id ?? 1));
  if (p.version === 5) parts.push(p.props ?? props());
  parts.push(p.payload ?? Buffer.from('x'));
  return frame(header, ...parts);
}

export interface RawSubscribe {
  version: Version;
  id?: number;
  props?: Buffer;
  /** Filter and options byte (QoS in bits 0-1; v5: no-local 0x04, retain-as-published 0x08, handling 0x30). */
  filters: [string | Buffer, number][];
  header?: number;
}

export function rawSubscribe(s: RawSubscribe): Buffer {
  const parts = [u16(s.id ?? 1)];
  if (s.version === 5) parts.push(s.props ?? props());
  for (const [filter, options] of s.filters) parts.push(str(filter), u8(options));
  return frame(s.header ?? 0x82, ...parts);
}

export function rawUnsubscribe(u: { version: Version; id?: number; props?: Buffer; filters: (string | Buffer)[]; header?: number }): Buffer {
  const parts = [u16(u.id ?? 1)];
  if (u.version === 5) parts.push(u.props ?? props());
  for (const f of u.filters) parts.push(str(f));
  return frame(u.header ?? 0xa2, ...parts);
}

export const PINGREQ = Buffer.from([0xc0, 0x00]);

// ---------------------------------------------------------------------------------------------------------
// Valid packets of every type, through mqtt-packet.

export const USER = { username: 'cam', password: 's3cret' } as const;

export function encode(packet: Packet, version: Version): Buffer {
  return mqttPacket.generate(packet, { protocolVersion: version });
}

/** A valid CONNECT as user cam (clean session, keepalive 30). */
export function validConnect(version: Version, clientId: string, extra: Partial<mqttPacket.IConnectPacket> = {}): Buffer {
  return encode(
    {
      cmd: 'connect',
      protocolId: version === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion: version,
      clean: true,
      clientId,
      keepalive: 30,
      username: USER.username,
      password: Buffer.from(USER.password),
      ...extra,
    },
    version,
  );
}

/** Kinds of base packet the random fuzzer starts from (client-to-server ones and a few of the wrong direction). */
export const KINDS = [
  'connect',
  'connect-full',
  'publish0',
  'publish1',
  'publish2',
  'puback',
  'pubrec',
  'pubrel',
  'pubcomp',
  'subscribe',
  'unsubscribe',
  'pingreq',
  'disconnect',
  'auth',
  'connack',
  'suback',
  'unsuback',
  'pingresp',
] as const;
export type Kind = (typeof KINDS)[number];

/** Topics and filters: a small set, so that retained messages and sessions stay bounded; `~~` marks a spot
 * the `utf8` mutation fills with invalid bytes (left as is, it is valid). */
const TOPICS = ['fuzz/a', 'fuzz/~~/b', 'fuzz/r', 'fuzz/will', 'fuzz/c/d/e'];
const FILTERS = ['fuzz/#', 'fuzz/+/b', 'fuzz/~~', 'fuzz/a', '$share/g/fuzz/a', 'fuzz/c/+/e'];

function userProps(rng: Rng): Record<string, string | string[]> {
  return rng.chance(0.5) ? { k: 'v', dup: ['1', '2'] } : { 'a~~': 'b' };
}

/** A valid packet of `kind` for `version`, with random fields (v5 properties on about half of them). */
export function basePacket(kind: Kind, version: Version, rng: Rng, clientId: string): Buffer {
  const v5 = version === 5;
  const withProps = v5 && rng.chance(0.6);
  const id = rng.range(1, 0xffff);
  const reasonCode = rng.pick([0, 0x10, 0x80, 0x91]);
  const ackProps = withProps ? { properties: { reasonString: 'r~~', userProperties: userProps(rng) } } : {};
  switch (kind) {
    case 'connect':
      return validConnect(version, clientId, { clean: rng.chance(0.8), keepalive: rng.pick([0, 5, 30, 600]) });
    case 'connect-full':
      return validConnect(version, clientId, {
        clean: rng.chance(0.7),
        keepalive: rng.pick([10, 60]),
        will: {
          topic: rng.pick(TOPICS),
          payload: rng.bytes(rng.int(40)),
          qos: rng.pick([0, 1, 2] as const),
          retain: rng.chance(0.3),
          ...(withProps
            ? {
                properties: {
                  willDelayInterval: rng.pick([0, 1, 3600]),
                  payloadFormatIndicator: rng.chance(0.5),
                  messageExpiryInterval: rng.pick([1, 60, 0xffffffff]),
                  contentType: 'text/~~',
                  responseTopic: 'fuzz/resp',
                  correlationData: rng.bytes(8),
                  userProperties: userProps(rng),
                },
              }
            : {}),
        },
        ...(withProps
          ? {
              properties: {
                sessionExpiryInterval: rng.pick([0, 1, 30]),
                receiveMaximum: rng.pick([1, 20, 65535]),
                maximumPacketSize: rng.pick([64, 4096, 268435455]),
                topicAliasMaximum: rng.pick([0, 5, 65535]),
                requestResponseInformation: rng.chance(0.5),
                requestProblemInformation: rng.chance(0.5),
                userProperties: userProps(rng),
              },
            }
          : {}),
      });
    case 'publish0':
    case 'publish1':
    case 'publish2': {
      const qos = Number(kind.slice(-1)) as 0 | 1 | 2;
      return encode(
        {
          cmd: 'publish',
          qos,
          dup: qos > 0 && rng.chance(0.2),
          retain: rng.chance(0.2),
          topic: rng.pick(TOPICS),
          payload: rng.bytes(rng.pick([0, 1, 20, 200, 2048])),
          ...(qos > 0 ? { messageId: id } : {}),
          ...(withProps
            ? {
                properties: {
                  payloadFormatIndicator: rng.chance(0.3),
                  messageExpiryInterval: rng.pick([1, 100]),
                  ...(rng.chance(0.5) ? { topicAlias: rng.range(1, 5) } : {}),
                  responseTopic: 'fuzz/resp/~~',
                  correlationData: rng.bytes(4),
                  userProperties: userProps(rng),
                  contentType: 'application/~~',
                },
              }
            : {}),
        },
        version,
      );
    }
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp':
      return encode({ cmd: kind, messageId: id, ...(v5 ? { reasonCode: kind === 'pubrel' ? rng.pick([0, 0x92]) : reasonCode } : {}), ...ackProps } as Packet, version);
    case 'subscribe': {
      const n = rng.range(1, 3);
      return encode(
        {
          cmd: 'subscribe',
          messageId: id,
          subscriptions: Array.from({ length: n }, () => {
            const topic = rng.pick(FILTERS);
            return {
              topic,
              qos: rng.pick([0, 1, 2] as const),
              ...(v5 ? { nl: !topic.startsWith('$share') && rng.chance(0.3), rap: rng.chance(0.3), rh: rng.pick([0, 1, 2]) } : {}),
            };
          }),
          ...(withProps ? { properties: { subscriptionIdentifier: rng.range(1, 1000), userProperties: userProps(rng) } } : {}),
        },
        version,
      );
    }
    case 'unsubscribe':
      return encode(
        {
          cmd: 'unsubscribe',
          messageId: id,
          unsubscriptions: Array.from({ length: rng.range(1, 3) }, () => rng.pick(FILTERS)),
          ...(withProps ? { properties: { userProperties: userProps(rng) } } : {}),
        },
        version,
      );
    case 'pingreq':
      return encode({ cmd: 'pingreq' }, version);
    case 'pingresp':
      return encode({ cmd: 'pingresp' }, version);
    case 'disconnect':
      return encode(
        {
          cmd: 'disconnect',
          ...(v5 ? { reasonCode: rng.pick([0, 0x04, 0x80]) } : {}),
          ...(withProps ? { properties: { reasonString: 'bye~~', userProperties: userProps(rng) } } : {}),
        },
        version,
      );
    case 'auth':
      // AUTH does not exist before MQTT 5 (type 15 is reserved there): send its bytes anyway.
      if (!v5) return Buffer.from([0xf0, 0x00]);
      return encode({ cmd: 'auth', reasonCode: rng.pick([0x18, 0x19]), properties: { authenticationMethod: 'SCRAM~~', authenticationData: rng.bytes(8) } }, 5);
    case 'connack':
      return encode({ cmd: 'connack', sessionPresent: false, ...(v5 ? { reasonCode: 0 } : { returnCode: 0 }) }, version);
    case 'suback':
      return encode({ cmd: 'suback', messageId: id, granted: [0, 1] }, version);
    case 'unsuback':
      return encode({ cmd: 'unsuback', messageId: id, granted: v5 ? [0] : [] } as Packet, version);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Mutations.

/** Offset and value of the remaining length of the packet at the start of `buf`, when it parses. */
export function fixedHeader(buf: Buffer): { lengthBytes: number; length: number } | undefined {
  let length = 0;
  let mul = 1;
  for (let i = 1; i < Math.min(buf.length, 5); i++) {
    const b = buf[i]!;
    length += (b & 0x7f) * mul;
    mul *= 128;
    if ((b & 0x80) === 0) return { lengthBytes: i, length };
  }
  return undefined;
}

const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x02, 0x03];
const BAD_SEQUENCES = [BAD_UTF8, Buffer.from([0x00, 0x41]), Buffer.from([0xed, 0xa0]), Buffer.from([0xff, 0xfe]), Buffer.from([0xc3, 0x28]), Buffer.from('+#')];

export const MUTATIONS = [
  'flip',
  'truncate',
  'len-short',
  'len-long',
  'len-5byte',
  'len-nonminimal',
  'flags',
  'type',
  'utf8',
  'insert',
  'delete',
  'byte',
  'splice',
  'duplicate-tail',
] as const;
export type Mutation = (typeof MUTATIONS)[number];

/** Apply one mutation to one packet's bytes. `other` is another valid packet (for `splice`). */
export function mutate(buf: Buffer, m: Mutation, rng: Rng, other: Buffer): Buffer {
  const out = Buffer.from(buf);
  const header = fixedHeader(buf);
  const bodyStart = header ? 1 + header.lengthBytes : 2;
  const body = buf.subarray(bodyStart);
  switch (m) {
    case 'flip': {
      const n = rng.range(1, 3);
      for (let i = 0; i < n; i++) {
        // Half of the flips in the fixed and variable header, where the structure is.
        const at = rng.chance(0.5) ? rng.int(Math.min(out.length, 12)) : rng.int(out.length);
        out[at]! ^= 1 << rng.int(8);
      }
      return out;
    }
    case 'truncate':
      return out.subarray(0, rng.int(out.length));
    case 'len-short':
    case 'len-long': {
      if (!header) return out;
      const delta = m === 'len-short' ? -rng.range(1, Math.max(1, Math.min(header.length, 8))) : rng.pick([1, 2, 7, 300]);
      return Buffer.concat([out.subarray(0, 1), varint(Math.max(0, header.length + delta)), body]);
    }
    case 'len-5byte':
      return Buffer.concat([out.subarray(0, 1), rng.pick([Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f]), Buffer.from([0x80, 0x80, 0x80, 0x80, 0x01])]), body]);
    case 'len-nonminimal':
      if (!header) return out;
      return Buffer.concat([out.subarray(0, 1), varint(header.length, Math.min(4, header.lengthBytes + rng.range(1, 3))), body]);
    case 'flags':
      out[0] = (out[0]! & 0xf0) | rng.int(16);
      return out;
    case 'type':
      out[0] = (rng.int(16) << 4) | (out[0]! & 0x0f);
      return out;
    case 'utf8': {
      const at = out.indexOf('~~');
      if (at < 0) return mutate(buf, 'flip', rng, other);
      rng.pick(BAD_SEQUENCES).copy(out, at);
      return out;
    }
    case 'insert': {
      const at = rng.range(1, out.length);
      return Buffer.concat([out.subarray(0, at), rng.bytes(rng.range(1, 6)), out.subarray(at)]);
    }
    case 'delete': {
      const at = rng.range(1, Math.max(1, out.length - 1));
      return Buffer.concat([out.subarray(0, at), out.subarray(Math.min(out.length, at + rng.range(1, 6)))]);
    }
    case 'byte':
      out[rng.int(out.length)] = rng.pick(INTERESTING);
      return out;
    case 'splice': {
      const cut = rng.int(out.length);
      return Buffer.concat([out.subarray(0, cut), other.subarray(rng.int(other.length))]);
    }
    case 'duplicate-tail': {
      const from = rng.int(out.length);
      return Buffer.concat([out, out.subarray(from)]);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Cases and their expected outcomes.

export interface Step {
  bytes: Buffer;
  /** Deliver in random small writes with short pauses. */
  fragment?: boolean;
  /** Wait for the broker's first answer (or the close) before the next step, up to 3 s. */
  awaitReply?: boolean;
  /** Pause after this step. */
  pauseMs?: number;
}

export interface Expectation {
  /** The broker closes the connection by itself (within closeWithinMs). */
  closes?: boolean;
  /** Commands the broker must not send (e.g. the PUBACK of an invalid PUBLISH). */
  forbidden?: PacketCmd[];
  /** MQTT 5 after CONNACK: a DISCONNECT with this reason code ('error': any >= 0x80) is the last packet. */
  v5Disconnect?: number | 'error';
  /** The answer starts with exactly these bytes (e.g. the CONNACK 20 02 00 01). */
  firstBytes?: Buffer;
  /** If a CONNACK comes, its bytes are one of these. */
  connackOneOf?: Buffer[];
  /** No CONNACK that accepts the connection. */
  refused?: boolean;
  /** A CONNACK that accepts the connection (e.g. repeated user properties are allowed). */
  accepted?: boolean;
  /** The CONNACK carries this reason code. */
  connackReason?: number;
  /** The connection stays open: a PINGREQ after the steps gets its PINGRESP. */
  staysConnected?: boolean;
  /** Every SUBACK entry is a failure (>= 0x80). */
  subackFailure?: boolean;
}

export interface FuzzCase {
  /** Index in the run (random cases) or a name-derived number (targeted). */
  id: number;
  name: string;
  /** The protocol version the case's CONNECT speaks (the others' answers are tried when parsing). */
  version: Version;
  /** The case starts with a valid CONNECT and waits for its CONNACK. */
  connected: boolean;
  tls: boolean;
  steps: Step[];
  expect?: Expectation;
}

/** Case `index` of a random run with `seed` (deterministic; `tlsShare` of them over TLS). */
export function randomCase(seed: number, index: number, tlsShare = 0.1): FuzzCase {
  const rng = new Rng(seed, index);
  const version = rng.pick(VERSIONS);
  const clientId = `fz${rng.int(8)}${rng.chance(0.2) ? '~~' : ''}`;
  const tls = rng.chance(tlsShare);
  const mode = rng.next();
  const mutations: string[] = [];
  const fuzzed = (kind: Kind): Buffer => {
    let bytes = basePacket(kind, version, rng, clientId);
    const n = rng.chance(0.7) ? 1 : rng.chance(0.66) ? 2 : 3;
    for (let i = 0; i < n; i++) {
      const m = rng.pick(MUTATIONS);
      mutations.push(m);
      bytes = mutate(bytes, m, rng, basePacket(rng.pick(KINDS), version, rng, clientId));
    }
    return bytes;
  };
  const steps: Step[] = [];
  let connected = false;
  let kind: Kind;
  if (mode < 0.12) {
    // Something other than a valid CONNECT first.
    kind = rng.pick(KINDS.filter((k) => !k.startsWith('connect')));
    steps.push({ bytes: rng.chance(0.5) ? fuzzed(kind) : basePacket(kind, version, rng, clientId) });
  } else if (mode < 0.35) {
    kind = rng.pick(['connect', 'connect-full'] as const);
    steps.push({ bytes: fuzzed(kind), fragment: rng.chance(0.15) });
  } else {
    connected = true;
    steps.push({ bytes: validConnect(version, clientId.replace('~~', ''), { clean: true }), awaitReply: true });
    kind = rng.pick(KINDS);
    const before = rng.int(3);
    for (let i = 0; i < before; i++) steps.push({ bytes: basePacket(rng.pick(['publish0', 'publish1', 'publish2', 'subscribe', 'pingreq'] as const), version, rng, clientId) });
    steps.push({ bytes: fuzzed(kind), fragment: rng.chance(0.15) });
  }
  if (rng.chance(0.5)) steps.push({ bytes: basePacket(rng.pick(['pingreq', 'publish1', 'subscribe'] as const), version, rng, clientId) });
  // Sometimes everything in one write, so that the broker finds several packets (and a broken one) in one read.
  if (rng.chance(0.2) && steps.length > 1) {
    const [first, ...rest] = steps;
    return { id: index, name: `v${version} ${kind} ${mutations.join('+')} (one write)`, version, connected, tls, steps: [first!, { bytes: Buffer.concat(rest.map((s) => s.bytes)) }] };
  }
  return { id: index, name: `v${version} ${kind} ${mutations.join('+')}`, version, connected, tls, steps };
}

const DISCONNECT_ERROR: Pick<Expectation, 'v5Disconnect'> = { v5Disconnect: 'error' };
const CONNACK_UNSUPPORTED = [Buffer.from([0x20, 0x02, 0x00, 0x01]), Buffer.from([0x20, 0x03, 0x00, 0x84, 0x00])];

/** A case on a fresh connection: a valid CONNECT first, then `bytes` (errors after CONNACK). */
function afterConnect(version: Version, name: string, bytes: Buffer | Buffer[], expect: Expectation | undefined, extra: Partial<FuzzCase> = {}): FuzzCase {
  const list = Array.isArray(bytes) ? bytes : [bytes];
  return {
    id: 0,
    name: `v${version} ${name}${expect ? '' : ' (invariants only)'}`,
    version,
    connected: true,
    tls: false,
    steps: [{ bytes: validConnect(version, `fzt-${version}`), awaitReply: true }, ...list.map((b) => ({ bytes: b }))],
    expect: version === 5 && expect?.closes ? { ...DISCONNECT_ERROR, ...expect } : expect,
    ...extra,
  };
}

/** A case whose first packet is `bytes` (a bad CONNECT, or something else before CONNECT). */
function first(version: Version, name: string, bytes: Buffer | Buffer[], expect: Expectation | undefined): FuzzCase {
  const list = Array.isArray(bytes) ? bytes : [bytes];
  return { id: 0, name: `v${version} ${name}${expect ? '' : ' (invariants only)'}`, version, connected: false, tls: false, steps: list.map((b) => ({ bytes: b })), expect };
}

const CLOSED_REFUSED: Expectation = { closes: true, refused: true, forbidden: ['puback', 'suback', 'pingresp', 'disconnect'] };
const NOTHING_BEFORE_CONNECT: Expectation = {
  closes: true,
  refused: true,
  forbidden: ['puback', 'pubrec', 'pubrel', 'pubcomp', 'suback', 'unsuback', 'pingresp', 'publish', 'disconnect', 'auth'],
};

/**
 * Hand-made malformed packets with the outcome the specifications require (and FACTS.md's v0.1 defects,
 * marked [facts]). `version` picks the CONNECT and the packet forms.
 */
export function targetedCases(version: Version): FuzzCase[] {
  const v = version;
  const v5 = v === 5;
  const cases: FuzzCase[] = [];
  const conn = (c: Omit<RawConnect, 'version'>): Buffer => rawConnect({ version: v, username: USER.username, password: USER.password, ...c });
  /**
   * Rules that MQTT 3.1.1 introduced (reserved header flags and connect flags, at least one filter, no body
   * on PINGREQ): MQTT 3.1 (MQIsdp) does not require them, so for it these cases keep only the invariants.
   */
  const since311 = (e: Expectation): Expectation | undefined => (v === 3 ? undefined : e);

  // --- before CONNECT
  cases.push(first(v, 'PUBLISH QoS 1 before CONNECT', rawPublish({ version: v, qos: 1, topic: 'fuzz/a', id: 7 }), NOTHING_BEFORE_CONNECT));
  cases.push(first(v, 'SUBSCRIBE before CONNECT', rawSubscribe({ version: v, filters: [['fuzz/#', 1]] }), NOTHING_BEFORE_CONNECT));
  cases.push(first(v, 'PINGREQ before CONNECT', PINGREQ, NOTHING_BEFORE_CONNECT));
  cases.push(first(v, 'CONNACK from the client before CONNECT', Buffer.from([0x20, 0x02, 0x00, 0x00]), NOTHING_BEFORE_CONNECT));
  cases.push(first(v, 'AUTH before CONNECT', v5 ? frame(0xf0, u8(0x18), props(prop(PROP.authenticationMethod, str('X')))) : Buffer.from([0xf0, 0x00]), NOTHING_BEFORE_CONNECT));
  cases.push(first(v, 'PUBLISH then a valid CONNECT in one write', Buffer.concat([rawPublish({ version: v, qos: 1, topic: 'fuzz/a', id: 7 }), validConnect(v, 'fzt-late')]), NOTHING_BEFORE_CONNECT));

  // --- CONNECT
  if (v === 3) {
    cases.push(first(v, '[facts] protocol name MQTT with level 3', conn({ name: 'MQTT', level: 3 }), { closes: true, firstBytes: Buffer.from([0x20, 0x02, 0x00, 0x01]), refused: true }));
  }
  for (const level of [0, 2, 6, 255]) {
    cases.push(first(v, `protocol level ${level}`, conn({ level }), { ...CLOSED_REFUSED, connackOneOf: CONNACK_UNSUPPORTED }));
  }
  cases.push(first(v, 'invalid UTF-8 (c0 af) in the client id', conn({ clientId: withBytes('fz~~', BAD_UTF8) }), CLOSED_REFUSED));
  cases.push(first(v, 'U+0000 in the client id', conn({ clientId: withBytes('fz~~', NUL) }), CLOSED_REFUSED));
  cases.push(first(v, 'invalid UTF-8 in the will topic', conn({ will: { topic: withBytes('fuzz/~~', BAD_UTF8) } }), CLOSED_REFUSED));
  cases.push(first(v, 'U+0000 in the will topic', conn({ will: { topic: withBytes('fuzz/~~', NUL) } }), CLOSED_REFUSED));
  cases.push(first(v, 'wildcard in the will topic', conn({ will: { topic: 'fuzz/#' } }), CLOSED_REFUSED));
  cases.push(first(v, 'invalid UTF-8 in the user name', conn({ username: withBytes('cam~~', BAD_UTF8) }), CLOSED_REFUSED));
  cases.push(first(v, 'CONNECT with header flags 0x11', conn({ header: 0x11 }), since311(CLOSED_REFUSED)));
  cases.push(first(v, 'reserved connect flag set', conn({ flags: 0x02 | 0xc0 | 0x01 }), since311(CLOSED_REFUSED)));
  cases.push(first(v, 'user name flag without a user name', rawConnect({ version: v, flags: 0x82 }), CLOSED_REFUSED));
  if (!v5) cases.push(first(v, 'password flag without the user name flag', rawConnect({ version: v, flags: 0x42, password: USER.password }), CLOSED_REFUSED));
  cases.push(first(v, 'will QoS 3', conn({ flags: 0xc0 | 0x02 | 0x04 | 0x18, will: { topic: 'fuzz/will' } }), CLOSED_REFUSED));
  cases.push(first(v, 'will QoS 1 without the will flag', conn({ flags: 0xc0 | 0x02 | 0x08 }), since311(CLOSED_REFUSED)));
  cases.push(first(v, 'will retain without the will flag', conn({ flags: 0xc0 | 0x02 | 0x20 }), since311(CLOSED_REFUSED)));
  cases.push(first(v, 'CONNECT with a 5-byte remaining length', Buffer.concat([Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f]), conn({}).subarray(2)]), CLOSED_REFUSED));
  cases.push(first(v, 'CONNECT cut in the client id', (() => {
    const full = conn({ clientId: 'fz-cut' });
    const cut = full.subarray(2, 2 + (v === 3 ? 12 : 10) + (v5 ? 1 : 0) + 4);
    return frame(0x10, cut);
  })(), CLOSED_REFUSED));
  if (v5) {
    const sei = prop(PROP.sessionExpiryInterval, u32(10));
    cases.push(first(v, 'duplicate session expiry interval in CONNECT', conn({ props: props(sei, sei) }), CLOSED_REFUSED));
    cases.push(first(v, 'topic alias property in CONNECT', conn({ props: props(prop(PROP.topicAlias, u16(1))) }), CLOSED_REFUSED));
    cases.push(first(v, 'receive maximum 0', conn({ props: props(prop(PROP.receiveMaximum, u16(0))) }), CLOSED_REFUSED));
    cases.push(first(v, 'maximum packet size 0', conn({ props: props(prop(PROP.maximumPacketSize, u32(0))) }), CLOSED_REFUSED));
    cases.push(first(v, 'property length beyond the packet', conn({ props: Buffer.concat([varint(200), prop(PROP.receiveMaximum, u16(5))]) }), CLOSED_REFUSED));
    cases.push(first(v, 'topic alias in the will properties', conn({ will: { topic: 'fuzz/will', props: props(prop(PROP.topicAlias, u16(1))) } }), CLOSED_REFUSED));
    cases.push(
      first(v, 'repeated user properties are allowed', conn({ props: props(prop(PROP.userProperty, Buffer.concat([str('k'), str('v')])), prop(PROP.userProperty, Buffer.concat([str('k'), str('v')]))) }), {
        accepted: true,
      }),
    );
    cases.push(first(v, 'authentication method in CONNECT -> 0x8C', conn({ props: props(prop(PROP.authenticationMethod, str('SCRAM-SHA-1'))) }), { ...CLOSED_REFUSED, connackReason: 0x8c }));
  }
  cases.push(afterConnect(v, 'second CONNECT', validConnect(v, 'fzt-second'), { closes: true }));
  // The second CONNECT is a protocol violation whatever it holds: no second CONNACK, even a refusing one.
  cases.push(afterConnect(v, 'second CONNECT with an unsupported protocol level', conn({ clientId: 'fzt-second', level: 0x8b }), { closes: true }));

  // --- PUBLISH
  const pub = (p: Omit<RawPublish, 'version'>): Buffer => rawPublish({ version: v, ...p });
  const noAck: Expectation = { closes: true, forbidden: ['puback', 'pubrec'] };
  cases.push(afterConnect(v, '[facts] U+0000 in a QoS 1 PUBLISH topic', pub({ qos: 1, id: 5, topic: withBytes('fuzz/~~', NUL) }), noAck));
  cases.push(afterConnect(v, 'invalid UTF-8 (c0 af) in a QoS 1 PUBLISH topic', pub({ qos: 1, id: 5, topic: withBytes('fuzz/~~', BAD_UTF8) }), noAck));
  cases.push(afterConnect(v, '[facts] QoS 1 PUBLISH with packet id 0', pub({ qos: 1, id: 0, topic: 'fuzz/a' }), noAck));
  cases.push(afterConnect(v, 'QoS 2 PUBLISH with packet id 0', pub({ qos: 2, id: 0, topic: 'fuzz/a' }), noAck));
  cases.push(afterConnect(v, 'PUBLISH with QoS 3', pub({ header: 0x36, id: 5, topic: 'fuzz/a' }), noAck));
  cases.push(afterConnect(v, 'QoS 1 PUBLISH to a + wildcard topic', pub({ qos: 1, id: 5, topic: 'fuzz/+/x' }), noAck));
  cases.push(afterConnect(v, 'QoS 1 PUBLISH to a # wildcard topic', pub({ qos: 1, id: 5, topic: 'fuzz/#' }), noAck));
  cases.push(afterConnect(v, 'QoS 1 PUBLISH with an empty topic', pub({ qos: 1, id: 5, topic: '' }), noAck));
  cases.push(afterConnect(v, 'PUBLISH whose length ends inside the topic', frame(0x32, u16(20), Buffer.from('fuzz/')), noAck));
  cases.push(afterConnect(v, 'PUBLISH with a 5-byte remaining length', Buffer.concat([Buffer.from([0x32, 0xff, 0xff, 0xff, 0xff, 0x7f]), pub({ qos: 1, topic: 'fuzz/a' }).subarray(2)]), noAck));
  if (v5) {
    cases.push(afterConnect(v, 'topic alias 0', pub({ qos: 1, id: 5, topic: 'fuzz/a', props: props(prop(PROP.topicAlias, u16(0))) }), { ...noAck, v5Disconnect: 0x94 }));
    cases.push(afterConnect(v, 'topic alias above the maximum', pub({ qos: 1, id: 5, topic: 'fuzz/a', props: props(prop(PROP.topicAlias, u16(65535))) }), { ...noAck, v5Disconnect: 0x94 }));
    cases.push(afterConnect(v, 'unknown topic alias with an empty topic', pub({ qos: 1, id: 5, topic: '', props: props(prop(PROP.topicAlias, u16(3))) }), noAck));
    const pfi = prop(PROP.payloadFormatIndicator, u8(0));
    cases.push(afterConnect(v, 'duplicate payload format indicator', pub({ qos: 1, id: 5, topic: 'fuzz/a', props: props(pfi, pfi) }), noAck));
    const alias = prop(PROP.topicAlias, u16(1));
    cases.push(afterConnect(v, 'duplicate topic alias', pub({ qos: 1, id: 5, topic: 'fuzz/a', props: props(alias, alias) }), noAck));
    cases.push(afterConnect(v, 'subscription identifier in a client PUBLISH', pub({ qos: 1, id: 5, topic: 'fuzz/a', props: props(prop(PROP.subscriptionIdentifier, varint(3))) }), noAck));
    cases.push(afterConnect(v, 'session expiry interval in PUBLISH', pub({ qos: 1, id: 5, topic: 'fuzz/a', props: props(prop(PROP.sessionExpiryInterval, u32(5))) }), noAck));
    cases.push(afterConnect(v, 'unknown property 0x7f in PUBLISH', pub({ qos: 1, id: 5, topic: 'fuzz/a', props: props(prop(0x7f, u8(1))) }), noAck));
    cases.push(afterConnect(v, 'payload format indicator 2', pub({ qos: 1, id: 5, topic: 'fuzz/a', props: props(prop(PROP.payloadFormatIndicator, u8(2))) }), noAck));
    cases.push(afterConnect(v, 'PUBLISH property length beyond the packet', frame(0x32, str('fuzz/a'), u16(5), varint(100), prop(PROP.payloadFormatIndicator, u8(0))), noAck));
    // More unacknowledged QoS 2 than our Receive Maximum (20 by default): DISCONNECT 0x93.
    cases.push(
      afterConnect(
        v,
        'receive maximum exceeded with QoS 2',
        [Buffer.concat(Array.from({ length: 25 }, (_, i) => pub({ qos: 2, id: i + 1, topic: 'fuzz/a' })))],
        { closes: true, v5Disconnect: 0x93 },
      ),
    );
  }

  // --- SUBSCRIBE
  const sub = (s: Omit<RawSubscribe, 'version'>): Buffer => rawSubscribe({ version: v, ...s });
  const noSuback: Expectation = { closes: true, forbidden: ['suback'] };
  cases.push(afterConnect(v, '[facts] invalid UTF-8 (c0 af) in a SUBSCRIBE filter', sub({ filters: [[withBytes('fuzz/~~', BAD_UTF8), 1]] }), noSuback));
  cases.push(afterConnect(v, 'U+0000 in a SUBSCRIBE filter', sub({ filters: [[withBytes('fuzz/~~', NUL), 1]] }), noSuback));
  cases.push(afterConnect(v, 'SUBSCRIBE with header 0x80', sub({ header: 0x80, filters: [['fuzz/a', 1]] }), since311(noSuback)));
  cases.push(afterConnect(v, 'SUBSCRIBE without filters', sub({ filters: [] }), since311(noSuback)));
  cases.push(afterConnect(v, 'SUBSCRIBE asking QoS 3', sub({ filters: [['fuzz/a', 3]] }), noSuback));
  cases.push(afterConnect(v, 'SUBSCRIBE with reserved option bits', sub({ filters: [['fuzz/a', v5 ? 0xc1 : 0x05]] }), noSuback));
  cases.push(afterConnect(v, 'SUBSCRIBE with packet id 0', sub({ id: 0, filters: [['fuzz/a', 1]] }), noSuback));
  cases.push(afterConnect(v, 'SUBSCRIBE whose filter runs past the packet', frame(0x82, u16(1), ...(v5 ? [props()] : []), u16(40), Buffer.from('fuzz/')), noSuback));
  cases.push(afterConnect(v, 'invalid filters are refused', sub({ filters: [['fuzz/#/x', 1], ['fuzz/a+', 0]] }), { subackFailure: true }));
  if (v5) {
    cases.push(afterConnect(v, 'subscription identifier 0', sub({ props: props(prop(PROP.subscriptionIdentifier, varint(0))), filters: [['fuzz/a', 1]] }), noSuback));
    const sid = prop(PROP.subscriptionIdentifier, varint(4));
    cases.push(afterConnect(v, 'two subscription identifiers', sub({ props: props(sid, sid), filters: [['fuzz/a', 1]] }), noSuback));
    cases.push(afterConnect(v, 'retain handling 3', sub({ filters: [['fuzz/a', 0x31]] }), noSuback));
    cases.push(afterConnect(v, 'no-local on a shared subscription', sub({ filters: [['$share/g/fuzz/a', 0x05]] }), noSuback));
    cases.push(afterConnect(v, 'topic alias property in SUBSCRIBE', sub({ props: props(prop(PROP.topicAlias, u16(1))), filters: [['fuzz/a', 1]] }), noSuback));
  }

  // --- UNSUBSCRIBE
  const unsub = (filters: (string | Buffer)[], extra: { id?: number; header?: number } = {}): Buffer => rawUnsubscribe({ version: v, filters, ...extra });
  const noUnsuback: Expectation = { closes: true, forbidden: ['unsuback'] };
  cases.push(afterConnect(v, 'UNSUBSCRIBE with header 0xA0', unsub(['fuzz/a'], { header: 0xa0 }), since311(noUnsuback)));
  cases.push(afterConnect(v, 'UNSUBSCRIBE without filters', unsub([]), since311(noUnsuback)));
  cases.push(afterConnect(v, 'invalid UTF-8 in an UNSUBSCRIBE filter', unsub([withBytes('fuzz/~~', BAD_UTF8)]), noUnsuback));
  cases.push(afterConnect(v, 'UNSUBSCRIBE with packet id 0', unsub(['fuzz/a'], { id: 0 }), noUnsuback));

  // --- acknowledgements and the rest
  cases.push(afterConnect(v, 'PUBREL with header 0x60', Buffer.from([0x60, 0x02, 0x00, 0x01]), since311({ closes: true, forbidden: ['pubcomp'] })));
  cases.push(afterConnect(v, 'PUBACK with header 0x41', Buffer.from([0x41, 0x02, 0x00, 0x01]), since311({ closes: true })));
  cases.push(afterConnect(v, 'PINGREQ with a body', Buffer.from([0xc0, 0x01, 0x00]), since311({ closes: true, forbidden: ['pingresp'] })));
  cases.push(afterConnect(v, 'PINGREQ with header 0xC1', Buffer.from([0xc1, 0x00]), since311({ closes: true, forbidden: ['pingresp'] })));
  cases.push(afterConnect(v, 'reserved packet type 0', Buffer.from([0x00, 0x00]), { closes: true }));
  if (!v5) cases.push(afterConnect(v, 'reserved packet type 15', Buffer.from([0xf0, 0x00]), { closes: true }));
  else cases.push(afterConnect(v, 'AUTH without an authentication method in CONNECT', frame(0xf0, u8(0x18), props(prop(PROP.authenticationMethod, str('X')))), { closes: true }));
  cases.push(afterConnect(v, 'CONNACK from the client', Buffer.from([0x20, 0x02, 0x00, 0x00]), { closes: true }));
  cases.push(afterConnect(v, 'SUBACK from the client', Buffer.from([0x90, 0x03, 0x00, 0x01, 0x00]), { closes: true }));
  cases.push(afterConnect(v, 'PINGRESP from the client', Buffer.from([0xd0, 0x00]), { closes: true }));
  return cases;
}

// ---------------------------------------------------------------------------------------------------------
// The driver: one case on one connection.

export interface Endpoint {
  host: string;
  port: number;
  tlsPort?: number;
  ca?: string | Buffer;
}

export interface Outcome {
  /** The broker closed the connection before we sent our FIN. */
  closedByBroker: boolean;
  /** Our FIN (or destroy) did not lead to a close within 3 s. */
  hung: boolean;
  received: Buffer;
  packets: Packet[];
  /** When the answer does not parse as MQTT of any version. */
  parseError?: string;
  /** A PINGREQ after the steps was answered (staysConnected cases). */
  pingAnswered?: boolean;
  ms: number;
}

type Conn = Socket | TLSSocket;

function open(endpoint: Endpoint, useTls: boolean): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const socket: Conn =
      useTls && endpoint.tlsPort !== undefined
        ? tlsConnect({ host: endpoint.host, port: endpoint.tlsPort, ...(endpoint.ca === undefined ? {} : { ca: endpoint.ca }), servername: 'localhost' }, () => done())
        : netConnect({ host: endpoint.host, port: endpoint.port }, () => done());
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('connect timed out'));
    }, 10_000);
    function done(): void {
      clearTimeout(timer);
      socket.off('error', reject);
      resolve(socket);
    }
    socket.once('error', reject);
    socket.setNoDelay(true);
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Cut a byte stream into whole packets; `rest` is an incomplete last packet, `bad` a broken length. */
export function splitFrames(bytes: Buffer): { frames: Buffer[]; rest: number; bad: boolean } {
  const frames: Buffer[] = [];
  let at = 0;
  while (at < bytes.length) {
    const header = fixedHeader(bytes.subarray(at));
    if (!header) return { frames, rest: bytes.length - at, bad: bytes.length - at >= 5 };
    const end = at + 1 + header.lengthBytes + header.length;
    if (end > bytes.length) return { frames, rest: bytes.length - at, bad: false };
    frames.push(bytes.subarray(at, end));
    at = end;
  }
  return { frames, rest: 0, bad: false };
}

/** Parse what the broker sent (as MQTT 5 first for a v5 case, else 3.1.1; then the other). */
export function parseAnswer(bytes: Buffer, version: Version): { packets: Packet[]; error?: string } {
  const { frames, rest, bad } = splitFrames(bytes);
  if (bad) return { packets: [], error: `a remaining length that does not parse at byte ${bytes.length - rest}` };
  if (rest > 0) return { packets: [], error: `the last ${rest} bytes end inside a packet` };
  const order: (4 | 5)[] = version === 5 ? [5, 4] : [4, 5];
  let firstError: string | undefined;
  for (const protocolVersion of order) {
    const packets: Packet[] = [];
    let error: string | undefined;
    for (const f of frames) {
      const parser = mqttPacket.parser({ protocolVersion });
      let got = 0;
      parser.on('packet', (p: Packet) => {
        packets.push(p);
        got += 1;
      });
      parser.on('error', (e: Error) => (error ??= `${e.message} in ${f.subarray(0, 32).toString('hex')}`));
      parser.parse(f);
      if (error === undefined && got !== 1) error = `${f.subarray(0, 32).toString('hex')} is not one packet`;
      if (error !== undefined) break;
    }
    if (error === undefined) return { packets };
    firstError ??= `${error} (as v${protocolVersion})`;
  }
  return { packets: [], error: firstError };
}

export interface RunOptions {
  /** After the steps, wait this long without traffic before sending our FIN (default 30 ms). */
  idleMs?: number;
  /** For cases that must close: how long the broker has to close by itself (default 3 s). */
  closeWithinMs?: number;
}

/** Play `c` on a fresh connection and record the broker's answer. */
export async function runCase(endpoint: Endpoint, c: FuzzCase, rng: Rng, options: RunOptions = {}): Promise<Outcome> {
  const started = Date.now();
  const socket = await open(endpoint, c.tls);
  const chunks: Buffer[] = [];
  let lastActivity = Date.now();
  let closed = false;
  let closedByBroker = false;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  socket.on('data', (d: Buffer) => {
    chunks.push(d);
    lastActivity = Date.now();
    notify();
  });
  socket.on('error', () => undefined); // EPIPE/ECONNRESET once the broker closed: the close is what we record
  const closedPromise = new Promise<void>((resolve) =>
    socket.once('close', () => {
      closed = true;
      resolve();
      notify();
    }),
  );
  let weEnded = false;
  socket.once('end', () => {
    if (!weEnded) closedByBroker = true;
  });
  closedPromise.then(() => {
    if (!weEnded) closedByBroker = true;
  }, () => undefined);

  /** Wait until data arrives, the socket closes, or `ms` pass. */
  const waitEvent = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        wake = undefined;
        resolve();
      }, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  const write = (b: Buffer): boolean => {
    if (closed || socket.destroyed || socket.writableEnded) return false;
    socket.write(b);
    lastActivity = Date.now();
    return true;
  };

  for (const step of c.steps) {
    if (closed) break;
    if (step.fragment && step.bytes.length > 1) {
      // Random small writes: up to 12 pieces, each after a short pause (or the next turn).
      const cuts = new Set<number>();
      const pieces = Math.min(step.bytes.length - 1, rng.range(2, 12));
      while (cuts.size < pieces) cuts.add(rng.range(1, step.bytes.length - 1));
      let at = 0;
      for (const cut of [...[...cuts].sort((x, y) => x - y), step.bytes.length]) {
        if (!write(step.bytes.subarray(at, cut))) break;
        at = cut;
        if (rng.chance(0.5)) await sleep(rng.range(1, 3));
        else await new Promise((r) => setImmediate(r));
      }
    } else {
      write(step.bytes);
    }
    if (step.awaitReply) {
      const have = chunks.length;
      const deadline = Date.now() + 3000;
      while (!closed && chunks.length === have && Date.now() < deadline) await waitEvent(deadline - Date.now());
    }
    if (step.pauseMs) await sleep(step.pauseMs);
  }

  let pingAnswered: boolean | undefined;
  if (c.expect?.staysConnected && !closed) {
    await sleep(100);
    const have = Buffer.concat(chunks).length;
    write(PINGREQ);
    const deadline = Date.now() + 3000;
    pingAnswered = false;
    while (!closed && Date.now() < deadline) {
      const tail = Buffer.concat(chunks).subarray(have);
      if (tail.includes(Buffer.from([0xd0, 0x00]))) {
        pingAnswered = true;
        break;
      }
      await waitEvent(deadline - Date.now());
    }
  }

  const mustClose = c.expect?.closes === true;
  const idleMs = options.idleMs ?? 30;
  const deadline = Date.now() + (mustClose ? (options.closeWithinMs ?? 3000) : 3000);
  while (!closed && Date.now() < deadline) {
    if (!mustClose && Date.now() - lastActivity >= idleMs) break;
    await waitEvent(mustClose ? deadline - Date.now() : idleMs);
  }
  const brokerClosed = closed || closedByBroker;
  let hung = false;
  if (!closed) {
    weEnded = true;
    socket.end();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), 3000);
    });
    hung = (await Promise.race([closedPromise.then(() => 'closed' as const), timeout])) === 'timeout';
    clearTimeout(timer);
    if (hung) socket.destroy();
    await closedPromise;
  }
  const received = Buffer.concat(chunks);
  const parsed = parseAnswer(received, c.version);
  return {
    closedByBroker: brokerClosed,
    hung,
    received,
    packets: parsed.packets,
    ...(parsed.error === undefined ? {} : { parseError: parsed.error }),
    ...(pingAnswered === undefined ? {} : { pingAnswered }),
    ms: Date.now() - started,
  };
}

function reasonOf(p: Packet): number | undefined {
  const r = p as { reasonCode?: number; returnCode?: number };
  return r.reasonCode ?? r.returnCode;
}

/**
 * What is wrong with an outcome: the invariants every case must keep, then the case's own expectation.
 * An empty list means the broker behaved.
 */
export function checkOutcome(c: FuzzCase, o: Outcome): string[] {
  const problems: string[] = [];
  const cmds = o.packets.map((p) => p.cmd);
  if (o.hung) problems.push('the connection stayed open 3 s after our FIN');
  if (o.parseError !== undefined) problems.push(`the broker sent bytes that are not MQTT: ${o.parseError}`);
  const connacks = o.packets.filter((p) => p.cmd === 'connack');
  if (connacks.length > 1) problems.push(`${connacks.length} CONNACKs on one connection`);
  if (connacks.length === 1 && o.packets[0]?.cmd !== 'connack') problems.push('a packet before the CONNACK');
  const firstByte = c.steps[0]?.bytes[0];
  if (firstByte !== undefined && firstByte >> 4 !== 1) {
    const early = cmds.filter((cmd) => cmd !== 'connack' && cmd !== 'disconnect');
    if (early.length > 0) problems.push(`answered ${early.join(',')} to a connection that never sent CONNECT`);
  }
  const refusedConnack = connacks.find((p) => (reasonOf(p) ?? 0) !== 0);
  if (refusedConnack && !o.closedByBroker) problems.push(`CONNACK ${reasonOf(refusedConnack)} refused the client but the broker did not close`);
  if (c.connected && c.version < 5 && cmds.includes('disconnect')) problems.push(`sent DISCONNECT to an MQTT ${c.version === 3 ? '3.1' : '3.1.1'} client`);

  const e = c.expect;
  if (!e) return problems;
  if (e.closes && !o.closedByBroker) problems.push('expected the broker to close the connection; it stayed open');
  for (const cmd of e.forbidden ?? []) if (cmds.includes(cmd)) problems.push(`sent ${cmd.toUpperCase()} (must not)`);
  const success = connacks.find((p) => (reasonOf(p) ?? 0) === 0);
  if (e.refused && success) problems.push('accepted the CONNECT (CONNACK 0)');
  if (e.accepted && !success) problems.push(`did not accept the CONNECT (${connacks.length ? `CONNACK ${reasonOf(connacks[0]!)}` : 'no CONNACK'})`);
  if (e.connackReason !== undefined && (connacks.length !== 1 || reasonOf(connacks[0]!) !== e.connackReason)) {
    problems.push(`expected CONNACK with reason 0x${e.connackReason.toString(16)}, got ${connacks.length ? `0x${(reasonOf(connacks[0]!) ?? 0).toString(16)}` : 'none'}`);
  }
  if (e.firstBytes && !o.received.subarray(0, e.firstBytes.length).equals(e.firstBytes)) {
    problems.push(`expected the answer to start with ${e.firstBytes.toString('hex')}, got ${o.received.subarray(0, 16).toString('hex') || 'nothing'}`);
  }
  if (e.connackOneOf && connacks.length > 0) {
    const head = o.received.subarray(0, 2 + (o.received[1] ?? 0));
    if (!e.connackOneOf.some((b) => head.equals(b))) problems.push(`CONNACK ${head.toString('hex')} is none of ${e.connackOneOf.map((b) => b.toString('hex')).join(', ')}`);
  }
  if (e.v5Disconnect !== undefined && c.version === 5) {
    const last = o.packets[o.packets.length - 1];
    const code = last?.cmd === 'disconnect' ? (reasonOf(last) ?? 0) : undefined;
    const want = e.v5Disconnect === 'error' ? 'a DISCONNECT with a reason code >= 0x80' : `DISCONNECT 0x${e.v5Disconnect.toString(16)}`;
    const ok = code !== undefined && (e.v5Disconnect === 'error' ? code >= 0x80 : code === e.v5Disconnect);
    if (!ok) problems.push(`expected ${want} before the close, got ${code === undefined ? `[${cmds.join(',')}]` : `DISCONNECT 0x${code.toString(16)}`}`);
  }
  if (e.staysConnected) {
    if (o.closedByBroker) problems.push('the broker closed the connection');
    else if (!o.pingAnswered) problems.push('no PINGRESP to a PINGREQ after the steps');
  }
  if (e.subackFailure) {
    for (const p of o.packets) {
      if (p.cmd !== 'suback') continue;
      const granted = (p.granted as number[]).filter((g) => typeof g === 'number' && g < 0x80);
      if (granted.length > 0) problems.push(`SUBACK granted ${granted.join(',')} to an invalid filter`);
    }
  }
  return problems;
}

/** A short description of an outcome, for failure reports. */
export function describeOutcome(c: FuzzCase, o: Outcome): string {
  const sent = c.steps.map((s) => s.bytes.subarray(0, 48).toString('hex') + (s.bytes.length > 48 ? `..(${s.bytes.length})` : '')).join(' | ');
  const got = o.packets.map((p) => `${p.cmd}${reasonOf(p) === undefined ? '' : `(0x${(reasonOf(p) ?? 0).toString(16)})`}`).join(',');
  return `sent ${sent}; got [${got}] ${o.received.subarray(0, 24).toString('hex')}${o.closedByBroker ? '; closed by the broker' : '; closed after our FIN'} in ${o.ms} ms`;
}
