import { describe, expect, it } from 'vitest';
import { lstat, readFile, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestPki } from '../support/tls.js';
import { tempDirs } from '../support/temp-dirs.js';
import { createCertificate } from '../../src/certs/self-signed.js';
import { loadOrCreateSelfSigned } from '../../src/certs/self-signed-file.js';
import { describeCertificate } from '../../src/x509/certificate-info.js';
import { checkKeyPair } from '../../src/x509/key-pair.js';

const mkdtemp = tempDirs();

function recorder(): { logger: Parameters<typeof loadOrCreateSelfSigned>[2]; logs: { level: string; obj: Record<string, unknown>; msg: string }[] } {
  const logs: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  return {
    logs,
    logger: {
      info: (obj, msg) => void logs.push({ level: 'info', obj: obj as Record<string, unknown>, msg }),
      warn: (obj, msg) => void logs.push({ level: 'warn', obj: obj as Record<string, unknown>, msg }),
    },
  };
}

describe('locally made certificates', () => {
  it('a leaf signed by a test CA is trusted by a TLS client that trusts the CA, for its names only', async () => {
    const pki = await createTestPki();
    const leaf = await pki.issue(['localhost', '127.0.0.1']);
    const server = createServer({ cert: leaf.cert, key: leaf.key }, (s) => s.end('hi'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const ok = await new Promise<string>((resolve, reject) => {
      const s = connect({ port, host: '127.0.0.1', ca: pki.ca.cert, servername: 'localhost' }, () => undefined);
      s.on('data', (d) => resolve(d.toString()));
      s.on('error', reject);
    });
    expect(ok).toBe('hi');
    const err = await new Promise<Error>((resolve) => {
      const s = connect({ port, host: '127.0.0.1', ca: pki.ca.cert, servername: 'other.example' });
      s.on('error', resolve);
    });
    expect(err.message).toMatch(/altnames|Hostname/i);
    server.close();
  });

  it('describes names, serial and expiry; RSA keys work too', async () => {
    const c = await createCertificate({ commonName: 'x', altNames: ['a.example', '10.0.0.1'], keyType: 'rsa-2048', validDays: 10 });
    const d = describeCertificate(c.cert);
    expect(d.subjectAltNames).toEqual(['a.example', '10.0.0.1']);
    expect(d.notAfter.getTime() - d.notBefore.getTime()).toBe(10 * 86_400_000);
    expect(c.key).toMatch(/BEGIN PRIVATE KEY/);
  });
});

describe('does a key belong to a certificate?', () => {
  it('answers matches for the pair, also against a chain; mismatch for another key, of the same or another type', async () => {
    const pki = await createTestPki();
    const leaf = await pki.issue(['a.example']);
    const other = await createCertificate({ commonName: 'b.example', keyType: 'rsa-2048' });
    expect(checkKeyPair(leaf.cert, leaf.key)).toBe('matches');
    expect(checkKeyPair(Buffer.from(leaf.cert + pki.ca.cert), Buffer.from(leaf.key))).toBe('matches');
    expect(checkKeyPair(pki.ca.cert + leaf.cert, leaf.key)).toBe('mismatch'); // the first certificate counts
    expect(checkKeyPair(leaf.cert, pki.ca.key)).toBe('mismatch');
    expect(checkKeyPair(leaf.cert, other.key)).toBe('mismatch');
  });

  it('says which side does not parse instead of throwing', async () => {
    const c = await createCertificate({ commonName: 'x' });
    expect(checkKeyPair(c.key, c.key)).toBe('no-certificate');
    expect(checkKeyPair(c.cert.slice(0, 200), c.key)).toBe('no-certificate');
    expect(checkKeyPair(c.cert, c.cert)).toBe('no-key');
    expect(checkKeyPair(c.cert, '')).toBe('no-key');
  });
});

describe('the zero-config self-signed certificate on disk', () => {
  it('is made once (key 0600, directory 0700) and reused on the next start', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'mab-selfsigned-')), 'certs');
    const first = recorder();
    const made = await loadOrCreateSelfSigned(dir, ['broker.local', '127.0.0.1'], first.logger);
    expect(made.created).toBe(true);
    expect(first.logs).toEqual([]); // a missing pair is the normal first start, not a warning
    expect(describeCertificate(made.cert).subjectAltNames).toEqual(['broker.local', '127.0.0.1']);
    expect(((await lstat(dir)).mode & 0o777).toString(8)).toBe('700');
    expect(((await lstat(made.keyFile)).mode & 0o777).toString(8)).toBe('600');
    expect(await readFile(made.certFile, 'utf8')).toBe(made.cert);

    const again = await loadOrCreateSelfSigned(dir, ['broker.local'], recorder().logger);
    expect(again).toMatchObject({ created: false, cert: made.cert, key: made.key });
  });

  it('is made anew, with a warning that says why, when the key does not match or the certificate is not one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mab-selfsigned-'));
    const made = await loadOrCreateSelfSigned(dir, ['broker.local'], recorder().logger);
    const stranger = await createCertificate({ commonName: 'other' });
    await writeFile(made.keyFile, stranger.key);
    const r = recorder();
    const remade = await loadOrCreateSelfSigned(dir, ['broker.local'], r.logger);
    expect(remade.created).toBe(true);
    expect(remade.cert).not.toBe(made.cert);
    expect(r.logs).toEqual([{ level: 'warn', obj: { certFile: made.certFile, reason: 'key does not match certificate' }, msg: 'self-signed certificate unusable; making a new one' }]);

    await writeFile(made.certFile, 'not a certificate\n');
    const broken = recorder();
    expect((await loadOrCreateSelfSigned(dir, ['broker.local'], broken.logger)).created).toBe(true);
    expect(broken.logs[0]?.obj.reason).toBe('cert.pem does not hold a certificate');
  });

  it('is made anew within 30 days of its expiry', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mab-selfsigned-'));
    const old = await createCertificate({ commonName: 'broker.local', validDays: 20 });
    await writeFile(join(dir, 'cert.pem'), old.cert);
    await writeFile(join(dir, 'key.pem'), old.key);
    const r = recorder();
    const remade = await loadOrCreateSelfSigned(dir, ['broker.local'], r.logger);
    expect(remade.created).toBe(true);
    expect(describeCertificate(remade.cert).notAfter.getTime() - Date.now()).toBeGreaterThan(800 * 86_400_000);
    expect(r.logs.map((l) => `${l.level}: ${l.msg}`)).toEqual(['info: self-signed certificate expires soon; making a new one']);
  });
});
