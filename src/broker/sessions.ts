/**
 * Every session the broker holds, connected or not: created or resumed at CONNECT, ended by a clean start,
 * by its expiry interval running out (also across a restart: the time offline is counted from the stored
 * disconnect time) or at once when the interval is 0. A persistent session's record (interval,
 * subscriptions) is written to the store whenever it changes.
 */
import type { Logger } from '../log.js';
import { Session, type SessionOptions } from './session.js';
import type { Store, StoreSnapshot, StoredSubscription } from './store/store.js';
import type { SubscriptionIndex } from './subscriptions.js';

export const NEVER_EXPIRES = 0xffff_ffff;
/** setTimeout's longest delay; longer expiries re-arm. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface SessionRegistryOptions {
  store: Store;
  subscriptions: SubscriptionIndex;
  logger: Logger;
  maxQueued: number;
  /** A session ended: its client's pending will (if any) is due now (MQTT-3.1.3-9). */
  onSessionEnd(clientId: string): void;
}

export class SessionRegistry {
  private readonly sessions = new Map<string, Session>();
  private queueFullDrops = 0;

  /** Shared by every session; `maxQueued` is read through, so a changed limit applies to all at once. */
  private readonly sessionOptions: SessionOptions;

  constructor(private readonly options: SessionRegistryOptions) {
    this.sessionOptions = {
      store: options.store,
      get maxQueued() {
        return options.maxQueued;
      },
      onQueueFull: (id) => {
        this.queueFullDrops += 1;
        if (this.queueFullDrops === 1 || this.queueFullDrops % 1000 === 0) {
          this.options.logger.warn({ clientId: id, maxQueuedMessages: this.options.maxQueued, droppedSoFar: this.queueFullDrops }, 'session queue full (max_queued_messages): message dropped for this client');
        }
      },
    };
  }

  get size(): number {
    return this.sessions.size;
  }

  get(clientId: string): Session | undefined {
    return this.sessions.get(clientId);
  }

  /** CONNECT: resume the client's session, or start a new one. */
  open(clientId: string, cleanStart: boolean, expiryInterval: number, version: 3 | 4 | 5): { session: Session; present: boolean } {
    let session = this.sessions.get(clientId);
    if (session !== undefined && cleanStart) {
      this.end(session);
      session = undefined;
    }
    const present = session !== undefined;
    let wasPersistent = false;
    if (session === undefined) {
      session = this.create(clientId, expiryInterval);
    } else {
      clearTimeout(session.expiryTimer);
      session.expiryTimer = undefined;
      wasPersistent = session.persistent;
      if (wasPersistent && expiryInterval === 0) this.options.store.deleteSession(clientId);
      session.expiryInterval = expiryInterval;
    }
    session.protocolVersion = version;
    session.disconnectedAt = undefined;
    if (session.persistent) this.save(session, !wasPersistent);
    return { session, present };
  }

  private create(clientId: string, expiryInterval: number): Session {
    const session = new Session(clientId, expiryInterval, this.sessionOptions);
    this.sessions.set(clientId, session);
    return session;
  }

  /** Write the session record (and, when it just became persistent, everything it holds). */
  save(session: Session, withEntries = false): void {
    const store = this.options.store;
    const record = {
      clientId: session.clientId,
      expiryInterval: session.expiryInterval,
      protocolVersion: session.protocolVersion,
      subscriptions: [...session.subscriptions.values()],
      ...(session.disconnectedAt === undefined ? {} : { disconnectedAt: session.disconnectedAt }),
    };
    store.putSession(record);
    if (withEntries) for (const entry of session.entries()) store.putQueued(session.clientId, entry);
  }

  /** The connection ended: start the expiry clock (or end the session now). */
  disconnected(session: Session, now: number): void {
    session.detach(now);
    if (session.expiryInterval === 0) {
      this.end(session);
      return;
    }
    this.save(session);
    this.arm(session, session.expiryInterval * 1000);
  }

  private arm(session: Session, ms: number): void {
    if (session.expiryInterval === NEVER_EXPIRES) return;
    clearTimeout(session.expiryTimer);
    const step = Math.min(ms, MAX_TIMER_MS);
    session.expiryTimer = setTimeout(() => {
      if (ms > step) return this.arm(session, ms - step);
      this.options.logger.info({ clientId: session.clientId, expiryInterval: session.expiryInterval }, 'session expired');
      this.end(session);
    }, step);
    session.expiryTimer.unref();
  }

  /** End a session: its subscriptions, queue and stored records go. */
  end(session: Session): void {
    if (this.sessions.get(session.clientId) !== session) return;
    clearTimeout(session.expiryTimer);
    this.sessions.delete(session.clientId);
    for (const filter of session.subscriptions.keys()) this.options.subscriptions.remove(session.clientId, filter);
    session.subscriptions.clear();
    if (session.persistent) this.options.store.deleteSession(session.clientId);
    session.clearMessages();
    this.options.onSessionEnd(session.clientId);
  }

  addSubscription(session: Session, sub: StoredSubscription): boolean {
    const isNew = !session.subscriptions.has(sub.filter);
    session.subscriptions.set(sub.filter, sub);
    this.options.subscriptions.add(session.clientId, sub);
    return isNew;
  }

  removeSubscription(session: Session, filter: string): boolean {
    if (!session.subscriptions.delete(filter)) return false;
    this.options.subscriptions.remove(session.clientId, filter);
    return true;
  }

  /** At start-up: the stored sessions, minus those whose interval ran out while the broker was down. */
  restore(snapshot: StoreSnapshot['sessions'], now: number): { restored: number; expired: number } {
    let restored = 0;
    let expired = 0;
    for (const { session: stored, queue, incomingQoS2 } of snapshot) {
      // Connected when the broker stopped (a crash): its connection ended now.
      const since = stored.disconnectedAt ?? now;
      const leftMs = stored.expiryInterval === NEVER_EXPIRES ? Number.POSITIVE_INFINITY : stored.expiryInterval * 1000 - (now - since);
      if (stored.expiryInterval === 0 || leftMs <= 0) {
        this.options.store.deleteSession(stored.clientId);
        expired += 1;
        continue;
      }
      const session = this.create(stored.clientId, stored.expiryInterval);
      session.protocolVersion = stored.protocolVersion;
      session.disconnectedAt = since;
      for (const sub of stored.subscriptions) this.addSubscription(session, sub);
      session.restore(queue, incomingQoS2);
      if (stored.disconnectedAt === undefined) this.save(session);
      if (Number.isFinite(leftMs)) this.arm(session, leftMs);
      restored += 1;
    }
    return { restored, expired };
  }

  /** Clear every timer (broker close). */
  close(): void {
    for (const session of this.sessions.values()) clearTimeout(session.expiryTimer);
  }
}
