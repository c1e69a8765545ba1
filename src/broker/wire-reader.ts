/**
 * Reading MQTT's data representations (MQTT 5 section 1.5) from a packet body, strictly: a UTF-8 string
 * must be valid UTF-8 without U+0000 (MQTT-1.5.4-1, -2), a Variable Byte Integer at most four bytes, and
 * nothing may run past the packet. A v5 property block is read into typed fields, refusing an identifier
 * the packet may not carry (Malformed Packet, section 2.2.2.2) and one given twice where only one is
 * allowed (Protocol Error).
 */
import { isUtf8 } from 'node:buffer';
import { ProtocolError } from './decode-error.js';
import { RC } from './reason-codes.js';

export class WireReader {
  constructor(
    readonly buf: Buffer,
    public pos: number,
    readonly end: number,
    /** The packet, for error messages (`CONNECT`, `SUBSCRIBE`, ...). */
    readonly what: string,
  ) {}

  get left(): number {
    return this.end - this.pos;
  }

  private need(n: number): void {
    if (this.pos + n > this.end) throw new ProtocolError(RC.MALFORMED_PACKET, `${this.what} is shorter than its contents`);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  varint(): number {
    let value = 0;
    let mult = 1;
    for (let i = 0; i < 4; i++) {
      const b = this.u8();
      value += (b & 0x7f) * mult;
      if (b < 0x80) return value;
      mult *= 128;
    }
    throw new ProtocolError(RC.MALFORMED_PACKET, `${this.what}: malformed variable byte integer`);
  }

  /** Binary Data: a copy (the packet is a view of the socket's read buffer). */
  binary(): Buffer {
    const n = this.u16();
    this.need(n);
    const out = Buffer.from(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return out;
  }

  /** A UTF-8 Encoded String. */
  utf8(field: string): string {
    const n = this.u16();
    this.need(n);
    const bytes = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    if (!isUtf8(bytes)) throw new ProtocolError(RC.MALFORMED_PACKET, `${this.what}: ${field} is not valid UTF-8`);
    if (bytes.includes(0)) throw new ProtocolError(RC.MALFORMED_PACKET, `${this.what}: ${field} contains U+0000`);
    return bytes.toString('utf8');
  }

  /** Nothing may follow what was read. */
  finish(): void {
    if (this.pos !== this.end) throw new ProtocolError(RC.MALFORMED_PACKET, `${this.what} has ${this.end - this.pos} bytes after its contents`);
  }

  /** A v5 property block (its length first), with only the identifiers in `allowed`. */
  properties(allowed: ReadonlySet<number>): Properties {
    const length = this.varint();
    this.need(length);
    const end = this.pos + length;
    const props: Properties = {};
    const seen = new Set<number>();
    const inner = new WireReader(this.buf, this.pos, end, `${this.what} properties`);
    while (inner.pos < end) {
      const id = inner.u8();
      if (!allowed.has(id)) throw new ProtocolError(RC.MALFORMED_PACKET, `property 0x${id.toString(16)} is not allowed in ${this.what}`);
      if (id !== 0x26) {
        if (seen.has(id)) throw new ProtocolError(RC.PROTOCOL_ERROR, `property 0x${id.toString(16)} given twice in ${this.what}`);
        seen.add(id);
      }
      readProperty(inner, id, props);
    }
    this.pos = end;
    return props;
  }
}

/** Every property a client may send in the packets read through WireReader. */
export interface Properties {
  payloadFormatIndicator?: boolean;
  messageExpiryInterval?: number;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Buffer;
  subscriptionIdentifier?: number;
  sessionExpiryInterval?: number;
  authenticationMethod?: string;
  authenticationData?: Buffer;
  requestProblemInformation?: boolean;
  willDelayInterval?: number;
  requestResponseInformation?: boolean;
  reasonString?: string;
  receiveMaximum?: number;
  topicAliasMaximum?: number;
  maximumPacketSize?: number;
  /** In the order received. */
  userProperties?: [string, string][];
}

function flag(r: WireReader, name: string): boolean {
  const v = r.u8();
  if (v > 1) throw new ProtocolError(RC.PROTOCOL_ERROR, `${name} must be 0 or 1`);
  return v === 1;
}

function readProperty(r: WireReader, id: number, p: Properties): void {
  switch (id) {
    case 0x01:
      p.payloadFormatIndicator = flag(r, 'payload format indicator');
      return;
    case 0x02:
      p.messageExpiryInterval = r.u32();
      return;
    case 0x03:
      p.contentType = r.utf8('content type');
      return;
    case 0x08:
      p.responseTopic = r.utf8('response topic');
      return;
    case 0x09:
      p.correlationData = r.binary();
      return;
    case 0x0b:
      p.subscriptionIdentifier = r.varint();
      if (p.subscriptionIdentifier === 0) throw new ProtocolError(RC.PROTOCOL_ERROR, 'subscription identifier 0');
      return;
    case 0x11:
      p.sessionExpiryInterval = r.u32();
      return;
    case 0x15:
      p.authenticationMethod = r.utf8('authentication method');
      return;
    case 0x16:
      p.authenticationData = r.binary();
      return;
    case 0x17:
      p.requestProblemInformation = flag(r, 'request problem information');
      return;
    case 0x18:
      p.willDelayInterval = r.u32();
      return;
    case 0x19:
      p.requestResponseInformation = flag(r, 'request response information');
      return;
    case 0x1f:
      p.reasonString = r.utf8('reason string');
      return;
    case 0x21:
      p.receiveMaximum = r.u16();
      if (p.receiveMaximum === 0) throw new ProtocolError(RC.PROTOCOL_ERROR, 'Receive Maximum 0');
      return;
    case 0x22:
      p.topicAliasMaximum = r.u16();
      return;
    case 0x26: {
      const name = r.utf8('user property name');
      (p.userProperties ??= []).push([name, r.utf8('user property value')]);
      return;
    }
    case 0x27:
      p.maximumPacketSize = r.u32();
      if (p.maximumPacketSize === 0) throw new ProtocolError(RC.PROTOCOL_ERROR, 'Maximum Packet Size 0');
      return;
    default:
      throw new ProtocolError(RC.MALFORMED_PACKET, `unknown property 0x${id.toString(16)}`);
  }
}
