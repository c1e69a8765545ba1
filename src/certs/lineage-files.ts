/**
 * The four PEM files of a certbot lineage (cert, chain, fullchain, privkey) and when they make a usable set:
 * a certificate, its private key, and a fullchain that starts with that certificate.
 */
import { checkKeyPair } from '../x509/key-pair.js';
import { chainStartsWith } from '../x509/pem.js';

export const KINDS = ['cert', 'chain', 'fullchain', 'privkey'] as const;
export type PemKind = (typeof KINDS)[number];

export interface CertificateFiles {
  /** The leaf alone. */
  cert: string;
  /** Intermediates. */
  chain: string;
  /** Leaf + intermediates (what a TLS server sends). */
  fullchain: string;
  privkey: string;
}

export interface LineageFilesCheck {
  /** Why the four PEMs are not a usable set; undefined when they are. */
  reason?: string;
  /** The private key belongs to the certificate (false when either does not parse). */
  keyMatches: boolean;
  /** A certificate, a private key, and a fullchain starting with the certificate: usable but for a wrong key. */
  wellFormed: boolean;
}

/** Check the four PEMs; the reason names the first problem (a wrong key is reported last). */
export function checkLineageFiles(files: CertificateFiles): LineageFilesCheck {
  const pair = checkKeyPair(files.cert, files.privkey);
  if (pair === 'no-certificate') return { reason: 'cert.pem does not hold a certificate', keyMatches: false, wellFormed: false };
  if (pair === 'no-key') return { reason: 'privkey.pem does not hold a private key', keyMatches: false, wellFormed: false };
  const keyMatches = pair === 'matches';
  if (!chainStartsWith(files.fullchain, files.cert)) return { reason: 'fullchain.pem does not start with cert.pem', keyMatches, wellFormed: false };
  if (!keyMatches) return { reason: 'the private key does not belong to the certificate', keyMatches, wellFormed: true };
  return { keyMatches, wellFormed: true };
}
