/**
 * CertificateManager: the certificate lifecycle of the ACME listener.
 *
 * start(): read the lineage from the volume. Valid for the configuration -> serve it at once and make no ACME
 * request. Otherwise obtain one (serving a self-signed certificate meanwhile only with selfSignedWhileWaiting;
 * serving the stored one meanwhile when only its renewal is due). Then check on a jittered timer, renew when a
 * third of the lifetime is left, retry failures with capped exponential backoff, keep serving the current
 * certificate through failures.
 *
 * Issuance runs in a child process (issue-process.ts, compiled) so that acme-client and the ~75 MB Cloudflare
 * SDK are never loaded into the broker. The child writes the lineage; the manager reads it back from the store.
 *
 * Events (listeners that throw are logged, never fatal):
 *   'certificate' (ServedCertificate)  serve this from now on (self-signed ones have fromCa: false)
 *   'issued'      (IssuedEvent)        an issuance succeeded
 *   'issue-failed'(FailedEvent)        an issuance failed; a retry is scheduled
 *   'scheduled'   (ScheduledEvent)     the next check or retry time
 *   'issuing'     ({ pid })            an issuing child started
 *
 * Wiring: `m.on('certificate', (c) => tls.setSecureContext({ cert: c.cert, key: c.key }))` before `await
 * m.start()` (start() emits the stored certificate synchronously when there is one; `m.current` holds the
 * latest). Readiness: `m.hasCaCertificate`. Metrics: `m.stats()` and the 'issued' / 'issue-failed' events.
 * Construct it only when `acme.domains` is non-empty (the lineage name comes from the first domain).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, statSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AcmeConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { AcmeTuning, PropagationTuning } from './acme.js';
import type { TxtRecordHandle } from './dns/provider.js';
import type { ChildMessage, DoneMessage, IssueRequest } from './issue-process.js';
import { describeCertificate } from '../x509/certificate-info.js';
import { backoffDelay, nextCheckDelay, resolvePolicy, type RenewalPolicy } from './renewal.js';
import { assessLineage } from './lineage-assessment.js';
import { CertificateStore, lineageNameFor, type StoredLineage } from './lineage-store.js';

export interface ServedCertificate {
  /** Leaf + intermediates (fullchain.pem). */
  cert: string;
  /** Private key PEM. */
  key: string;
  notBefore: Date;
  notAfter: Date;
  names: string[];
  serial: string;
  lineage: string;
  /** True for a certificate from the CA (stored lineage), false for the temporary self-signed one. */
  fromCa: boolean;
}

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

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface CertificateManagerOptions {
  /** The compiled issue-process script; default: see defaultIssueScriptPath(). */
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

/**
 * The compiled issue-process.js next to the running manager module. When the manager runs from its TypeScript
 * source (vitest, `src/certs/manager.ts`), the compiled twin under `dist/` is used (`npm run build` first).
 */
export function defaultIssueScriptPath(moduleUrl: string = import.meta.url): string {
  const here = fileURLToPath(moduleUrl);
  if (here.endsWith('.ts')) {
    const marker = `${sep}src${sep}`;
    const idx = here.lastIndexOf(marker);
    if (idx >= 0) {
      const rel = dirname(here.slice(idx + marker.length));
      return join(here.slice(0, idx), 'dist', rel, 'issue-process.js');
    }
  }
  return join(dirname(here), 'issue-process.js');
}

function childEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^CLOUDFLARE_/i.test(k)) env[k] = v;
  return env;
}

export class CertificateManager extends EventEmitter {
  private readonly store: CertificateStore;
  private readonly name: string;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly policy: RenewalPolicy;
  private readonly log: Logger;
  private served: ServedCertificate | undefined;
  private timer: unknown;
  private nextAt: Date | undefined;
  private child: ChildProcess | undefined;
  private issuing: Promise<void> | undefined;
  private stopped = false;
  private started = false;
  private succeeded = 0;
  private failed = 0;
  private failures = 0;
  private lastError: string | undefined;
  private readonly stale = new Map<string, TxtRecordHandle>();

  constructor(
    private readonly config: AcmeConfig,
    logger: Logger,
    private readonly options: CertificateManagerOptions = {},
  ) {
    super();
    this.log = logger.child({ component: 'certificates' });
    this.name = lineageNameFor(config.domains);
    this.store = new CertificateStore(config.letsencryptDir, { logger: this.log });
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.policy = resolvePolicy(options.policy);
  }

  /** The certificate to serve now (undefined until one exists). */
  get current(): ServedCertificate | undefined {
    return this.served;
  }

  /** Readiness: a certificate from the CA is being served. */
  get hasCaCertificate(): boolean {
    return this.served?.fromCa === true;
  }

  get lineageName(): string {
    return this.name;
  }

  /** pid of a running issuing child (tests, diagnostics). */
  get issuingPid(): number | undefined {
    return this.child?.pid;
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
        this.log.info({ lineage: this.name, notAfter: lineage.notAfter.toISOString(), names: lineage.names, server: lineage.server }, 'serving the stored certificate; no ACME request needed');
        this.serve(lineage);
        this.scheduleCheck();
        return;
      }
      if (a.servable) {
        this.log.info({ lineage: this.name, notAfter: lineage.notAfter.toISOString() }, 'serving the stored certificate; its renewal is due');
        this.serve(lineage);
      } else {
        this.log.info({ lineage: this.name, reasons: a.reasons }, 'stored certificate not usable for this configuration; obtaining a new one');
      }
    } else {
      this.log.info({ lineage: this.name, dir: this.config.letsencryptDir }, 'no stored certificate; obtaining one');
    }
    if (!this.served && this.config.selfSignedWhileWaiting) await this.serveSelfSigned();
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

  /** Cancel timers; stop a running issuing child (SIGTERM so it removes its records, SIGKILL after stopTimeoutMs). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.clearTimer();
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const killTimer = setTimeout(() => child.kill('SIGKILL'), this.options.stopTimeoutMs ?? 5000);
      await exited;
      clearTimeout(killTimer);
    }
    if (this.issuing) await this.issuing.catch(() => undefined);
  }

  // ------------------------------------------------------------------------------------------------------

  private async readStore(): Promise<StoredLineage | undefined> {
    try {
      return await this.store.read(this.name);
    } catch (err) {
      this.log.error({ lineage: this.name, err: (err as Error).message }, 'cannot read the stored certificate');
      return undefined;
    }
  }

  private serve(l: StoredLineage): void {
    const cert: ServedCertificate = {
      cert: l.fullchain,
      key: l.privkey,
      notBefore: l.notBefore,
      notAfter: l.notAfter,
      names: l.names,
      serial: l.serial,
      lineage: l.name,
      fromCa: true,
    };
    this.served = cert;
    this.notify('certificate', cert);
  }

  private async serveSelfSigned(): Promise<void> {
    const { createCertificate } = await import('./self-signed.js');
    const c = await createCertificate({ commonName: this.config.domains[0] ?? 'localhost', altNames: this.config.domains, keyType: this.config.keyType, validDays: 30 });
    const d = describeCertificate(c.cert);
    this.served = { cert: c.cert, key: c.key, notBefore: d.notBefore, notAfter: d.notAfter, names: d.subjectAltNames, serial: d.serial, lineage: this.name, fromCa: false };
    this.log.warn({ names: d.subjectAltNames }, 'serving a self-signed certificate until the CA certificate arrives');
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
        this.log.info({ lineage: this.name, serial: lineage.serial, notAfter: lineage.notAfter.toISOString() }, 'the store holds a newer certificate; serving it');
        this.serve(lineage);
      }
      if (a.valid) {
        this.failures = 0;
        this.scheduleCheck();
        return;
      }
      this.log.info({ lineage: this.name, reasons: a.reasons }, 'certificate needs to be renewed');
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
    try {
      await this.issueInChild();
      const lineage = await this.store.read(this.name);
      if (!lineage) throw new Error(`The issuing process reported success but lineage ${this.name} cannot be read from ${this.config.letsencryptDir}.`);
      const a = assessLineage(lineage, this.config, this.clock.now(), this.policy);
      if (!a.servable) throw new Error(`The new certificate is not usable: it ${a.reasons.join('; ')}.`);
      this.serve(lineage);
      this.succeeded += 1;
      this.failures = 0;
      this.lastError = undefined;
      this.notify('issued', { lineage: lineage.name, serial: lineage.serial, notAfter: lineage.notAfter, durationMs: this.clock.now() - started, renewal } satisfies IssuedEvent);
      this.scheduleCheck();
    } catch (err) {
      if (this.stopped) return;
      const error = err instanceof Error ? err : new Error(String(err));
      // A child killed after it stored the certificate: the store has it.
      const lineage = await this.readStore();
      if (lineage && lineage.serial !== this.served?.serial && assessLineage(lineage, this.config, this.clock.now(), this.policy).valid) {
        this.log.warn({ err: error.message }, 'the issuing process failed after storing a new certificate; serving it');
        this.serve(lineage);
        this.succeeded += 1;
        this.failures = 0;
        this.notify('issued', { lineage: lineage.name, serial: lineage.serial, notAfter: lineage.notAfter, durationMs: this.clock.now() - started, renewal } satisfies IssuedEvent);
        this.scheduleCheck();
        return;
      }
      this.failed += 1;
      this.failures += 1;
      this.lastError = error.message;
      const retryInMs = backoffDelay(this.failures, this.random, this.policy);
      this.log.error(
        { err: error.message, failures: this.failures, retryInS: Math.round(retryInMs / 1000), serving: this.served ? (this.served.fromCa ? 'current CA certificate' : 'self-signed') : 'nothing' },
        renewal ? 'certificate renewal failed; keeping the current certificate' : 'obtaining the certificate failed',
      );
      this.notify('issue-failed', { error, failures: this.failures, retryInMs } satisfies FailedEvent);
      this.schedule(retryInMs, 'retry');
    }
  }

  private issueScript(): string {
    const script = this.options.issueScript ?? defaultIssueScriptPath();
    if (!existsSync(script)) throw new Error(`The certificate issuing script ${script} does not exist: run \`npm run build\` (or set the issueScript option).`);
    if (this.options.issueScript === undefined && import.meta.url.endsWith('.ts')) {
      const source = join(dirname(fileURLToPath(import.meta.url)), 'issue-process.ts');
      try {
        if (statSync(source).mtimeMs > statSync(script).mtimeMs) this.log.warn({ script }, 'the compiled issue-process.js is older than its source: run `npm run build`');
      } catch {
        // no source next to us: nothing to compare
      }
    }
    return script;
  }

  private issueInChild(): Promise<void> {
    const request: IssueRequest = {
      config: this.config,
      logLevel: this.options.childLogLevel ?? this.log.level,
      ...(this.options.propagation ? { propagation: this.options.propagation } : {}),
      ...(this.options.acme ? { acme: this.options.acme } : {}),
      ...(this.options.cloudflare ? { cloudflare: this.options.cloudflare } : {}),
      ...(this.options.trustedCa ? { trustedCa: this.options.trustedCa } : {}),
      staleRecords: [...this.stale.values()],
    };
    return new Promise<void>((resolve, reject) => {
      let child: ChildProcess;
      try {
        const out = this.options.childOutput;
        child = fork(this.issueScript(), [], {
          env: this.options.childEnv ?? childEnvironment(),
          execArgv: [],
          stdio: out ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'inherit', 'inherit', 'ipc'],
          serialization: 'json',
        });
        if (out) {
          child.stdout?.pipe(out, { end: false });
          child.stderr?.pipe(out, { end: false });
        }
      } catch (err) {
        reject(err as Error);
        return;
      }
      this.child = child;
      this.log.info({ pid: child.pid, lineage: this.name }, 'issuing process started');
      this.notify('issuing', { pid: child.pid });
      let result: DoneMessage | undefined;
      const timeout = setTimeout(() => {
        this.log.error({ pid: child.pid }, 'issuing process took too long; killing it');
        child.kill('SIGKILL');
      }, this.options.issueTimeoutMs ?? 30 * 60_000);
      timeout.unref();
      child.on('message', (msg: ChildMessage) => {
        if (msg.type === 'record') {
          if (msg.event === 'created') this.stale.set(msg.handle.recordId, msg.handle);
          else this.stale.delete(msg.handle.recordId);
        } else if (msg.type === 'done') {
          result = msg;
        }
      });
      child.once('error', (err) => {
        clearTimeout(timeout);
        this.child = undefined;
        reject(err);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timeout);
        this.child = undefined;
        if (result?.ok) resolve();
        else if (result && !result.ok) reject(new Error(result.error.message));
        else reject(new Error(`The issuing process ${child.pid} exited before finishing (${signal ? `signal ${signal}` : `exit code ${code}`}).`));
      });
      child.send({ type: 'issue', request });
    });
  }
}
