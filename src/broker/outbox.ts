/**
 * Outgoing bytes of a connection, gathered while a read is processed and written with one `write()` when it
 * is done (or at the end of the event-loop turn, for what timers and the store produced): one system call
 * (and on TLS one record) for everything a read produced for that client, instead of one per packet.
 * Under fan-in and fan-out load this is where most of the broker's lead over a write-per-packet broker
 * comes from; every packet is already a single Buffer (encode.ts), so a queued
 * message is just bytes.
 *
 * One WriteScheduler per broker flushes every outbox that has something: after each read (flushAll) and
 * at the end of the turn (setImmediate) for the rest.
 * Back-pressure: `write()` reports whether the stream is full, and `backlog` tells how many bytes wait, so
 * that QoS 0 messages to a client that does not read can be dropped instead of held without bound.
 */
import type { Duplex } from 'node:stream';

export class WriteScheduler {
  private dirty: Outbox[] = [];
  private scheduled = false;

  mark(outbox: Outbox): void {
    this.dirty.push(outbox);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.endOfTurn);
    }
  }

  /** Write every outbox that has something (after a read). */
  flushAll(): void {
    if (this.dirty.length === 0) return;
    const dirty = this.dirty;
    this.dirty = [];
    for (const outbox of dirty) outbox.flush();
  }

  private readonly endOfTurn = (): void => {
    this.scheduled = false;
    this.flushAll();
  };
}

export class Outbox {
  private parts: Buffer[] = [];
  private bytes = 0;
  private marked = false;

  constructor(
    private readonly stream: Duplex,
    private readonly scheduler: WriteScheduler,
    /** Gathered bytes that trigger an immediate write instead of waiting for the end of the turn. */
    private readonly highWaterMark = 64 * 1024,
  ) {}

  /** Queue a packet; false when the stream has said it is full (wait for 'drain' before sending more). */
  write(packet: Buffer): boolean {
    this.parts.push(packet);
    this.bytes += packet.length;
    if (this.bytes >= this.highWaterMark) {
      this.flush();
    } else if (!this.marked) {
      this.marked = true;
      this.scheduler.mark(this);
    }
    return !this.stream.writableNeedDrain;
  }

  /** Bytes waiting: gathered here plus buffered in the stream. */
  get backlog(): number {
    return this.bytes + this.stream.writableLength;
  }

  /** Write what is gathered now (the end of a turn, or before closing). */
  flush(): void {
    this.marked = false;
    if (this.bytes === 0) return;
    const parts = this.parts;
    const chunk = parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.bytes);
    this.parts = [];
    this.bytes = 0;
    if (this.stream.destroyed || this.stream.writableEnded) return;
    this.stream.write(chunk);
  }
}
