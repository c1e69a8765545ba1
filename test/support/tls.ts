/** A throwaway CA and server certificates, made at test time, written to a temp directory. */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { createCertificate, type IssuedCertificate } from '../../src/certs/self-signed.js';

export interface TestPki {
  dir: string;
  ca: IssuedCertificate;
  caFile: string;
  /** Issue a leaf for the given names (default localhost + 127.0.0.1), write cert/key files, return paths. */
  issue(names?: string[], basename?: string): Promise<{ certFile: string; keyFile: string; cert: string; key: string }>;
}

export async function createTestPki(dir?: string): Promise<TestPki> {
  const root = dir ?? (await mkdtemp(join(tmpdir(), 'mab-pki-')));
  const ca = await createCertificate({ commonName: 'mqtt-acme-broker test CA', isCA: true, validDays: 30 });
  const caFile = join(root, 'ca.pem');
  await writeFile(caFile, ca.cert);
  let count = 0;
  return {
    dir: root,
    ca,
    caFile,
    async issue(names = ['localhost', '127.0.0.1'], basename) {
      count += 1;
      const leaf = await createCertificate({ commonName: names[0] ?? 'localhost', altNames: names, issuer: ca, validDays: 30 });
      const base = basename ?? `server${count}`;
      const certFile = join(root, `${base}.crt`);
      const keyFile = join(root, `${base}.key`);
      await writeFile(certFile, leaf.cert);
      await writeFile(keyFile, leaf.key, { mode: 0o600 });
      return { certFile, keyFile, cert: leaf.cert, key: leaf.key };
    },
  };
}

/** What one TLS handshake negotiated, seen from the client side. */
export interface Negotiated {
  protocol: string | null;
  cipher: string;
  /** Serial number of the certificate the server sent. */
  serial: string;
}

/**
 * One TLS handshake with Node's client against 127.0.0.1:`port` (trusting `ca`, name `localhost`); resolves
 * with what was negotiated, rejects with the client's error (its `code`, e.g. ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION).
 * `localAddress` (any of 127/8 on Linux) makes the broker see a remote address of the test's choosing.
 */
export function tlsHandshake(port: number, ca: string | Buffer, options: ConnectionOptions & { localAddress?: string } = {}): Promise<Negotiated> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...options }, () => {
      const negotiated = { protocol: socket.getProtocol(), cipher: socket.getCipher().name, serial: socket.getPeerCertificate().serialNumber };
      socket.end();
      resolve(negotiated);
    });
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('TLS handshake timed out (test client)')));
  });
}

/** Node client options for one old TLS version (OpenSSL 3 needs security level 0 for TLS 1.0 and 1.1). */
export function onlyTls(version: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3'): Pick<ConnectionOptions, 'minVersion' | 'maxVersion' | 'ciphers'> {
  const old = version === 'TLSv1' || version === 'TLSv1.1';
  return { minVersion: version, maxVersion: version, ...(old ? { ciphers: 'DEFAULT:@SECLEVEL=0' } : {}) };
}

/**
 * An OpenSSL configuration file for OPENSSL_CONF that bounds the TLS versions of every OpenSSL client run
 * with it (mosquitto_pub has no maximum-version option: its --tls-version is a minimum), at security level 0
 * so that TLS 1.0/1.1 are possible at all.
 */
export async function opensslClientConf(dir: string, bounds: { min?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3'; max: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3' }): Promise<string> {
  const file = join(dir, `openssl-client-${bounds.min ?? 'any'}-${bounds.max}.cnf`);
  await writeFile(
    file,
    [
      'openssl_conf = default_conf',
      '[default_conf]',
      'ssl_conf = ssl_sect',
      '[ssl_sect]',
      'system_default = system_default_sect',
      '[system_default_sect]',
      ...(bounds.min === undefined ? [] : [`MinProtocol = ${bounds.min}`]),
      `MaxProtocol = ${bounds.max}`,
      'CipherString = DEFAULT:@SECLEVEL=0',
      '',
    ].join('\n'),
  );
  return file;
}
