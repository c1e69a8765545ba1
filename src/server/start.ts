/**
 * The composition root: builds every component from one Config, starts them in order and stops them in
 * reverse. Only this file knows every room; the rooms know only what they are given.
 *
 * Order: the ops endpoint first (so /healthz answers while anything slow runs), the password and ACL files
 * (a broken one stops the start), the store, the broker, the certificate sources, then the listeners; a
 * listener whose certificate is not there yet opens when it arrives.
 */
import { packageVersion } from '../version.js';
import type { Config, ListenerConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import { AccessPolicy } from '../auth/policy.js';
import { openStore } from '../broker/store/open.js';
import { Broker } from '../broker/broker.js';
import { startListener, type RunningListener } from '../broker/listeners.js';
import { BrokerMetrics } from '../ops/metrics.js';
import { observeBoth, type ServerObserver } from '../ops/observer.js';
import { startOpsServer, type ReadinessCheck } from '../ops/http.js';
import type { CertificateManager } from '../certs/manager.js';
import { AuthFiles } from './auth-files.js';
import { ServedCertificates, type CertificateOptions } from './certificates.js';
import { applyLiveConfig, type ConfigChange } from './reconfigure.js';

export interface RunningServer {
  readonly broker: Broker;
  readonly listeners: RunningListener[];
  readonly metrics: BrokerMetrics;
  /** The ops HTTP port (/healthz, /readyz, /metrics), undefined when off or not bound. */
  readonly opsPort: number | undefined;
  /** The ACME certificate manager, when DOMAIN is configured. */
  readonly certificates: CertificateManager | undefined;
  /** Read the password, ACL and certificate files again now (SIGHUP); resolves with what was reloaded. */
  reload(): Promise<string[]>;
  /**
   * Apply what can change live of a new configuration: `change` names what changed (live or needing a
   * restart), `liveKeys` are the top-level settings the schema marks live (see config/isolated.ts).
   */
  reconfigure(next: Config, change: { live: string[]; restart: string[] }, liveKeys: readonly (keyof Config)[]): Promise<ConfigChange>;
  /** Stop accepting, disconnect clients, flush persistence. Safe to call twice. */
  close(): Promise<void>;
}

export interface StartOptions extends CertificateOptions {
  /** Extra observer (tests); the metrics are always fed. */
  observer?: ServerObserver;
}

type Closer = () => Promise<void> | void;

export async function startServer(config: Config, logger: Logger, options: StartOptions = {}): Promise<RunningServer> {
  const closers: Closer[] = [];
  const closeAll = async (): Promise<void> => {
    while (closers.length > 0) {
      try {
        await closers.pop()?.();
      } catch (err) {
        logger.warn({ error: (err as Error).message }, 'error while shutting down');
      }
    }
  };
  // Without the ops endpoint nothing reads the process metrics: skip their collectors.
  const metrics = new BrokerMetrics({ defaultMetrics: config.ops.port >= 0 });
  const observer: ServerObserver = options.observer === undefined ? metrics : observeBoth(metrics, options.observer);
  const state = { persistence: false, listeners: [] as string[], starting: true, closing: false };
  const live: { certificates?: ServedCertificates } = {};
  try {
    let opsPort: number | undefined;
    if (config.ops.port >= 0) {
      try {
        const ops = await startOpsServer({
          port: config.ops.port,
          host: config.ops.host,
          metrics,
          logger,
          health: () => ({ ok: true }),
          ready: () => ({ checks: readiness(state, live.certificates) }),
        });
        opsPort = ops.port;
        closers.push(() => ops.close());
      } catch (err) {
        // MQTT matters more than its health endpoint: a taken port must not stop the broker.
        logger.error({ component: 'ops', port: config.ops.port, error: (err as Error).message }, 'the ops HTTP endpoint (/healthz, /readyz, /metrics) could not be started; serving MQTT without it (set OPS_PORT to a free port, -1 for none)');
      }
    }

    const policy = new AccessPolicy(config.allowAnonymous);
    const brokerRef: { broker?: Broker } = {};
    const auth = new AuthFiles(policy, logger.child({ component: 'auth' }), observer, (previous) => brokerRef.broker?.usersReloaded(previous));
    closers.push(() => auth.close());
    await auth.point('passwd', config.passwordFile);
    await auth.point('acl', config.aclFile);

    const store = await openStore({ enabled: config.persistence, location: config.persistenceLocation, logger: logger.child({ component: 'persistence' }) });
    closers.push(() => store.close());
    state.persistence = true;

    const broker = await Broker.create({ config, logger: logger.child({ component: 'broker' }), policy, store, observer, version: packageVersion() });
    brokerRef.broker = broker;
    metrics.observeRetainedMessages(() => broker.countRetained());
    metrics.observeSubscriptions(() => broker.subscriptionCount);
    // Listeners stop accepting first (their closers run before this one), then the broker disconnects every
    // client, then we wait for the listeners to report their last connection gone.
    const listenersClosed: Promise<void>[] = [];
    closers.push(async () => {
      await broker.close();
      await Promise.all(listenersClosed);
    });

    const certificates = await ServedCertificates.open(config, logger.child({ component: 'tls' }), observer, options);
    live.certificates = certificates;
    closers.push(() => certificates.close());

    const listeners: RunningListener[] = [];
    const listenerLog = logger.child({ component: 'listener' });
    const listen = async (listener: ListenerConfig): Promise<void> => {
      if (state.closing) return;
      const running = await startListener(listener, broker, certificates.contextFor(listener), { maxConnections: config.maxConnections, connectTimeout: config.connectTimeout }, listenerLog, observer);
      listeners.push(running);
      state.listeners.push(running.name);
      metrics.listenerStarted(running.name);
      closers.push(() => {
        listenersClosed.push(running.close());
      });
    };
    await certificates.start();
    const waiting: ListenerConfig[] = [];
    for (const listener of config.listeners) {
      if (certificates.contextFor(listener)?.loaded === false) waiting.push(listener);
      else await listen(listener);
    }
    for (const listener of waiting) {
      logger.info({ component: 'tls', port: listener.port }, 'this TLS listener opens once its first certificate is there');
      void certificates
        .whenServable(listener)
        .then(() => listen(listener))
        .catch((err: unknown) => logger.error({ port: listener.port, error: (err as Error).message }, 'could not open the listener'));
    }
    state.starting = false;
    logger.info({ component: 'broker', listeners: state.listeners, waitingForCertificate: waiting.map((l) => l.port), opsPort }, 'broker ready');

    let closing: Promise<void> | undefined;
    return {
      broker,
      listeners,
      metrics,
      opsPort,
      certificates: certificates.manager,
      reload: async () => {
        const done: string[] = [...(await auth.reload()), ...(await certificates.reload())];
        observer.reloaded?.('config');
        return done;
      },
      reconfigure: (next, change, liveKeys) => applyLiveConfig(config, next, change, liveKeys, { policy, auth, broker, logger: logger.child({ component: 'config' }) }),
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

function readiness(state: { persistence: boolean; listeners: string[]; starting: boolean; closing: boolean }, certificates: ServedCertificates | undefined): ReadinessCheck[] {
  const listeners: ReadinessCheck = state.closing
    ? { name: 'listeners', ok: false, detail: 'shutting down' }
    : state.starting
      ? { name: 'listeners', ok: false, detail: 'starting' }
      : { name: 'listeners', ok: state.listeners.length > 0, detail: state.listeners.length > 0 ? `open: ${state.listeners.join(', ')}` : 'none open yet' };
  const persistence: ReadinessCheck = state.closing
    ? { name: 'persistence', ok: false, detail: 'shutting down' }
    : { name: 'persistence', ok: state.persistence, detail: state.persistence ? 'open' : 'not open yet' };
  const certificate = certificates?.readiness() ?? { name: 'certificate', ok: false, detail: 'not loaded yet' };
  return [listeners, persistence, certificate];
}
