/**
 * CertificateManager: the ACME lineage as a certificate source (see tls/source.ts).
 *
 * start(): read the lineage from the volume. Valid for the configuration -> serve it at once and make no ACME
 * request. Due for renewal -> serve it and renew. Otherwise obtain one, serving meanwhile the best stand-in
 * there is (a stored lineage for these names from another CA or expired, else a self-signed certificate;
 * nothing with selfSignedWhileWaiting false), retrying quickly at first. Then check on a jittered timer,
 * renew when a third of the lifetime is left, retry failures with capped exponential backoff, and keep
 * serving the current certificate through failures.
 *
 * Issuance runs in a child process (issue-runner.ts); the child writes the lineage and the manager reads it
 * back from the store.
 *
 * Events (listeners that throw are logged, never fatal):
 *   'certificate' (ServedCertificate)  serve this from now on (stand-ins have fromCa: false and their origin)
 *   'error'       (Error)              an issuance failed (only when someone listens); the current one stays
 *   'issued'      (IssuedEvent)        an issuance succeeded
 *   'issue-failed'(FailedEvent)        an issuance failed; a retry is scheduled
 *   'scheduled'   (ScheduledEvent)     the next check or retry time
 *   'issuing'     ({ pid })            an issuing child started
 *
 * Construct it only when `acme.domains` is non-empty (the lineage name comes from the first domain).
 */
import { EventEmitter } from 'node:events';
import type { AcmeConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { AcmeTuning, PropagationTuning } from './acme.js';
import { IssueRunner } from './issue-runner.js';
import { backoffDelay, nextCheckDelay, resolvePolicy, type RenewalPolicy } from './renewal.js';
import { assessLineage } from './lineage-assessment.js';
import { CertificateStore, type StoredLineage } from './lineage-store.js';
import { lineageNameFor } from '../x509/dns-name.js';
import type { CertificateOrigin, CertificateSource } from '../tls/source.js';
import { selfSignedStandIn, servedFromLineage, storedStandInOrigin, type ServedCertificate } from './stand-in.js';
import { systemClock, type Clock } from './clock.js';

export interface IssuedEvent {
  lineage: string;
  serial: string;
  notAfter: Date;
  durationMs: number;
  /** true when a CA certificate was already being served (a renewal), false for the first one. */
  renewal: boolean;
}

export interface FailedEvent {
  error: Error;
  /** Consecutive failures so far. */
  failures: number;
  retryInMs: number;
}

export interface ScheduledEvent {
  at: Date;
  inMs: number;
  reason: 'renewal-check' | 'retry';
}

export interface ManagerStats {
  /** Readiness: a certificate from the CA is being served. */
  hasCaCertificate: boolean;
  /** Expiry and serial of the served CA certificate (undefined while none). */
  notAfter: Date | undefined;
  serial: string | undefined;
  /** Issuances that succeeded / failed since start (the first issuance counts too). */
  renewalsSucceeded: number;
  renewalsFailed: number;
  /** Failures since the last success (drives the backoff). */
  consecutiveFailures: number;
  lastError: string | undefined;
  /** When the next check or retry runs. */
  nextCheckAt: Date | undefined;
  /** An issuing child is running. */
  issuing: boolean;
}

export interface CertificateManagerOptions {
  /** The compiled issue-process script; default: issue-process.js next to this module (tests: dist/certs/issue-process.js). */
  issueScript?: string;
  policy?: Partial<RenewalPolicy>;
  propagation?: PropagationTuning;
  acme?: AcmeTuning;
  cloudflare?: { maxRetries?: number; timeoutMs?: number };
  /** Extra CA (PEM) to trust for the ACME server's HTTPS (a private CA; pebble in tests). NODE_EXTRA_CA_CERTS also works. */
  trustedCa?: string;
  /** Where the child's stdout/stderr go; default: inherited (the same stdout as the broker). */
  childOutput?: NodeJS.WritableStream;
  /** Environment of the child; default process.env without CLOUDFLARE_* (the SDK would read those itself). */
  childEnv?: NodeJS.ProcessEnv;
  /** Log level of the child; default the logger's. */
  childLogLevel?: string;
  /** Kill an issuing child that runs longer than this; default 30 min. */
  issueTimeoutMs?: number;
  /** stop(): wait this long after SIGTERM (the child removes its TXT records) before SIGKILL; default 5 s. */
  stopTimeoutMs?: number;
  clock?: Clock;
  random?: () => number;
}

export class CertificateManager extends EventEmitter implements CertificateSource {
  private readonly store: CertificateStore;
  private readonly lineage: string;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly policy: RenewalPolicy;
  private readonly log: Logger;
  private served: ServedCertificate | undefined;
  private timer: unknown;
  private nextAt: Date | undefined;
  private readonly runner: IssueRunner;
  private issuing: Promise<void> | undefined;
  private stopped = false;
  private started = false;
  private succeeded = 0;
  private failed = 0;
  private failures = 0;
  private lastError: string | undefined;

  constructor(
    private readonly config: AcmeConfig,
    logger: Logger,
    private readonly options: CertificateManagerOptions = {},
  ) {
    super();
    this.log = logger.child({ component: 'certificates' });
    this.lineage = lineageNameFor(config.domains);
    this.store = new CertificateStore(config.letsencryptDir, { logger: this.log });
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.policy = resolvePolicy(options.policy);
    this.runner = new IssueRunner(
      {
        ...(options.issueScript === undefined ? {} : { script: options.issueScript }),
        ...(options.childOutput === undefined ? {} : { output: options.childOutput }),
        ...(options.childEnv === undefined ? {} : { env: options.childEnv }),
        ...(options.issueTimeoutMs === undefined ? {} : { timeoutMs: options.issueTimeoutMs }),
        ...(options.stopTimeoutMs === undefined ? {} : { stopTimeoutMs: options.stopTimeoutMs }),
      },
      this.log,
    );
  }

  get name(): string {
    return `acme ${this.lineage}`;
  }

  /** The certificate to serve now: the CA's, or a stand-in while there is none (undefined until one exists). */
  current(): ServedCertificate | undefined {
    return this.served;
  }

  /** CertificateSource: stop(). */
  close(): Promise<void> {
    return this.stop();
  }

  /** Readiness: a certificate from the CA is being served. */
  get hasCaCertificate(): boolean {
    return this.served?.fromCa === true;
  }

  get lineageName(): string {
    return this.lineage;
  }

  /** pid of a running issuing child (tests, diagnostics). */
  get issuingPid(): number | undefined {
    return this.runner.pid;
  }

  stats(): ManagerStats {
    return {
      hasCaCertificate: this.hasCaCertificate,
      notAfter: this.served?.fromCa ? this.served.notAfter : undefined,
      serial: this.served?.fromCa ? this.served.serial : undefined,
      renewalsSucceeded: this.succeeded,
      renewalsFailed: this.failed,
      consecutiveFailures: this.failures,
      lastError: this.lastError,
      nextCheckAt: this.nextAt,
      issuing: this.issuing !== undefined,
    };
  }

  /**
   * Load the stored certificate and serve it if valid (no ACME request); otherwise start obtaining one in the
   * background. Resolves once the initial state is known (it does not wait for an issuance: see
   * whenCaCertificate()).
   */
  async start(): Promise<void> {
    if (this.started) throw new Error('CertificateManager already started');
    this.started = true;
    const lineage = await this.readStore();
    const now = this.clock.now();
    if (lineage) {
      const a = assessLineage(lineage, this.config, now, this.policy);
      if (a.valid) {
        this.log.info({ lineage: this.lineage, notAfter: lineage.notAfter.toISOString(), names: lineage.names, server: lineage.server }, 'serving the stored certificate; no ACME request needed');
        this.serve(lineage, 'ca');
        this.scheduleCheck();
        return;
      }
      if (a.servable) {
        this.log.info({ lineage: this.lineage, notAfter: lineage.notAfter.toISOString() }, 'serving the stored certificate; its renewal is due');
        this.serve(lineage, 'ca');
      } else {
        this.log.info({ lineage: this.lineage, reasons: a.reasons }, 'stored certificate not usable for this configuration; obtaining a new one');
      }
    } else {
      this.log.info({ lineage: this.lineage, dir: this.config.letsencryptDir }, 'no stored certificate; obtaining one');
    }
    if (!this.served && this.config.selfSignedWhileWaiting) await this.serveStandIn(lineage);
    this.startIssue();
  }

  /** Resolves with the first CA certificate served (at once if there is one). */
  whenCaCertificate(): Promise<ServedCertificate> {
    if (this.served?.fromCa) return Promise.resolve(this.served);
    return new Promise((resolve) => {
      const on = (c: ServedCertificate): void => {
        if (!c.fromCa) return;
        this.off('certificate', on);
        resolve(c);
      };
      this.on('certificate', on);
    });
  }

  /** Check now (re-read the store, renew if due or invalid). Returns when any resulting issuance has ended. */
  async checkNow(): Promise<void> {
    this.clearTimer();
    await this.check();
    if (this.issuing) await this.issuing;
  }

  /** Read the store again now (SIGHUP): a newer certificate found there is served; a due renewal starts. */
  async reload(): Promise<boolean> {
    if (this.stopped || !this.started) return false;
    if (this.issuing === undefined) {
      this.clearTimer();
      await this.check();
    }
    return true;
  }

  /** Cancel timers; stop a running issuing child (SIGTERM so it removes its records, SIGKILL after stopTimeoutMs). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.clearTimer();
    await this.runner.stop();
    if (this.issuing) await this.issuing.catch(() => undefined);
  }

  // ------------------------------------------------------------------------------------------------------

  private async readStore(): Promise<StoredLineage | undefined> {
    try {
      return await this.store.read(this.lineage);
    } catch (err) {
      this.log.error({ lineage: this.lineage, err: (err as Error).message }, 'cannot read the stored certificate');
      return undefined;
    }
  }

  private serve(l: StoredLineage, origin: CertificateOrigin): void {
    this.served = servedFromLineage(l, origin);
    this.notify('certificate', this.served);
  }

  /**
   * While the CA's certificate cannot be had, serve the best there is rather than nothing (see
   * stand-in.ts); readiness and the metrics say that it is a stand-in.
   */
  private async serveStandIn(stored: StoredLineage | undefined): Promise<void> {
    const origin = stored === undefined ? undefined : storedStandInOrigin(stored, this.config.domains, this.clock.now());
    if (stored !== undefined && origin !== undefined) {
      this.log.warn({ lineage: this.lineage, origin, notAfter: stored.notAfter.toISOString(), issuer: stored.issuer }, `serving the stored ${origin} certificate until the CA's certificate arrives`);
      this.serve(stored, origin);
      return;
    }
    this.served = await selfSignedStandIn(this.config, this.lineage);
    this.log.warn({ names: this.served.names }, "serving a self-signed certificate until the CA's certificate arrives");
    this.notify('certificate', this.served);
  }

  /** Emit without letting a throwing listener (e.g. a TLS context that rejects the key) derail the lifecycle:
   * a throw inside issue() would otherwise count as a failed issuance and trigger another one. */
  private notify(event: string, arg: unknown): void {
    try {
      this.emit(event, arg);
    } catch (err) {
      this.log.error({ event, err: (err as Error).message }, 'a certificate event listener threw');
    }
  }

  private clearTimer(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.nextAt = undefined;
  }

  private schedule(inMs: number, reason: ScheduledEvent['reason']): void {
    if (this.stopped) return;
    this.clearTimer();
    const at = new Date(this.clock.now() + inMs);
    this.nextAt = at;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.nextAt = undefined;
      void this.check();
    }, inMs);
    this.log.info({ at: at.toISOString(), inS: Math.round(inMs / 1000), reason }, reason === 'retry' ? 'next attempt scheduled' : 'next renewal check scheduled');
    this.notify('scheduled', { at, inMs, reason } satisfies ScheduledEvent);
  }

  private scheduleCheck(): void {
    if (!this.served?.fromCa) return;
    this.schedule(nextCheckDelay(this.served, this.clock.now(), this.random, this.policy), 'renewal-check');
  }

  private async check(): Promise<void> {
    if (this.stopped || this.issuing) return;
    const lineage = await this.readStore();
    const now = this.clock.now();
    if (lineage) {
      const a = assessLineage(lineage, this.config, now, this.policy);
      if (a.servable && lineage.serial !== this.served?.serial && (!this.served?.fromCa || lineage.notAfter >= this.served.notAfter)) {
        this.log.info({ lineage: this.lineage, serial: lineage.serial, notAfter: lineage.notAfter.toISOString() }, 'the store holds a newer certificate; serving it');
        this.serve(lineage, 'ca');
      }
      if (a.valid) {
        this.failures = 0;
        this.scheduleCheck();
        return;
      }
      this.log.info({ lineage: this.lineage, reasons: a.reasons }, 'certificate needs to be renewed');
    }
    this.startIssue();
  }

  private startIssue(): void {
    if (this.stopped || this.issuing) return;
    this.clearTimer();
    const p = this.issue().finally(() => {
      if (this.issuing === p) this.issuing = undefined;
    });
    this.issuing = p;
  }

  private async issue(): Promise<void> {
    const started = this.clock.now();
    const renewal = this.hasCaCertificate;
    if (this.served !== undefined && !this.served.fromCa) {
      this.log.warn({ lineage: this.lineage, serving: this.served.origin, attempt: this.failures + 1 }, `asking the CA for a certificate; meanwhile serving a ${this.served.origin.replace('_', '-')} stand-in`);
    }
    try {
      await this.issueInChild();
      const lineage = await this.store.read(this.lineage);
      if (!lineage) throw new Error(`The issuing process reported success but lineage ${this.lineage} cannot be read from ${this.config.letsencryptDir}.`);
      const a = assessLineage(lineage, this.config, this.clock.now(), this.policy);
      if (!a.servable) throw new Error(`The new certificate is not usable: it ${a.reasons.join('; ')}.`);
      this.issued(lineage, started, renewal);
    } catch (err) {
      if (this.stopped) return;
      const error = err instanceof Error ? err : new Error(String(err));
      // A child killed after it stored the certificate: the store has it.
      const lineage = await this.readStore();
      if (lineage && lineage.serial !== this.served?.serial && assessLineage(lineage, this.config, this.clock.now(), this.policy).valid) {
        this.log.warn({ err: error.message }, 'the issuing process failed after storing a new certificate; serving it');
        this.issued(lineage, started, renewal);
        return;
      }
      this.failed += 1;
      this.failures += 1;
      this.lastError = error.message;
      const retryInMs = this.retryDelay();
      const serving = this.served === undefined ? 'nothing' : this.served.fromCa ? 'the current CA certificate' : `a ${this.served.origin.replace('_', '-')} stand-in`;
      this.log.error(
        { err: error.message, failures: this.failures, retryInS: Math.round(retryInMs / 1000), serving },
        renewal ? 'certificate renewal failed; keeping the current certificate' : `obtaining the certificate failed; serving ${serving} until it succeeds`,
      );
      this.notify('issue-failed', { error, failures: this.failures, retryInMs } satisfies FailedEvent);
      if (this.listenerCount('error') > 0) this.notify('error', error);
      this.schedule(retryInMs, 'retry');
    }
  }

  private issued(lineage: StoredLineage, started: number, renewal: boolean): void {
    this.serve(lineage, 'ca');
    this.succeeded += 1;
    this.failures = 0;
    this.lastError = undefined;
    this.notify('issued', { lineage: lineage.name, serial: lineage.serial, notAfter: lineage.notAfter, durationMs: this.clock.now() - started, renewal } satisfies IssuedEvent);
    this.scheduleCheck();
  }

  /**
   * The wait before the next attempt. Until the CA's first certificate is served, the first retries come
   * quickly (a tenth of the backoff base, doubling: 30 s, 1 min, 2 min with the 5 min default), since a DNS
   * API hiccup should not leave a stand-in in place for long; then, as for renewals, the capped exponential
   * backoff from its base.
   */
  private retryDelay(): number {
    const quick = 3;
    if (this.hasCaCertificate) return backoffDelay(this.failures, this.random, this.policy);
    if (this.failures <= quick) {
      const base = (this.policy.backoffBaseMs / 10) * 2 ** (this.failures - 1);
      return Math.round(base * (1 + this.policy.backoffJitter * (2 * this.random() - 1)));
    }
    return backoffDelay(this.failures - quick, this.random, this.policy);
  }

  private issueInChild(): Promise<void> {
    return this.runner.run(
      {
        config: this.config,
        logLevel: this.options.childLogLevel ?? this.log.level,
        ...(this.options.propagation ? { propagation: this.options.propagation } : {}),
        ...(this.options.acme ? { acme: this.options.acme } : {}),
        ...(this.options.cloudflare ? { cloudflare: this.options.cloudflare } : {}),
        ...(this.options.trustedCa ? { trustedCa: this.options.trustedCa } : {}),
      },
      (pid) => {
        this.log.info({ pid, lineage: this.lineage }, 'issuing process started');
        this.notify('issuing', { pid });
      },
    );
  }
}
