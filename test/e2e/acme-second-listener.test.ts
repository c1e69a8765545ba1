/**
 * A second listener for old cameras serves the same ACME certificate as MQTTS_PORT: opened to TLS 1.0 on its
 * own, it opens at start (with the stand-in, like the main one) and the CA's certificate reaches both at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectionOptions } from 'node:tls';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultConfig, type Config } from '../../src/config/schema.js';
import { startServer, type RunningServer } from '../../src/server/start.js';
import { createLogger } from '../../src/log.js';
import { connectMqtt, collectMessages } from '../support/clients.js';
import { LogCapture, PASSWD, USERS } from '../support/broker.js';
import { freePort } from '../support/ports.js';
import { startAcmeTestbed, type AcmeTestbed } from '../support/pebble.js';
import { onlyTls, tlsHandshake } from '../support/tls.js';

let bed: AcmeTestbed;
let running: RunningServer | undefined;
beforeAll(async () => {
  bed = await startAcmeTestbed();
});
afterAll(async () => {
  await running?.close();
  await bed?.close();
});

const TLS1 = onlyTls('TLSv1');

/** The negotiated version and the served certificate's serial, trusting nothing (the stand-in is self-signed). */
async function handshake(port: number, options: ConnectionOptions): Promise<{ protocol: string | null; serial: string }> {
  const { protocol, serial } = await tlsHandshake(port, '', { servername: 'cam.example.test', rejectUnauthorized: false, ...options });
  return { protocol, serial };
}

describe('a legacy TLS 1.0 listener beside MQTTS_PORT', () => {
  it('serves the same ACME certificate, to TLS 1.0 clients only there', async () => {
    const dir = await bed.newDir();
    const [main, legacy] = [await freePort(), await freePort()];
    await writeFile(join(dir, 'passwd'), PASSWD);
    const config: Config = {
      ...defaultConfig(),
      listeners: [
        { port: main, host: '127.0.0.1', protocol: 'mqtt', requireCertificate: false, selfSigned: false },
        { port: legacy, host: '127.0.0.1', protocol: 'mqtt', requireCertificate: false, selfSigned: false, acme: true, tlsVersion: 'tlsv1' },
      ],
      passwordFile: join(dir, 'passwd'),
      dataDir: join(dir, 'data'),
      persistence: false,
      persistenceLocation: join(dir, 'data', 'persistence'),
      ops: { port: -1 },
      acme: { ...bed.config(dir, { mqttsPort: main }), selfSignedWhileWaiting: true },
    };
    const logs = new LogCapture();
    running = await startServer(config, createLogger('debug', logs), { acme: bed.managerOptions() });
    expect(running.listeners.map((l) => l.port).sort()).toEqual([main, legacy].sort());

    const ca = await running.certificates!.whenCaCertificate();
    const root = await bed.pebble.issuingRoot();
    await expect.poll(async () => (await handshake(legacy, TLS1)).serial, { timeout: 10_000 }).toBe(ca.serial);
    expect(await handshake(legacy, TLS1)).toEqual({ protocol: 'TLSv1', serial: ca.serial });
    expect((await handshake(main, {})).serial).toBe(ca.serial);
    await expect(handshake(main, TLS1)).rejects.toThrow(/protocol|version/i);
    expect(logs.lines.some((l) => l.level === 'warn' && /RFC 8996/.test(String(l.msg)))).toBe(true);

    // An MQTT 3.1.1 client over TLS 1.0 that verifies the chain, as a camera with ISRG Root X1 would.
    const camera = await connectMqtt({ port: legacy, ca: root, servername: 'cam.example.test', username: 'cam', password: USERS.cam, ...TLS1 });
    await camera.subscribeAsync('cam/legacy', { qos: 1 });
    const got = collectMessages(camera, 1);
    await camera.publishAsync('cam/legacy', 'over TLS 1.0', { qos: 1 });
    expect((await got)[0]?.payload).toBe('over TLS 1.0');
    await camera.endAsync();
  });
});
