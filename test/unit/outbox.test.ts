/**
 * The outbox encodes PUBLISH and the acknowledgements itself: byte for byte what mqtt-packet writes, one
 * write per event-loop turn, and back-pressure that aedes can wait on.
 */
import { describe, expect, it } from 'vitest';
import { Duplex } from 'node:stream';
import mqttPacket from 'mqtt-packet';
import { encodePublish, encodeSmall, useOutbox } from '../../src/broker/outbox.js';

const generate = (packet: object): Buffer => mqttPacket.generate(packet as mqttPacket.Packet);
const writeToStream = (packet: object, stream: Duplex): boolean =>
  (mqttPacket as unknown as { writeToStream(p: object, s: Duplex): boolean }).writeToStream(packet, stream);

describe('encodePublish', () => {
  const payloads = [0, 1, 64, 127 - 9, 128, 16_383, 16_384, 70_000, 2_097_152].map((n) => Buffer.alloc(n, 0x61 + (n % 26)));
  it.each(payloads.map((p) => [p.length, p] as const))('matches mqtt-packet for a %i-byte payload at every QoS and flag', (_n, payload) => {
    for (const qos of [0, 1, 2] as const) {
      for (const flags of [{}, { retain: true }, { dup: true }, { retain: true, dup: true }]) {
        const packet = { cmd: 'publish', topic: 'a/b', payload, qos, ...flags, ...(qos > 0 ? { messageId: 4242 } : {}) };
        // Buffer.equals: a deep toEqual over megabytes takes minutes.
        expect(encodePublish(packet)?.equals(generate(packet))).toBe(true);
      }
    }
  });

  it('writes UTF-8 topics with their byte length', () => {
    for (const topic of ['caméra/ä', 'スマート/家', 'x'.repeat(300), 'emoji/😀']) {
      const packet = { cmd: 'publish', topic, payload: Buffer.from('v'), qos: 1, messageId: 65_535 };
      expect(encodePublish(packet)).toEqual(generate(packet));
    }
  });

  it('leaves anything unusual to mqtt-packet', () => {
    expect(encodePublish({ cmd: 'publish', topic: 't', payload: 'string payload', qos: 0 })).toBeUndefined();
    expect(encodePublish({ cmd: 'publish', topic: 't', payload: Buffer.alloc(0), qos: 1 })).toBeUndefined(); // no id
    expect(encodePublish({ cmd: 'publish', topic: 't', payload: Buffer.alloc(0), qos: 3 })).toBeUndefined();
    expect(encodePublish({ cmd: 'publish', topic: Buffer.from('t'), payload: Buffer.alloc(0) })).toBeUndefined();
    expect(encodePublish({ cmd: 'publish', topic: 't', payload: Buffer.alloc(0), properties: {} })).toBeUndefined();
    expect(encodePublish({ cmd: 'suback', topic: 't', payload: Buffer.alloc(0) })).toBeUndefined();
  });
});

describe('encodeSmall', () => {
  it.each(['puback', 'pubrec', 'pubrel', 'pubcomp'])('matches mqtt-packet for %s', (cmd) => {
    for (const messageId of [0, 1, 255, 256, 65_535]) {
      expect(encodeSmall({ cmd, messageId })).toEqual(generate({ cmd, messageId }));
    }
  });
  it('matches mqtt-packet for pingresp and leaves the rest alone', () => {
    expect(encodeSmall({ cmd: 'pingresp' })).toEqual(generate({ cmd: 'pingresp' }));
    expect(encodeSmall({ cmd: 'puback' })).toBeUndefined();
    expect(encodeSmall({ cmd: 'puback', messageId: 70_000 })).toBeUndefined();
    expect(encodeSmall({ cmd: 'connack' })).toBeUndefined();
    expect(encodeSmall({ cmd: 'constructor', messageId: 1 })).toBeUndefined();
  });
});

/** A stream that records every chunk written to it and holds completion until `release()`. */
class Recorder extends Duplex {
  chunks: Buffer[] = [];
  private pending: (() => void)[] = [];
  constructor(highWaterMark: number) {
    super({ writableHighWaterMark: highWaterMark });
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.chunks.push(chunk);
    this.pending.push(done);
  }
  release(): void {
    const pending = this.pending;
    this.pending = [];
    for (const done of pending) done();
  }
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const publish = (i: number): object => ({ cmd: 'publish', topic: 't', payload: Buffer.from(`m${i}`), qos: 0 });

describe('useOutbox', () => {
  it('writes everything a turn produced as one chunk, in order', async () => {
    const stream = new Recorder(64 * 1024);
    useOutbox(stream);
    const expected: Buffer[] = [];
    for (let i = 0; i < 100; i += 1) {
      expect(writeToStream(publish(i), stream)).toBe(true);
      expected.push(generate(publish(i)));
    }
    writeToStream({ cmd: 'puback', messageId: 7 }, stream);
    writeToStream({ cmd: 'suback', messageId: 8, granted: [0, 128] }, stream); // through mqtt-packet
    expected.push(generate({ cmd: 'puback', messageId: 7 }), generate({ cmd: 'suback', messageId: 8, granted: [0, 128] }));
    expect(stream.chunks).toHaveLength(0);
    await turn();
    expect(stream.chunks).toHaveLength(1);
    expect(stream.chunks[0]).toEqual(Buffer.concat(expected));
  });

  it('reports a full stream so that the writer waits for drain, and drain comes', async () => {
    const stream = new Recorder(1024);
    useOutbox(stream);
    const big = { cmd: 'publish', topic: 't', payload: Buffer.alloc(700), qos: 0 };
    expect(writeToStream(big, stream)).toBe(true); // gathered, below the high-water mark
    expect(writeToStream(big, stream)).toBe(false); // past it: written at once, the stream is full
    expect(stream.chunks).toHaveLength(1);
    expect(writeToStream(publish(1), stream)).toBe(false); // still full: keep waiting
    const drained = new Promise<void>((resolve) => stream.once('drain', () => resolve()));
    await turn(); // the small one leaves at the end of the turn
    expect(stream.chunks.length).toBeGreaterThanOrEqual(1);
    stream.release();
    await turn();
    stream.release();
    await drained;
    const all = Buffer.concat(stream.chunks);
    expect(all).toEqual(Buffer.concat([generate(big), generate(big), generate(publish(1))]));
  });

  it('drops what is gathered for a stream destroyed before the end of the turn', async () => {
    const stream = new Recorder(1024);
    useOutbox(stream);
    writeToStream(publish(1), stream);
    stream.destroy();
    await turn();
    expect(stream.chunks).toHaveLength(0);
  });

  it('leaves streams without an outbox to mqtt-packet', async () => {
    const stream = new Recorder(64 * 1024);
    writeToStream(publish(1), stream);
    for (let i = 0; i < 10; i += 1) {
      await turn();
      stream.release();
    }
    expect(stream.chunks.length).toBeGreaterThan(1); // mqtt-packet writes a PUBLISH in parts
    expect(Buffer.concat(stream.chunks)).toEqual(generate(publish(1)));
  });
});
