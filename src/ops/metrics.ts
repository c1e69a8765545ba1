/**
 * The broker's Prometheus metrics, behind methods named for what happened (`clientConnected(listener)`,
 * `messageIn(bytes)`, `renewalFailed()`...), so the broker never touches prom-client.
 *
 * Labels and privacy: every label value comes from a fixed set declared below (refusal reasons, renewal
 * results, reload kinds, authorization actions) or from configuration (listener names such as `mqtts:8883`,
 * certificate lineage names). No metric ever carries a username, client id, topic, payload or remote
 * address: those are unbounded (one time series each would grow without limit) and personal. Per-client
 * detail belongs in the logs, not here. A value outside its set is counted as `other`, never as a new label
 * value.
 *
 * Cost on the hot path: the methods called per packet or per connection only add to plain numbers held by
 * this object (no prom-client call, no label hashing, no allocation). prom-client's metrics read those
 * numbers in their `collect` callbacks, i.e. once per scrape.
 *
 * Each instance has its own Registry (never prom-client's global one), so tests may build as many as they
 * like and two brokers in one process do not collide.
 */
import type { Registry } from 'prom-client';
import type * as PromClientModule from 'prom-client';

type PromClient = typeof PromClientModule;

export const METRIC_PREFIX = 'mqtt_acme_broker_';

/** Why a connection attempt did not end in an accepted MQTT session. */
export const REFUSAL_REASONS = [
  /** CONNACK 0x01: protocol level not spoken (e.g. MQTT 5). */
  'unacceptable_protocol_version',
  /** CONNACK 0x02: client id refused (e.g. empty id with clean session off). */
  'identifier_rejected',
  /** CONNACK 0x03: the broker could not take the session (e.g. persistence unavailable). */
  'server_unavailable',
  /** CONNACK 0x04: unknown user or wrong password. */
  'bad_credentials',
  /** CONNACK 0x05: not allowed to connect, for another reason than the three below. */
  'not_authorized',
  /** CONNACK 0x05: no username while `allow_anonymous false`. */
  'anonymous_refused',
  /** CONNACK 0x05: a username was given but no password_file is configured. */
  'no_password_file',
  /** CONNACK refused: the keepalive asked for exceeds `max_keepalive`. */
  'keepalive_too_long',
  /** v5 CONNACK 0x8C: an authentication method was given (enhanced authentication is not offered). */
  'bad_authentication_method',
  /** The broker is shutting down (v5 CONNACK 0x8B, v3 0x03). */
  'server_shutting_down',
  /** `max_connections` reached. */
  'max_connections',
  /** Malformed packet, first packet not CONNECT, too many packets before CONNACK, oversized message. */
  'protocol',
  /** TLS handshake failed. */
  'tls_error',
  /** No CONNECT (or no finished handshake) in time. */
  'timeout',
  /** Anything else. */
  'other',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

export const RENEWAL_RESULTS = ['success', 'failure'] as const;
export type RenewalResult = (typeof RENEWAL_RESULTS)[number];

/** What the broker reloads without a restart. */
export const RELOAD_KINDS = ['passwd', 'acl', 'certificate'] as const;
export type ReloadKind = (typeof RELOAD_KINDS)[number];

export const AUTHORIZATION_ACTIONS = ['publish', 'subscribe'] as const;
export type AuthorizationAction = (typeof AUTHORIZATION_ACTIONS)[number];

/** A count the broker owns (retained messages, subscriptions), read once per scrape. */
export type CountSource = () => number | Promise<number>;

export interface BrokerMetricsOptions {
  /** Metric name prefix; default `mqtt_acme_broker_`. */
  prefix?: string;
  /** Node process metrics (CPU, memory, event loop lag, GC...) under the same prefix; default true. */
  defaultMetrics?: boolean;
}

/** A listener as the broker names it (`mqtts:8883`, `ws:9001`) or its bare port. */
const LISTENER = /^(?:[a-z]{1,8}:)?\d{1,5}$/;
/** Where connections on a listener that fits neither are counted (a bug in the caller, not a new series). */
const OTHER_LISTENER = 'other';

/** A certificate lineage name as certbot writes it: a DNS name, never anything a client sends. */
const LINEAGE = /^[A-Za-z0-9*_](?:[A-Za-z0-9*_.-]{0,252})$/;

function isIndex<T extends string>(record: Record<T, number>, key: string): key is T {
  return Object.prototype.hasOwnProperty.call(record, key);
}

function zeroes<T extends string>(keys: readonly T[]): Record<T, number> {
  const record = Object.create(null) as Record<T, number>;
  for (const key of keys) record[key] = 0;
  return record;
}

export class BrokerMetrics {
  /**
   * This instance's own registry, built at the first scrape: prom-client is loaded only then (about 2 MiB
   * of heap and its code), so a broker nobody scrapes does not carry it. The counts below are kept from
   * the start either way, so the first scrape shows everything since the start.
   */
  #registry: Promise<Registry> | undefined;
  readonly #prefix: string;
  readonly #defaultMetrics: boolean;

  // Hot-path state: plain numbers, read by the collect callbacks at scrape time.
  #connected = 0;
  readonly #accepted = new Map<string | number, number>();
  readonly #refused = zeroes(REFUSAL_REASONS);
  #authFailures = 0;
  readonly #denied = zeroes(AUTHORIZATION_ACTIONS);
  #messagesIn = 0;
  #messagesOut = 0;
  #bytesIn = 0;
  #bytesOut = 0;

  // Rare events.
  readonly #renewals = zeroes(RENEWAL_RESULTS);
  readonly #reloadFailures = zeroes(RELOAD_KINDS);
  readonly #lastReload = new Map<ReloadKind, number>();
  readonly #notAfter = new Map<string, number>();

  #retainedSource: CountSource | undefined;
  #subscriptionsSource: CountSource | undefined;

  constructor(options: BrokerMetricsOptions = {}) {
    this.#prefix = options.prefix ?? METRIC_PREFIX;
    this.#defaultMetrics = options.defaultMetrics ?? true;
  }

  /** The registry `/metrics` renders (loading prom-client the first time). */
  registry(): Promise<Registry> {
    return (this.#registry ??= import('prom-client').then((prom) => this.#build(prom)));
  }

  #build(prom: PromClient): Registry {
    const { Counter, Gauge, Registry: PromRegistry, collectDefaultMetrics } = prom;
    const prefix = this.#prefix;
    const registry = new PromRegistry();
    if (this.#defaultMetrics) collectDefaultMetrics({ register: registry, prefix });

    // `self` because prom-client calls `collect` with the metric as `this`.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    const registers = [registry];

    new Gauge({
      name: `${prefix}connected_clients`,
      help: 'MQTT clients connected now (CONNACK accepted, not yet disconnected).',
      registers,
      collect() {
        this.set(self.#connected);
      },
    });
    new Counter({
      name: `${prefix}connections_accepted_total`,
      help: 'MQTT connections accepted (CONNACK 0x00), by listener (`mqtts:8883`, or its port).',
      labelNames: ['listener'],
      registers,
      collect() {
        this.reset();
        for (const [listener, count] of self.#accepted) this.inc({ listener: String(listener) }, count);
      },
    });
    new Counter({
      name: `${prefix}connections_refused_total`,
      help: `Connection attempts that did not become an MQTT session, by reason (${REFUSAL_REASONS.join(', ')}).`,
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        for (const reason of REFUSAL_REASONS) this.inc({ reason }, self.#refused[reason]);
      },
    });
    new Counter({
      name: `${prefix}authentication_failures_total`,
      help: 'CONNECTs with an unknown user or a wrong password.',
      registers,
      collect() {
        this.reset();
        this.inc(self.#authFailures);
      },
    });
    new Counter({
      name: `${prefix}authorization_denials_total`,
      help: 'PUBLISH or SUBSCRIBE refused by the ACL, by action.',
      labelNames: ['action'],
      registers,
      collect() {
        this.reset();
        for (const action of AUTHORIZATION_ACTIONS) this.inc({ action }, self.#denied[action]);
      },
    });
    new Counter({
      name: `${prefix}messages_received_total`,
      help: 'PUBLISH packets received from clients.',
      registers,
      collect() {
        this.reset();
        this.inc(self.#messagesIn);
      },
    });
    new Counter({
      name: `${prefix}messages_sent_total`,
      help: 'PUBLISH packets delivered to clients.',
      registers,
      collect() {
        this.reset();
        this.inc(self.#messagesOut);
      },
    });
    new Counter({
      name: `${prefix}received_payload_bytes_total`,
      help: 'Payload bytes of the PUBLISH packets received from clients.',
      registers,
      collect() {
        this.reset();
        this.inc(self.#bytesIn);
      },
    });
    new Counter({
      name: `${prefix}sent_payload_bytes_total`,
      help: 'Payload bytes of the PUBLISH packets delivered to clients.',
      registers,
      collect() {
        this.reset();
        this.inc(self.#bytesOut);
      },
    });
    new Gauge({
      name: `${prefix}retained_messages`,
      help: 'Retained messages stored by the broker (NaN when the count could not be read).',
      registers,
      async collect() {
        this.set(await readSource(self.#retainedSource));
      },
    });
    new Gauge({
      name: `${prefix}subscriptions`,
      help: 'Subscriptions held by the broker (NaN when the count could not be read).',
      registers,
      async collect() {
        this.set(await readSource(self.#subscriptionsSource));
      },
    });
    new Gauge({
      name: `${prefix}certificate_not_after_timestamp_seconds`,
      help: 'Expiry (notAfter) of the certificate being served, unix seconds, by certbot lineage name.',
      labelNames: ['lineage'],
      registers,
      collect() {
        this.reset();
        for (const [lineage, seconds] of self.#notAfter) this.set({ lineage }, seconds);
      },
    });
    new Counter({
      name: `${prefix}certificate_renewals_total`,
      help: 'Certificate issuance or renewal attempts, by result (success, failure).',
      labelNames: ['result'],
      registers,
      collect() {
        this.reset();
        for (const result of RENEWAL_RESULTS) this.inc({ result }, self.#renewals[result]);
      },
    });
    new Gauge({
      name: `${prefix}last_reload_timestamp_seconds`,
      help: 'When passwd, acl or certificate was last loaded anew without a restart, unix seconds.',
      labelNames: ['what'],
      registers,
      collect() {
        this.reset();
        for (const [what, seconds] of self.#lastReload) this.set({ what }, seconds);
      },
    });
    new Counter({
      name: `${prefix}reload_failures_total`,
      help: 'Reloads of passwd, acl or certificate that failed (the previous one stays in use).',
      labelNames: ['what'],
      registers,
      collect() {
        this.reset();
        for (const what of RELOAD_KINDS) this.inc({ what }, self.#reloadFailures[what]);
      },
    });
    return registry;
  }

  /** The Prometheus text exposition of every metric, with its content type. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    const registry = await this.registry();
    return { contentType: registry.contentType, body: await registry.metrics() };
  }

  // ---- sources the broker provides --------------------------------------------------------------------

  /** The callback that counts retained messages; called once per scrape. */
  observeRetainedMessages(source: CountSource | undefined): void {
    this.#retainedSource = source;
  }

  /** The callback that counts subscriptions; called once per scrape. */
  observeSubscriptions(source: CountSource | undefined): void {
    this.#subscriptionsSource = source;
  }

  // ---- connections (per connection) -------------------------------------------------------------------

  /**
   * A listener is up (`mqtts:8883` as the broker names it, or its port): it shows in
   * `connections_accepted_total` at 0 before its first client.
   */
  listenerStarted(listener: string | number): void {
    const key = this.#listenerKey(listener);
    if (!this.#accepted.has(key)) this.#accepted.set(key, 0);
  }

  /** A CONNECT was accepted on `listener` (`mqtts:8883` as the broker names it, or its port). */
  clientConnected(listener: string | number): void {
    this.#connected += 1;
    const count = this.#accepted.get(listener);
    if (count !== undefined) this.#accepted.set(listener, count + 1);
    else {
      // First connection on this listener: check the name once, then it is a plain map hit.
      const key = this.#listenerKey(listener);
      this.#accepted.set(key, (this.#accepted.get(key) ?? 0) + 1);
    }
  }

  #listenerKey(listener: string | number): string | number {
    const valid =
      typeof listener === 'number'
        ? Number.isInteger(listener) && listener >= 0 && listener <= 65535
        : LISTENER.test(listener);
    return valid ? listener : OTHER_LISTENER;
  }

  /** A client that had been accepted went away (any cause). */
  clientDisconnected(): void {
    if (this.#connected > 0) this.#connected -= 1;
  }

  connectionRefused(reason: RefusalReason): void {
    if (isIndex(this.#refused, reason)) this.#refused[reason] += 1;
    else this.#refused.other += 1;
  }

  /** Unknown user or wrong password (count the refusal too, with `connectionRefused('bad_credentials')`). */
  authenticationFailed(): void {
    this.#authFailures += 1;
  }

  authorizationDenied(action: AuthorizationAction): void {
    if (isIndex(this.#denied, action)) this.#denied[action] += 1;
  }

  // ---- messages (per packet) ---------------------------------------------------------------------------

  /** A PUBLISH came in from a client, with `payloadBytes` of payload. */
  messageIn(payloadBytes: number): void {
    this.#messagesIn += 1;
    this.#bytesIn += payloadBytes;
  }

  /** A PUBLISH went out to a client, with `payloadBytes` of payload. */
  messageOut(payloadBytes: number): void {
    this.#messagesOut += 1;
    this.#bytesOut += payloadBytes;
  }

  // ---- certificates and reloads (rare) -----------------------------------------------------------------

  /**
   * The certificate of `lineage` (certbot's name: `example.com` for `*.example.com`, or e.g. `self-signed`)
   * is now served; it expires at `notAfter`.
   */
  certificateServed(lineage: string, notAfter: Date): void {
    if (!LINEAGE.test(lineage)) {
      throw new TypeError(`certificate lineage ${JSON.stringify(lineage)} is not a DNS name`);
    }
    this.#notAfter.set(lineage, notAfter.getTime() / 1000);
  }

  renewalSucceeded(): void {
    this.#renewals.success += 1;
  }

  renewalFailed(): void {
    this.#renewals.failure += 1;
  }

  /** `what` was loaded anew (file changed, certificate renewed); `at` defaults to now. */
  reloaded(what: ReloadKind, at: Date = new Date()): void {
    if (isIndex(this.#reloadFailures, what)) this.#lastReload.set(what, at.getTime() / 1000);
  }

  reloadFailed(what: ReloadKind): void {
    if (isIndex(this.#reloadFailures, what)) this.#reloadFailures[what] += 1;
  }
}

async function readSource(source: CountSource | undefined): Promise<number> {
  if (source === undefined) return 0;
  try {
    const value = await source();
    return Number.isFinite(value) ? value : Number.NaN;
  } catch {
    // A failing count must not fail the whole scrape; NaN says "unknown" without inventing a number.
    return Number.NaN;
  }
}
