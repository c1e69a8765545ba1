/**
 * The broker: our MQTT 3.1 / 3.1.1 / 5 core, assembled from its parts (sessions, subscription index,
 * retained messages, wills, the bus, the store) and handed connections by the listeners. It rebuilds its
 * state from the store at start, routes every published message to the matching sessions, and on close
 * tells v5 clients why (DISCONNECT 0x8B) before the store is flushed.
 */
import type { Duplex } from 'node:stream';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { AccessPolicy } from '../auth/policy.js';
import type { Users } from '../auth/passwd.js';
import { MessageBus } from './bus.js';
import { Connection } from './connection.js';
import type { BrokerContext, BrokerObserver, Drainable } from './context.js';
import { createDispatcher } from './handlers/dispatch.js';
import { BrokerStats } from './stats.js';
import { SysTopics } from './sys-topics.js';
import { isExpired, type Message, type QoS } from './message.js';
import { WriteScheduler } from './outbox.js';
import { PublishEncoder } from './publish-encoder.js';
import { RC } from './reason-codes.js';
import { RetainedMessages } from './retained.js';
import { SessionRegistry } from './sessions.js';
import type { Store } from './store/store.js';
import { SubscriptionIndex } from './subscriptions.js';
import { Wills } from './wills.js';

export type { BrokerObserver, RefusalReason } from './context.js';

const NONE: Drainable[] = [];

export interface BrokerDeps {
  config: Config;
  logger: Logger;
  policy: AccessPolicy;
  store: Store;
  observer?: BrokerObserver;
  /** Our version, for $SYS/broker/version. */
  version?: string;
}

export class Broker implements BrokerContext {
  readonly config: Config;
  readonly logger: Logger;
  readonly policy: AccessPolicy;
  readonly store: Store;
  readonly observer: BrokerObserver;
  readonly subscriptions = new SubscriptionIndex();
  readonly scheduler = new WriteScheduler();
  readonly stats = new BrokerStats();
  readonly connections = new Map<string, Connection>();
  readonly retained: RetainedMessages;
  readonly sessions: SessionRegistry;
  closing = false;

  /** Every open connection, connected or still in CONNECT. */
  private readonly open = new Set<Connection>();
  private readonly wills: Wills;
  private readonly bus: MessageBus;
  private readonly encoder = new PublishEncoder();
  private readonly dispatch: ReturnType<typeof createDispatcher>;
  private readonly maxPacketSizeIn: number;
  private readonly sys: SysTopics;

  private constructor(deps: BrokerDeps) {
    this.config = deps.config;
    this.logger = deps.logger;
    this.policy = deps.policy;
    this.store = deps.store;
    this.observer = deps.observer ?? {};
    const config = this.config;
    this.retained = new RetainedMessages(this.store);
    this.wills = new Wills(this.store, (message) => this.publish(message), this.logger);
    this.sessions = new SessionRegistry({
      store: this.store,
      subscriptions: this.subscriptions,
      logger: this.logger,
      // Read at each use: max_queued_messages may change with a reloaded configuration.
      get maxQueued() {
        return config.maxQueuedMessages;
      },
      onSessionEnd: (clientId) => this.wills.sessionEnded(clientId),
    });
    this.bus = new MessageBus((message) => this.deliver(message));
    this.sys = new SysTopics(this, deps.version ?? 'unknown');
    this.maxPacketSizeIn = this.config.maxPacketSize > 0 ? this.config.maxPacketSize : maxPacketSize(this.config.messageSizeLimit);
    this.dispatch = createDispatcher({
      maxPacketSizeIn: this.maxPacketSizeIn,
      accepted: (conn, present) => this.accepted(conn, present),
      keepWill: (will) => this.wills.connected(will),
      cancelWill: (clientId) => this.wills.cancel(clientId),
    });
  }

  static async create(deps: BrokerDeps): Promise<Broker> {
    const broker = new Broker(deps);
    const snapshot = await deps.store.load();
    const now = Date.now();
    broker.retained.restore(snapshot.retained.filter((m) => !isExpired(m, now)));
    const sessions = broker.sessions.restore(snapshot.sessions, now);
    broker.wills.restore(snapshot.wills);
    await deps.store.flush();
    broker.sys.start(broker.config.sysInterval);
    deps.logger.info(
      {
        store: deps.store.kind,
        retained: broker.retained.size,
        sessions: sessions.restored,
        sessionsExpired: sessions.expired,
        allowAnonymous: deps.config.allowAnonymous,
        users: deps.policy.userCount,
      },
      'broker state restored',
    );
    return broker;
  }

  /**
   * The configuration object changed in place (a reloaded mosquitto.conf): what is read per connection or
   * per message takes effect by itself; restart what holds a copy ($SYS interval).
   */
  configurationChanged(): void {
    this.sys.stop();
    this.sys.start(this.config.sysInterval);
  }

  get connectedClients(): number {
    return this.connections.size;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  get subscriptionCount(): number {
    return this.subscriptions.size;
  }

  countRetained(): number {
    return this.retained.size;
  }

  /** Hand a new connection (TLS socket, TCP socket or websocket stream) to the broker. */
  handle(socket: Duplex, listener: string, remoteAddress: string | undefined): void {
    // IPv4 clients of a dual-stack listener show up as ::ffff:a.b.c.d; log the address people know.
    const address = remoteAddress?.startsWith('::ffff:') ? remoteAddress.slice(7) : remoteAddress;
    const conn = new Connection(socket, this, listener, address, this.dispatch, this.encoder, (c) => this.closed(c));
    this.open.add(conn);
    if (this.closing) conn.destroy();
  }

  publish(message: Message, done?: (matched: boolean) => void): void {
    if (message.retain) this.retained.set(message);
    this.bus.publish(message, done);
  }

  /** The bus's listener: hand a message to every matching session. True when any subscription matched. */
  private deliver(message: Message): boolean {
    const now = Date.now();
    if (isExpired(message, now)) return false;
    const matches = this.subscriptions.match(message.topic, message.origin, this.isOnline);
    for (const m of matches) {
      const session = this.sessions.get(m.clientId);
      if (session === undefined) continue;
      const qos = Math.min(message.qos, m.qos) as QoS;
      const retain = m.retainAsPublished && message.retain;
      if (qos === 0) {
        const link = session.link as Connection | undefined;
        if (link !== undefined && link.sendQoS0(message, retain, m.subscriptionIds, now) && link.outputCongested) this.congested.push(link);
      } else {
        session.enqueue(message, qos, retain, m.subscriptionIds);
        if (session.congested) this.congested.push(session);
      }
    }
    return matches.length > 0;
  }

  /** Sessions and connections found congested by the last deliveries; the publisher takes them (takeCongested). */
  private congested: Drainable[] = [];

  takeCongested(): Drainable[] {
    if (this.congested.length === 0) return NONE;
    const found = this.congested;
    this.congested = [];
    return found;
  }

  private readonly isOnline = (clientId: string): boolean => this.sessions.get(clientId)?.link !== undefined;

  private accepted(conn: Connection, present: boolean): void {
    this.observer.clientConnected?.(conn.listener);
    this.sys.connected();
    if (this.connections.size > this.stats.maxConnected) this.stats.maxConnected = this.connections.size;
    this.logger.info(
      {
        clientId: conn.clientId,
        username: conn.username,
        remoteAddress: conn.remoteAddress,
        listener: conn.listener,
        protocolVersion: conn.version,
        sessionExpiry: conn.session?.expiryInterval,
        sessionPresent: present,
      },
      'client connected',
    );
  }

  private closed(conn: Connection): void {
    this.open.delete(conn);
    const session = conn.session;
    if (session === undefined) return;
    if (this.connections.get(conn.clientId) === conn) this.connections.delete(conn.clientId);
    this.observer.clientDisconnected?.();
    this.logger.info({ clientId: conn.clientId, username: conn.username, reason: conn.closeReason ?? 'connection lost' }, 'client disconnected');
    const will = conn.will;
    if (will !== undefined && !this.closing) {
      if (conn.gracefulDisconnect) this.wills.discard(conn.clientId);
      else this.wills.lost(will, session.expiryInterval);
    }
    if (session.link === conn) this.sessions.disconnected(session, Date.now());
  }

  /**
   * After a passwd reload: clients whose user was removed or whose password changed must log in again
   * (mosquitto 2.0 does the same); v5 clients are told why (DISCONNECT 0x98).
   */
  usersReloaded(previous: Users | undefined): void {
    for (const conn of [...this.connections.values()]) {
      if (this.policy.stillValid(conn.username, previous)) continue;
      this.logger.warn({ clientId: conn.clientId, username: conn.username }, 'disconnecting a client: its user was removed from the password file or its password changed');
      conn.disconnect(RC.ADMINISTRATIVE_ACTION, 'credentials changed');
    }
  }

  /** Disconnect every client (v5: DISCONNECT 0x8B), keep their sessions and wills in the store, flush. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const conn of [...this.open]) {
      if (conn.connected) conn.disconnect(RC.SERVER_SHUTTING_DOWN, 'the broker is shutting down');
      else conn.destroy();
    }
    this.sys.stop();
    this.wills.close();
    this.sessions.close();
    await this.bus.close();
    await this.store.flush();
  }
}

/**
 * The largest packet a connected client may send: a PUBLISH whose payload is at message_size_limit plus the
 * longest topic, properties and header; anything longer cannot be a message we would accept, so the
 * connection closes before its bytes are buffered. Without a limit, MQTT's own maximum (256 MiB).
 */
export function maxPacketSize(messageSizeLimit: number): number {
  const MQTT_MAX = 268_435_460;
  if (messageSizeLimit <= 0) return MQTT_MAX;
  return Math.min(MQTT_MAX, messageSizeLimit + 5 + 2 + 65_535 + 2 + 4 + 65_536);
}
