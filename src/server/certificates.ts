/**
 * The certificates of a running server: one certificate source per kind of TLS listener (the ACME lineage for
 * the managed listener, watched files per certfile/keyfile pair, the self-signed default), each connected to
 * its listeners' TLS contexts the same way: the current certificate at start, every new one as it comes.
 */
import { readBytes } from '../files/read.js';
import type { Config, ListenerConfig } from '../config/schema.js';
import { isManagedListener, isTlsListener } from '../config/managed.js';
import type { Logger } from '../log.js';
import type { ServerObserver } from '../ops/observer.js';
import type { ReadinessCheck } from '../ops/http.js';
import { listenerName } from '../broker/listeners.js';
import { TlsContext } from '../tls/context.js';
import type { CertificateSource, SourcedCertificate } from '../tls/source.js';
import type { CertificateManager, CertificateManagerOptions } from '../certs/manager.js';
import type { FileSourceOptions } from '../certs/files.js';

export interface CertificateOptions {
  /** Tuning of the ACME certificate manager (tests: short polls, a private CA to trust). */
  acme?: CertificateManagerOptions;
  /** Tuning of watched certificate files (tests: quick polls). */
  files?: FileSourceOptions;
}

interface Served {
  source: CertificateSource;
  contexts: { context: TlsContext; ca: Buffer | undefined }[];
}

export class ServedCertificates {
  readonly #served: Served[] = [];
  readonly #contexts = new Map<ListenerConfig, TlsContext>();
  /** The ACME source, when ACME is configured and a listener serves its certificate. */
  manager: CertificateManager | undefined;

  private constructor(
    private readonly config: Config,
    private readonly logger: Logger,
    private readonly observer: ServerObserver,
  ) {}

  /** Open the sources of every TLS listener of `config` and give each listener its TLS context. */
  static async open(config: Config, logger: Logger, observer: ServerObserver, options: CertificateOptions = {}): Promise<ServedCertificates> {
    const served = new ServedCertificates(config, logger, observer);
    try {
      await served.#open(options);
    } catch (err) {
      await served.close();
      throw err;
    }
    return served;
  }

  async #open(options: CertificateOptions): Promise<void> {
    const bySource = new Map<string, ListenerConfig[]>();
    for (const listener of this.config.listeners) {
      if (!isTlsListener(this.config, listener)) continue;
      const key = isManagedListener(this.config, listener) ? 'acme' : listener.certfile !== undefined ? `files\0${listener.certfile}\0${listener.keyfile ?? ''}\0${listener.cafile ?? ''}` : 'self-signed';
      bySource.set(key, [...(bySource.get(key) ?? []), listener]);
    }
    for (const [key, listeners] of bySource) {
      const source = await this.#openSource(key, listeners[0]!, options);
      const contexts = await Promise.all(
        listeners.map(async (listener) => {
          const policy = { requireCertificate: listener.requireCertificate, tlsVersion: listener.tlsVersion, ciphers: listener.ciphers, ciphersTls13: listener.ciphersTls13 };
          const context = new TlsContext(listenerName(listener, true), this.logger, policy);
          this.#contexts.set(listener, context);
          // A client CA for listeners whose source does not carry one (ACME, self-signed).
          const ca = listener.cafile !== undefined && listener.certfile === undefined ? await readBytes(listener.cafile, 'cafile') : undefined;
          return { context, ca };
        }),
      );
      const served: Served = { source, contexts };
      this.#served.push(served);
      this.#connect(served);
    }
  }

  async #openSource(key: string, listener: ListenerConfig, options: CertificateOptions): Promise<CertificateSource> {
    if (key === 'acme') {
      // Loaded only with ACME configured (the certbot store, renewal policy and issuing child).
      const { CertificateManager } = await import('../certs/manager.js');
      const manager = new CertificateManager(this.config.acme, this.logger, options.acme);
      this.manager = manager;
      manager.on('issued', () => this.observer.renewalSucceeded?.());
      manager.on('issue-failed', () => this.observer.renewalFailed?.());
      return manager;
    }
    if (listener.certfile !== undefined && listener.keyfile !== undefined) {
      const { FileCertificateSource } = await import('../certs/files.js');
      const files = { certfile: listener.certfile, keyfile: listener.keyfile, ...(listener.cafile === undefined ? {} : { cafile: listener.cafile }) };
      return FileCertificateSource.open(files, this.logger, options.files);
    }
    const { SelfSignedCertificateSource } = await import('../certs/self-signed-source.js');
    return SelfSignedCertificateSource.open(this.config.dataDir, this.logger);
  }

  #connect({ source, contexts }: Served): void {
    let first = true;
    const apply = (certificate: SourcedCertificate): void => {
      let applied = 0;
      for (const { context, ca } of contexts) {
        try {
          context.update(ca === undefined || certificate.ca !== undefined ? certificate : { ...certificate, ca }, certificate.description);
          applied += 1;
        } catch (err) {
          this.logger.error({ listener: context.name, source: source.name, error: (err as Error).message }, 'the new certificate could not be applied; keeping the current one');
        }
      }
      if (certificate.lineage !== undefined) this.observer.certificateServed?.(certificate.lineage, certificate.notAfter, certificate.origin);
      if (applied === 0) this.observer.reloadFailed?.('certificate');
      else if (!first) this.observer.reloaded?.('certificate');
      first = false;
    };
    source.on('certificate', apply);
    source.on('error', (err) => {
      this.observer.reloadFailed?.('certificate');
      this.logger.warn({ source: source.name, error: err.message }, 'could not get a new certificate; keeping the current one');
    });
    const current = source.current();
    if (current !== undefined) apply(current);
  }

  /** Start the ACME lifecycle (after its listeners are connected, so that the stored certificate reaches them). */
  async start(): Promise<void> {
    await this.manager?.start();
  }

  /** The TLS context of a TLS listener, undefined for a plain one. */
  contextFor(listener: ListenerConfig): TlsContext | undefined {
    return this.#contexts.get(listener);
  }

  /** Resolves once `listener` has a certificate to serve (at once when it has one). */
  whenServable(listener: ListenerConfig): Promise<void> {
    const context = this.#contexts.get(listener);
    const served = this.#served.find((s) => s.contexts.some((c) => c.context === context));
    if (context === undefined || context.loaded || served === undefined) return Promise.resolve();
    return new Promise((resolve) => {
      const on = (): void => {
        if (!context.loaded) return;
        served.source.off('certificate', on);
        resolve();
      };
      served.source.on('certificate', on);
    });
  }

  /** Read every certificate source again (SIGHUP): files are re-read, the ACME store is checked. */
  async reload(): Promise<string[]> {
    const done: string[] = [];
    for (const { source } of this.#served) {
      const reloadable = source as CertificateSource & { reload?: () => Promise<boolean> };
      if (reloadable.reload !== undefined && (await reloadable.reload())) done.push(source.name);
    }
    return done;
  }

  /** Readiness: every TLS listener has a certificate; the details say which and where it comes from. */
  readiness(): ReadinessCheck {
    const waiting: string[] = [];
    const serving: string[] = [];
    for (const { source, contexts } of this.#served) {
      const current = source.current();
      for (const { context } of contexts) {
        if (!context.loaded || current === undefined) waiting.push(`${context.name} (${source.name})`);
        else serving.push(`${context.name}: ${current.origin === 'ca' || current.origin === 'files' ? '' : 'STAND-IN '}${current.origin} certificate from ${source.name}, valid until ${current.notAfter.toISOString()}`);
      }
    }
    if (waiting.length > 0) return { name: 'certificate', ok: false, detail: `no certificate yet for ${waiting.join(', ')}` };
    return { name: 'certificate', ok: true, detail: serving.length === 0 ? 'no TLS listener' : serving.join('; ') };
  }

  async close(): Promise<void> {
    for (const { source } of this.#served.splice(0)) await source.close();
  }
}
