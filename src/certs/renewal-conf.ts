/**
 * certbot's renewal/NAME.conf: the subset of configobj certbot reads and writes, and the conf we write for a
 * lineage, so that certbot can renew a certificate we obtained and we can read a conf certbot wrote.
 *
 *   version, archive_dir, cert, privkey, chain, fullchain   (top level; the live paths are absolute)
 *   [renewalparams] account, server, authenticator, pref_challs, key_type, ...
 */
import { join, resolve } from 'node:path';
import type { CertKeyType } from '../config/schema.js';

/** Version written into renewal confs (the certbot release whose format we follow: key_type, ecdsa default). */
export const CERTBOT_CONF_VERSION = '2.1.0';

export interface ConfigObj {
  /** Top-level keys (before the first section). */
  top: Record<string, string>;
  sections: Record<string, Record<string, string>>;
}

/** What the renewal conf records about how a lineage was obtained. */
export interface RenewalInfo {
  /** ACME directory URL. */
  server: string;
  /** certbot account id (see account.ts). */
  account?: string;
  keyType: CertKeyType;
  reuseKey: boolean;
  authenticator?: string;
}

function unquote(v: string): string {
  const s = v.trim();
  if (s.length >= 2 && ((s.startsWith('"') && s.endsWith('"')) || (s.startsWith("'") && s.endsWith("'")))) return s.slice(1, -1);
  return s;
}

/** Parse a configobj file; unknown structure (sub-sections) is kept flat under the outer section. */
export function parseConfigObj(text: string): ConfigObj {
  const out: ConfigObj = { top: {}, sections: {} };
  let current: Record<string, string> = out.top;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const section = /^(\[+)\s*([^\]]+?)\s*\]+$/.exec(line);
    if (section) {
      if ((section[1] ?? '').length === 1) {
        const name = section[2] ?? '';
        out.sections[name] ??= {};
        current = out.sections[name];
      }
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq).trim();
    let value = line.slice(eq + 1).trim();
    if (!value.startsWith('"') && !value.startsWith("'")) {
      const hash = value.indexOf(' #');
      if (hash >= 0) value = value.slice(0, hash).trim();
    }
    current[key] = unquote(value);
  }
  return out;
}

function formatValue(v: string): string {
  // configobj needs quotes around values with a leading/trailing space, a comma, a '#' or a quote character.
  if (v === '' || /^\s|\s$|[#,"']/.test(v)) return v.includes('"') ? `'${v}'` : `"${v}"`;
  return v;
}

/** The renewal conf of lineage `name` in the letsencrypt directory `dir`, as certbot would write it. */
export function renewalConfText(dir: string, name: string, r: RenewalInfo): string {
  const abs = resolve(dir);
  const params: [string, string][] = [];
  if (r.account) params.push(['account', r.account]);
  params.push(['server', r.server]);
  params.push(['authenticator', r.authenticator ?? 'dns-cloudflare']);
  params.push(['pref_challs', 'dns-01,']);
  if (r.keyType === 'ecdsa-p256') {
    params.push(['key_type', 'ecdsa'], ['elliptic_curve', 'secp256r1']);
  } else {
    params.push(['key_type', 'rsa'], ['rsa_key_size', r.keyType === 'rsa-4096' ? '4096' : '2048']);
  }
  if (r.reuseKey) params.push(['reuse_key', 'True']);
  const lines = [
    '# renew_before_expiry = 30 days',
    `version = ${CERTBOT_CONF_VERSION}`,
    `archive_dir = ${formatValue(join(abs, 'archive', name))}`,
    `cert = ${formatValue(join(abs, 'live', name, 'cert.pem'))}`,
    `privkey = ${formatValue(join(abs, 'live', name, 'privkey.pem'))}`,
    `chain = ${formatValue(join(abs, 'live', name, 'chain.pem'))}`,
    `fullchain = ${formatValue(join(abs, 'live', name, 'fullchain.pem'))}`,
    '',
    '# Options used in the renewal process',
    '[renewalparams]',
    // pref_challs is a list: configobj writes a one-element list with a trailing comma, unquoted.
    ...params.map(([k, v]) => `${k} = ${k === 'pref_challs' ? v : formatValue(v)}`),
    '',
  ];
  return lines.join('\n');
}
