/**
 * The composition root: builds every component from one Config, starts them in order and stops them in
 * reverse. Nothing else lives here.
 */
import { hostname } from 'node:os';
import { packageVersion } from './version.js';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { isManagedListener, type Config, type ListenerConfig } from './config/schema.js';
import type { Logger } from './log.js';
import { AccessPolicy } from './auth/policy.js';
import { loadPasswdFile } from './auth/passwd.js';
import { loadAclFile } from './auth/acl.js';
import { watchAndReload } from './files/watch.js';
import { openStore } from './broker/store/open.js';
import { Broker, type BrokerObserver } from './broker/broker.js';
import { startListener, listenerName, type ListenerEvents, type RunningListener } from './broker/listeners.js';
import { TlsContext } from './tls/context.js';
import { BrokerMetrics } from './ops/metrics.js';
import type { CertificateManager, CertificateManagerOptions, ServedCertificate } from './certs/manager.js';
import { startOpsServer } from './ops/http.js';
import { serveCertificateFiles } from './certs/files.js';

export interface RunningBroker {
  readonly broker: Broker;
  readonly listeners: RunningListener[];
  readonly metrics: BrokerMetrics;
  /** The ops HTTP port (/healthz, /readyz, /metrics), undefined when off. */
  readonly opsPort: number | undefined;
  /** The ACME certificate manager, when DOMAIN is configured. */
  readonly certificates: CertificateManager | undefined;
  /** Stop accepting, disconnect clients, flush persistence. Safe to call twice. */
  close(): Promise<void>;
}

type ReloadKind = 'passwd' | 'acl' | 'certificate';

export interface StartOptions {

  /** Tuning of the ACME certificate manager (tests: short polls, a private CA to trust). */
  certificates?: CertificateManagerOptions;
  /** Extra observer (tests); the metrics are always fed. */
  observer?: BrokerObserver & ListenerEvents & { reloaded?(what: ReloadKind): void; reloadFailed?(what: ReloadKind): void };
}

/** Feed the metrics from broker and listener events, then any extra observer. */
function metricsObserver(metrics: BrokerMetrics, extra: StartOptions['observer'] = {}): NonNullable<StartOptions['observer']> {
  return {
    clientConnected: (listener) => {
      metrics.clientConnected(listener);
      extra.clientConnected?.(listener);
    },
    clientDisconnected: () => {
      metrics.clientDisconnected();
      extra.clientDisconnected?.();
    },
    connectionRefused: (reason) => {
      metrics.connectionRefused(reason);
      extra.connectionRefused?.(reason);
    },
    authFailed: () => {
      metrics.authenticationFailed();
      extra.authFailed?.();
    },
    messageIn: (bytes) => metrics.messageIn(bytes),
    messageOut: (bytes) => metrics.messageOut(bytes),
    publishDenied: () => {
      metrics.authorizationDenied('publish');
      extra.publishDenied?.();
    },
    subscribeDenied: () => metrics.authorizationDenied('subscribe'),
    tlsError: (listener) => {
      metrics.connectionRefused('tls_error');
      extra.tlsError?.(listener);
    },
    connectionDropped: (listener) => {
      metrics.connectionRefused('max_connections');
      extra.connectionDropped?.(listener);
    },
    reloaded: (what) => {
      metrics.reloaded(what);
      extra.reloaded?.(what);
    },
    reloadFailed: (what) => metrics.reloadFailed(what),
  };
}

type Closer = () => Promise<void> | void;

export async function startBroker(config: Config, logger: Logger, options: StartOptions = {}): Promise<RunningBroker> {
  const closers: Closer[] = [];
  const closeAll = async (): Promise<void> => {
    while (closers.length > 0) {
      const close = closers.pop();
      try {
        await close?.();
      } catch (err) {
        logger.warn({ error: (err as Error).message }, 'error while shutting down');
      }
    }
  };
  // Without the ops endpoint nothing can read the process metrics: skip their collectors (a GC observer
  // and an event-loop delay timer).
  const metrics = new BrokerMetrics({ defaultMetrics: config.ops.port >= 0 });
  const observer = metricsObserver(metrics, options.observer);
  const state = { persistence: false, listeners: false, closing: false };
  const tlsContexts: TlsContext[] = [];
  let manager: CertificateManager | undefined;
  try {
    let opsPort: number | undefined;
    if (config.ops.port >= 0) {
      // First, so that /healthz answers while anything slow (an ACME issuance) runs.
      const ops = await startOpsServer({
        port: config.ops.port,
        host: config.ops.host,
        metrics,
        logger: logger.child({ component: 'ops' }),
        health: () => ({ ok: true }),
        ready: () => ({
          checks: [
            { name: 'listeners', ok: state.listeners && !state.closing, detail: state.closing ? 'shutting down' : 'starting' },
            { name: 'persistence', ok: state.persistence && !state.closing, detail: 'not open' },
            {
              name: 'certificate',
              ok: tlsContexts.every((c) => c.loaded) && (manager === undefined || manager.hasCaCertificate),
              detail:
                manager !== undefined && !manager.hasCaCertificate
                  ? `waiting for the first certificate from the CA for ${config.acme.domains.join(', ')}`
                  : `waiting for: ${tlsContexts.filter((c) => !c.loaded).map((c) => c.name).join(', ')}`,
            },
          ],
        }),
      });
      opsPort = ops.port;
      closers.push(() => ops.close());
    }

    const policy = new AccessPolicy(config.allowAnonymous);
    const live: { broker?: Broker } = {};
    const authLog = logger.child({ component: 'auth' });
    const watchAuthFile = async <T>(file: string, what: string, load: () => Promise<T>, apply: (value: T) => void, kind: 'passwd' | 'acl'): Promise<void> => {
      // No last good value at start: a broken file stops the start with the reason, as mosquitto does.
      apply(
        await load().catch((err: Error) => {
          throw new Error(`${what} ${file}: ${err.message}`, { cause: err });
        }),
      );
      const watcher = watchAndReload({
        files: [file],
        load: () =>
          load().catch((err: unknown) => {
            observer.reloadFailed?.(kind);
            throw err;
          }),
        onLoad: (value) => {
          apply(value);
          observer.reloaded?.(kind);
        },
        logger: authLog,
        what,
      });
      closers.push(() => watcher.close());
    };
    if (config.passwordFile !== undefined) {
      const file = config.passwordFile;
      await watchAuthFile(file, 'password file', () => loadPasswdFile(file, authLog), (users) => {
        const previous = policy.setUsers(users);
        authLog.info({ file, users: users.size }, 'password file loaded');
        live.broker?.usersReloaded(previous);
      }, 'passwd');
    }
    if (config.aclFile !== undefined) {
      const file = config.aclFile;
      await watchAuthFile(file, 'ACL file', () => loadAclFile(file, authLog), (acl) => {
        policy.setAcl(acl);
        authLog.info({ file }, 'ACL file loaded');
      }, 'acl');
    }

    const store = await openStore({ enabled: config.persistence, location: config.persistenceLocation, logger: logger.child({ component: 'persistence' }) });
    closers.push(() => store.close());
    state.persistence = true;

    const broker = await Broker.create({ config, logger: logger.child({ component: 'broker' }), policy, store, observer, version: packageVersion() });
    live.broker = broker;
    metrics.observeRetainedMessages(() => broker.countRetained());
    metrics.observeSubscriptions(() => broker.subscriptionCount);
    // Listeners stop accepting first (their closers run before this one), then the broker disconnects
    // every client, then we wait for the listeners to report their last connection gone.
    const listenersClosed: Promise<void>[] = [];
    closers.push(async () => {
      await broker.close();
      await Promise.all(listenersClosed);
    });

    const listeners: RunningListener[] = [];
    const tlsLog = logger.child({ component: 'tls' });
    const listen = async (listener: ListenerConfig, context: TlsContext | undefined): Promise<void> => {
      if (state.closing) return;
      const running = await startListener(listener, broker, context, { maxConnections: config.maxConnections, connectTimeout: config.connectTimeout }, logger.child({ component: 'listener' }), observer);
      listeners.push(running);
      metrics.listenerStarted(running.name);
      closers.push(() => {
        listenersClosed.push(running.close());
      });
    };

    const managed = config.listeners.filter((l) => isManagedListener(config, l));
    if (managed.length > 0) {
      // Loaded only with ACME configured (the certbot store, renewal policy and issuing child).
      const { CertificateManager } = await import('./certs/manager.js');
      manager = new CertificateManager(config.acme, logger, options.certificates);
      closers.push(() => manager?.stop());
      const contexts = managed.map((l) => new TlsContext(listenerName(l, true), tlsLog, { requireCertificate: l.requireCertificate }));
      tlsContexts.push(...contexts);
      const m = manager;
      m.on('certificate', (served: ServedCertificate) => {
        for (const context of contexts) {
          try {
            context.update({ cert: served.cert, key: served.key }, served.fromCa ? `ACME lineage ${served.lineage}` : 'self-signed while waiting for ACME');
          } catch (err) {
            tlsLog.error({ listener: context.name, error: (err as Error).message }, 'the new certificate could not be applied; keeping the current one');
          }
        }
        if (served.fromCa) metrics.certificateServed(served.lineage, served.notAfter);
        if (contexts.some((c) => c.loaded)) observer.reloaded?.('certificate');
      });
      m.on('issued', () => metrics.renewalSucceeded());
      m.on('issue-failed', () => metrics.renewalFailed());
      await m.start();
      const startManaged = async (): Promise<void> => {
        for (const [i, l] of managed.entries()) await listen(l, contexts[i]);
      };
      if (contexts.every((c) => c.loaded)) {
        await startManaged();
      } else {
        // No certificate yet (and no self-signed stand-in configured): the listener opens with the first one.
        tlsLog.info({ ports: managed.map((l) => l.port) }, 'the ACME listener opens once the first certificate is issued');
        void m.whenCaCertificate().then(startManaged).catch((err: unknown) => {
          logger.error({ error: (err as Error).message }, 'could not open the ACME listener');
        });
      }
    }

    for (const listener of config.listeners) {
      if (isManagedListener(config, listener)) continue;
      const context = await tlsContextFor(listener, config, tlsLog, closers, {
        reloaded: () => observer.reloaded?.('certificate'),
        failed: () => observer.reloadFailed?.('certificate'),
      });
      if (context) tlsContexts.push(context);
      await listen(listener, context);
    }
    state.listeners = true;

    let closing: Promise<void> | undefined;
    return {
      broker,
      listeners,
      metrics,
      opsPort,
      certificates: manager,
      close: () => {
        state.closing = true;
        return (closing ??= closeAll());
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

async function tlsContextFor(
  listener: ListenerConfig,
  config: Config,
  logger: Logger,
  closers: Closer[],
  reload: { reloaded(): void; failed(): void },
): Promise<TlsContext | undefined> {
  const name = listenerName(listener, true);
  if (listener.certfile !== undefined && listener.keyfile !== undefined) {
    const context = new TlsContext(name, logger, { requireCertificate: listener.requireCertificate });
    const files = { certfile: listener.certfile, keyfile: listener.keyfile, ...(listener.cafile === undefined ? {} : { cafile: listener.cafile }) };
    const watcher = await serveCertificateFiles(context, files, logger, reload);
    closers.push(() => watcher.close());
    return context;
  }
  if (listener.selfSigned) {
    const context = new TlsContext(name, logger, { requireCertificate: listener.requireCertificate });
    const dir = join(config.dataDir, 'selfsigned');
    const names = [...new Set(['localhost', '127.0.0.1', '::1', hostname()])];
    const { loadOrCreateSelfSigned } = await import('./certs/self-signed-file.js');
    const made = await loadOrCreateSelfSigned(dir, names, logger);
    const ca = listener.cafile === undefined ? undefined : await readFile(listener.cafile);
    context.update(ca === undefined ? { cert: made.cert, key: made.key } : { cert: made.cert, key: made.key, ca }, made.certFile);
    logger.warn(
      { listener: name, certFile: made.certFile, created: made.created, names },
      'serving a SELF-SIGNED certificate: clients must trust this file (e.g. mosquitto_sub --cafile) or skip verification; configure certfile/keyfile or ACME (DOMAIN + Cloudflare credentials) for a trusted one',
    );
    return context;
  }
  return undefined;
}
