/**
 * What the packet handlers and connections share: the broker's parts, built once by broker.ts. An
 * interface, so that handlers depend on the parts they use and not on how the broker assembles them.
 */
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { AccessPolicy } from '../auth/policy.js';
import type { Message } from './message.js';
import type { Store } from './store/store.js';
import type { SessionRegistry } from './sessions.js';
import type { SubscriptionIndex } from './subscriptions.js';
import type { RetainedMessages } from './retained.js';
import type { WriteScheduler } from './outbox.js';
import type { BrokerStats } from './stats.js';
import type { Connection } from './connection.js';

/** Something a publisher can wait for: a congested session or connection calls `fn` once it drained (or went away). */
export interface Drainable {
  onDrained(fn: () => void): void;
}

/** Why the broker refused a connection; also label values of the refused-connections metric. */
export const REFUSAL_REASONS = [
  'anonymous_refused',
  'bad_credentials',
  'no_password_file',
  'identifier_rejected',
  'keepalive_too_long',
  'unacceptable_protocol_version',
  'bad_authentication_method',
  'server_shutting_down',
  'protocol',
  'timeout',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** What the broker reports to metrics; every method is called on the hot path, so keep them cheap. */
export interface BrokerObserver {
  clientConnected?(listener: string): void;
  clientDisconnected?(): void;
  connectionRefused?(reason: RefusalReason): void;
  authFailed?(): void;
  messageIn?(bytes: number): void;
  messageOut?(bytes: number): void;
  publishDenied?(): void;
  subscribeDenied?(): void;
}

export interface BrokerContext {
  readonly config: Config;
  readonly logger: Logger;
  readonly policy: AccessPolicy;
  readonly store: Store;
  readonly sessions: SessionRegistry;
  readonly subscriptions: SubscriptionIndex;
  readonly retained: RetainedMessages;
  readonly scheduler: WriteScheduler;
  readonly stats: BrokerStats;
  readonly observer: BrokerObserver;
  /** Connected clients by client id. */
  readonly connections: Map<string, Connection>;
  /** True once close() started: new CONNECTs are refused. */
  readonly closing: boolean;
  /**
   * Publish a message from a client (or the broker): retained store, then every matching subscriber.
   * Calls `done(matched)` once the message has been handed to every subscriber's session (matched =
   * whether any subscription matched); the caller waits for `store.flush()` before acknowledging.
   */
  publish(message: Message, done?: (matched: boolean) => void): void;
  /**
   * What the publishes since the last call found congested: connected sessions whose queues went past
   * max_queued_messages, connections with more than a few MiB unwritten. The publisher waits for them.
   */
  takeCongested(): Drainable[];
}
