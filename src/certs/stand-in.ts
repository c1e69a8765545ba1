/**
 * What the ACME source serves: the CA's certificate from the stored lineage, or, while that cannot be had,
 * the best stand-in there is rather than nothing: a stored lineage for the same names that is only from
 * another CA (Let's Encrypt staging) or expired, else a self-signed certificate for the names. Clients that
 * skip verification (a camera's `--insecure`) keep working meanwhile.
 */
import type { AcmeConfig } from '../config/schema.js';
import type { CertificateOrigin, SourcedCertificate } from '../tls/source.js';
import { describeCertificate } from '../x509/certificate-info.js';
import { nameCovered } from '../x509/dns-name.js';
import type { StoredLineage } from './lineage-store.js';
import { isExpired } from './renewal.js';

export interface ServedCertificate extends SourcedCertificate {
  /** Leaf + intermediates (fullchain.pem). */
  cert: string;
  /** Private key PEM. */
  key: string;
  notBefore: Date;
  names: string[];
  serial: string;
  lineage: string;
  /** True for a certificate from the configured CA; false for a stand-in (staging, expired, self-signed). */
  fromCa: boolean;
}

export function servedFromLineage(l: StoredLineage, origin: CertificateOrigin): ServedCertificate {
  const fromCa = origin === 'ca';
  return {
    cert: l.fullchain,
    key: l.privkey,
    notBefore: l.notBefore,
    notAfter: l.notAfter,
    names: l.names,
    serial: l.serial,
    lineage: l.name,
    fromCa,
    origin,
    description: fromCa ? `ACME lineage ${l.name}` : `stored ${origin} certificate of lineage ${l.name} (stand-in until the CA's arrives)`,
  };
}

/** Whether a stored lineage that the configuration does not accept can stand in, and as what. */
export function storedStandInOrigin(stored: StoredLineage, domains: string[], now: number): 'staging' | 'expired' | undefined {
  if (!stored.keyMatches || !domains.every((d) => nameCovered(stored.names, d))) return undefined;
  return isExpired(stored, now) ? 'expired' : 'staging';
}

/** A self-signed certificate for the configured names, valid 30 days, never written anywhere. */
export async function selfSignedStandIn(config: Pick<AcmeConfig, 'domains' | 'keyType'>, lineage: string): Promise<ServedCertificate> {
  const { createCertificate } = await import('./self-signed.js');
  const c = await createCertificate({ commonName: config.domains[0] ?? 'localhost', altNames: config.domains, keyType: config.keyType, validDays: 30 });
  const d = describeCertificate(c.cert);
  return {
    cert: c.cert,
    key: c.key,
    notBefore: d.notBefore,
    notAfter: d.notAfter,
    names: d.subjectAltNames,
    serial: d.serial,
    lineage,
    fromCa: false,
    origin: 'self_signed',
    description: 'self-signed stand-in until the CA certificate arrives',
  };
}
