/**
 * Never nothing served: when the first certificate cannot be had (Cloudflare failing, the CA unreachable), the
 * ACME listener still opens with the best certificate there is (a stored lineage from another CA, else a
 * self-signed one), /readyz reports it as serving with the certificate's state in the details, the metrics
 * say where the certificate comes from, the first retries come quickly, and the CA's certificate replaces the
 * stand-in without dropping a client.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect as tlsConnect } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultConfig, type Config } from '../../src/config/schema.js';
import { startServer, type RunningServer } from '../../src/server/start.js';
import { createLogger } from '../../src/log.js';
import { connectMqtt } from '../support/clients.js';
import { LogCapture, PASSWD, USERS } from '../support/broker.js';
import { freePort } from '../support/ports.js';
import { startAcmeTestbed, type AcmeTestbed } from '../support/pebble.js';
import type { AcmeConfig } from '../../src/config/schema.js';

let bed: AcmeTestbed;
beforeAll(async () => {
  bed = await startAcmeTestbed();
});
afterAll(async () => {
  await bed?.close();
});

function peer(port: number): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername: 'mqtt.example.test', rejectUnauthorized: false }, () => {
      const raw = s.getPeerX509Certificate()?.raw;
      s.end();
      if (raw) resolve(new X509Certificate(raw));
      else reject(new Error('no peer certificate'));
    });
    s.once('error', reject);
  });
}

describe('the ACME listener while the CA certificate cannot be had', () => {
  let running: RunningServer | undefined;
  afterEach(async () => {
    await running?.close();
    running = undefined;
    await bed.reset();
  });

  const start = async (acme: (dir: string, port: number) => AcmeConfig): Promise<{ logs: LogCapture; port: number; running: RunningServer }> => {
    const dir = await bed.newDir();
    const port = await freePort();
    await writeFile(join(dir, 'passwd'), PASSWD);
    const config: Config = {
      ...defaultConfig(),
      listeners: [{ port, host: '127.0.0.1', protocol: 'mqtt', requireCertificate: false, selfSigned: false }],
      passwordFile: join(dir, 'passwd'),
      dataDir: join(dir, 'data'),
      persistence: false,
      persistenceLocation: join(dir, 'data', 'persistence'),
      ops: { port: 0, host: '127.0.0.1' },
      acme: acme(dir, port),
    };
    const logs = new LogCapture();
    running = await startServer(config, createLogger('debug', logs), { acme: bed.managerOptions() });
    return { logs, port, running };
  };

  it('serves a self-signed stand-in while Cloudflare answers 500, reports it, retries quickly, then swaps in the CA certificate', async () => {
    bed.cloudflare.injectFault({ status: 500 }, 1_000_000);
    const { logs, port, running: r } = await start((dir, mqttsPort) => ({ ...bed.config(dir, { mqttsPort }), selfSignedWhileWaiting: defaultConfig().acme.selfSignedWhileWaiting }));

    // The listener is open at once, with a self-signed certificate for the configured names.
    expect(r.listeners.map((l) => l.port)).toEqual([port]);
    const standIn = await peer(port);
    expect(standIn.issuer).toBe(standIn.subject);
    expect(standIn.subjectAltName).toContain('DNS:*.example.test');
    const client = await connectMqtt({ port, rejectUnauthorized: false, username: 'cam', password: USERS.cam });

    // Several quick attempts, each failing with a line that says what is served meanwhile.
    await expect.poll(() => logs.lines.filter((l) => /obtaining the certificate failed; serving a self-signed stand-in/.test(String(l.msg))).length, { timeout: 20_000 }).toBeGreaterThanOrEqual(3);
    expect(logs.lines.filter((l) => l.level === 'warn' && /meanwhile serving a self-signed stand-in/.test(String(l.msg))).length).toBeGreaterThanOrEqual(3);
    const retries = logs.lines.filter((l) => l.msg === 'next attempt scheduled').map((l) => Number(l.inS));
    expect(retries.slice(0, 3).every((s) => s < 1)).toBe(true);

    // Ready (the listener serves), with the certificate's state in the details and the metrics.
    const readyz = await fetch(`http://127.0.0.1:${r.opsPort}/readyz`);
    const body = (await readyz.json()) as { checks: { name: string; ok: boolean; detail: string }[] };
    expect(readyz.status).toBe(200);
    expect(body.checks.find((c) => c.name === 'certificate')?.detail).toMatch(/STAND-IN self_signed certificate from acme example\.test/);
    const metrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${r.opsPort}/metrics`)).text();
    expect(await metrics()).toMatch(/mqtt_acme_broker_certificate_origin\{lineage="example\.test",origin="self_signed"\} 1/);

    // Cloudflare recovers: the next quick retry gets the CA's certificate into the live listener.
    bed.cloudflare.reset();
    const ca = await r.certificates!.whenCaCertificate();
    await expect.poll(async () => (await peer(port)).serialNumber, { timeout: 10_000 }).toBe(ca.serial);
    expect(await metrics()).toMatch(/mqtt_acme_broker_certificate_origin\{lineage="example\.test",origin="ca"\} 1/);
    const after = (await (await fetch(`http://127.0.0.1:${r.opsPort}/readyz`)).json()) as { checks: { name: string; detail: string }[] };
    expect(after.checks.find((c) => c.name === 'certificate')?.detail).toMatch(/mqtts:\d+: ca certificate from acme example\.test/);
    expect(client.connected).toBe(true);
    await client.endAsync();
  });

  it('serves a stored certificate of another CA for the same names while the configured CA is unreachable', async () => {
    // A lineage from pebble in the volume, then the configuration names another (unreachable) directory.
    const dir = await bed.newDir();
    const m = bed.manager(bed.config(dir));
    await m.start();
    const stored = await m.whenCaCertificate();
    await m.stop();
    const unreachable = `https://127.0.0.1:${await freePort()}/dir`;
    const { logs, port, running: r } = await start((_, mqttsPort) => ({ ...bed.config(dir, { mqttsPort }), directoryUrl: unreachable, selfSignedWhileWaiting: true }));
    expect((await peer(port)).serialNumber).toBe(stored.serial);
    expect(logs.find(/serving the stored staging certificate until the CA's certificate arrives/)).toBeDefined();
    const readyz = (await (await fetch(`http://127.0.0.1:${r.opsPort}/readyz`)).json()) as { checks: { name: string; detail: string }[] };
    expect(readyz.checks.find((c) => c.name === 'certificate')?.detail).toMatch(/STAND-IN staging certificate/);
  });
});
