/**
 * One client connection: bytes in (framing, decoding, dispatch to the packet handlers), bytes out (the
 * outbox), its timers (CONNECT deadline, keep alive) and the state that lives exactly as long as the
 * network connection does (protocol version, limits both ways, topic aliases, the compiled ACL). The
 * session it carries outlives it (session.ts).
 */
import type { Duplex } from 'node:stream';
import type { ClientAcl } from '../auth/acl.js';
import type { BrokerContext, Drainable } from './context.js';
import { ProtocolError, PacketDecoder, UnsupportedVersion, type InboundPacket } from './decode.js';
import { encodeAck, encodeConnack, encodeDisconnect, type AckKind } from './encode.js';
import { FrameReader, type FrameSink } from './framing.js';
import { isExpired, type Message } from './message.js';
import { Outbox } from './outbox.js';
import { CONNACK_V3, RC } from './reason-codes.js';
import type { PublishEncoder, TopicAliasesOut } from './publish-encoder.js';
import type { Session, SessionLink } from './session.js';
import type { QueuedEntry, StoredWill } from './store/store.js';

/** CONNECT carries at most five 2-byte-length strings (client id, will topic/payload, user, password) and properties. */
const MAX_CONNECT_PACKET = 5 * (2 + 65_535) + 64 * 1024;
/**
 * Bytes waiting to be written to a client beyond which its publishers wait (QOS0_SOFT_BACKLOG) and beyond
 * which QoS 0 messages to it are dropped (MAX_QOS0_BACKLOG): a subscriber that reads slowly slows its
 * publishers for a moment, one that stopped reading does not hold the broker's memory.
 */
const QOS0_SOFT_BACKLOG = 4 * 1024 * 1024;
const MAX_QOS0_BACKLOG = 16 * 1024 * 1024;
/** Longest a publisher waits for congested subscribers before it is read again. */
const CONGESTION_WAIT_MS = 5000;

const PAUSE = { acks: 1, congestion: 2 } as const;

function checkKeepalive(conn: Connection): void {
  conn.keepaliveTick();
}

export type PacketDispatcher = (conn: Connection, packet: InboundPacket) => void;

export class Connection implements SessionLink, FrameSink, Drainable {
  readonly outbox: Outbox;
  readonly frames: FrameReader;
  readonly decoder: PacketDecoder;
  state: 'new' | 'authenticating' | 'connected' | 'closed' = 'new';
  version = 4;
  clientId = '';
  username: string | undefined;
  session: Session | undefined;
  /** The will of this connection (from CONNECT), until DISCONNECT says otherwise or it is published. */
  will: StoredWill | undefined;
  /** Client's Receive Maximum (v5) or max_inflight_messages (v3). */
  sendWindow = 65_535;
  /** Client's Maximum Packet Size (v5). */
  maxPacketSizeOut = Number.POSITIVE_INFINITY;
  topicAliases: TopicAliasesOut | undefined;
  /** Topic aliases the client set (v5), made at the first one. */
  topicAliasesIn: Map<number, string> | undefined;
  /** v5 request problem information: reason strings and user properties only where always allowed when false. */
  problemInformation = true;
  /** Acknowledgements waiting for the store (ackAfterFlush); reading pauses while at receiveMaximum. */
  pendingAcks = 0;
  /** Reason code of a DISCONNECT the broker sent, or 'client' for the client's own DISCONNECT. */
  closeReason: string | undefined;
  /** Set by a DISCONNECT from the client: normal close (will dropped unless 0x04). */
  gracefulDisconnect = false;

  private acl: ClientAcl | undefined;
  private aclGeneration = -1;
  lastActivity = performance.now();
  private keepaliveMs = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Why reading is paused: 'acks' (receiveMaximum acknowledgements wait), 'congestion' (subscribers' queues full). */
  private pausedFor = 0;
  private congestionTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly socket: Duplex,
    readonly ctx: BrokerContext,
    readonly listener: string,
    readonly remoteAddress: string | undefined,
    private readonly dispatch: PacketDispatcher,
    readonly encoder: PublishEncoder,
    readonly onClose: (conn: Connection) => void,
  ) {
    this.outbox = new Outbox(socket, ctx.scheduler);
    this.decoder = new PacketDecoder();
    this.frames = new FrameReader(MAX_CONNECT_PACKET);
    socket.on('data', this.onData);
    socket.on('error', () => this.destroy());
    socket.on('close', () => this.closed());
    socket.on('end', () => this.destroy());
    const seconds = ctx.config.connectTimeout;
    if (seconds > 0) this.timer = setTimeout(() => this.connectTimedOut(), seconds * 1000);
  }

  get connected(): boolean {
    return this.state === 'connected';
  }

  private readonly onData = (chunk: Buffer): void => {
    this.lastActivity = performance.now();
    this.read(chunk);
    // What this read produced (deliveries to subscribers, this client's acknowledgements, the next
    // messages of its window) leaves now, one write per connection, instead of after every other
    // connection's input of the turn: at 2,000 messages/s the median latency drops by ~20 us, and a
    // 64 KiB read still makes one large write per subscriber.
    this.ctx.scheduler.flushAll();
  };

  private read(chunk: Buffer): void {
    try {
      this.frames.push(chunk, this);
    } catch (err) {
      this.fail(err);
    }
  }

  /** FrameSink: stop handing packets over while paused, authenticating or closed. */
  mustStop(): boolean {
    return this.pausedFor !== 0 || this.state === 'authenticating' || this.state === 'closed';
  }

  /** FrameSink: one packet. */
  onFrame(data: Buffer, frameStart: number, bodyStart: number, end: number): void {
    const packet = this.decoder.decode(data, frameStart, bodyStart, end);
    if (this.state === 'new' && packet.cmd !== 'connect') throw new ProtocolError(RC.PROTOCOL_ERROR, `${packet.cmd.toUpperCase()} before CONNECT`);
    if (this.state === 'connected' && packet.cmd === 'connect') throw new ProtocolError(RC.PROTOCOL_ERROR, 'a second CONNECT');
    this.dispatch(this, packet);
  }

  /** Stop reading until resume() with the same reason (and no other reason holds). */
  pause(reason: 'acks' | 'congestion'): void {
    this.pausedFor |= PAUSE[reason];
    this.socket.pause();
  }

  resume(reason?: 'acks' | 'congestion'): void {
    if (this.state === 'closed') return;
    if (reason !== undefined) this.pausedFor &= ~PAUSE[reason];
    if (this.pausedFor !== 0 || this.state !== 'connected') return;
    this.socket.resume();
    if (this.frames.pending > 0) this.read(Buffer.alloc(0));
  }

  /**
   * Back-pressure from subscribers: this client published to sessions whose queues are past
   * max_queued_messages while they are connected. Reading stops until they drained, for at most
   * CONGESTION_WAIT_MS (a subscriber that never reads must not stall its publishers for long).
   */
  waitForSubscribers(sessions: Drainable[]): void {
    if ((this.pausedFor & PAUSE.congestion) !== 0) return;
    this.pause('congestion');
    let left = sessions.length;
    const done = (): void => {
      if (--left > 0 || (this.pausedFor & PAUSE.congestion) === 0) return;
      clearTimeout(this.congestionTimer);
      this.resume('congestion');
    };
    for (const session of sessions) session.onDrained(done);
    this.congestionTimer = setTimeout(() => {
      left = 0;
      this.resume('congestion');
    }, CONGESTION_WAIT_MS);
  }

  /** After CONNACK: keep alive (1.5 x the interval, MQTT-3.1.2-24) and the connected packet size limit. */
  started(keepaliveSeconds: number, maxPacketSize: number): void {
    this.state = 'connected';
    this.frames.maxPacketSize = maxPacketSize;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.keepaliveMs = keepaliveSeconds * 1500;
    if (this.keepaliveMs > 0) this.timer = setTimeout(checkKeepalive, this.keepaliveMs, this);
    this.resume();
  }

  /** Called by the keep-alive timer (a shared function with the connection as argument: no closure each). */
  keepaliveTick(): void {
    const idle = performance.now() - this.lastActivity;
    if (idle >= this.keepaliveMs) {
      this.ctx.logger.info({ clientId: this.clientId, username: this.username, keepalive: this.keepaliveMs / 1500 }, 'client keep alive timed out');
      this.disconnect(RC.KEEP_ALIVE_TIMEOUT, 'keep alive timeout');
      return;
    }
    this.timer = setTimeout(checkKeepalive, this.keepaliveMs - idle, this);
  }

  private connectTimedOut(): void {
    if (this.state === 'connected' || this.state === 'closed') return;
    this.ctx.observer.connectionRefused?.('timeout');
    this.ctx.logger.info({ remoteAddress: this.remoteAddress, listener: this.listener, seconds: this.ctx.config.connectTimeout }, 'connection closed: no CONNECT in time');
    this.destroy();
  }

  /** The client's compiled ACL, recompiled after an ACL reload; undefined = everything allowed. */
  clientAcl(): ClientAcl | undefined {
    const generation = this.ctx.policy.aclGeneration;
    if (generation !== this.aclGeneration) {
      this.acl = this.ctx.policy.clientAcl(this.username, this.clientId);
      this.aclGeneration = generation;
    }
    return this.acl;
  }

  /** Our Receive Maximum (max_inflight_messages; 0 = 65535). */
  get receiveMaximum(): number {
    const n = this.ctx.config.maxInflightMessages;
    return n > 0 ? Math.min(n, 65_535) : 65_535;
  }

  /**
   * Send an acknowledgement once every store write made so far is durable. The store's flushes complete in
   * order, so acknowledgements leave in the order of the packets they answer. While receiveMaximum of them
   * wait, reading stops (back-pressure, also for clients that ignore our Receive Maximum).
   */
  ackAfterFlush(send: () => void): void {
    this.pendingAcks += 1;
    if (this.pendingAcks >= this.receiveMaximum) this.pause('acks');
    this.ctx.store.flush().then(
      () => {
        this.pendingAcks -= 1;
        if (this.state === 'closed') return;
        send();
        if (this.pendingAcks < this.receiveMaximum) this.resume('acks');
      },
      (err: unknown) => {
        this.pendingAcks -= 1;
        this.ctx.logger.error({ clientId: this.clientId, error: (err as Error).message }, 'the store failed: closing the connection without acknowledging');
        this.disconnect(RC.UNSPECIFIED_ERROR, 'the broker could not store the message');
      },
    );
  }

  send(bytes: Buffer): boolean {
    if (this.state === 'closed') return false;
    return this.outbox.write(bytes);
  }

  sendAck(kind: AckKind, packetId: number, reasonCode = 0, reasonString?: string): void {
    this.send(encodeAck(kind, packetId, this.version, reasonCode, this.problemInformation ? reasonString : undefined));
  }

  sendPubrel(packetId: number): void {
    this.send(encodeAck('pubrel', packetId, this.version));
  }

  /** May this client receive a message on `topic` (ACL read access)? */
  mayReceive(topic: string): boolean {
    const acl = this.clientAcl();
    return acl === undefined || acl.canReceive(topic);
  }

  /** More than QOS0_SOFT_BACKLOG bytes wait to be written to this client. */
  get outputCongested(): boolean {
    return this.outbox.backlog > QOS0_SOFT_BACKLOG;
  }

  private drainWaiters: (() => void)[] | undefined;

  /** Drainable: `fn` once what waits to be written to this client has gone to the kernel (or it closed). */
  onDrained(fn: () => void): void {
    if (this.state === 'closed') return fn();
    if (this.drainWaiters === undefined) {
      this.drainWaiters = [];
      this.socket.once('drain', this.releaseDrainWaiters);
    }
    this.drainWaiters.push(fn);
  }

  private readonly releaseDrainWaiters = (): void => {
    const waiters = this.drainWaiters;
    this.drainWaiters = undefined;
    this.socket.off('drain', this.releaseDrainWaiters);
    if (waiters !== undefined) for (const fn of waiters) fn();
  };

  /** A QoS 0 delivery: false when skipped (ACL, expired, too large, backlog). */
  sendQoS0(message: Message, retain: boolean, subscriptionIds: number[] | undefined, now: number): boolean {
    if (this.state !== 'connected' || !this.mayReceive(message.topic) || isExpired(message, now)) return false;
    if (this.outbox.backlog > MAX_QOS0_BACKLOG) return false;
    const bytes = this.encoder.encode(this, message, 0, retain, false, undefined, subscriptionIds, now);
    if (bytes.length > this.maxPacketSizeOut) return false;
    this.ctx.observer.messageOut?.(message.payload.length);
    this.ctx.stats.sent(message.payload.length);
    this.send(bytes);
    return true;
  }

  /** SessionLink: a QoS 1/2 delivery from the session. */
  sendEntry(entry: QueuedEntry, dup: boolean): boolean {
    const now = Date.now();
    if (this.state !== 'connected' || !this.mayReceive(entry.message.topic) || isExpired(entry.message, now)) return false;
    const bytes = this.encoder.encode(this, entry.message, entry.qos, entry.retain, dup, entry.packetId, entry.subscriptionIds, now);
    if (bytes.length > this.maxPacketSizeOut) return false;
    this.ctx.observer.messageOut?.(entry.message.payload.length);
    this.ctx.stats.sent(entry.message.payload.length);
    this.send(bytes);
    return true;
  }

  /** CONNACK refusing the connection, then close. */
  refuse(code: number): void {
    this.send(encodeConnack({ version: this.version, sessionPresent: false, code }));
    this.end();
  }

  /** v5: DISCONNECT with a reason code first; v3 has no such packet, the connection just closes. */
  disconnect(reasonCode: number, reasonString?: string): void {
    if (this.state === 'closed') return;
    this.closeReason ??= `0x${reasonCode.toString(16).padStart(2, '0')}`;
    if (this.version === 5 && this.state === 'connected') this.send(encodeDisconnect(reasonCode, this.problemInformation ? reasonString : undefined));
    this.end();
  }

  /** Write what is queued, then close the connection. */
  end(): void {
    if (this.state === 'closed') return;
    this.outbox.flush();
    this.socket.end();
    // A client that does not read would hold the socket open: give it a moment, then cut.
    setTimeout(() => this.destroy(), 1000).unref();
    this.closed();
  }

  destroy(): void {
    this.outbox.flush();
    this.socket.destroy();
    this.closed();
  }

  private fail(err: unknown): void {
    if (err instanceof UnsupportedVersion) {
      this.ctx.observer.connectionRefused?.('unacceptable_protocol_version');
      this.ctx.logger.warn({ remoteAddress: this.remoteAddress, listener: this.listener, reason: 'unacceptable_protocol_version' }, `connection refused: ${err.message}`);
      this.version = 4;
      this.refuse(CONNACK_V3.UNACCEPTABLE_PROTOCOL_VERSION);
      return;
    }
    const protocol = err instanceof ProtocolError;
    const message = (err as Error).message;
    this.ctx.logger.warn(
      { clientId: this.clientId || undefined, username: this.username, remoteAddress: this.remoteAddress, listener: this.listener, error: message },
      this.state === 'connected' ? 'client connection closed: protocol error' : 'connection closed before CONNECT completed: protocol error',
    );
    if (!protocol) this.ctx.logger.error({ err }, 'unexpected error while handling a packet');
    if (this.state !== 'connected') this.ctx.observer.connectionRefused?.('protocol');
    this.disconnect(protocol ? err.reasonCode : RC.UNSPECIFIED_ERROR, protocol ? message : 'internal error');
  }

  private closed(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.releaseDrainWaiters();
    clearTimeout(this.timer);
    clearTimeout(this.congestionTimer);
    this.timer = undefined;
    this.socket.off('data', this.onData);
    this.onClose(this);
  }
}
