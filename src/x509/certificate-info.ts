/** What a PEM certificate says about itself, read with node:crypto only (cheap to load). */
import { X509Certificate } from 'node:crypto';

export interface CertificateInfo {
  subject: string;
  issuer: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** DNS names and IP addresses of the subjectAltName. */
  subjectAltNames: string[];
}

/** Describe the first certificate of a PEM (chain); throws with OpenSSL's reason on bad input. */
export function describeCertificate(pem: string | Buffer): CertificateInfo {
  const cert = new X509Certificate(pem);
  const subjectAltNames = (cert.subjectAltName ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('DNS:') || s.startsWith('IP Address:'))
    .map((s) => s.replace(/^DNS:|^IP Address:/, ''));
  return {
    subject: cert.subject.replace(/\n/g, ', '),
    issuer: cert.issuer.replace(/\n/g, ', '),
    serial: cert.serialNumber,
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    subjectAltNames,
  };
}
