/**
 * What the broker keeps on disk, as a journal beside its in-memory state: every write is queued at once
 * (synchronously, in call order) and made durable in batches; `flush()` says when everything queued so far
 * has reached the store. The broker acknowledges a QoS 1/2 PUBLISH only after the flush that follows its
 * writes, so a kill -9 at any moment loses no acknowledged message. At start-up `load()` returns everything
 * the broker needs to rebuild its state; nothing is read from the store afterwards.
 */
import type { Message, QoS } from '../message.js';

/** One subscription of a session, as SUBSCRIBE gave it (MQTT 5 subscription options; v3 uses the defaults). */
export interface StoredSubscription {
  /** The filter as the client sent it, `$share/GROUP/FILTER` included. */
  filter: string;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
  /** MQTT 5 subscription identifier (1..268435455); undefined when none was given. */
  identifier?: number;
}

/** The durable part of a session (MQTT 5 section 4.1), without its queue. */
export interface StoredSession {
  clientId: string;
  /** Seconds the session outlives its connection; 0xFFFFFFFF = never expires (a v3 clean-session-false client). */
  expiryInterval: number;
  /** When the connection ended (ms since the epoch); undefined while connected (after a crash: treat as the start time). */
  disconnectedAt?: number;
  /** The MQTT protocol level the client last connected with (3, 4 or 5). */
  protocolVersion: 3 | 4 | 5;
  subscriptions: StoredSubscription[];
}

/** A message waiting for, or in flight to, a session's client. */
export interface QueuedEntry {
  /** Position in the session's queue; increasing, unique per client id. */
  seq: number;
  /** QoS as granted to this subscriber (the smaller of the message's and the subscription's). */
  qos: QoS;
  message: Message;
  /** MQTT 5 subscription identifiers of the subscriptions that matched. */
  subscriptionIds?: number[];
  /** Retain flag as the subscriber gets it (retain-as-published, or true for a retained message sent at SUBSCRIBE). */
  retain: boolean;
  /** Packet identifier once sent; undefined while still queued. */
  packetId?: number;
  /** 'queued' (not sent), 'sent' (PUBLISH sent, waiting for PUBACK/PUBREC), 'released' (PUBREL sent, waiting for PUBCOMP). */
  state: 'queued' | 'sent' | 'released';
}

/** A will message waiting for its client to go away (and for its will delay interval). */
export interface StoredWill {
  clientId: string;
  message: Message;
  /** Seconds from the disconnect to publication (MQTT 5 will delay interval); 0 for v3. */
  delayInterval: number;
}

export interface StoreSnapshot {
  sessions: { session: StoredSession; queue: QueuedEntry[]; incomingQoS2: number[] }[];
  retained: Message[];
  wills: StoredWill[];
}

export interface Store {
  readonly kind: 'level' | 'memory';
  /** Where it lives (a directory), for logs. */
  readonly location?: string;
  /** Everything stored, once, at start-up (expired messages and sessions are the broker's to drop). */
  load(): Promise<StoreSnapshot>;

  putSession(session: StoredSession): void;
  /** The session, its queue, its inbound QoS 2 ids and its will. */
  deleteSession(clientId: string): void;
  /** Insert or replace the entry with this seq. */
  putQueued(clientId: string, entry: QueuedEntry): void;
  deleteQueued(clientId: string, seq: number): void;
  /** An inbound QoS 2 packet id that got PUBREC and waits for PUBREL (exactly once across a restart). */
  putIncoming(clientId: string, packetId: number): void;
  deleteIncoming(clientId: string, packetId: number): void;
  putRetained(message: Message): void;
  deleteRetained(topic: string): void;
  putWill(will: StoredWill): void;
  deleteWill(clientId: string): void;

  /** Resolves when every write queued before this call is durable; rejects when the store failed them. */
  flush(): Promise<void>;
  /** Writes what is queued, then closes. */
  close(): Promise<void>;
}
