/**
 * The zero-config TLS identity: a self-signed certificate kept in the data directory.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../files/atomic.js';
import { ensureDir } from '../files/directory.js';
import { readText } from '../files/read.js';
import { describeCertificate } from '../x509/certificate-info.js';
import { checkKeyPair } from '../x509/key-pair.js';

const KEY_PAIR_PROBLEM = {
  'no-certificate': 'cert.pem does not hold a certificate',
  'no-key': 'key.pem does not hold a private key',
  mismatch: 'key does not match certificate',
} as const;

/**
 * The zero-config certificate: made once, kept in `<dir>/cert.pem` + `<dir>/key.pem` and reused on later
 * starts (so that clients that pinned it keep working), remade only when missing, unreadable or within 30
 * days of expiry.
 */
export async function loadOrCreateSelfSigned(
  dir: string,
  names: string[],
  logger: { info: (obj: object, msg: string) => void; warn: (obj: object, msg: string) => void },
): Promise<{ cert: string; key: string; certFile: string; keyFile: string; created: boolean }> {
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  try {
    const [cert, key] = await Promise.all([readText(certFile, 'self-signed certificate'), readText(keyFile, 'self-signed key')]);
    const pair = checkKeyPair(cert, key);
    if (pair !== 'matches') throw new Error(KEY_PAIR_PROBLEM[pair]);
    const { notAfter } = describeCertificate(cert);
    if (notAfter.getTime() - Date.now() > 30 * 86_400_000) {
      return { cert, key, certFile, keyFile, created: false };
    }
    logger.info({ certFile, notAfter: notAfter.toISOString() }, 'self-signed certificate expires soon; making a new one');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') logger.warn({ certFile, reason: (err as Error).message }, 'self-signed certificate unusable; making a new one');
  }
  await ensureDir(dir);
  // @peculiar/x509 (with reflect-metadata) is imported only to make a certificate: it is large, and a start
  // that reuses the stored certificate does not need it.
  const { createCertificate } = await import('./self-signed.js');
  const made = await createCertificate({ commonName: names[0] ?? 'localhost', altNames: names, validDays: 825 });
  await writeFileAtomic(keyFile, made.key, { mode: 0o600 });
  await writeFileAtomic(certFile, made.cert, { mode: 0o644 });
  return { cert: made.cert, key: made.key, certFile, keyFile, created: true };
}
