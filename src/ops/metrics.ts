/**
 * The broker's Prometheus metrics. `BrokerMetrics` is itself the observer of the broker, the listeners, the
 * reloads and the certificates (`ServerObserver`): the composition root hands it to them as it is, so there
 * is one vocabulary for what happened, not one per side.
 *
 * Labels and privacy: every label value comes from a fixed set (refusal reasons, TLS versions, renewal
 * results, reload kinds, authorization actions) or from configuration (listener names such as
 * `mqtts:8883`, certificate lineage names). No metric carries a user name, client id, topic, payload or
 * remote address: those are unbounded and personal; per-client detail belongs in the logs. A value outside
 * its set is counted as `other`, never as a new label value.
 *
 * Cost on the hot path: the observer methods called per packet or per connection only add to plain numbers
 * (no prom-client call, no label hashing, no allocation). The table at the bottom says how each metric is
 * read from those numbers, once per scrape.
 *
 * Node's process metrics keep their standard names (`process_cpu_seconds_total`,
 * `nodejs_heap_size_total_bytes`, ...) so that existing dashboards find them; ours carry the prefix. Each
 * instance has its own Registry (never prom-client's global one).
 */
import type { Registry } from 'prom-client';
import type * as PromClientModule from 'prom-client';
import { REFUSAL_REASONS as BROKER_REFUSALS } from '../broker/context.js';
import { RELOAD_KINDS, type ServerObserver, type ReloadKind } from './observer.js';
import { CERTIFICATE_ORIGINS, type CertificateOrigin } from '../tls/source.js';
import { TLS_FAILURE_REASONS as TLS_FAILURES, type TlsFailureReason as TlsFailure } from '../tls/handshake-failures.js';

export const METRIC_PREFIX = 'mqtt_acme_broker_';

/** Why a connection attempt did not become an MQTT session: the broker's reasons and the listeners'. */
export const REFUSAL_REASONS = [...BROKER_REFUSALS, 'max_connections', 'tls_error', 'other'] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

export const RENEWAL_RESULTS = ['success', 'failure'] as const;
export const AUTHORIZATION_ACTIONS = ['publish', 'subscribe'] as const;
/** TLS versions as `TLSSocket.getProtocol()` names them. */
export const TLS_VERSIONS = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3', 'other'] as const;

/** A count the broker owns (retained messages, subscriptions), read once per scrape. */
export type CountSource = () => number | Promise<number>;

export interface BrokerMetricsOptions {
  /** Prefix of our own metrics; default `mqtt_acme_broker_`. */
  prefix?: string;
  /** Node's process metrics (CPU, memory, event loop lag, GC); default true. */
  defaultMetrics?: boolean;
}

/** A listener as the broker names it (`mqtts:8883`, `ws:9001`) or its bare port. */
const LISTENER = /^(?:[a-z]{1,8}:)?\d{1,5}$/;
/** A certificate lineage name as certbot writes it: a DNS name, never anything a client sends. */
const LINEAGE = /^[A-Za-z0-9*_](?:[A-Za-z0-9*_.-]{0,252})$/;

type Labels = Record<string, string>;
type Sample = readonly [Labels, number];

/** One metric: its name (without prefix), kind, help and how its samples are read at scrape time. */
interface MetricDefinition {
  name: string;
  kind: 'counter' | 'gauge';
  help: string;
  labels?: readonly string[];
  samples(): Iterable<Sample> | Promise<Iterable<Sample>>;
}

/** Counts keyed by one label, every key of `known` present from the start, anything else under `other`. */
class LabelledCounts<K extends string> {
  readonly #counts = new Map<string, number>();
  constructor(
    readonly label: string,
    known: readonly K[],
    private readonly accept: (key: string) => boolean = (key) => this.#counts.has(key),
  ) {
    for (const key of known) this.#counts.set(key, 0);
  }
  add(key: string, by = 1): void {
    const k = this.accept(key) ? key : 'other';
    this.#counts.set(k, (this.#counts.get(k) ?? 0) + by);
  }
  ensure(key: string): void {
    if (this.accept(key) && !this.#counts.has(key)) this.#counts.set(key, 0);
  }
  *samples(): Iterable<Sample> {
    for (const [key, n] of this.#counts) yield [{ [this.label]: key }, n];
  }
}

export class BrokerMetrics implements ServerObserver {
  /** Built at the first scrape: prom-client is loaded only then, so a broker nobody scrapes does not carry it. */
  #registry: Promise<Registry> | undefined;
  readonly #prefix: string;
  readonly #defaultMetrics: boolean;

  #connected = 0;
  readonly #accepted = new LabelledCounts('listener', [], (l) => LISTENER.test(l));
  readonly #refused = new LabelledCounts('reason', REFUSAL_REASONS);
  #authFailures = 0;
  readonly #denied = new LabelledCounts('action', AUTHORIZATION_ACTIONS);
  #messagesIn = 0;
  #messagesOut = 0;
  #bytesIn = 0;
  #bytesOut = 0;
  /** Handshakes by `listener` and `version`, keyed `listener\0version`. */
  readonly #handshakes = new Map<string, number>();
  readonly #tlsFailures = new Map<string, number>();
  readonly #renewals = new LabelledCounts('result', RENEWAL_RESULTS);
  readonly #reloadFailures = new LabelledCounts('what', RELOAD_KINDS);
  readonly #lastReload = new Map<ReloadKind, number>();
  readonly #notAfter = new Map<string, number>();
  readonly #origin = new Map<string, CertificateOrigin>();
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

  /** The Prometheus text exposition of every metric, with its content type. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    const registry = await this.registry();
    return { contentType: registry.contentType, body: await registry.metrics() };
  }

  // ---- counts the broker owns, read at each scrape ------------------------------------------------------

  observeRetainedMessages(source: CountSource | undefined): void {
    this.#retainedSource = source;
  }

  observeSubscriptions(source: CountSource | undefined): void {
    this.#subscriptionsSource = source;
  }

  // ---- listeners and connections ------------------------------------------------------------------------

  /** A listener is up: it shows in `connections_accepted_total` at 0 before its first client. */
  listenerStarted(listener: string | number): void {
    this.#accepted.ensure(String(listener));
  }

  clientConnected(listener: string | number): void {
    this.#connected += 1;
    this.#accepted.add(String(listener));
  }

  clientDisconnected(): void {
    if (this.#connected > 0) this.#connected -= 1;
  }

  connectionRefused(reason: RefusalReason): void {
    this.#refused.add(reason);
  }

  connectionDropped(): void {
    this.#refused.add('max_connections');
  }

  authFailed(): void {
    this.#authFailures += 1;
  }

  publishDenied(): void {
    this.#denied.add('publish');
  }

  subscribeDenied(): void {
    this.#denied.add('subscribe');
  }

  tlsHandshake(listener: string, version: string): void {
    const key = `${LISTENER.test(listener) ? listener : 'other'}\0${(TLS_VERSIONS as readonly string[]).includes(version) ? version : 'other'}`;
    this.#handshakes.set(key, (this.#handshakes.get(key) ?? 0) + 1);
  }

  tlsError(listener: string, reason: TlsFailure = 'other'): void {
    this.#refused.add('tls_error');
    const key = `${LISTENER.test(listener) ? listener : 'other'}\0${TLS_FAILURES.includes(reason) ? reason : 'other'}`;
    this.#tlsFailures.set(key, (this.#tlsFailures.get(key) ?? 0) + 1);
  }

  // ---- messages (per packet) ----------------------------------------------------------------------------

  messageIn(payloadBytes: number): void {
    this.#messagesIn += 1;
    this.#bytesIn += payloadBytes;
  }

  messageOut(payloadBytes: number): void {
    this.#messagesOut += 1;
    this.#bytesOut += payloadBytes;
  }

  // ---- certificates and reloads (rare) ------------------------------------------------------------------

  /**
   * The certificate of `lineage` (certbot's name: `example.com` for `*.example.com`) is now served, until
   * `notAfter`; `origin` says whether it is the CA's or a stand-in (staging, expired, self-signed, files).
   */
  certificateServed(lineage: string, notAfter: Date, origin: CertificateOrigin = 'ca'): void {
    if (!LINEAGE.test(lineage)) throw new TypeError(`certificate lineage ${JSON.stringify(lineage)} is not a DNS name`);
    this.#notAfter.set(lineage, notAfter.getTime() / 1000);
    this.#origin.set(lineage, CERTIFICATE_ORIGINS.includes(origin) ? origin : 'self_signed');
  }

  renewalSucceeded(): void {
    this.#renewals.add('success');
  }

  renewalFailed(): void {
    this.#renewals.add('failure');
  }

  reloaded(what: ReloadKind, at: Date = new Date()): void {
    if (RELOAD_KINDS.includes(what)) this.#lastReload.set(what, at.getTime() / 1000);
  }

  reloadFailed(what: ReloadKind): void {
    if (RELOAD_KINDS.includes(what)) this.#reloadFailures.add(what);
  }

  // ---- the table ----------------------------------------------------------------------------------------

  #definitions(): MetricDefinition[] {
    const one = (n: number): Sample[] => [[{}, n]];
    const pairs = (map: Map<string, number>, a: string, b: string): Sample[] =>
      [...map].map(([key, n]) => {
        const [x = '', y = ''] = key.split('\0');
        return [{ [a]: x, [b]: y }, n] as const;
      });
    return [
      { name: 'connected_clients', kind: 'gauge', help: 'MQTT clients connected now (CONNACK accepted, not yet disconnected).', samples: () => one(this.#connected) },
      { name: 'connections_accepted_total', kind: 'counter', labels: ['listener'], help: 'MQTT connections accepted (CONNACK 0x00), by listener (`mqtts:8883`).', samples: () => this.#accepted.samples() },
      { name: 'connections_refused_total', kind: 'counter', labels: ['reason'], help: `Connection attempts that did not become an MQTT session, by reason (${REFUSAL_REASONS.join(', ')}).`, samples: () => this.#refused.samples() },
      { name: 'authentication_failures_total', kind: 'counter', help: 'CONNECTs with an unknown user or a wrong password.', samples: () => one(this.#authFailures) },
      { name: 'authorization_denials_total', kind: 'counter', labels: ['action'], help: 'PUBLISH or SUBSCRIBE refused by the ACL, by action.', samples: () => this.#denied.samples() },
      { name: 'messages_received_total', kind: 'counter', help: 'PUBLISH packets received from clients.', samples: () => one(this.#messagesIn) },
      { name: 'messages_sent_total', kind: 'counter', help: 'PUBLISH packets delivered to clients.', samples: () => one(this.#messagesOut) },
      { name: 'received_payload_bytes_total', kind: 'counter', help: 'Payload bytes of the PUBLISH packets received from clients.', samples: () => one(this.#bytesIn) },
      { name: 'sent_payload_bytes_total', kind: 'counter', help: 'Payload bytes of the PUBLISH packets delivered to clients.', samples: () => one(this.#bytesOut) },
      { name: 'retained_messages', kind: 'gauge', help: 'Retained messages stored by the broker (NaN when the count could not be read).', samples: async () => one(await readSource(this.#retainedSource)) },
      { name: 'subscriptions', kind: 'gauge', help: 'Subscriptions held by the broker (NaN when the count could not be read).', samples: async () => one(await readSource(this.#subscriptionsSource)) },
      { name: 'tls_handshakes_total', kind: 'counter', labels: ['listener', 'version'], help: 'Completed TLS handshakes by listener and negotiated version (TLSv1 ... TLSv1.3).', samples: () => pairs(this.#handshakes, 'listener', 'version') },
      { name: 'tls_handshake_failures_total', kind: 'counter', labels: ['listener', 'reason'], help: `Failed TLS handshakes by listener and reason (${TLS_FAILURES.join(', ')}).`, samples: () => pairs(this.#tlsFailures, 'listener', 'reason') },
      { name: 'certificate_not_after_timestamp_seconds', kind: 'gauge', labels: ['lineage'], help: 'Expiry (notAfter) of the certificate being served, unix seconds, by certbot lineage name.', samples: () => [...this.#notAfter].map(([lineage, s]) => [{ lineage }, s] as const) },
      { name: 'certificate_origin', kind: 'gauge', labels: ['lineage', 'origin'], help: `1 for where the served certificate of a lineage comes from (${CERTIFICATE_ORIGINS.join(', ')}); anything but ca is a stand-in to alert on.`, samples: () => [...this.#origin].map(([lineage, origin]) => [{ lineage, origin }, 1] as const) },
      { name: 'certificate_renewals_total', kind: 'counter', labels: ['result'], help: 'Certificate issuance or renewal attempts, by result (success, failure).', samples: () => this.#renewals.samples() },
      { name: 'last_reload_timestamp_seconds', kind: 'gauge', labels: ['what'], help: `When ${RELOAD_KINDS.join(', ')} was last loaded anew without a restart, unix seconds.`, samples: () => [...this.#lastReload].map(([what, s]) => [{ what }, s] as const) },
      { name: 'reload_failures_total', kind: 'counter', labels: ['what'], help: `Reloads of ${RELOAD_KINDS.join(', ')} that failed (the previous one stays in use).`, samples: () => this.#reloadFailures.samples() },
    ];
  }

  #build(prom: typeof PromClientModule): Registry {
    const registry = new prom.Registry();
    if (this.#defaultMetrics) prom.collectDefaultMetrics({ register: registry });
    for (const def of this.#definitions()) {
      const Kind = def.kind === 'counter' ? prom.Counter : prom.Gauge;
      new Kind({
        name: `${this.#prefix}${def.name}`,
        help: def.help,
        labelNames: def.labels ?? [],
        registers: [registry],
        // prom-client calls collect with the metric as `this`; counters are rebuilt from our totals.
        async collect(this: PromClientModule.Counter | PromClientModule.Gauge) {
          const samples = await def.samples();
          this.reset();
          for (const [labels, n] of samples) {
            if (this instanceof prom.Counter) this.inc(labels, n);
            else this.set(labels, n);
          }
        },
      });
    }
    return registry;
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
