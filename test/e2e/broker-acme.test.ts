/**
 * The whole product against real pebble (real DNS-01 validation through the fake Cloudflare API and the
 * loopback DNS server): the broker obtains a wildcard + apex certificate, serves it on MQTTS_PORT, renews it
 * while an mqtt.js client stays connected, and a restarted broker process serves the stored lineage without
 * a new order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect as tlsConnect } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultConfig, type Config } from '../../src/config/schema.js';
import { startServer, type RunningServer } from '../../src/server/start.js';
import type { IssuedEvent } from '../../src/certs/manager.js';
import { createLogger } from '../../src/log.js';
import { connectMqtt, collectMessages } from '../support/clients.js';
import { LogCapture, PASSWD, spawnBroker, USERS } from '../support/broker.js';
import { freePort } from '../support/ports.js';
import { nextEvent, startAcmeTestbed, type AcmeTestbed } from '../support/pebble.js';

let bed: AcmeTestbed;
beforeAll(async () => {
  // 30-second certificates: a renewal is due 20 s after issuance.
  bed = await startAcmeTestbed({ validitySeconds: 30 });
});
afterAll(async () => {
  await bed?.close();
});

function peerSerial(port: number, ca: string, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca, servername }, () => {
      const raw = s.getPeerX509Certificate()?.raw;
      s.end();
      if (raw) resolve(new X509Certificate(raw).serialNumber);
      else reject(new Error('no peer certificate'));
    });
    s.once('error', reject);
  });
}

describe('the broker with ACME', () => {
  let running: RunningServer | undefined;
  afterAll(async () => {
    await running?.close();
  });

  it('obtains a wildcard + apex certificate, serves it on MQTTS_PORT, and renews it without dropping a client', async () => {
    const dir = await bed.newDir();
    const mqttsPort = await freePort();
    await writeFile(join(dir, 'passwd'), PASSWD);
    const config: Config = {
      ...defaultConfig(),
      listeners: [{ port: mqttsPort, host: '127.0.0.1', protocol: 'mqtt', requireCertificate: false, selfSigned: false }],
      passwordFile: join(dir, 'passwd'),
      dataDir: join(dir, 'data'),
      persistence: false,
      persistenceLocation: join(dir, 'data', 'persistence'),
      ops: { port: 0, host: '127.0.0.1' },
      acme: bed.config(dir, { mqttsPort }),
    };
    const logs = new LogCapture();
    running = await startServer(config, createLogger('debug', logs), { acme: bed.managerOptions() });
    const manager = running.certificates;
    expect(manager).toBeDefined();
    const first = await manager!.whenCaCertificate();
    expect(first.names.sort()).toEqual(['*.example.test', 'example.test']);
    const root = await bed.pebble.issuingRoot();

    // Readiness turns green once the CA certificate is served; the listener opens with it.
    const ready = async (): Promise<number> => (await fetch(`http://127.0.0.1:${running?.opsPort}/readyz`)).status;
    await expect.poll(ready, { timeout: 10_000 }).toBe(200);
    await expect.poll(() => running?.listeners.length, { timeout: 10_000 }).toBe(1);

    const client = await connectMqtt({ port: mqttsPort, ca: root, servername: 'mqtt.example.test', username: 'cam', password: USERS.cam });
    await expect(connectMqtt({ port: mqttsPort, ca: root, servername: 'mqtt.other.test', username: 'cam', password: USERS.cam })).rejects.toThrow(
      /not in the cert's altnames|Hostname\/IP does not match/,
    );
    expect(await peerSerial(mqttsPort, root, 'example.test')).toBe(first.serial);

    // The renewal swaps the certificate into the live listener.
    const renewed = await nextEvent<IssuedEvent>(manager!, 'issued', (e) => e.renewal);
    await expect.poll(() => peerSerial(mqttsPort, root, 'mqtt.example.test'), { timeout: 10_000 }).toBe(renewed.serial);
    expect(renewed.serial).not.toBe(first.serial);
    expect(client.connected).toBe(true);
    await client.subscribeAsync('cam/after', { qos: 1 });
    const got = collectMessages(client, 1);
    await client.publishAsync('cam/after', 'still connected', { qos: 1 });
    expect((await got)[0]?.payload).toBe('still connected');
    expect(logs.lines.some((l) => /TLS certificate replaced/.test(String(l.msg)))).toBe(true);

    const metrics = await (await fetch(`http://127.0.0.1:${running.opsPort}/metrics`)).text();
    expect(metrics).toMatch(/mqtt_acme_broker_certificate_not_after_timestamp_seconds\{lineage="example.test"\} \d+/);
    expect(metrics).toMatch(/mqtt_acme_broker_certificate_renewals_total\{result="success"\} [2-9]/);
    // No secret in the broker's own logs.
    expect(logs.text()).not.toContain(bed.cloudflare.apiToken);
    await client.endAsync();
    await running.close();
    running = undefined;
  });

  it('as a process configured by the seed env: issues once, and a restart serves the stored lineage without a new order', async () => {
    const dir = await bed.newDir();
    await writeFile(join(dir, 'passwd'), PASSWD);
    const caFile = join(dir, 'pebble-api-ca.pem');
    await writeFile(caFile, bed.pebble.apiCa);
    const port = await freePort();
    const conf = join(dir, 'mosquitto.conf');
    await writeFile(conf, `listener ${port} 127.0.0.1\npassword_file ${join(dir, 'passwd')}\nallow_anonymous false\npersistence false\n`);
    const env = {
      DOMAIN: '*.example.test,example.test',
      EMAIL: 'admin@example.test',
      CLOUDFLARE_API_TOKEN: `${bed.cloudflare.apiToken}\n`, // the echo-without-n trap: trimmed with a warning
      ACME_DIRECTORY_URL: bed.pebble.directoryUrl,
      CLOUDFLARE_BASE_URL: bed.cloudflare.baseUrl,
      ACME_DNS_RESOLVERS: bed.dns.address,
      LETSENCRYPT_DIR: join(dir, 'letsencrypt'),
      MQTTS_PORT: String(port),
      DATA_DIR: join(dir, 'data'),
      NODE_EXTRA_CA_CERTS: caFile,
    };
    const ordersBefore = bed.pebble.orderCount();
    let broker = await spawnBroker(['-c', conf], env, 1);
    // The listener opens at once (with a self-signed stand-in) and serves the CA's certificate once issued.
    const root = await bed.pebble.issuingRoot();
    const serial = await expect
      .poll(() => peerSerial(broker.ports[0] ?? 0, root, 'cam.example.test').catch(() => ''), { timeout: 30_000 })
      .not.toBe('')
      .then(() => peerSerial(broker.ports[0] ?? 0, root, 'cam.example.test'));
    expect(bed.pebble.orderCount()).toBe(ordersBefore + 1);
    expect(broker.logs.text()).not.toContain(bed.cloudflare.apiToken);
    expect(broker.logs.text()).toMatch(/CLOUDFLARE_API_TOKEN: surrounding whitespace/);
    expect((await broker.stop()).code).toBe(0);

    broker = await spawnBroker(['-c', conf], env, 1);
    expect(bed.pebble.orderCount()).toBe(ordersBefore + 1);
    expect(await peerSerial(broker.ports[0] ?? 0, root, 'cam.example.test')).toBe(serial);
    const client = await connectMqtt({ port: broker.ports[0] ?? 0, ca: root, servername: 'cam.example.test', username: 'cam', password: USERS.cam });
    await client.endAsync();
    expect((await broker.stop()).code).toBe(0);
    expect(bed.cloudflare.records().length).toBe(0);
  });
});
