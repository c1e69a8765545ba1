/**
 * The value formats the configuration checks beyond types and ranges: host names, certificate names, DNS
 * resolvers, URLs, e-mail addresses, OpenSSL cipher lists. Each check returns a problem (without the
 * source, which the caller adds) or nothing; the normalizers throw an `Error` whose message is the problem.
 */
import { isIP } from 'node:net';
import { createSecureContext } from 'node:tls';

const HOSTNAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** A listen/bind address: an IP address or a host name. */
export function validHost(host: string): boolean {
  return isIP(host) !== 0 || HOSTNAME.test(host);
}

/** Normalize a certificate name (lower case); throws a message (without source) when it is not a valid one. */
export function normalizeDomain(name: string): string {
  const lower = name.toLowerCase();
  const bare = lower.startsWith('*.') ? lower.slice(2) : lower;
  const labels = bare.split('.');
  if (
    bare.length > 253 - (lower.length - bare.length) ||
    labels.length < 2 ||
    !labels.every((l) => LABEL.test(l)) ||
    isIP(bare) !== 0 ||
    /^\d+$/.test(labels[labels.length - 1] ?? '')
  ) {
    throw new Error(
      `"${name}" is not a valid domain name; use names like example.com or *.example.com (a wildcard only as the whole first label; ` +
        'international names in their xn-- form)',
    );
  }
  return lower;
}

/** Normalize a DNS resolver to `IP:port` (`[IPv6]:port`); the port defaults to 53. */
export function normalizeResolver(text: string): string {
  let host: string | undefined;
  let port = '53';
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1];
    if (bracketed[2] !== undefined) port = bracketed[2];
  } else if (isIP(text) !== 0) {
    host = text;
  } else {
    const m = /^([^:]+):(\d+)$/.exec(text);
    if (m) {
      host = m[1];
      port = m[2] ?? port;
    }
  }
  const p = Number(port);
  if (host === undefined || isIP(host) === 0 || !Number.isInteger(p) || p < 1 || p > 65535) {
    throw new Error(`"${text}" is not a resolver address; use IP:port, e.g. 1.1.1.1:53 or [2606:4700:4700::1111]:53`);
  }
  return isIP(host) === 6 ? `[${host}]:${p}` : `${host}:${p}`;
}

/** An absolute http: or https: URL. */
export function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:';
  } catch {
    return false;
  }
}

/** An e-mail address with a dotted domain (an ACME CA refuses anything less). */
export const CONTACT_EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
/** An e-mail address as Cloudflare accounts have them. */
export const ACCOUNT_EMAIL = /^[^@\s]+@[^@\s]+$/;

/** OpenSSL's error for a cipher list, or undefined when OpenSSL (through Node) accepts it. */
function cipherProblem(list: string): string | undefined {
  try {
    createSecureContext({ ciphers: list });
    return undefined;
  } catch (err) {
    return (err as Error).message.replace(/^error:[0-9A-F]+:[^:]*:+/i, '');
  }
}

/** Check mosquitto's `ciphers` (TLS 1.2 and below): an OpenSSL cipher list such as `HIGH:!aNULL`. */
export function cipherListProblem(list: string): string | undefined {
  const problem = cipherProblem(list);
  return problem === undefined ? undefined : `"${list}" is not a cipher list OpenSSL accepts (${problem}); see "openssl ciphers"`;
}

/** Check mosquitto's `ciphers_tls1.3`: TLS 1.3 suite names separated by colons, e.g. `TLS_AES_256_GCM_SHA384`. */
export function tls13SuitesProblem(list: string): string | undefined {
  const names = list.split(':');
  const wrong = names.find((name) => !/^TLS_[A-Z0-9_]+$/.test(name));
  if (wrong !== undefined || cipherProblem(list) !== undefined) {
    return (
      `"${list}" is not a list of TLS 1.3 cipher suites; use names such as TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256 ` +
      '(TLS 1.2 ciphers go in ciphers)'
    );
  }
  return undefined;
}
