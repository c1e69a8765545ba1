// MQTT 3.1.1 on the wire for the load generator: packets pre-encoded once (with mqtt-packet, off the hot path)
// and patched in place, and a small incremental reader for what a client receives (CONNACK, PUBLISH, PUBACK,
// SUBACK, PINGRESP). The reader never allocates per packet; it calls the handler with offsets into the chunk.
import mqttPacket from 'mqtt-packet';

export const CONNACK = 2;
export const PUBLISH = 3;
export const PUBACK = 4;
export const SUBACK = 9;
export const PINGRESP = 13;

/** Payload layout of every message the generator publishes: u32 publisher, u32 sequence, u64 send time (ns). */
export const PAYLOAD_MIN = 16;

export function encodeConnect({ clientId, username, password, keepalive = 0, clean = true }) {
  return mqttPacket.generate({
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean, clientId, keepalive,
    username, password: password === undefined ? undefined : Buffer.from(password),
  });
}

export function encodeSubscribe(messageId, topic, qos) {
  return mqttPacket.generate({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos }] });
}

export const DISCONNECT = Buffer.from([0xe0, 0x00]);

/**
 * A PUBLISH packet to copy and patch: `payloadOffset` is where the payload starts inside `bytes`,
 * `idOffset` where the packet identifier sits (QoS > 0 only, else -1).
 */
export function publishTemplate(topic, qos, payloadSize) {
  const size = Math.max(PAYLOAD_MIN, payloadSize);
  const bytes = mqttPacket.generate({ cmd: 'publish', topic, qos, messageId: qos > 0 ? 1 : undefined, payload: Buffer.alloc(size, 0x61) });
  const payloadOffset = bytes.length - size;
  return { bytes, payloadOffset, idOffset: qos > 0 ? payloadOffset - 2 : -1, length: bytes.length };
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

/** PUBACKs for the given identifiers, one buffer. */
export function encodePubacks(ids, count) {
  const out = Buffer.allocUnsafe(4 * count);
  for (let i = 0, at = 0; i < count; i++, at += 4) {
    out[at] = 0x40;
    out[at + 1] = 2;
    out[at + 2] = ids[i] >> 8;
    out[at + 3] = ids[i] & 0xff;
  }
  return out;
}

/**
 * Incremental reader; the chunks it is given may be overwritten after push() returns. `handler` may define:
 *  publish(buf, payloadStart, end, qos, packetId, dup), puback(id), connack(returnCode), suback(id, codes), other(type)
 * and is called synchronously; `buf` is valid only during the call.
 */
export class PacketReader {
  constructor(handler) {
    this.h = handler;
    this.rest = null;
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
        h.publish(buf, p, end, qos, id, (b0 & 8) !== 0);
      } else if (type === PUBACK) {
        h.puback((buf[i] << 8) | buf[i + 1]);
      } else if (type === CONNACK) {
        h.connack(buf[i + 1]);
      } else if (type === SUBACK) {
        h.suback((buf[i] << 8) | buf[i + 1], buf.subarray(i + 2, end));
      } else if (h.other !== undefined) {
        h.other(type);
      }
      pos = end;
    }
    if (pos < len) this.rest = Buffer.from(buf.subarray(pos, len)); // a copy: the read buffer is reused
  }
}
