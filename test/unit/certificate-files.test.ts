/**
 * Watched certificate files as a certificate source: a pair replaced file by file is one new certificate and
 * no failure; a pair still inconsistent after the settle time is one failure, and the current one stays.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { copyFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { FileCertificateSource } from '../../src/certs/files.js';
import { createLogger } from '../../src/log.js';
import { LogCapture } from '../support/broker.js';
import { createTestPki } from '../support/tls.js';

const sources: FileCertificateSource[] = [];
afterEach(async () => {
  await Promise.all(sources.splice(0).map((s) => s.close()));
});

async function setup(): Promise<{ dir: string; files: { certfile: string; keyfile: string }; next: { certFile: string; keyFile: string; cert: string }; first: string; source: FileCertificateSource; events: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'mab-certfiles-'));
  const pki = await createTestPki(dir);
  const a = await pki.issue(['localhost'], 'a');
  const next = await pki.issue(['localhost'], 'b');
  const files = { certfile: join(dir, 'served.crt'), keyfile: join(dir, 'served.key') };
  await copyFile(a.certFile, files.certfile);
  await copyFile(a.keyFile, files.keyfile);
  const source = await FileCertificateSource.open(files, createLogger('silent', new LogCapture()), { debounceMs: 50, pollMs: 100, settleMs: 600 });
  sources.push(source);
  const events: string[] = [];
  source.on('certificate', (c) => events.push(`certificate ${new X509Certificate(c.cert).serialNumber}`));
  source.on('error', (e) => events.push(`error ${e.message}`));
  return { dir, files, next, first: new X509Certificate(a.cert).serialNumber, source, events };
}

describe('FileCertificateSource', () => {
  it('takes a certificate replaced file by file as one new certificate, without a failure', async () => {
    const { files, next, source, events } = await setup();
    await copyFile(next.certFile, files.certfile);
    await new Promise((r) => setTimeout(r, 250)); // the watcher sees the new certificate with the old key
    await copyFile(next.keyFile, files.keyfile);
    const serial = new X509Certificate(next.cert).serialNumber;
    await expect.poll(() => events, { timeout: 5000 }).toEqual([`certificate ${serial}`]);
    await new Promise((r) => setTimeout(r, 800));
    expect(events).toEqual([`certificate ${serial}`]);
    expect(new X509Certificate(source.current()!.cert).serialNumber).toBe(serial);
    expect(source.current()?.origin).toBe('files');
  });

  it('reports a pair still inconsistent after the settle time once, and keeps serving the current one', async () => {
    const { files, next, first, source, events } = await setup();
    await copyFile(next.certFile, files.certfile);
    await expect.poll(() => events.length, { timeout: 5000 }).toBe(1);
    expect(events[0]).toMatch(/^error .*(key|values mismatch)/i);
    expect(new X509Certificate(source.current()!.cert).serialNumber).toBe(first);
  });
});
