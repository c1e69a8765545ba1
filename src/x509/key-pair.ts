/**
 * Does a private key belong to a certificate? The one answer for every place that holds a pair: a certbot
 * lineage (cert.pem + privkey.pem), the zero-config self-signed pair, a listener's certfile + keyfile.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';

/**
 * `matches`: the key is the certificate's. `mismatch`: both parse, but the key is another one.
 * `no-certificate` / `no-key`: that side does not parse (not PEM, truncated, an encrypted key).
 */
export type KeyPairCheck = 'matches' | 'mismatch' | 'no-certificate' | 'no-key';

/** Compare `key` (PEM) with the first certificate of `cert` (PEM; a chain is fine). Never throws. */
export function checkKeyPair(cert: string | Buffer, key: string | Buffer): KeyPairCheck {
  let certificate: X509Certificate;
  let privateKey: KeyObject;
  try {
    certificate = new X509Certificate(cert);
  } catch {
    return 'no-certificate';
  }
  try {
    privateKey = createPrivateKey(key);
  } catch {
    return 'no-key';
  }
  return certificate.checkPrivateKey(privateKey) ? 'matches' : 'mismatch';
}
