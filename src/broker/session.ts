/**
 * A client's session (MQTT 5 section 4.1): its subscriptions, the QoS 1/2 messages queued for it and in
 * flight to it, and the inbound QoS 2 packet ids that wait for PUBREL. It outlives its connection by the
 * session expiry interval; a persistent one (interval > 0) is mirrored to the store write by write.
 *
 * Outgoing flow: at most `window` messages in flight (the client's Receive Maximum, or
 * max_inflight_messages for v3 clients), the rest queued in order up to max_queued_messages (newer
 * messages are dropped beyond it, as mosquitto does).
 */
import type { Message, QoS } from './message.js';
import type { QueuedEntry, Store, StoredSubscription } from './store/store.js';

/** What a session needs from the connection it is attached to. */
/** A connected client's queue may grow to this many times max_queued_messages while its publishers wait. */
const ONLINE_QUEUE_FACTOR = 10;

export interface SessionLink {
  /** How many QoS 1/2 messages may be in flight to the client. */
  readonly sendWindow: number;
  /** Write a PUBLISH for the entry; false when it may not or cannot go to this client (it is dropped). */
  sendEntry(entry: QueuedEntry, dup: boolean): boolean;
  sendPubrel(packetId: number): void;
}

export interface SessionOptions {
  store: Store;
  /** max_queued_messages: 0 = unlimited. */
  maxQueued: number;
  /** Called when a message is dropped because the queue is full. */
  onQueueFull(clientId: string): void;
}

export class Session {
  readonly subscriptions = new Map<string, StoredSubscription>();
  /** Inbound QoS 2 packet ids that got PUBREC and wait for PUBREL. */
  readonly incomingQoS2 = new Set<number>();
  link: SessionLink | undefined;
  /** When the connection ended (ms since the epoch); undefined while connected. */
  disconnectedAt: number | undefined;
  expiryTimer: NodeJS.Timeout | undefined;
  protocolVersion: 3 | 4 | 5 = 4;

  private queue: QueuedEntry[] = [];
  private queueHead = 0;
  private readonly inflight = new Map<number, QueuedEntry>();
  private nextPacketId = 1;
  private nextSeq = 1;
  private drainWaiters: (() => void)[] = [];

  constructor(
    readonly clientId: string,
    /** Seconds; 0 = ends with the connection; 0xFFFFFFFF = never expires. */
    public expiryInterval: number,
    private readonly options: SessionOptions,
  ) {}

  get persistent(): boolean {
    return this.expiryInterval > 0;
  }

  get queuedCount(): number {
    return this.queue.length - this.queueHead;
  }

  get inflightCount(): number {
    return this.inflight.size;
  }

  /**
   * Connected, and more queued than max_queued_messages: publishers should wait (connection.ts). Beyond
   * ONLINE_QUEUE_FACTOR times the limit (a client that stopped acknowledging) messages are dropped.
   */
  get congested(): boolean {
    return this.link !== undefined && this.options.maxQueued > 0 && this.queuedCount >= this.options.maxQueued;
  }

  /** Call `fn` once the queue is below max_queued_messages again (or the client went away). */
  onDrained(fn: () => void): void {
    this.drainWaiters.push(fn);
  }

  private releaseWaiters(): void {
    if (this.drainWaiters.length === 0) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const fn of waiters) fn();
  }

  /** Rebuild from the store at start-up: entries in seq order. */
  restore(entries: QueuedEntry[], incoming: number[]): void {
    for (const entry of entries) {
      if (entry.state === 'queued') this.queue.push(entry);
      else if (entry.packetId !== undefined) this.inflight.set(entry.packetId, entry);
      this.nextSeq = Math.max(this.nextSeq, entry.seq + 1);
    }
    for (const id of incoming) this.incomingQoS2.add(id);
  }

  /** Queue a QoS 1/2 message for the client (sent at once when connected and the window allows). */
  enqueue(message: Message, qos: QoS, retain: boolean, subscriptionIds: number[] | undefined): void {
    const entry: QueuedEntry = { seq: this.nextSeq++, qos, message, retain, state: 'queued' };
    if (subscriptionIds !== undefined) entry.subscriptionIds = subscriptionIds;
    const link = this.link;
    if (link !== undefined && this.queuedCount === 0 && this.inflight.size < link.sendWindow) {
      entry.packetId = this.allocatePacketId();
      entry.state = 'sent';
      this.inflight.set(entry.packetId, entry);
      if (!link.sendEntry(entry, false)) {
        this.inflight.delete(entry.packetId);
        return;
      }
      if (this.persistent) this.options.store.putQueued(this.clientId, entry);
      return;
    }
    const limit = link === undefined ? this.options.maxQueued : this.options.maxQueued * ONLINE_QUEUE_FACTOR;
    if (limit > 0 && this.queuedCount >= limit) {
      this.options.onQueueFull(this.clientId);
      return;
    }
    this.queue.push(entry);
    if (this.persistent) this.options.store.putQueued(this.clientId, entry);
  }

  /** PUBACK (QoS 1) or PUBCOMP (QoS 2): the message is done. False when the id was not in flight. */
  complete(packetId: number, kind: 'puback' | 'pubcomp'): boolean {
    const entry = this.inflight.get(packetId);
    if (entry === undefined) return false;
    if ((kind === 'puback') !== (entry.qos === 1) || (kind === 'pubcomp' && entry.state !== 'released')) return false;
    this.inflight.delete(packetId);
    if (this.persistent) this.options.store.deleteQueued(this.clientId, entry.seq);
    this.pump();
    return true;
  }

  /** PUBREC: answer with PUBREL (or end the flow when the client refused the message). */
  received(packetId: number, reasonCode: number): boolean {
    const entry = this.inflight.get(packetId);
    if (entry === undefined || entry.qos !== 2) return false;
    if (reasonCode >= 0x80) {
      this.inflight.delete(packetId);
      if (this.persistent) this.options.store.deleteQueued(this.clientId, entry.seq);
      this.pump();
      return true;
    }
    if (entry.state !== 'released') {
      entry.state = 'released';
      if (this.persistent) this.options.store.putQueued(this.clientId, entry);
    }
    this.link?.sendPubrel(packetId);
    return true;
  }

  /** A connection takes the session: resend what was in flight (DUP), then the queue. */
  attach(link: SessionLink): void {
    this.link = link;
    this.disconnectedAt = undefined;
    for (const entry of [...this.inflight.values()]) {
      if (entry.state === 'released') link.sendPubrel(entry.packetId!);
      else if (!link.sendEntry(entry, true)) this.drop(entry);
    }
    this.pump();
  }

  detach(now: number): void {
    this.link = undefined;
    this.disconnectedAt = now;
    this.releaseWaiters();
  }

  /** Send queued messages while the window allows. */
  pump(): void {
    const link = this.link;
    if (link === undefined) return;
    while (this.queueHead < this.queue.length && this.inflight.size < link.sendWindow) {
      const entry = this.queue[this.queueHead]!;
      this.queue[this.queueHead++] = undefined as unknown as QueuedEntry;
      entry.packetId = this.allocatePacketId();
      entry.state = 'sent';
      this.inflight.set(entry.packetId, entry);
      if (!link.sendEntry(entry, false)) {
        this.drop(entry);
        continue;
      }
      if (this.persistent) this.options.store.putQueued(this.clientId, entry);
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
    if (this.drainWaiters.length > 0 && !this.congested) this.releaseWaiters();
  }

  /** Everything queued and in flight, for a persistent session's first write (e.g. an interval change). */
  entries(): QueuedEntry[] {
    return [...this.inflight.values(), ...this.queue.slice(this.queueHead)].sort((a, b) => a.seq - b.seq);
  }

  /** Forget every message (the session ends or starts clean); the caller deletes the session's records. */
  clearMessages(): void {
    this.releaseWaiters();
    this.queue = [];
    this.queueHead = 0;
    this.inflight.clear();
    this.incomingQoS2.clear();
  }

  private drop(entry: QueuedEntry): void {
    if (entry.packetId !== undefined) this.inflight.delete(entry.packetId);
    if (this.persistent) this.options.store.deleteQueued(this.clientId, entry.seq);
  }

  private allocatePacketId(): number {
    for (let tries = 0; tries < 65_535; tries++) {
      const id = this.nextPacketId;
      this.nextPacketId = id === 65_535 ? 1 : id + 1;
      if (!this.inflight.has(id)) return id;
    }
    throw new Error('no free packet identifier');
  }
}
