import { connect, createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { BrokerMetrics, REFUSAL_REASONS } from '../../src/ops/metrics.js';
import {
  startOpsServer,
  type HealthResult,
  type OpsServer,
  type OpsServerOptions,
  type ReadyResult,
} from '../../src/ops/http.js';

const logger = createLogger('silent');
const servers: OpsServer[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

interface Harness {
  server: OpsServer;
  metrics: BrokerMetrics;
  url: (path: string) => string;
  state: { health: HealthResult; ready: ReadyResult };
}

async function start(overrides: Partial<OpsServerOptions> = {}): Promise<Harness> {
  const metrics = new BrokerMetrics({ defaultMetrics: false });
  const state: Harness['state'] = {
    health: { ok: true },
    ready: {
      checks: [
        { name: 'listeners', ok: true },
        { name: 'persistence', ok: true },
        { name: 'certificate', ok: true },
      ],
    },
  };
  const server = await startOpsServer({
    port: 0,
    host: '127.0.0.1',
    metrics,
    health: () => state.health,
    ready: () => state.ready,
    logger,
    ...overrides,
  });
  servers.push(server);
  return { server, metrics, state, url: (path) => `http://127.0.0.1:${server.port}${path}` };
}

function busyWait(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // Block the event loop on purpose.
  }
}

describe('ops HTTP server', () => {
  it('binds a free port when asked for port 0', async () => {
    const a = await start();
    const b = await start();
    expect(a.server.port).toBeGreaterThan(0);
    expect(a.server.port).not.toBe(b.server.port);
    expect((await fetch(a.url('/healthz'))).status).toBe(200);
  });

  it('answers /healthz 200, and 503 with the reason while the injected health check fails', async () => {
    const h = await start();
    const ok = await fetch(h.url('/healthz'));
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ status: 'ok' });

    h.state.health = { ok: false, detail: 'persistence lost' };
    const bad = await fetch(h.url('/healthz'));
    expect(bad.status).toBe(503);
    expect(await bad.json()).toMatchObject({ status: 'unhealthy', detail: 'persistence lost' });

    h.state.health = { ok: true };
    expect((await fetch(h.url('/healthz'))).status).toBe(200);
  });

  it('answers 503 rather than failing when a check throws', async () => {
    const h = await start({
      health: () => {
        throw new Error('boom');
      },
      ready: () => {
        throw new Error('bang');
      },
    });
    const health = await fetch(h.url('/healthz'));
    expect(health.status).toBe(503);
    expect(((await health.json()) as { detail: string }).detail).toContain('boom');
    const ready = await fetch(h.url('/readyz'));
    expect(ready.status).toBe(503);
    expect(JSON.stringify(await ready.json())).toContain('bang');
  });

  it('answers /healthz 503 after the event loop was blocked, and 200 again once the window has passed', async () => {
    const h = await start({ stallMs: 250, stallWindowMs: 600, tickMs: 20 });
    expect((await fetch(h.url('/healthz'))).status).toBe(200);

    busyWait(600);
    const stalled = await fetch(h.url('/healthz'));
    expect(stalled.status).toBe(503);
    expect(((await stalled.json()) as { detail: string }).detail).toMatch(/event loop blocked for \d+ ms/);

    await new Promise((resolve) => setTimeout(resolve, 800));
    expect((await fetch(h.url('/healthz'))).status).toBe(200);
  });

  it('does not count a short delay below the threshold as a stall', async () => {
    const h = await start({ stallMs: 400, stallWindowMs: 1000, tickMs: 20 });
    busyWait(100);
    expect((await fetch(h.url('/healthz'))).status).toBe(200);
  });

  it('answers /readyz 200 only when every check passes, and lists what is not ready', async () => {
    const h = await start();
    const ready = await fetch(h.url('/readyz'));
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready' });

    h.state.ready = {
      checks: [
        { name: 'listeners', ok: true },
        { name: 'persistence', ok: false, detail: 'opening' },
        { name: 'certificate', ok: false, detail: 'waiting for the first certificate from the CA' },
      ],
    };
    const notReady = await fetch(h.url('/readyz'));
    expect(notReady.status).toBe(503);
    expect(notReady.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await notReady.json()) as { status: string; notReady: string[]; checks: unknown[] };
    expect(body.status).toBe('not ready');
    expect(body.notReady).toEqual(['persistence', 'certificate']);
    expect(JSON.stringify(body.checks)).toContain('waiting for the first certificate from the CA');

    h.state.ready = { checks: [{ name: 'listeners', ok: true }] };
    expect((await fetch(h.url('/readyz?verbose=1'))).status).toBe(200);
  });

  it('serves /metrics in the Prometheus text format, moving as the broker reports events', async () => {
    const h = await start();
    const first = await fetch(h.url('/metrics'));
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const before = await first.text();
    expect(before).toContain('# TYPE mqtt_acme_broker_connections_accepted_total counter');
    expect(before).toMatch(/^mqtt_acme_broker_messages_received_total 0$/m);

    h.metrics.clientConnected('mqtts:8883');
    h.metrics.messageIn(42);
    h.metrics.connectionRefused('bad_credentials');
    const after = await (await fetch(h.url('/metrics'))).text();
    expect(after).toMatch(/^mqtt_acme_broker_connections_accepted_total\{listener="mqtts:8883"\} 1$/m);
    expect(after).toMatch(/^mqtt_acme_broker_connected_clients 1$/m);
    expect(after).toMatch(/^mqtt_acme_broker_messages_received_total 1$/m);
    expect(after).toMatch(/^mqtt_acme_broker_received_payload_bytes_total 42$/m);
    expect(after).toMatch(/^mqtt_acme_broker_connections_refused_total\{reason="bad_credentials"\} 1$/m);
    // Every reason value is one of the fixed set.
    const reasons = [...after.matchAll(/connections_refused_total\{reason="([^"]*)"\}/g)].map((m) => m[1]);
    expect(reasons.sort()).toEqual([...REFUSAL_REASONS].sort());
  });

  it('answers HEAD with the headers and no body, other methods with 405, other paths with 404', async () => {
    const h = await start();
    const head = await fetch(h.url('/readyz'), { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get('content-length'))).toBeGreaterThan(0);
    expect(await head.text()).toBe('');

    const post = await fetch(h.url('/metrics'), { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');

    expect((await fetch(h.url('/'))).status).toBe(404);
    expect((await fetch(h.url('/healthz/extra'))).status).toBe(404);
    expect((await fetch(h.url('/metrics.json'))).status).toBe(404);
  });

  it('closes promptly while a client holds a connection open mid-request, and stops answering', async () => {
    const h = await start();
    // A client that has sent half a request (a stuck scraper, a port scanner): not an idle connection,
    // so server.close() alone would wait for it until the headers timeout.
    const socket = connect(h.server.port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.write('GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await new Promise((resolve) => setTimeout(resolve, 50));

    const started = performance.now();
    await h.server.close();
    expect(performance.now() - started).toBeLessThan(1000);
    await ended;
    await expect(fetch(h.url('/healthz'))).rejects.toThrow();
    await h.server.close(); // idempotent
  });

  it('rejects with a message naming the setting when the port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      await expect(start({ port })).rejects.toThrow(new RegExp(`127\\.0\\.0\\.1:${port} \\(OPS_PORT/OPS_HOST\\)`));
    } finally {
      blocker.close();
    }
  });
});
