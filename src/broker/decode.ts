/**
 * Decoding of what a client sends. The hot packets (PUBLISH, PUBACK/PUBREC/PUBREL/PUBCOMP, PINGREQ) are
 * decoded here directly from the frame; CONNECT, SUBSCRIBE, UNSUBSCRIBE, DISCONNECT and AUTH go through
 * mqtt-packet's parser, one complete frame at a time (framing.ts cuts the frames). Everything that MQTT
 * calls malformed or a protocol error is reported as a ProtocolError with the v5 reason code to send.
 */
import { isUtf8 } from 'node:buffer';
import mqttPacket, { type IConnectPacket, type IDisconnectPacket, type IAuthPacket, type ISubscribePacket, type IUnsubscribePacket, type Packet } from 'mqtt-packet';
import type { MessageProperties, QoS } from './message.js';
import { RC } from './reason-codes.js';
import { ProtocolError } from './decode-error.js';
import { checkV5Properties } from './property-check.js';

export { ProtocolError };

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
  | IConnectPacket
  | ISubscribePacket
  | IUnsubscribePacket
  | IDisconnectPacket
  | IAuthPacket;

const ACKS = { 4: 'puback', 5: 'pubrec', 6: 'pubrel', 7: 'pubcomp' } as const;
const PINGREQ = { cmd: 'pingreq' } as const;

/** Decodes the frames of one connection (it remembers the protocol version from CONNECT). */
export class PacketDecoder {
  version = 4;
  private sawConnect = false;

  constructor(private readonly parsers: SharedParsers) {}

  /** The packet in `data[frameStart..end)` whose body starts at `bodyStart` (framing.ts). */
  decode(data: Buffer, frameStart: number, bodyStart: number, end: number): InboundPacket {
    const header = data[frameStart]!;
    const type = header >> 4;
    if (type === 3) return decodePublish(header, data, bodyStart, end, this.version);
    if (type === 12) {
      if (header !== 0xc0 || end !== bodyStart) throw new ProtocolError(RC.MALFORMED_PACKET, 'malformed PINGREQ');
      return PINGREQ;
    }
    const body = data.subarray(bodyStart, end);
    const frame = data.subarray(frameStart, end);
    if (type >= 4 && type <= 7) return decodeAck(type as 4 | 5 | 6 | 7, header, body, this.version);
    if (type === 1) {
      if (this.sawConnect) throw new ProtocolError(RC.PROTOCOL_ERROR, 'a second CONNECT');
      this.sawConnect = true;
      checkConnectHeader(body);
      if (body[2 + body.readUInt16BE(0)] === 5) checkV5Properties(1, body);
    } else if (type !== 8 && type !== 10 && type !== 14 && type !== 15) {
      throw new ProtocolError(RC.PROTOCOL_ERROR, `a client may not send packet type ${type}`);
    } else if (this.version === 5) {
      checkV5Properties(type, body);
    }
    // CONNECT has a parser of its own: mqtt-packet takes the protocol version of a CONNECT it parsed as
    // its setting for what follows, which a parser shared by the connections of one version must not.
    const packet = this.parsers.parse(frame, type === 1 ? CONNECT_PARSER : this.version);
    if (packet.cmd === 'connect') {
      this.version = packet.protocolVersion ?? 4;
      checkConnect(packet, frame);
    } else if (packet.cmd === 'subscribe' || packet.cmd === 'unsubscribe') {
      if (!packet.messageId) throw new ProtocolError(RC.PROTOCOL_ERROR, `${packet.cmd.toUpperCase()} with packet identifier 0`);
      checkFilters(packet, frame);
    }
    return packet as InboundPacket;
  }

}

const CONNECT_PARSER = 0;

/**
 * mqtt-packet parsers shared by every connection of a broker, one per protocol version: each is handed
 * one complete frame at a time (framing.ts) and gives back its packet synchronously, so it holds nothing
 * between calls and a connection costs no parser of its own. A parser that failed on a frame, or took it
 * for incomplete, is replaced, so that nothing of one connection's bytes can reach another's packet.
 */
export class SharedParsers {
  private readonly parsers = new Map<number, ReturnType<typeof mqttPacket.parser>>();
  private parsed: Packet | undefined;
  private failed: Error | undefined;

  parse(frame: Buffer, version: number): Packet {
    let parser = this.parsers.get(version);
    if (parser === undefined) {
      parser = mqttPacket.parser({ protocolVersion: (version === CONNECT_PARSER ? 4 : version) as 3 | 4 | 5 });
      parser.on('packet', (p: Packet) => (this.parsed = p));
      parser.on('error', (e: Error) => (this.failed = e));
      this.parsers.set(version, parser);
    }
    this.parsed = undefined;
    this.failed = undefined;
    parser.parse(frame);
    const parsed = this.parsed as Packet | undefined;
    const failed = this.failed as Error | undefined;
    this.parsed = undefined;
    this.failed = undefined;
    if (failed !== undefined || parsed === undefined) this.parsers.delete(version);
    if (failed !== undefined || parsed === undefined) {
      throw new ProtocolError(RC.MALFORMED_PACKET, `malformed packet: ${failed?.message ?? 'incomplete'}`);
    }
    return parsed;
  }
}

/** The protocol name and level of a CONNECT, checked before parsing (v3 and v5 answer differently). */
function checkConnectHeader(body: Buffer): void {
  if (body.length < 3) throw new ProtocolError(RC.MALFORMED_PACKET, 'CONNECT too short');
  const nameLength = body.readUInt16BE(0);
  const name = body.toString('latin1', 2, 2 + nameLength);
  const level = body[2 + nameLength];
  if (name !== 'MQTT' && name !== 'MQIsdp') throw new ProtocolError(RC.MALFORMED_PACKET, `unknown protocol name ${JSON.stringify(name)}`);
  const ok = (name === 'MQIsdp' && level === 3) || (name === 'MQTT' && (level === 4 || level === 5));
  if (!ok) throw new UnsupportedVersion(name, level ?? -1);
}

/** A CONNECT of a protocol level we do not speak: answered with CONNACK 0x01 (v3) / 0x84 (v5). */
export class UnsupportedVersion extends Error {
  override name = 'UnsupportedVersion';
  constructor(
    readonly protocolName: string,
    readonly level: number,
  ) {
    super(`unsupported protocol ${protocolName} level ${level}`);
  }
}

const REPLACEMENT = Buffer.from([0xef, 0xbf, 0xbd]);

/**
 * mqtt-packet decodes strings leniently (invalid UTF-8 becomes U+FFFD). A string holding more U+FFFD than
 * the frame holds encoded U+FFFD sequences came from invalid UTF-8 (MQTT-1.5.4-1).
 */
function checkStrings(frame: Buffer, strings: (string | undefined)[], what: string): void {
  let replaced = 0;
  for (const s of strings) {
    if (s === undefined) continue;
    if (s.includes('\u0000')) throw new ProtocolError(RC.MALFORMED_PACKET, `${what} contains U+0000`);
    for (let i = s.indexOf('\ufffd'); i >= 0; i = s.indexOf('\ufffd', i + 1)) replaced += 1;
  }
  if (replaced === 0) return;
  let present = 0;
  for (let i = frame.indexOf(REPLACEMENT); i >= 0; i = frame.indexOf(REPLACEMENT, i + 3)) present += 1;
  if (replaced > present) throw new ProtocolError(RC.MALFORMED_PACKET, `${what} is not valid UTF-8`);
}

function checkConnect(packet: IConnectPacket, frame: Buffer): void {
  const will = packet.will;
  if (will !== undefined && will !== null && (will.qos as number) > 2) throw new ProtocolError(RC.MALFORMED_PACKET, 'will QoS 3');
  if (packet.password !== undefined && packet.username === undefined && packet.protocolVersion !== 5) {
    // MQTT-3.1.2-22: v3.1.1 forbids a password without a user name.
    throw new ProtocolError(RC.MALFORMED_PACKET, 'password flag without user name flag');
  }
  checkStrings(frame, [packet.clientId, packet.username, will?.topic], 'CONNECT');
}

function checkFilters(packet: ISubscribePacket | IUnsubscribePacket, frame: Buffer): void {
  const filters = packet.cmd === 'subscribe' ? packet.subscriptions.map((s) => s.topic) : packet.unsubscriptions;
  if (filters.length === 0) throw new ProtocolError(RC.PROTOCOL_ERROR, `${packet.cmd.toUpperCase()} without any topic filter`);
  if (packet.cmd === 'subscribe') {
    for (const s of packet.subscriptions) {
      if ((s.qos as number) > 2) throw new ProtocolError(RC.MALFORMED_PACKET, 'SUBSCRIBE with QoS 3');
    }
  }
  checkStrings(frame, filters, `${packet.cmd.toUpperCase()} topic filter`);
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
