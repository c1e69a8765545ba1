/**
 * Where a TLS listener's certificate comes from. Every kind of source (the ACME lineage, user-given PEM files,
 * the self-signed zero-config default) implements this one interface, and the composition root connects any
 * of them to the listeners' TLS contexts the same way: serve `current()` at start, then every 'certificate'
 * event; count and log every 'error' (the current certificate stays in use).
 */
import type { TlsMaterial } from './context.js';

/** Where a served certificate comes from: the CA, or a stand-in while the CA's cannot be had. */
export const CERTIFICATE_ORIGINS = ['ca', 'staging', 'expired', 'self_signed', 'files'] as const;
export type CertificateOrigin = (typeof CERTIFICATE_ORIGINS)[number];

export interface SourcedCertificate extends TlsMaterial {
  origin: CertificateOrigin;
  /** For logs: `ACME lineage example.com`, `/etc/ssl/broker.pem`, ... */
  description: string;
  /** certbot's lineage name for ACME certificates (the metrics label), undefined otherwise. */
  lineage?: string;
  notAfter: Date;
}

export interface CertificateSourceEvents {
  certificate: [SourcedCertificate];
  /** A new certificate could not be had; the current one stays. */
  error: [Error];
}

export interface CertificateSource {
  /** For logs and readiness: `acme example.com`, `files /etc/ssl/broker.pem`, `self-signed`. */
  readonly name: string;
  /** What to serve now; undefined while there is nothing yet. */
  current(): SourcedCertificate | undefined;
  on<E extends keyof CertificateSourceEvents>(event: E, listener: (...args: CertificateSourceEvents[E]) => void): unknown;
  off<E extends keyof CertificateSourceEvents>(event: E, listener: (...args: CertificateSourceEvents[E]) => void): unknown;
  close(): Promise<void>;
}
