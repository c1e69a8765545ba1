/**
 * Is a stored lineage good enough for the configuration? Decides at start and at every check whether to serve
 * what is on the volume, and whether to issue: right names, right CA, matching key, not expired, not yet due.
 * Kept apart from renewal.ts, whose timing rules need nothing but a certificate's validity and a clock.
 */
import type { AcmeConfig } from '../config/schema.js';
import { LETSENCRYPT_STAGING } from '../config/managed.js';
import { nameCovered } from '../x509/dns-name.js';
import type { StoredLineage } from './lineage-store.js';
import { isDue, isExpired, type RenewalPolicy } from './renewal.js';

/** Are two ACME directory URLs the same directory? Host case and a trailing slash do not matter. */
export function sameDirectoryUrl(a: string, b: string): boolean {
  const norm = (u: string): string => {
    try {
      const url = new URL(u.trim());
      return `${url.protocol}//${url.host.toLowerCase()}${url.pathname.replace(/\/+$/, '')}${url.search}`;
    } catch {
      return u.trim().replace(/\/+$/, '');
    }
  };
  return norm(a) === norm(b);
}

export interface LineageAssessment {
  /** Everything holds: serve it and do not issue. */
  valid: boolean;
  /** Right names, right CA, key matches, not expired: serve it now even if a renewal is due. */
  servable: boolean;
  /** Only renewal is due (valid otherwise). */
  due: boolean;
  /** Human-readable reasons why it is not valid (empty when valid). */
  reasons: string[];
}

/**
 * A lineage is valid for the configuration when
 *  - it covers every configured name (nameCovered),
 *  - it comes from the configured ACME directory (renewal conf `server`; a staging certificate does not satisfy
 *    production). Without a renewal conf the origin is unknown: it is accepted, unless its issuer is a
 *    Let's Encrypt staging CA ("(STAGING)") while the configured directory is not staging,
 *  - the private key matches the certificate,
 *  - it is not expired, not yet due for renewal.
 */
export function assessLineage(l: StoredLineage, config: Pick<AcmeConfig, 'domains' | 'directoryUrl'>, now: number, policy: Partial<RenewalPolicy> = {}): LineageAssessment {
  const reasons: string[] = [];
  const missing = config.domains.filter((d) => !nameCovered(l.names, d));
  if (missing.length > 0) reasons.push(`does not cover ${missing.join(', ')}`);
  if (l.server !== undefined) {
    if (!sameDirectoryUrl(l.server, config.directoryUrl)) reasons.push(`comes from ${l.server}, not the configured ${config.directoryUrl}`);
  } else if (/\(STAGING\)/i.test(l.issuer) && !sameDirectoryUrl(config.directoryUrl, LETSENCRYPT_STAGING)) {
    reasons.push(`is a Let's Encrypt staging certificate (issuer ${l.issuer}), not from ${config.directoryUrl}`);
  }
  if (!l.keyMatches) reasons.push('its private key does not match the certificate');
  const expired = isExpired(l, now);
  if (expired) reasons.push(`expired at ${l.notAfter.toISOString()}`);
  else if (now < l.notBefore.getTime()) reasons.push(`not valid before ${l.notBefore.toISOString()}`);
  const structural = reasons.length;
  const due = !expired && isDue(l, now, policy);
  if (due) reasons.push('is due for renewal');
  return { valid: reasons.length === 0, servable: structural === 0, due: structural === 0 && due, reasons };
}
