/** A throwaway CA and server certificates, made at test time, written to a temp directory. */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
