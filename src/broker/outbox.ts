/**
 * Outgoing packets: encoded once into a single buffer each, gathered per connection and written with one
 * `write()` per event-loop turn (one syscall, and on TLS one record, for everything a turn produced).
 *
 * Aedes writes every packet through mqtt-packet's `writeToStream`, which calls `write()` five times per
 * PUBLISH (header, length, topic length, topic, payload), corks and uncorks the stream around it on a
 * `process.nextTick`, and logs through `debug`. Under load that made the write path the heaviest part of a
 * delivery and, worse, left every in-flight message as half a dozen small heap objects queued in the
 * socket: the young-generation GC had to copy them all at every scavenge (30% of the CPU in the fan-in
 * profile). Here a PUBLISH costs one `Buffer.allocUnsafe` (Node's pool) and a copy of its payload, and a
 * queued message is just bytes.
 *
 * `writeToStream` is replaced on mqtt-packet's module object (the one aedes imports); streams that were
 * not given an outbox (`useOutbox`) keep the original behaviour. Back-pressure is kept: `false` is returned
 * exactly when the stream has reported it is full (`writableNeedDrain`), so aedes' wait for `drain` always
 * ends; once more than a high-water mark is gathered it is written at once instead of at the end of the turn.
 */
// Before anything that loads mqtt-packet (see quiet-debug.ts).
import './quiet-debug.js';
import type { Duplex } from 'node:stream';
import mqttPacket from 'mqtt-packet';

interface Outbox {
  parts: Buffer[];
  bytes: number;
  scheduled: boolean;
}

type OutboxStream = Duplex & { [kOutbox]?: Outbox };

const kOutbox = Symbol('mqtt-acme-broker.outbox');

type WriteToStream = (packet: unknown, stream: unknown, opts?: unknown) => boolean;
type Generate = (packet: unknown, opts?: unknown) => Buffer;
const packetModule = mqttPacket as unknown as { writeToStream: WriteToStream; generate: Generate };
let installed = false;

/** Route the stream's outgoing MQTT packets through a per-turn outbox (see the module comment). */
export function useOutbox(stream: Duplex): void {
  install();
  (stream as OutboxStream)[kOutbox] = { parts: [], bytes: 0, scheduled: false };
}

function install(): void {
  if (installed) return;
  installed = true;
  const original = packetModule.writeToStream;
  // mqtt-packet pre-builds 65,536 two-byte Buffers (~7 MiB of heap) the first time it writes anything, for
  // packet ids and lengths; it now writes only the rare packets (CONNACK, SUBACK, UNSUBACK), which can
  // build their two bytes when needed.
  (original as WriteToStream & { cacheNumbers: boolean }).cacheNumbers = false;
  const generate = packetModule.generate;
  packetModule.writeToStream = function writeToStream(packet: unknown, stream: unknown, opts?: unknown): boolean {
    const box = (stream as OutboxStream)[kOutbox];
    if (box === undefined || opts !== undefined) return original(packet, stream, opts);
    // Throws on an invalid packet (aedes turns that into a client error), as generate() does.
    const bytes = encodePublish(packet as PublishFields) ?? encodeSmall(packet as SmallFields) ?? generate(packet);
    return enqueue(stream as OutboxStream, box, bytes);
  };
}

/**
 * Write one MQTT packet to a stream as aedes' write does (through the outbox when the stream has one).
 * Returns false when the stream is full: wait for 'drain' before writing more.
 */
export function writePacket(stream: Duplex, packet: object): boolean {
  return packetModule.writeToStream(packet, stream);
}

function enqueue(stream: OutboxStream, box: Outbox, bytes: Buffer): boolean {
  box.parts.push(bytes);
  box.bytes += bytes.length;
  if (box.bytes + stream.writableLength >= stream.writableHighWaterMark) {
    return flush(stream, box);
  }
  if (!box.scheduled) {
    box.scheduled = true;
    setImmediate(flushLater, stream, box);
  }
  return !stream.writableNeedDrain;
}

function flushLater(stream: OutboxStream, box: Outbox): void {
  box.scheduled = false;
  if (box.bytes > 0) flush(stream, box);
}

function flush(stream: OutboxStream, box: Outbox): boolean {
  const parts = box.parts;
  const chunk = parts.length === 1 ? parts[0]! : Buffer.concat(parts, box.bytes);
  box.parts = [];
  box.bytes = 0;
  if (stream.destroyed || stream.writableEnded) return false;
  return stream.write(chunk);
}

interface PublishFields {
  cmd?: unknown;
  topic?: unknown;
  payload?: unknown;
  qos?: unknown;
  messageId?: unknown;
  dup?: unknown;
  retain?: unknown;
  properties?: unknown;
}

/**
 * MQTT 3.1.1 PUBLISH in one buffer, or undefined for anything that is not a plain PUBLISH (left to
 * mqtt-packet, which also reports what is invalid).
 */
export function encodePublish(packet: PublishFields): Buffer | undefined {
  if (packet.cmd !== 'publish') return undefined;
  const { topic, payload, messageId } = packet;
  const qos = packet.qos === undefined ? 0 : packet.qos;
  if (typeof topic !== 'string' || !Buffer.isBuffer(payload) || packet.properties !== undefined) return undefined;
  if (qos !== 0 && qos !== 1 && qos !== 2) return undefined;
  if (qos > 0 && (typeof messageId !== 'number' || messageId < 0 || messageId > 0xffff)) return undefined;
  const topicLength = Buffer.byteLength(topic);
  if (topicLength > 0xffff) return undefined;
  const remaining = 2 + topicLength + (qos > 0 ? 2 : 0) + payload.length;
  if (remaining > 268_435_455) return undefined;
  const lengthBytes = remaining < 128 ? 1 : remaining < 16_384 ? 2 : remaining < 2_097_152 ? 3 : 4;
  const out = Buffer.allocUnsafe(1 + lengthBytes + remaining);
  out[0] = 0x30 | (packet.dup === true ? 0x08 : 0) | (qos << 1) | (packet.retain === true ? 0x01 : 0);
  let at = 1;
  let rest = remaining;
  do {
    let digit = rest % 128;
    rest = Math.floor(rest / 128);
    if (rest > 0) digit |= 0x80;
    out[at++] = digit;
  } while (rest > 0);
  out[at++] = topicLength >> 8;
  out[at++] = topicLength & 0xff;
  at += out.write(topic, at, topicLength === topic.length ? 'latin1' : 'utf8');
  if (qos > 0) {
    out[at++] = (messageId as number) >> 8;
    out[at++] = (messageId as number) & 0xff;
  }
  payload.copy(out, at);
  return out;
}

interface SmallFields {
  cmd?: unknown;
  messageId?: unknown;
}

/** First byte of the 2-byte-id acknowledgements (MQTT 3.1.1 sections 3.4-3.7; PUBREL has flags 0010). */
function ackHeader(cmd: unknown): number | undefined {
  switch (cmd) {
    case 'puback':
      return 0x40;
    case 'pubrec':
      return 0x50;
    case 'pubrel':
      return 0x62;
    case 'pubcomp':
      return 0x70;
    default:
      return undefined;
  }
}
const PINGRESP = Buffer.from([0xd0, 0x00]);

/** PUBACK, PUBREC, PUBREL, PUBCOMP and PINGRESP, or undefined for anything else. */
export function encodeSmall(packet: SmallFields): Buffer | undefined {
  const cmd = packet.cmd;
  if (cmd === 'pingresp') return PINGRESP;
  const header = ackHeader(cmd);
  const id = packet.messageId;
  if (header === undefined || typeof id !== 'number' || !(id >= 0 && id <= 0xffff)) return undefined;
  const out = Buffer.allocUnsafe(4);
  out[0] = header;
  out[1] = 2;
  out[2] = id >> 8;
  out[3] = id & 0xff;
  return out;
}
