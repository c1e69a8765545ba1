/**
 * What DNS-01 needs from a DNS host: find the zone that holds a name, create a TXT record, and remove exactly
 * that record again (by its id, never by name: a wildcard plus its apex puts two values on one name at once).
 */
import { normalizeDnsName, withoutWildcard } from '../../x509/dns-name.js';

export interface DnsZone {
  id: string;
  /** The zone apex, e.g. `example.com`. */
  name: string;
  /** The zone's authoritative name servers as the provider reports them (may be empty). */
  nameServers: string[];
}

/** Everything needed to remove a record later, also from another process (plain JSON). */
export interface TxtRecordHandle {
  provider: string;
  zoneId: string;
  zoneName: string;
  recordId: string;
  /** Fully qualified record name, no trailing dot. */
  name: string;
  value: string;
}

export interface DnsProvider {
  /** e.g. 'cloudflare'. */
  readonly kind: string;
  /** The zone holding `fqdn`, found by walking up its labels; throws DnsProviderError('zone-not-found'). */
  findZone(fqdn: string): Promise<DnsZone>;
  /** Publish a TXT record; an identical existing record is adopted (and removed later like a new one). */
  createTxt(fqdn: string, value: string): Promise<TxtRecordHandle>;
  /** Remove the record; a record that is already gone counts as removed. */
  removeTxt(handle: TxtRecordHandle): Promise<void>;
}

export type DnsProviderErrorKind = 'auth' | 'zone-not-found' | 'rate-limited' | 'server' | 'network' | 'request';

export class DnsProviderError extends Error {
  override readonly name = 'DnsProviderError';
  constructor(
    message: string,
    readonly kind: DnsProviderErrorKind,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}


/** `_acme-challenge.example.com` for both `example.com` and `*.example.com` (RFC 8555 section 8.4). */
export function challengeRecordName(identifier: string): string {
  return `_acme-challenge.${withoutWildcard(normalizeDnsName(identifier))}`;
}

/**
 * The names that could be the zone apex of `fqdn`, most specific first: for `_acme-challenge.a.example.co.uk`
 * that is `_acme-challenge.a.example.co.uk`, `a.example.co.uk`, `example.co.uk`, `co.uk` (a single label,
 * a TLD, is never tried).
 */
export function zoneCandidates(fqdn: string): string[] {
  const labels = normalizeDnsName(fqdn).split('.').filter((l) => l.length > 0);
  const out: string[] = [];
  for (let i = 0; i + 2 <= labels.length; i += 1) out.push(labels.slice(i).join('.'));
  return out;
}
