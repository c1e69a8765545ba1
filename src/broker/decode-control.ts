/**
 * Decoding of the control packets a client sends besides PUBLISH and its acknowledgements: CONNECT (MQTT
 * 3.1, 3.1.1, 5), SUBSCRIBE, UNSUBSCRIBE, DISCONNECT and AUTH, with every check the specifications ask of
 * a server (fixed header flags, reserved bits, flag combinations, strict UTF-8, the properties each packet
 * may carry, nothing after the contents). Each throws a ProtocolError with the v5 reason code to send.
 */
import { ProtocolError } from './decode-error.js';
import type { QoS } from './message.js';
import { RC } from './reason-codes.js';
import { WireReader, type Properties } from './wire-reader.js';

export interface WillFields {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  properties?: Properties;
}

export interface ConnectPacket {
  cmd: 'connect';
  protocolId: 'MQTT' | 'MQIsdp';
  protocolVersion: 3 | 4 | 5;
  /** Clean session (v3) / clean start (v5). */
  clean: boolean;
  keepalive: number;
  clientId: string;
  username?: string;
  password?: Buffer;
  will?: WillFields;
  properties?: Properties;
}

export interface SubscriptionRequest {
  topic: string;
  qos: QoS;
  nl: boolean;
  rap: boolean;
  rh: 0 | 1 | 2;
}

export interface SubscribePacket {
  cmd: 'subscribe';
  messageId: number;
  subscriptions: SubscriptionRequest[];
  properties?: Properties;
}

export interface UnsubscribePacket {
  cmd: 'unsubscribe';
  messageId: number;
  unsubscriptions: string[];
}

export interface DisconnectPacket {
  cmd: 'disconnect';
  reasonCode: number;
  properties?: Properties;
}

export interface AuthPacket {
  cmd: 'auth';
}

/** A CONNECT of a protocol level we do not speak: answered with CONNACK 0x01 (v3 form). */
export class UnsupportedVersion extends Error {
  override name = 'UnsupportedVersion';
  constructor(
    readonly protocolName: string,
    readonly level: number,
  ) {
    super(`unsupported protocol ${protocolName} level ${level}`);
  }
}

const CONNECT_PROPERTIES = new Set([0x11, 0x21, 0x27, 0x22, 0x19, 0x17, 0x26, 0x15, 0x16]);
const WILL_PROPERTIES = new Set([0x18, 0x01, 0x02, 0x03, 0x08, 0x09, 0x26]);
const SUBSCRIBE_PROPERTIES = new Set([0x0b, 0x26]);
const UNSUBSCRIBE_PROPERTIES = new Set([0x26]);
const DISCONNECT_PROPERTIES = new Set([0x11, 0x1f, 0x26]);

function headerFlags(header: number, expected: number, what: string): void {
  if (header !== expected) throw new ProtocolError(RC.MALFORMED_PACKET, `invalid header flags of ${what}`);
}

export function decodeConnect(header: number, body: Buffer, start: number, end: number): ConnectPacket {
  const r = new WireReader(body, start, end, 'CONNECT');
  const nameLength = r.u16();
  if (r.left < nameLength + 1) throw new ProtocolError(RC.MALFORMED_PACKET, 'CONNECT too short');
  const name = body.toString('latin1', r.pos, r.pos + nameLength);
  r.pos += nameLength;
  const level = r.u8();
  if (name !== 'MQTT' && name !== 'MQIsdp') throw new ProtocolError(RC.MALFORMED_PACKET, `unknown protocol name ${JSON.stringify(name)}`);
  if (!((name === 'MQIsdp' && level === 3) || (name === 'MQTT' && (level === 4 || level === 5)))) throw new UnsupportedVersion(name, level);
  headerFlags(header, 0x10, 'CONNECT');
  const version = level as 3 | 4 | 5;
  const flags = r.u8();
  if ((flags & 0x01) !== 0) throw new ProtocolError(RC.MALFORMED_PACKET, 'CONNECT reserved flag is set (MQTT-3.1.2-3)');
  const hasWill = (flags & 0x04) !== 0;
  const willQos = (flags >> 3) & 0x03;
  const willRetain = (flags & 0x20) !== 0;
  const hasPassword = (flags & 0x40) !== 0;
  const hasUsername = (flags & 0x80) !== 0;
  if (!hasWill && (willQos !== 0 || willRetain)) throw new ProtocolError(RC.MALFORMED_PACKET, 'will QoS or retain set without a will (MQTT-3.1.2-11, -13)');
  if (willQos === 3) throw new ProtocolError(RC.MALFORMED_PACKET, 'will QoS 3');
  if (hasPassword && !hasUsername && version !== 5) throw new ProtocolError(RC.MALFORMED_PACKET, 'password flag without user name flag (MQTT-3.1.2-22)');
  const packet: ConnectPacket = {
    cmd: 'connect',
    protocolId: name,
    protocolVersion: version,
    clean: (flags & 0x02) !== 0,
    keepalive: r.u16(),
    clientId: '',
  };
  if (version === 5) packet.properties = r.properties(CONNECT_PROPERTIES);
  packet.clientId = r.utf8('client id');
  if (hasWill) {
    const properties = version === 5 ? r.properties(WILL_PROPERTIES) : undefined;
    const will: WillFields = { topic: r.utf8('will topic'), payload: r.binary(), qos: willQos as QoS, retain: willRetain };
    if (properties !== undefined) will.properties = properties;
    packet.will = will;
  }
  if (hasUsername) packet.username = r.utf8('user name');
  if (hasPassword) packet.password = r.binary();
  r.finish();
  return packet;
}

export function decodeSubscribe(header: number, body: Buffer, start: number, end: number, version: number): SubscribePacket {
  headerFlags(header, 0x82, 'SUBSCRIBE');
  const r = new WireReader(body, start, end, 'SUBSCRIBE');
  const messageId = packetId(r);
  const packet: SubscribePacket = { cmd: 'subscribe', messageId, subscriptions: [] };
  if (version === 5) packet.properties = r.properties(SUBSCRIBE_PROPERTIES);
  while (r.left > 0) {
    const topic = r.utf8('topic filter');
    const options = r.u8();
    const qos = options & 0x03;
    if (qos === 3) throw new ProtocolError(RC.MALFORMED_PACKET, 'SUBSCRIBE with QoS 3');
    if (version < 5 && (options & 0xfc) !== 0) throw new ProtocolError(RC.MALFORMED_PACKET, 'SUBSCRIBE reserved bits set (MQTT-3.8.3-4)');
    if (version === 5 && (options & 0xc0) !== 0) throw new ProtocolError(RC.MALFORMED_PACKET, 'SUBSCRIBE reserved option bits set (MQTT-3.8.3-5)');
    const rh = (options >> 4) & 0x03;
    if (rh === 3) throw new ProtocolError(RC.PROTOCOL_ERROR, 'retain handling 3');
    packet.subscriptions.push({ topic, qos: qos as QoS, nl: (options & 0x04) !== 0, rap: (options & 0x08) !== 0, rh: rh as 0 | 1 | 2 });
  }
  if (packet.subscriptions.length === 0) throw new ProtocolError(RC.PROTOCOL_ERROR, 'SUBSCRIBE without any topic filter');
  return packet;
}

export function decodeUnsubscribe(header: number, body: Buffer, start: number, end: number, version: number): UnsubscribePacket {
  headerFlags(header, 0xa2, 'UNSUBSCRIBE');
  const r = new WireReader(body, start, end, 'UNSUBSCRIBE');
  const messageId = packetId(r);
  if (version === 5) r.properties(UNSUBSCRIBE_PROPERTIES);
  const unsubscriptions: string[] = [];
  while (r.left > 0) unsubscriptions.push(r.utf8('topic filter'));
  if (unsubscriptions.length === 0) throw new ProtocolError(RC.PROTOCOL_ERROR, 'UNSUBSCRIBE without any topic filter');
  return { cmd: 'unsubscribe', messageId, unsubscriptions };
}

export function decodeDisconnect(header: number, body: Buffer, start: number, end: number, version: number): DisconnectPacket {
  headerFlags(header, 0xe0, 'DISCONNECT');
  const r = new WireReader(body, start, end, 'DISCONNECT');
  if (version < 5) {
    r.finish();
    return { cmd: 'disconnect', reasonCode: 0 };
  }
  const packet: DisconnectPacket = { cmd: 'disconnect', reasonCode: r.left > 0 ? r.u8() : 0 };
  if (r.left > 0) packet.properties = r.properties(DISCONNECT_PROPERTIES);
  r.finish();
  return packet;
}

export function decodeAuth(header: number, version: number): AuthPacket {
  if (version < 5) throw new ProtocolError(RC.MALFORMED_PACKET, 'AUTH is an MQTT 5 packet');
  headerFlags(header, 0xf0, 'AUTH');
  return { cmd: 'auth' };
}

function packetId(r: WireReader): number {
  const id = r.u16();
  if (id === 0) throw new ProtocolError(RC.PROTOCOL_ERROR, `${r.what} with packet identifier 0`);
  return id;
}
