/**
 * A listener's TLS policy (tls_version, ciphers, ciphers_tls1.3) as Node's options: each directive alone
 * keeps Node's default for the other TLS generation, old versions get OpenSSL's security level 0, and what
 * OpenSSL would refuse stops the start with the listener's name. The handshakes themselves are in
 * test/integration/tls-versions.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { connect, createServer, DEFAULT_CIPHERS, type SecureContextOptions } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { createCertificate } from '../../src/certs/self-signed.js';
import { tlsPolicy, TlsPolicyError } from '../../src/tls/policy.js';

/** The TLS version a default Node client negotiates with a loopback server made with `options`. */
async function negotiated(options: SecureContextOptions): Promise<string | null> {
  const { cert, key } = await createCertificate({ commonName: 'localhost', altNames: ['localhost'], validDays: 1 });
  const server = createServer({ cert, key, ...options }, (s) => s.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    return await new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, rejectUnauthorized: false }, () => {
        resolve(socket.getProtocol());
        socket.end();
      });
      socket.on('error', reject);
    });
  } finally {
    server.close();
  }
}

const parts = (ciphers: string | undefined): string[] => (ciphers ?? '').split(':');
const defaultSuites = DEFAULT_CIPHERS.split(':').filter((c) => c.startsWith('TLS_'));
const defaultList = DEFAULT_CIPHERS.split(':').filter((c) => !c.startsWith('TLS_'));

describe('tlsPolicy', () => {
  it('defaults to TLS 1.2 and Node\'s own cipher choice', () => {
    const p = tlsPolicy('mqtts:8883', {});
    expect(p).toMatchObject({ minVersion: 'TLSv1.2', ciphers: undefined, legacy: false, tls13: true });
    expect(p.options).toEqual({ minVersion: 'TLSv1.2' });
  });

  it.each([
    ['tlsv1', 'TLSv1'],
    ['tlsv1.1', 'TLSv1.1'],
  ] as const)('%s: minimum %s, the default lists, and security level 0 appended to the TLS 1.2 list', (tlsVersion, minVersion) => {
    const p = tlsPolicy('mqtts:8884', { tlsVersion });
    expect(p.minVersion).toBe(minVersion);
    expect(p.legacy).toBe(true);
    expect(parts(p.ciphers)).toEqual([...defaultSuites, ...defaultList, '@SECLEVEL=0']);
  });

  it('tlsv1.3: minimum TLSv1.3, no cipher string of its own', () => {
    expect(tlsPolicy('mqtts:8883', { tlsVersion: 'tlsv1.3' })).toMatchObject({ minVersion: 'TLSv1.3', ciphers: undefined, legacy: false });
  });

  it('ciphers alone keeps the default TLS 1.3 suites, named explicitly', () => {
    const p = tlsPolicy('mqtts:8883', { ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305' });
    expect(parts(p.ciphers)).toEqual([...defaultSuites, 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305']);
    expect(p.tls13).toBe(true);
  });

  it('ciphers_tls1.3 alone keeps the default TLS 1.2 list (Node would otherwise raise the minimum to TLS 1.3); both together are both used', () => {
    const only13 = tlsPolicy('mqtts:8883', { ciphersTls13: 'TLS_CHACHA20_POLY1305_SHA256' });
    expect(parts(only13.ciphers)).toEqual(['TLS_CHACHA20_POLY1305_SHA256', ...defaultList]);
    const both = tlsPolicy('mqtts:8883', { ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384', ciphersTls13: 'TLS_AES_128_GCM_SHA256', tlsVersion: 'tlsv1.1' });
    expect(parts(both.ciphers)).toEqual(['TLS_AES_128_GCM_SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', '@SECLEVEL=0']);
  });

  it('an empty ciphers_tls1.3 switches TLS 1.3 off, and is refused on a tlsv1.3 listener', async () => {
    const p = tlsPolicy('mqtts:8883', { ciphersTls13: '' });
    expect(p.tls13).toBe(false);
    expect(parts(p.ciphers).some((c) => c.startsWith('TLS_'))).toBe(false);
    // Node keeps OpenSSL's default suites when it is given none, so only a maximum version turns 1.3 off.
    expect(await negotiated(p.options)).toBe('TLSv1.2');
    expect(await negotiated(tlsPolicy('mqtts:8883', {}).options)).toBe('TLSv1.3');
    expect(() => tlsPolicy('mqtts:8883', { ciphersTls13: '', tlsVersion: 'tlsv1.3' })).toThrow(/mqtts:8883: ciphers_tls1.3 is empty while tls_version is tlsv1.3/);
  });

  it('keeps a security level the cipher list sets itself', () => {
    const p = tlsPolicy('mqtts:8884', { tlsVersion: 'tlsv1', ciphers: 'HIGH:!aNULL:@SECLEVEL=1' });
    expect(parts(p.ciphers).filter((c) => c.startsWith('@SECLEVEL'))).toEqual(['@SECLEVEL=1']);
  });

  it.each([
    [{ ciphers: 'NOT-A-CIPHER' }, /^listener mqtts:8884: ciphers "NOT-A-CIPHER" is refused by OpenSSL \(no cipher match\)/],
    [{ ciphers: 'TLS_AES_128_GCM_SHA256' }, /^listener mqtts:8884: ciphers .* names TLS 1\.3 suites \(TLS_AES_128_GCM_SHA256\): they belong in ciphers_tls1\.3/],
    [{ ciphers: '' }, /^listener mqtts:8884: ciphers is empty/],
    [{ ciphersTls13: 'ECDHE-ECDSA-AES128-GCM-SHA256' }, /^listener mqtts:8884: ciphers_tls1\.3 .*ECDHE-ECDSA-AES128-GCM-SHA256 is not a TLS 1\.3 suite name/],
    [{ ciphersTls13: 'TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384' }, /^listener mqtts:8884: ciphers_tls1\.3 .* is refused by OpenSSL/],
    [{ ciphersTls13: 'TLS_NOPE' }, /^listener mqtts:8884: ciphers_tls1\.3 "TLS_NOPE" is refused by OpenSSL/],
  ])('refuses %j with an error naming the listener and the directive', (config, message) => {
    expect(() => tlsPolicy('mqtts:8884', config)).toThrow(TlsPolicyError);
    expect(() => tlsPolicy('mqtts:8884', config)).toThrow(message);
  });

  it('warns about names OpenSSL ignores in an otherwise valid list, and about ciphers on a TLS 1.3-only listener', () => {
    expect(tlsPolicy('mqtts:8883', { ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA257' }).warnings).toEqual([
      'ciphers: ECDHE-ECDSA-AES128-GCM-SHA257 is not a cipher this OpenSSL knows; it is ignored',
    ]);
    expect(tlsPolicy('mqtts:8883', { ciphers: 'HIGH:!aNULL:ECDHE-ECDSA-AES128-GCM-SHA256' }).warnings).toEqual([]);
    expect(tlsPolicy('mqtts:8883', { ciphersTls13: 'TLS_AES_128_GCM_SHA256:TLS_AES_512_GCM_SHA768' }).warnings).toEqual([
      'ciphers_tls1.3: TLS_AES_512_GCM_SHA768 is not a TLS 1.3 suite this OpenSSL knows; it is ignored',
    ]);
    expect(tlsPolicy('mqtts:8883', { tlsVersion: 'tlsv1.3', ciphers: 'HIGH' }).warnings).toEqual([
      expect.stringMatching(/^ciphers applies to TLS 1\.2 and below/),
    ]);
  });
});
