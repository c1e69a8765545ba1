/**
 * MQTT 5 property blocks of the packets that mqtt-packet decodes for us (CONNECT and its will, SUBSCRIBE,
 * UNSUBSCRIBE, DISCONNECT, AUTH): mqtt-packet reads whatever identifiers it finds, so here each block is
 * walked once to refuse an identifier the packet may not carry (Malformed Packet, MQTT 5 section 2.2.2.2)
 * and one given twice where only one is allowed (Protocol Error). PUBLISH properties are checked while
 * they are decoded (decode.ts).
 */
import { ProtocolError } from './decode-error.js';
import { RC } from './reason-codes.js';

type Kind = 'byte' | 'u16' | 'u32' | 'varint' | 'string' | 'binary' | 'pair';

const KINDS: Record<number, Kind> = {
  0x01: 'byte', 0x02: 'u32', 0x03: 'string', 0x08: 'string', 0x09: 'binary', 0x0b: 'varint', 0x11: 'u32',
  0x12: 'string', 0x13: 'u16', 0x15: 'string', 0x16: 'binary', 0x17: 'byte', 0x18: 'u32', 0x19: 'byte',
  0x1a: 'string', 0x1c: 'string', 0x1f: 'string', 0x21: 'u16', 0x22: 'u16', 0x23: 'u16', 0x24: 'byte',
  0x25: 'byte', 0x26: 'pair', 0x27: 'u32', 0x28: 'byte', 0x29: 'byte', 0x2a: 'byte',
};

const ALLOWED = {
  CONNECT: new Set([0x11, 0x21, 0x27, 0x22, 0x19, 0x17, 0x26, 0x15, 0x16]),
  will: new Set([0x18, 0x01, 0x02, 0x03, 0x08, 0x09, 0x26]),
  SUBSCRIBE: new Set([0x0b, 0x26]),
  UNSUBSCRIBE: new Set([0x26]),
  DISCONNECT: new Set([0x11, 0x1f, 0x26]),
  AUTH: new Set([0x15, 0x16, 0x1f, 0x26]),
};

function malformed(what: string): never {
  throw new ProtocolError(RC.MALFORMED_PACKET, `malformed ${what}`);
}

function varint(buf: Buffer, at: number, what: string): { value: number; next: number } {
  let value = 0;
  let mult = 1;
  for (let i = 0; i < 4 && at + i < buf.length; i++) {
    const b = buf[at + i]!;
    value += (b & 0x7f) * mult;
    if (b < 0x80) return { value, next: at + i + 1 };
    mult *= 128;
  }
  return malformed(what);
}

/** Check the property block at `at` (its length first); returns where the block ends. */
function checkBlock(body: Buffer, at: number, allowed: Set<number>, what: string): number {
  const { value: length, next } = varint(body, at, `${what} properties`);
  const end = next + length;
  if (end > body.length) malformed(`${what} properties`);
  const seen = new Set<number>();
  let pos = next;
  while (pos < end) {
    const id = body[pos++]!;
    const kind = KINDS[id];
    if (kind === undefined || !allowed.has(id)) throw new ProtocolError(RC.MALFORMED_PACKET, `property 0x${id.toString(16)} is not allowed in ${what}`);
    if (id !== 0x26) {
      if (seen.has(id)) throw new ProtocolError(RC.PROTOCOL_ERROR, `property 0x${id.toString(16)} given twice in ${what}`);
      seen.add(id);
    }
    switch (kind) {
      case 'byte':
        pos += 1;
        break;
      case 'u16':
        pos += 2;
        break;
      case 'u32':
        pos += 4;
        break;
      case 'varint':
        pos = varint(body, pos, `${what} properties`).next;
        break;
      case 'string':
      case 'binary':
        if (pos + 2 > end) malformed(`${what} properties`);
        pos += 2 + body.readUInt16BE(pos);
        break;
      case 'pair':
        for (let i = 0; i < 2; i++) {
          if (pos + 2 > end) malformed(`${what} properties`);
          pos += 2 + body.readUInt16BE(pos);
        }
        break;
    }
  }
  if (pos !== end) malformed(`${what} properties`);
  return end;
}

/** A v5 packet's property blocks, by packet type (1 CONNECT, 8 SUBSCRIBE, 10 UNSUBSCRIBE, 14 DISCONNECT, 15 AUTH). */
export function checkV5Properties(type: number, body: Buffer): void {
  switch (type) {
    case 1: {
      if (body.length < 2) malformed('CONNECT');
      let at = 2 + body.readUInt16BE(0); // protocol name
      const flags = body[at + 1] ?? 0;
      at += 4; // level, flags, keep alive
      at = checkBlock(body, at, ALLOWED.CONNECT, 'CONNECT');
      if (at + 2 > body.length) malformed('CONNECT');
      at += 2 + body.readUInt16BE(at); // client id
      if ((flags & 0x04) !== 0) checkBlock(body, at, ALLOWED.will, 'will');
      return;
    }
    case 8:
    case 10:
      if (body.length < 3) malformed(type === 8 ? 'SUBSCRIBE' : 'UNSUBSCRIBE');
      checkBlock(body, 2, type === 8 ? ALLOWED.SUBSCRIBE : ALLOWED.UNSUBSCRIBE, type === 8 ? 'SUBSCRIBE' : 'UNSUBSCRIBE');
      return;
    case 14:
    case 15:
      if (body.length >= 2) checkBlock(body, 1, type === 14 ? ALLOWED.DISCONNECT : ALLOWED.AUTH, type === 14 ? 'DISCONNECT' : 'AUTH');
      return;
  }
}
