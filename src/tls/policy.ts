/**
 * A TLS listener's protocol policy, from mosquitto's per-listener directives: `tls_version` (the lowest
 * version accepted), `ciphers` (OpenSSL cipher list, TLS 1.2 and below) and `ciphers_tls1.3` (TLS 1.3
 * suites), turned into the options Node's TLS servers take.
 *
 * Node has one `ciphers` option for both: it splits the string and gives the `TLS_*` names to OpenSSL as the
 * TLS 1.3 suites and the rest as the cipher list. A string with only `TLS_*` names leaves no TLS 1.2 cipher
 * (Node 20 then raises the minimum version to TLS 1.3), and one without any leaves the suites to whatever
 * OpenSSL's default is: so each directive given alone is completed with Node's default for the other half,
 * explicitly. An empty `ciphers_tls1.3` switches TLS 1.3 off, as it does in mosquitto (OpenSSL).
 *
 * OpenSSL 3 refuses TLS 1.0 and 1.1 at security level 1 and above (their handshake signatures use SHA-1/MD5:
 * "no suitable signature algorithm"), so a `tlsv1`/`tlsv1.1` listener gets `@SECLEVEL=0` appended to its
 * cipher list: that listener only, and only where the list does not choose a level itself.
 */
import { createSecureContext, DEFAULT_CIPHERS, type SecureContextOptions, type SecureVersion } from 'node:tls';
import type { TlsVersion } from '../config/schema.js';

/** The listener fields the policy is made of (a `ListenerConfig` fits). */
export interface TlsPolicyConfig {
  tlsVersion?: TlsVersion;
  ciphers?: string;
  ciphersTls13?: string;
}

export interface TlsPolicy {
  /** The lowest TLS version accepted. */
  readonly minVersion: SecureVersion;
  /** Node's `ciphers` option (both halves), undefined = Node's default. */
  readonly ciphers: string | undefined;
  /** TLS 1.0 or 1.1 is accepted (deprecated by RFC 8996). */
  readonly legacy: boolean;
  /** Whether TLS 1.3 can be negotiated (false with an empty `ciphers_tls1.3`). */
  readonly tls13: boolean;
  /** Things worth a warning at start that do not stop it (a cipher name this OpenSSL does not know, ...). */
  readonly warnings: readonly string[];
  /** The options to merge into `tls.createServer`/`setSecureContext`. */
  readonly options: Pick<SecureContextOptions, 'minVersion' | 'maxVersion' | 'ciphers'>;
}

export class TlsPolicyError extends Error {
  override name = 'TlsPolicyError';
}

const MIN_VERSIONS: Record<TlsVersion, SecureVersion> = {
  tlsv1: 'TLSv1',
  'tlsv1.1': 'TLSv1.1',
  'tlsv1.2': 'TLSv1.2',
  'tlsv1.3': 'TLSv1.3',
};

/** The default policy: TLS 1.2 and 1.3 with Node's default ciphers (what mosquitto 2 does too). */
export const DEFAULT_TLS_POLICY: TlsPolicy = Object.freeze({
  minVersion: 'TLSv1.2',
  ciphers: undefined,
  legacy: false,
  tls13: true,
  warnings: Object.freeze([]),
  options: Object.freeze({ minVersion: 'TLSv1.2' as SecureVersion }),
});

const isSuite = (name: string): boolean => name.startsWith('TLS_');
/** Node's own split: `TLS_*` names are TLS 1.3 suites, everything else is the TLS 1.2 cipher list. */
function split(list: string): { suites: string[]; ciphers: string[] } {
  const parts = list.split(':').filter((p) => p.length > 0);
  return { suites: parts.filter(isSuite), ciphers: parts.filter((p) => !isSuite(p)) };
}

/** Whether OpenSSL accepts `ciphers` (a Node `ciphers` string) at all. */
function opensslError(ciphers: string): string | undefined {
  try {
    createSecureContext({ ciphers });
    return undefined;
  } catch (err) {
    const e = err as Error & { reason?: string };
    return e.reason ?? e.message;
  }
}

/**
 * The policy of listener `listener` (its name, for messages). Throws a `TlsPolicyError` that names the
 * listener and the directive when OpenSSL would not accept the configuration, so that a bad cipher string
 * stops the start instead of failing every handshake later.
 */
export function tlsPolicy(listener: string, config: TlsPolicyConfig): TlsPolicy {
  const fail = (directive: string, what: string): never => {
    throw new TlsPolicyError(`listener ${listener}: ${directive} ${what}`);
  };
  const tlsVersion = config.tlsVersion ?? 'tlsv1.2';
  const minVersion = MIN_VERSIONS[tlsVersion];
  if (minVersion === undefined) fail('tls_version', `${JSON.stringify(tlsVersion)} is not one of ${Object.keys(MIN_VERSIONS).join(', ')}`);
  const legacy = tlsVersion === 'tlsv1' || tlsVersion === 'tlsv1.1';
  const warnings: string[] = [];
  const defaults = split(DEFAULT_CIPHERS);

  let ciphers12 = defaults.ciphers;
  if (config.ciphers !== undefined) {
    const given = split(config.ciphers.trim());
    if (given.suites.length > 0) {
      fail('ciphers', `${JSON.stringify(config.ciphers)} names TLS 1.3 suites (${given.suites.join(', ')}): they belong in ciphers_tls1.3`);
    }
    if (given.ciphers.length === 0) fail('ciphers', 'is empty: leave it out for the default list');
    const error = opensslError(given.ciphers.join(':'));
    if (error !== undefined) {
      fail('ciphers', `${JSON.stringify(config.ciphers)} is refused by OpenSSL (${error}): it matches no cipher this OpenSSL knows (list them with \`openssl ciphers -v\`)`);
    }
    // OpenSSL drops names it does not know as long as one entry matches: say which were dropped.
    for (const name of given.ciphers.flatMap((c) => c.split(/[, ]+/))) {
      if (/^[A-Z0-9][A-Z0-9_-]*$/.test(name) && name.includes('-') && opensslError(name) !== undefined) {
        warnings.push(`ciphers: ${name} is not a cipher this OpenSSL knows; it is ignored`);
      }
    }
    ciphers12 = given.ciphers;
  }

  let suites = defaults.suites;
  if (config.ciphersTls13 !== undefined) {
    const parts = config.ciphersTls13.trim().split(':').filter((p) => p.length > 0);
    const wrong = parts.filter((p) => !isSuite(p));
    if (wrong.length > 0) {
      fail('ciphers_tls1.3', `${JSON.stringify(config.ciphersTls13)}: ${wrong.join(', ')} ${wrong.length === 1 ? 'is not a TLS 1.3 suite name' : 'are not TLS 1.3 suite names'} (they start with TLS_, are separated by ':', and TLS 1.2 ciphers belong in ciphers)`);
    }
    if (parts.length > 0) {
      const error = opensslError(parts.join(':'));
      if (error !== undefined) {
        fail('ciphers_tls1.3', `${JSON.stringify(config.ciphersTls13)} is refused by OpenSSL (${error}); this OpenSSL knows ${defaults.suites.join(', ')} (and TLS_AES_128_CCM_SHA256, TLS_AES_128_CCM_8_SHA256 if enabled)`);
      }
      for (const name of parts) {
        if (opensslError(name) !== undefined) warnings.push(`ciphers_tls1.3: ${name} is not a TLS 1.3 suite this OpenSSL knows; it is ignored`);
      }
    }
    suites = parts;
  }
  const tls13 = suites.length > 0;
  if (!tls13 && minVersion === 'TLSv1.3') fail('ciphers_tls1.3', 'is empty while tls_version is tlsv1.3: no handshake could succeed');
  if (config.ciphers !== undefined && minVersion === 'TLSv1.3') {
    warnings.push('ciphers applies to TLS 1.2 and below, which this listener (tls_version tlsv1.3) does not accept; it has no effect');
  }

  const custom = config.ciphers !== undefined || config.ciphersTls13 !== undefined;
  if (!custom && !legacy) {
    return { minVersion, ciphers: undefined, legacy, tls13, warnings, options: { minVersion } };
  }
  const list = [...ciphers12];
  // The security level is one setting of the whole cipher list; a list that sets it keeps its own.
  if (legacy && !list.some((c) => c.includes('@SECLEVEL='))) list.push('@SECLEVEL=0');
  const ciphers = [...suites, ...list].join(':');
  const error = opensslError(ciphers);
  if (error !== undefined) fail('ciphers', `combined with ciphers_tls1.3 gives "${ciphers}", which OpenSSL refuses (${error})`);
  // Without any TLS_ name Node keeps OpenSSL's default suites: an empty ciphers_tls1.3 needs a maximum.
  const options = tls13 ? { minVersion, ciphers } : { minVersion, maxVersion: 'TLSv1.2' as SecureVersion, ciphers };
  return { minVersion, ciphers, legacy, tls13, warnings, options };
}
