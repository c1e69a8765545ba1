/**
 * Renewal on the timer with short-lived pebble certificates, and a kill -9 of the issuing child mid-renewal.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FailedEvent, IssuedEvent } from '../../src/certs/manager.js';
import type { ServedCertificate } from '../../src/certs/stand-in.js';
import { CertificateStore, type StoredLineage } from '../../src/certs/lineage-store.js';
import { nextEvent, startAcmeTestbed, writeCertbotStyleLineage, type AcmeTestbed } from '../support/pebble.js';

function expectConsistent(l: StoredLineage | undefined): asserts l is StoredLineage {
  expect(l).toBeDefined();
  const cert = new X509Certificate(l!.cert);
  expect(cert.checkPrivateKey(createPrivateKey(l!.privkey))).toBe(true);
  expect(l!.fullchain.startsWith(l!.cert.trim())).toBe(true);
  expect(() => createSecureContext({ cert: l!.fullchain, key: l!.privkey })).not.toThrow();
}

describe('renewal', () => {
  let bed: AcmeTestbed;
  beforeAll(async () => {
    // 12-second certificates: due (a third left) 8 s after issuance.
    bed = await startAcmeTestbed({ validitySeconds: 12 });
  });
  afterEach(async () => {
    await bed?.reset();
  });
  afterAll(async () => {
    await bed?.close();
  });

  it('renews on the timer when a third of the lifetime is left: serial N+1 served and stored, archive keeps N', async () => {
    const dir = await bed.newDir();
    const m = bed.manager(bed.config(dir));
    const served: ServedCertificate[] = [];
    m.on('certificate', (c: ServedCertificate) => served.push(c));
    const scheduled: { reason: string; at: Date }[] = [];
    m.on('scheduled', (s: { reason: string; at: Date }) => scheduled.push(s));
    const renewal = nextEvent<IssuedEvent>(m, 'issued', (e) => e.renewal);
    await m.start();
    const c1 = await m.whenCaCertificate();
    const renewed = await renewal;
    await m.stop();

    expect(renewed.renewal).toBe(true);
    const c2 = served[served.length - 1]!;
    expect(c2.serial).toBe(renewed.serial);
    expect(c2.serial).not.toBe(c1.serial);
    expect(c2.notAfter.getTime()).toBeGreaterThan(c1.notAfter.getTime());
    // The check that triggered it was scheduled for the due time of c1 (two thirds into its life), not earlier.
    const check = scheduled.find((s) => s.reason === 'renewal-check');
    const dueAt = c1.notBefore.getTime() + ((c1.notAfter.getTime() - c1.notBefore.getTime()) * 2) / 3;
    expect(check!.at.getTime()).toBeGreaterThanOrEqual(dueAt);
    expect(m.stats()).toMatchObject({ renewalsSucceeded: 2, renewalsFailed: 0 });

    const stored = await new CertificateStore(dir).read('example.test');
    expect(stored).toMatchObject({ version: 2, serial: c2.serial });
    expect(c1.cert.startsWith(await readFile(join(dir, 'archive', 'example.test', 'cert1.pem'), 'utf8'))).toBe(true);
    expect((await readdir(join(dir, 'archive', 'example.test'))).sort()).toEqual(['cert1.pem', 'cert2.pem', 'chain1.pem', 'chain2.pem', 'fullchain1.pem', 'fullchain2.pem', 'privkey1.pem', 'privkey2.pem']);
    expect(c2.key).not.toBe(c1.key);
    expect(bed.cloudflare.records()).toEqual([]);
  });

  it('kill -9 of the issuing child mid-renewal: the store stays consistent, the old certificate stays served, the retry cleans up and renews', async () => {
    const dir = await bed.newDir();
    // A stored certificate that is due (61 of 90 days used) from this CA.
    const made = await writeCertbotStyleLineage(dir, { name: 'example.test', names: ['*.example.test', 'example.test'], server: bed.pebble.directoryUrl, notBeforeOffsetDays: -61, validDays: 90 });
    const m = bed.manager(bed.config(dir));
    let killed: number | undefined;
    // Kill it right after the CA validated, while it removes its records (before the certificate is stored).
    bed.cloudflare.onRequest((r) => {
      const pid = m.issuingPid;
      if (killed === undefined && r.method === 'DELETE' && pid !== undefined) {
        killed = pid;
        process.kill(pid, 'SIGKILL');
      }
    });
    const failed = nextEvent<FailedEvent>(m, 'issue-failed');
    await m.start();
    expect(m.current()?.serial).toBe(made.serial);
    const failure = await failed;
    expect(failure.error.message).toMatch(new RegExp(`issuing process ${killed} exited before finishing \\(signal SIGKILL\\)`));
    expect(m.current()?.serial).toBe(made.serial);
    const afterKill = await new CertificateStore(dir).read('example.test');
    expectConsistent(afterKill);
    expect(afterKill.serial).toBe(made.serial);

    // The retry (after the backoff) removes what the killed child left in Cloudflare and renews.
    const issued = await nextEvent<IssuedEvent>(m, 'issued');
    await m.stop();
    expect(issued.serial).not.toBe(made.serial);
    expect(bed.cloudflare.records()).toEqual([]);
    expect(bed.logs.text()).toMatch(/removing TXT records left by an interrupted attempt/);
    const renewed = await new CertificateStore(dir).read('example.test');
    expectConsistent(renewed);
    expect(renewed.serial).toBe(issued.serial);
  });

  it('kill -9 of the issuing child while it stores the certificate: read() serves a complete lineage, old or new', async () => {
    const dir = await bed.newDir();
    const made = await writeCertbotStyleLineage(dir, { name: 'example.test', names: ['*.example.test', 'example.test'], server: bed.pebble.directoryUrl, notBeforeOffsetDays: -61, validDays: 90 });
    const m = bed.manager(bed.config(dir));
    let killed = false;
    bed.logs.onLine((line) => {
      const pid = m.issuingPid;
      if (!killed && pid !== undefined && line.includes('"msg":"certificate issued"')) {
        killed = true;
        process.kill(pid, 'SIGKILL');
      }
    });
    const outcome = Promise.race([nextEvent<FailedEvent>(m, 'issue-failed').then(() => 'failed'), nextEvent<IssuedEvent>(m, 'issued').then(() => 'issued')]);
    await m.start();
    const first = await outcome;
    const read = await new CertificateStore(dir).read('example.test');
    expectConsistent(read);
    expect(m.current()?.serial).toBe(read.serial);
    if (first === 'failed') {
      expect(read.serial).toBe(made.serial);
      await nextEvent<IssuedEvent>(m, 'issued');
    }
    await m.stop();
    expect(killed).toBe(true);
    const final = await new CertificateStore(dir).read('example.test');
    expectConsistent(final);
    expect(final.serial).not.toBe(made.serial);
    expect(m.current()?.serial).toBe(final.serial);
  });
});
