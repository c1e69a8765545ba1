// MQTT 3.1.1 and 5 on the wire for the load generator: packets pre-encoded once (with mqtt-packet, off the hot
// path) and patched in place, and a small incremental reader for what a client receives (CONNACK, PUBLISH,
// PUBACK, SUBACK, PINGRESP). The reader never allocates per PUBLISH or PUBACK; it calls the handler with
// offsets into the chunk. CONNACK and SUBACK (once per connection) of MQTT 5 carry properties: those are
// decoded with mqtt-packet.
import mqttPacket from 'mqtt-packet';

export const CONNACK = 2;
export const PUBLISH = 3;
export const PUBACK = 4;
export const SUBACK = 9;
export const PINGRESP = 13;

/** Payload layout of every message the generator publishes: u32 publisher, u32 sequence, u64 send time (ns). */
export const PAYLOAD_MIN = 16;

/** Protocol levels: 4 is MQTT 3.1.1, 5 is MQTT 5. */
export const V311 = 4;
export const V5 = 5;

/** MQTT 5 CONNECT carries a property length (0 here: the generator asks for nothing). */
export function encodeConnect({ clientId, username, password, keepalive = 0, clean = true, version = V311 }) {
  return mqttPacket.generate({
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clean, clientId, keepalive,
    username, password: password === undefined ? undefined : Buffer.from(password),
  }, { protocolVersion: version });
}

/**
 * One filter. MQTT 5: the options byte (QoS here, no-local/retain flags 0) and the properties, with a
 * subscription identifier when `subscriptionId` > 0.
 */
export function encodeSubscribe(messageId, topic, qos, version = V311, subscriptionId = 0) {
  const packet = { cmd: 'subscribe', messageId, subscriptions: [{ topic, qos }] };
  if (version === V5 && subscriptionId > 0) packet.properties = { subscriptionIdentifier: subscriptionId };
  return mqttPacket.generate(packet, { protocolVersion: version });
}

export const DISCONNECT = Buffer.from([0xe0, 0x00]);

/**
 * A PUBLISH packet to copy and patch: `payloadOffset` is where the payload starts inside `bytes`,
 * `idOffset` where the packet identifier sits (QoS > 0 only, else -1).
 */
export function publishTemplate(topic, qos, payloadSize, version = V311) {
  const size = Math.max(PAYLOAD_MIN, payloadSize);
  const bytes = mqttPacket.generate(
    { cmd: 'publish', topic, qos, messageId: qos > 0 ? 1 : undefined, payload: Buffer.alloc(size, 0x61) },
    { protocolVersion: version },
  );
  const payloadOffset = bytes.length - size;
  // MQTT 5: packet identifier, then the property length (one byte, 0), then the payload.
  const idOffset = qos > 0 ? payloadOffset - 2 - (version === V5 ? 1 : 0) : -1;
  if (version === V5 && bytes[payloadOffset - 1] !== 0) throw new Error('unexpected MQTT 5 PUBLISH layout');
  return { bytes, payloadOffset, idOffset, length: bytes.length };
}

/** Fills `count` copies of the template into a fresh buffer, numbering them from `seq`. */
export function fillPublishes(tpl, count, publisher, seq, nextId) {
  const len = tpl.length;
  const out = Buffer.allocUnsafe(count * len);
  const src = tpl.bytes;
  for (let i = 0, at = 0; i < count; i++, at += len) {
    src.copy(out, at);
    const p = at + tpl.payloadOffset;
    out.writeUInt32BE(publisher, p);
    out.writeUInt32BE((seq + i) >>> 0, p + 4);
    if (tpl.idOffset >= 0) {
      const id = nextId(seq + i);
      out[at + tpl.idOffset] = id >> 8;
      out[at + tpl.idOffset + 1] = id & 0xff;
    }
  }
  return out;
}

/** Packet identifier for a publisher's n-th message: 1..65535, cycling (the in-flight window stays far below). */
export function packetIdFor(n) {
  return (n % 65535) + 1;
}

/**
 * PUBACKs for the given identifiers, one buffer. MQTT 5: with the reason code 0x00 (Success) written out
 * (remaining length 3, no properties), which a broker must accept beside the short form.
 */
export function encodePubacks(ids, count, version = V311) {
  const size = version === V5 ? 5 : 4;
  const out = Buffer.allocUnsafe(size * count);
  for (let i = 0, at = 0; i < count; i++, at += size) {
    out[at] = 0x40;
    out[at + 1] = size - 2;
    out[at + 2] = ids[i] >> 8;
    out[at + 3] = ids[i] & 0xff;
    if (size === 5) out[at + 4] = 0;
  }
  return out;
}

// MQTT 5 properties a broker may put on a PUBLISH, by identifier: how to skip each (1, 2, 4 bytes; 'v' a
// variable byte integer; 's' a length-prefixed string or binary; 'p' a string pair).
const PROPERTY_KIND = new Array(256).fill(0);
PROPERTY_KIND[0x01] = 1; // payload format indicator
PROPERTY_KIND[0x02] = 4; // message expiry interval
PROPERTY_KIND[0x03] = 's'; // content type
PROPERTY_KIND[0x08] = 's'; // response topic
PROPERTY_KIND[0x09] = 's'; // correlation data
PROPERTY_KIND[0x0b] = 'v'; // subscription identifier
PROPERTY_KIND[0x23] = 2; // topic alias
PROPERTY_KIND[0x26] = 'p'; // user property

/** Set when a PUBLISH's properties could not be walked (unknown identifier or overrun). */
export const SUBSCRIPTION_ID_MALFORMED = -2;
/** No subscription identifier on the PUBLISH. */
export const SUBSCRIPTION_ID_NONE = -1;

/**
 * Walks MQTT 5 PUBLISH properties in buf[from, to): the first subscription identifier, SUBSCRIPTION_ID_NONE,
 * or SUBSCRIPTION_ID_MALFORMED.
 */
function subscriptionIdIn(buf, from, to) {
  let p = from;
  let found = SUBSCRIPTION_ID_NONE;
  while (p < to) {
    const kind = PROPERTY_KIND[buf[p++]];
    if (kind === 'v') {
      let v = 0;
      let mul = 1;
      let b;
      do {
        if (p >= to) return SUBSCRIPTION_ID_MALFORMED;
        b = buf[p++];
        v += (b & 0x7f) * mul;
        mul *= 128;
      } while ((b & 0x80) !== 0);
      if (found === SUBSCRIPTION_ID_NONE) found = v;
    } else if (kind === 's') {
      p += 2 + ((buf[p] << 8) | buf[p + 1]);
    } else if (kind === 'p') {
      p += 2 + ((buf[p] << 8) | buf[p + 1]);
      p += 2 + ((buf[p] << 8) | buf[p + 1]);
    } else if (kind === 0) {
      return SUBSCRIPTION_ID_MALFORMED;
    } else {
      p += kind;
    }
  }
  return p === to ? found : SUBSCRIPTION_ID_MALFORMED;
}

let v5Parser = null;
let v5Decoded = null;
/** Decodes one whole MQTT 5 packet (CONNACK, SUBACK) with mqtt-packet; off the hot path. */
function decodeV5(bytes) {
  if (v5Parser === null) {
    v5Parser = mqttPacket.parser({ protocolVersion: V5 });
    v5Parser.on('packet', (packet) => { v5Decoded = packet; });
    v5Parser.on('error', (err) => { v5Decoded = err; });
  }
  v5Decoded = null;
  v5Parser.parse(Buffer.from(bytes));
  const out = v5Decoded;
  v5Decoded = null;
  if (out === null) throw new Error('incomplete MQTT 5 packet');
  if (out instanceof Error) throw out;
  return out;
}

/**
 * Incremental reader; the chunks it is given may be overwritten after push() returns. `handler` may define:
 *  publish(buf, payloadStart, end, qos, packetId, dup, subscriptionId), puback(id, reasonCode),
 *  connack(returnCode, properties), suback(id, codes), other(type)
 * and is called synchronously; `buf` is valid only during the call. MQTT 3.1.1: subscriptionId is always
 * SUBSCRIPTION_ID_NONE, reasonCode 0, properties null. MQTT 5: a PUBACK without reason code is 0 (Success);
 * CONNACK properties as mqtt-packet names them (receiveMaximum, subscriptionIdentifiersAvailable, ...).
 */
export class PacketReader {
  constructor(handler, version = V311) {
    this.h = handler;
    this.rest = null;
    this.v5 = version === V5;
  }

  /** The first `length` bytes of `chunk` (default all) are new input. */
  push(chunk, length = chunk.length) {
    let buf = chunk;
    let len = length;
    if (this.rest !== null) {
      buf = Buffer.concat([this.rest, chunk.subarray(0, length)]);
      len = buf.length;
      this.rest = null;
    }
    const h = this.h;
    let pos = 0;
    while (len - pos >= 2) {
      const b0 = buf[pos];
      let i = pos + 1;
      let rl = 0;
      let mul = 1;
      let b;
      do {
        if (i >= len) {
          this.rest = Buffer.from(buf.subarray(pos, len));
          return;
        }
        b = buf[i++];
        rl += (b & 0x7f) * mul;
        mul *= 128;
      } while ((b & 0x80) !== 0 && mul <= 2097152);
      const end = i + rl;
      if (end > len) break;
      const type = b0 >> 4;
      if (type === PUBLISH) {
        const qos = (b0 >> 1) & 3;
        let p = i + 2 + ((buf[i] << 8) | buf[i + 1]);
        let id = 0;
        if (qos > 0) {
          id = (buf[p] << 8) | buf[p + 1];
          p += 2;
        }
        let subscriptionId = SUBSCRIPTION_ID_NONE;
        if (this.v5) {
          // Property length (a variable byte integer), then the properties.
          let pl = 0;
          let m = 1;
          let c;
          do {
            c = buf[p++];
            pl += (c & 0x7f) * m;
            m *= 128;
          } while ((c & 0x80) !== 0 && p < end);
          if (pl > 0) subscriptionId = subscriptionIdIn(buf, p, Math.min(p + pl, end));
          p += pl;
        }
        h.publish(buf, p, end, qos, id, (b0 & 8) !== 0, subscriptionId);
      } else if (type === PUBACK) {
        // MQTT 5: remaining length 2 means Success; else a reason code (and maybe properties) follows.
        h.puback((buf[i] << 8) | buf[i + 1], rl > 2 ? buf[i + 2] : 0);
      } else if (type === CONNACK) {
        if (this.v5) {
          const packet = decodeV5(buf.subarray(pos, end));
          h.connack(packet.reasonCode ?? 0, packet.properties ?? {});
        } else {
          h.connack(buf[i + 1], null);
        }
      } else if (type === SUBACK) {
        if (this.v5) {
          const packet = decodeV5(buf.subarray(pos, end));
          h.suback(packet.messageId, Buffer.from(packet.granted));
        } else {
          h.suback((buf[i] << 8) | buf[i + 1], buf.subarray(i + 2, end));
        }
      } else if (h.other !== undefined) {
        h.other(type);
      }
      pos = end;
    }
    if (pos < len) this.rest = Buffer.from(buf.subarray(pos, len)); // a copy: the read buffer is reused
  }
}
