/**
 * DNS names as certificates and ACME carry them. One normal form for comparing and storing a name (trimmed,
 * lower case, without the root's trailing dot; a leading `*.` is kept), and the rule for what a certificate
 * name covers.
 */

/** `Example.COM.` -> `example.com`; `*.Example.com` -> `*.example.com`. */
export function normalizeDnsName(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}

/** The name a wildcard stands under: `*.example.com` -> `example.com`; other names are returned as they are. */
export function withoutWildcard(name: string): string {
  return name.replace(/^\*\./, '');
}

/**
 * Does one of the certificate's names (possibly `*.x`) cover `wanted`? A wildcard covers exactly one label,
 * and covers the configured wildcard itself; it never covers the apex or deeper names. Case and a trailing
 * dot do not matter.
 */
export function nameCovered(certNames: string[], wanted: string): boolean {
  const w = normalizeDnsName(wanted);
  const names = certNames.map(normalizeDnsName);
  if (names.includes(w)) return true;
  if (w.startsWith('*.')) return false;
  const dot = w.indexOf('.');
  if (dot <= 0) return false;
  return names.includes(`*.${w.slice(dot + 1)}`);
}

/** certbot's lineage name for a certificate of these names: the first, lower case, without a leading `*.`. */
export function lineageNameFor(domains: string[]): string {
  const first = domains[0];
  if (!first) throw new Error('No domains configured: cannot name the certificate lineage.');
  return withoutWildcard(normalizeDnsName(first));
}
