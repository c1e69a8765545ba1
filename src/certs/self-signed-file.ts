/**
 * The zero-config TLS identity: a self-signed certificate kept in the data directory.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../files/atomic.js';

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
    const [cert, key] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
    const x = new X509Certificate(cert);
    if (!x.checkPrivateKey(createPrivateKey(key))) throw new Error('key does not match certificate');
    const notAfter = new Date(x.validTo);
    if (notAfter.getTime() - Date.now() > 30 * 86_400_000) {
      return { cert, key, certFile, keyFile, created: false };
    }
    logger.info({ certFile, notAfter: notAfter.toISOString() }, 'self-signed certificate expires soon; making a new one');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') logger.warn({ certFile, reason: (err as Error).message }, 'self-signed certificate unusable; making a new one');
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // The X.509 toolkit (~10 MB of RSS) is loaded only to make a certificate, never to reuse one.
  const { createCertificate } = await import('./self-signed.js');
  const made = await createCertificate({ commonName: names[0] ?? 'localhost', altNames: names, validDays: 825 });
  await writeFileAtomic(keyFile, made.key, { mode: 0o600 });
  await writeFileAtomic(certFile, made.cert, { mode: 0o644 });
  return { cert: made.cert, key: made.key, certFile, keyFile, created: true };
}
