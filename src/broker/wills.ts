/**
 * Will messages (MQTT 5 section 3.1.2.5): kept in the store while their client is connected, published
 * when the connection ends without a normal DISCONNECT (or with reason 0x04), after the will delay
 * interval or when the session ends, whichever comes first; not published when the client reconnects to
 * its session within the delay. Wills found in the store at start-up belong to connections that the
 * previous broker process lost: they are published then.
 */
import type { Logger } from '../log.js';
import type { Message } from './message.js';
import type { Store, StoredWill } from './store/store.js';

export class Wills {
  private readonly pending = new Map<string, { will: StoredWill; timer: NodeJS.Timeout }>();

  constructor(
    private readonly store: Store,
    private readonly publish: (message: Message) => void,
    private readonly logger: Logger,
  ) {}

  /** CONNECT with a will: keep it until the connection ends. */
  connected(will: StoredWill): void {
    this.cancel(will.clientId);
    this.store.putWill(will);
  }

  /** A reconnect to the session within the delay: the pending will is not sent (MQTT-3.1.3-9). */
  cancel(clientId: string): void {
    const pending = this.pending.get(clientId);
    if (pending === undefined) return;
    clearTimeout(pending.timer);
    this.pending.delete(clientId);
    this.store.deleteWill(clientId);
  }

  /** Normal DISCONNECT: the will is dropped. */
  discard(clientId: string): void {
    this.store.deleteWill(clientId);
  }

  /** The connection ended without a normal DISCONNECT: publish after the delay (or at once). */
  lost(will: StoredWill, sessionExpiry: number): void {
    const delay = Math.min(will.delayInterval, sessionExpiry);
    if (delay <= 0) {
      this.fire(will);
      return;
    }
    const timer = setTimeout(() => {
      this.pending.delete(will.clientId);
      this.fire(will);
    }, delay * 1000);
    timer.unref();
    this.pending.set(will.clientId, { will, timer });
  }

  /** The session ended: a will still waiting for its delay is due now. */
  sessionEnded(clientId: string): void {
    const pending = this.pending.get(clientId);
    if (pending === undefined) return;
    clearTimeout(pending.timer);
    this.pending.delete(clientId);
    this.fire(pending.will);
  }

  /** Wills of connections lost with the previous broker process. */
  restore(wills: StoredWill[]): void {
    for (const will of wills) {
      this.logger.info({ clientId: will.clientId, topic: will.message.topic }, 'publishing the will of a client whose connection ended with the previous broker process');
      this.fire(will);
    }
  }

  /** Broker shutdown: pending wills stay in the store and are published at the next start. */
  close(): void {
    for (const { timer } of this.pending.values()) clearTimeout(timer);
    this.pending.clear();
  }

  private fire(will: StoredWill): void {
    this.store.deleteWill(will.clientId);
    const message = { ...will.message };
    if (message.expiresAt !== undefined) {
      // The will's message expiry interval counts from its publication (stored as an interval in ms).
      message.expiresAt = Date.now() + message.expiresAt;
    }
    this.publish(message);
  }
}
