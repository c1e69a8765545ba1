/**
 * The operations endpoint: `/healthz` (liveness), `/readyz` (readiness), `/metrics` (Prometheus).
 *
 * - `/healthz` is 200 while the process is alive and its event loop turns: a timer ticks every
 *   `tickMs`; when a tick comes `stallMs` or more late (the loop was blocked), or the loop is late right now,
 *   the answer is 503 for `stallWindowMs` afterwards, so a probe that got through after the stall still
 *   reports it. The injected `health()` may also report the process unhealthy.
 * - `/readyz` is 200 only when every check of `ready()` passes, else 503 with the failing ones listed.
 * - `/metrics` renders the BrokerMetrics registry.
 * Only GET and HEAD; anything else is 405, unknown paths 404. It is unauthenticated: bind it where only the
 * kubelet and Prometheus reach it (OPS_HOST), and never put secrets in metrics or check details.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.js';
import type { BrokerMetrics } from './metrics.js';

export interface HealthResult {
  ok: boolean;
  /** Why not, for the response body and the log. */
  detail?: string;
}

export interface ReadinessCheck {
  /** e.g. `listeners`, `persistence`, `certificate`. */
  name: string;
  ok: boolean;
  /** What is missing, e.g. "waiting for the first certificate from the CA". */
  detail?: string;
}

export interface ReadyResult {
  /** Ready when every check passes. */
  checks: readonly ReadinessCheck[];
}

export interface OpsServerOptions {
  /** 0 picks a free port. */
  port: number;
  /** Bind address; undefined = every interface. */
  host?: string;
  metrics: BrokerMetrics;
  health: () => HealthResult;
  ready: () => ReadyResult;
  logger: Logger;
  /** A tick this late (or later) means the event loop was stuck; default 5000 ms. */
  stallMs?: number;
  /** How long /healthz keeps reporting a stall after it ended; default 10000 ms. */
  stallWindowMs?: number;
  /** Watchdog tick period; default 500 ms. */
  tickMs?: number;
}

export interface OpsServer {
  /** The bound port (the real one when 0 was asked). */
  port: number;
  close(): Promise<void>;
}

const JSON_TYPE = 'application/json; charset=utf-8';

/** Notices when the event loop could not run timers for a while. */
class EventLoopWatchdog {
  readonly #timer: NodeJS.Timeout;
  #lastTick = performance.now();
  #stalledUntil = 0;
  #lastStallMs = 0;

  constructor(
    private readonly tickMs: number,
    private readonly stallMs: number,
    private readonly windowMs: number,
  ) {
    this.#timer = setInterval(() => this.#tick(), tickMs);
    this.#timer.unref();
  }

  #tick(): void {
    const now = performance.now();
    this.#record(now - this.#lastTick - this.tickMs, now);
    this.#lastTick = now;
  }

  #record(lateMs: number, now: number): void {
    if (lateMs >= this.stallMs) {
      this.#lastStallMs = Math.round(lateMs);
      this.#stalledUntil = now + this.windowMs;
    }
  }

  /** undefined when the loop is fine, else how long it was last stuck. */
  stall(): number | undefined {
    const now = performance.now();
    // A request may be served before the overdue tick runs: count the current lateness too.
    this.#record(now - this.#lastTick - this.tickMs, now);
    return now < this.#stalledUntil ? this.#lastStallMs : undefined;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const log = options.logger.child({ component: 'ops' });
  const stallMs = options.stallMs ?? 5000;
  const watchdog = new EventLoopWatchdog(
    options.tickMs ?? Math.min(500, Math.max(10, Math.floor(stallMs / 4))),
    stallMs,
    options.stallWindowMs ?? 10_000,
  );

  const send = (res: ServerResponse, status: number, type: string, body: string): void => {
    res.writeHead(status, {
      'content-type': type,
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    });
    res.end(body); // Node sends the headers only when the request was HEAD.
  };
  const sendJson = (res: ServerResponse, status: number, value: unknown): void =>
    send(res, status, JSON_TYPE, `${JSON.stringify(value)}\n`);

  const healthz = (res: ServerResponse): void => {
    const stalledMs = watchdog.stall();
    let health: HealthResult;
    try {
      health = options.health();
    } catch (err) {
      log.error({ err }, 'health check threw');
      health = { ok: false, detail: `health check threw: ${(err as Error).message}` };
    }
    if (stalledMs !== undefined) {
      log.warn({ stalledMs }, 'event loop was blocked');
      sendJson(res, 503, { status: 'unhealthy', detail: `event loop blocked for ${stalledMs} ms` });
    } else if (!health.ok) {
      sendJson(res, 503, { status: 'unhealthy', detail: health.detail ?? 'unhealthy' });
    } else {
      sendJson(res, 200, { status: 'ok' });
    }
  };

  const readyz = (res: ServerResponse): void => {
    let checks: readonly ReadinessCheck[];
    try {
      checks = options.ready().checks;
    } catch (err) {
      log.error({ err }, 'readiness check threw');
      checks = [{ name: 'readiness', ok: false, detail: `readiness check threw: ${(err as Error).message}` }];
    }
    const failing = checks.filter((check) => !check.ok);
    if (failing.length === 0) {
      sendJson(res, 200, { status: 'ready', checks });
    } else {
      sendJson(res, 503, { status: 'not ready', notReady: failing.map((c) => c.name), checks });
    }
  };

  const metrics = async (res: ServerResponse): Promise<void> => {
    try {
      const { contentType, body } = await options.metrics.scrape();
      send(res, 200, contentType, body);
    } catch (err) {
      log.error({ err }, 'metrics scrape failed');
      send(res, 500, 'text/plain; charset=utf-8', 'metrics unavailable\n');
    }
  };

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path !== '/healthz' && path !== '/readyz' && path !== '/metrics') {
      sendJson(res, 404, { error: 'not found', paths: ['/healthz', '/readyz', '/metrics'] });
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      sendJson(res, 405, { error: 'method not allowed' });
      return;
    }
    if (path === '/healthz') healthz(res);
    else if (path === '/readyz') readyz(res);
    else void metrics(res);
  });
  // Probes are short; do not let a slow or idle client hold a socket (or the shutdown) for long.
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5_000;

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: options.port, host: options.host }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    watchdog.stop();
    const where = `${options.host ?? '*'}:${options.port}`;
    throw new Error(`ops HTTP server could not listen on ${where} (OPS_PORT/OPS_HOST): ${(err as Error).message}`, {
      cause: err,
    });
  }
  server.on('error', (err) => log.error({ err }, 'ops HTTP server error'));

  const port = (server.address() as AddressInfo).port;
  log.info({ port, host: options.host ?? '*' }, 'ops HTTP server listening (/healthz, /readyz, /metrics)');

  let closing: Promise<void> | undefined;
  return {
    port,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        watchdog.stop();
        server.close(() => resolve());
        // Probe and scrape connections are keep-alive: end them so that close() does not wait for them.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
