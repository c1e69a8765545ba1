import { describe, expect, it } from 'vitest';
import { createServer, connect } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { createTestPki } from '../support/tls.js';
import { createCertificate, describeCertificate } from '../../src/certs/self-signed.js';

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
