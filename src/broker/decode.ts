/**
 * Decoding of what a client sends, one complete frame at a time (framing.ts cuts the frames). The hot
 * packets (PUBLISH, PUBACK/PUBREC/PUBREL/PUBCOMP, PINGREQ) are decoded here straight from the read buffer;
 * CONNECT, SUBSCRIBE, UNSUBSCRIBE, DISCONNECT and AUTH in decode-control.ts. Everything that MQTT calls
 * malformed or a protocol error is reported as a ProtocolError with the v5 reason code to send.
 *
 * mqtt-packet decoded the control packets at first; it reads strings leniently (invalid UTF-8 becomes
 * U+FFFD), accepts any property identifier in any packet, and a parser object per connection cost memory,
 * so the broker reads them itself (the tests still use mqtt-packet as an independent codec).
 */
import { isUtf8 } from 'node:buffer';
import type { MessageProperties, QoS } from './message.js';
import { RC } from './reason-codes.js';
import { ProtocolError } from './decode-error.js';
import {
  decodeAuth,
  decodeConnect,
  decodeDisconnect,
  decodeSubscribe,
  decodeUnsubscribe,
  UnsupportedVersion,
  type AuthPacket,
  type ConnectPacket,
  type DisconnectPacket,
  type SubscribePacket,
  type UnsubscribePacket,
} from './decode-control.js';

export { ProtocolError, UnsupportedVersion };

export interface PublishPacket {
  cmd: 'publish';
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  dup: boolean;
  packetId: number;
  /** v5 forwarded properties (undefined when none). */
  properties?: MessageProperties;
  messageExpiryInterval?: number;
  topicAlias?: number;
}

export interface AckPacket {
  cmd: 'puback' | 'pubrec' | 'pubrel' | 'pubcomp';
  packetId: number;
  reasonCode: number;
}

export type InboundPacket =
  | PublishPacket
  | AckPacket
  | { cmd: 'pingreq' }
  | ConnectPacket
  | SubscribePacket
  | UnsubscribePacket
  | DisconnectPacket
  | AuthPacket;

const ACKS = { 4: 'puback', 5: 'pubrec', 6: 'pubrel', 7: 'pubcomp' } as const;
const PINGREQ = { cmd: 'pingreq' } as const;

/** Decodes the frames of one connection (it remembers the protocol version from CONNECT). */
export class PacketDecoder {
  version = 4;
  private sawConnect = false;


  /** The packet in `data[frameStart..end)` whose body starts at `bodyStart` (framing.ts). */
  decode(data: Buffer, frameStart: number, bodyStart: number, end: number): InboundPacket {
    const header = data[frameStart]!;
    const type = header >> 4;
    if (type === 3) return decodePublish(header, data, bodyStart, end, this.version);
    if (type === 12) {
      if (header !== 0xc0 || end !== bodyStart) throw new ProtocolError(RC.MALFORMED_PACKET, 'malformed PINGREQ');
      return PINGREQ;
    }
    if (type >= 4 && type <= 7) return decodeAck(type as 4 | 5 | 6 | 7, header, data.subarray(bodyStart, end), this.version);
    switch (type) {
      case 1: {
        if (this.sawConnect) throw new ProtocolError(RC.PROTOCOL_ERROR, 'a second CONNECT');
        this.sawConnect = true;
        const packet = decodeConnect(header, data, bodyStart, end);
        this.version = packet.protocolVersion;
        return packet;
      }
      case 8:
        return decodeSubscribe(header, data, bodyStart, end, this.version);
      case 10:
        return decodeUnsubscribe(header, data, bodyStart, end, this.version);
      case 14:
        return decodeDisconnect(header, data, bodyStart, end, this.version);
      case 15:
        return decodeAuth(header, this.version);
      default:
        throw new ProtocolError(RC.PROTOCOL_ERROR, `a client may not send packet type ${type}`);
    }
  }
}

function decodeAck(type: 4 | 5 | 6 | 7, header: number, body: Buffer, version: number): AckPacket {
  const expected = type === 6 ? 0x62 : type << 4;
  if (header !== expected) throw new ProtocolError(RC.MALFORMED_PACKET, `invalid header flags of ${ACKS[type].toUpperCase()}`);
  if (body.length < 2 || (version < 5 && body.length !== 2)) throw new ProtocolError(RC.MALFORMED_PACKET, `malformed ${ACKS[type].toUpperCase()}`);
  const packetId = body.readUInt16BE(0);
  if (packetId === 0) throw new ProtocolError(RC.PROTOCOL_ERROR, `${ACKS[type].toUpperCase()} with packet identifier 0`);
  const reasonCode = body.length > 2 ? body[2]! : 0;
  if (body.length > 3) {
    const { value, size } = readVarint(body, 3);
    if (3 + size + value !== body.length) throw new ProtocolError(RC.MALFORMED_PACKET, `malformed properties of ${ACKS[type].toUpperCase()}`);
  }
  return { cmd: ACKS[type], packetId, reasonCode };
}

function readVarint(buf: Buffer, at: number): { value: number; size: number } {
  let value = 0;
  let mult = 1;
  for (let i = 0; i < 4; i++) {
    if (at + i >= buf.length) break;
    const b = buf[at + i]!;
    value += (b & 0x7f) * mult;
    if (b < 0x80) return { value, size: i + 1 };
    mult *= 128;
  }
  throw new ProtocolError(RC.MALFORMED_PACKET, 'malformed variable byte integer');
}

function decodePublish(header: number, data: Buffer, start: number, end: number, version: number): PublishPacket {
  const qos = ((header >> 1) & 3) as QoS;
  if ((qos as number) === 3) throw new ProtocolError(RC.MALFORMED_PACKET, 'PUBLISH with QoS 3');
  if (end - start < 2) throw new ProtocolError(RC.MALFORMED_PACKET, 'PUBLISH too short');
  const topicStart = start + 2;
  let at = topicStart + ((data[start]! << 8) | data[start + 1]!);
  if (at > end) throw new ProtocolError(RC.MALFORMED_PACKET, 'PUBLISH topic longer than the packet');
  const topic = topicName(data, topicStart, at);
  let packetId = 0;
  if (qos > 0) {
    if (at + 2 > end) throw new ProtocolError(RC.MALFORMED_PACKET, 'PUBLISH too short for its packet identifier');
    packetId = (data[at]! << 8) | data[at + 1]!;
    if (packetId === 0) throw new ProtocolError(RC.PROTOCOL_ERROR, 'QoS 1/2 PUBLISH with packet identifier 0');
    at += 2;
  }
  const packet: PublishPacket = { cmd: 'publish', topic, payload: EMPTY, qos, retain: (header & 1) === 1, dup: (header & 8) === 8, packetId };
  if (version === 5) {
    const { value: length, size } = readVarint(data, at);
    at += size;
    const propsEnd = at + length;
    if (propsEnd > end) throw new ProtocolError(RC.MALFORMED_PACKET, 'PUBLISH properties longer than the packet');
    if (length > 0) readPublishProperties(data, at, propsEnd, packet);
    at = propsEnd;
  }
  // A copy: the frame is a view of the socket's read buffer, which a stored message must not pin.
  const payload = Buffer.allocUnsafe(end - at);
  data.copy(payload, 0, at, end);
  packet.payload = payload;
  return packet;
}

/**
 * A PUBLISH topic: valid UTF-8 without U+0000 (MQTT-1.5.4-1, -2). Topics are mostly ASCII: checked byte by
 * byte and read as latin1, without a view of the buffer; anything else goes through isUtf8.
 */
function topicName(data: Buffer, start: number, end: number): string {
  for (let i = start; i < end; i++) {
    const b = data[i]!;
    if (b === 0) throw new ProtocolError(RC.MALFORMED_PACKET, 'PUBLISH topic contains U+0000');
    if (b >= 0x80) {
      const bytes = data.subarray(start, end);
      if (!isUtf8(bytes)) throw new ProtocolError(RC.MALFORMED_PACKET, 'PUBLISH topic is not valid UTF-8');
      if (bytes.includes(0)) throw new ProtocolError(RC.MALFORMED_PACKET, 'PUBLISH topic contains U+0000');
      return bytes.toString('utf8');
    }
  }
  return data.toString('latin1', start, end);
}

const EMPTY = Buffer.alloc(0);

function readString(buf: Buffer, at: number, end: number): { value: Buffer; next: number } {
  if (at + 2 > end) throw new ProtocolError(RC.MALFORMED_PACKET, 'property runs past the packet');
  const len = buf.readUInt16BE(at);
  if (at + 2 + len > end) throw new ProtocolError(RC.MALFORMED_PACKET, 'property runs past the packet');
  return { value: buf.subarray(at + 2, at + 2 + len), next: at + 2 + len };
}

function utf8(value: Buffer, what: string): string {
  if (!isUtf8(value)) throw new ProtocolError(RC.MALFORMED_PACKET, `${what} is not valid UTF-8`);
  const s = value.toString('utf8');
  if (s.includes('\u0000')) throw new ProtocolError(RC.MALFORMED_PACKET, `${what} contains U+0000`);
  return s;
}

function readPublishProperties(buf: Buffer, start: number, end: number, packet: PublishPacket): void {
  const props: MessageProperties = {};
  const seen = new Set<number>();
  let at = start;
  let any = false;
  while (at < end) {
    const id = buf[at++]!;
    if (id !== 0x26) {
      if (seen.has(id)) throw new ProtocolError(RC.PROTOCOL_ERROR, `PUBLISH property 0x${id.toString(16)} given twice`);
      seen.add(id);
    }
    switch (id) {
      case 0x01: {
        if (at >= end) throw new ProtocolError(RC.MALFORMED_PACKET, 'property runs past the packet');
        const v = buf[at++]!;
        if (v > 1) throw new ProtocolError(RC.PROTOCOL_ERROR, 'payload format indicator must be 0 or 1');
        props.payloadFormatIndicator = v === 1;
        any = true;
        break;
      }
      case 0x02:
        if (at + 4 > end) throw new ProtocolError(RC.MALFORMED_PACKET, 'property runs past the packet');
        packet.messageExpiryInterval = buf.readUInt32BE(at);
        at += 4;
        break;
      case 0x23:
        if (at + 2 > end) throw new ProtocolError(RC.MALFORMED_PACKET, 'property runs past the packet');
        packet.topicAlias = buf.readUInt16BE(at);
        at += 2;
        break;
      case 0x03:
      case 0x08: {
        const { value, next } = readString(buf, at, end);
        const s = utf8(value, id === 0x03 ? 'content type' : 'response topic');
        if (id === 0x03) props.contentType = s;
        else {
          if (s.length === 0 || s.includes('+') || s.includes('#')) throw new ProtocolError(RC.PROTOCOL_ERROR, 'response topic must be a topic name');
          props.responseTopic = s;
        }
        at = next;
        any = true;
        break;
      }
      case 0x09: {
        const { value, next } = readString(buf, at, end);
        props.correlationData = Buffer.from(value);
        at = next;
        any = true;
        break;
      }
      case 0x26: {
        const name = readString(buf, at, end);
        const value = readString(buf, name.next, end);
        const k = utf8(name.value, 'user property name');
        const v = utf8(value.value, 'user property value');
        (props.userProperties ??= []).push([k, v]);
        at = value.next;
        any = true;
        break;
      }
      case 0x0b:
        throw new ProtocolError(RC.PROTOCOL_ERROR, 'a client may not send a subscription identifier in PUBLISH');
      default:
        throw new ProtocolError(RC.PROTOCOL_ERROR, `property 0x${id.toString(16)} is not allowed in PUBLISH`);
    }
  }
  if (any) packet.properties = props;
}
