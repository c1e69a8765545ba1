/**
 * Certificates on the volume in certbot's /etc/letsencrypt layout, readable and writable by both certbot and us:
 *
 *   archive/NAME/{cert,chain,fullchain,privkey}N.pem   privkey 0600, others 0644
 *   live/NAME/{cert,chain,fullchain,privkey}.pem       relative symlinks ../../archive/NAME/KINDN.pem
 *   live/NAME/README, live/README
 *   renewal/NAME.conf                                  configobj: version, archive_dir, cert, privkey, chain,
 *                                                      fullchain, [renewalparams] account, server, ...
 *   directories 0700
 *
 * NAME is the first domain with a leading `*.` removed (certbot's rule).
 *
 * Crash safety. Every file is written to a temporary name, fsynced and renamed; every symlink is created under
 * a temporary name and renamed over the old one. A write goes: archive files N+1 (all four), then the four live
 * links, then the renewal conf. `read()` therefore uses the version the live links agree on when its files are
 * complete and consistent (key matches certificate, fullchain starts with the certificate); otherwise (links
 * half swapped, missing, or pointing at damaged files) the newest complete, consistent archive version. Files of
 * an interrupted write (temporaries, an incomplete N+1) are ignored; the next write takes the next free number
 * (certbot's rule) and cleans temporaries up.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { chmod, lstat, mkdir, readFile, readdir, readlink, unlink } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { LETSENCRYPT_STAGING, type AcmeConfig, type CertKeyType } from '../config/schema.js';
import type { Logger } from '../log.js';
import { describeCertificate } from '../x509/certificate-info.js';
import { TEMP_FILE, replaceSymlink, writeFileAtomic } from '../files/atomic.js';
import { isDue, isExpired, type RenewalPolicy } from './renewal.js';

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

export interface StoredLineage extends CertificateFiles {
  name: string;
  /** Archive version served; undefined for a live directory holding plain files. */
  version: number | undefined;
  source: 'archive' | 'live-files';
  /** subjectAltNames of the leaf. */
  names: string[];
  notBefore: Date;
  notAfter: Date;
  serial: string;
  issuer: string;
  /** Does the private key belong to the certificate? (Always true for archive versions read() picks.) */
  keyMatches: boolean;
  /** The renewal conf's `server` (the ACME directory URL the certificate came from), when there is a conf. */
  server: string | undefined;
  /** The renewal conf's [renewalparams] (empty without a conf). */
  renewalParams: Record<string, string>;
}

export interface RenewalInfo {
  /** ACME directory URL. */
  server: string;
  /** certbot account id (see account.ts). */
  account?: string;
  keyType: CertKeyType;
  reuseKey: boolean;
  authenticator?: string;
}

export interface StoreOptions {
  logger?: Logger;
  /**
   * Called before every step of a write, with the step's name; a throw stops the write there, which is how
   * tests simulate a crash at each point.
   */
  beforeStep?: (step: string) => void | Promise<void>;
}

/** Version written into renewal confs (the certbot release whose format we follow: key_type, ecdsa default). */
export const CERTBOT_CONF_VERSION = '2.1.0';

/** certbot's lineage name: the first domain, lower case, with a leading `*.` removed. */
export function lineageNameFor(domains: string[]): string {
  const first = domains[0];
  if (!first) throw new Error('No domains configured: cannot name the certificate lineage.');
  return first.trim().toLowerCase().replace(/\.$/, '').replace(/^\*\./, '');
}

// ---------------------------------------------------------------------------------------------------------
// Atomic file operations

/** mkdir -p; directories this creates get mode 0700 (certbot's). Existing ones are left as they are. */
export async function ensureDir(path: string): Promise<void> {
  const missing: string[] = [];
  let p = resolve(path);
  for (;;) {
    try {
      await lstat(p);
      break;
    } catch {
      missing.unshift(p);
      const parent = dirname(p);
      if (parent === p) break;
      p = parent;
    }
  }
  for (const dir of missing) {
    try {
      await mkdir(dir, { mode: 0o700 });
      await chmod(dir, 0o700);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------------------
// configobj (the subset certbot writes)

export interface ConfigObj {
  /** Top-level keys (before the first section). */
  top: Record<string, string>;
  sections: Record<string, Record<string, string>>;
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

// ---------------------------------------------------------------------------------------------------------
// Consistency

function pemBlocks(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

function normalizePem(pem: string): string {
  return pem.replace(/\s+/g, '');
}

/** Why the four PEMs are not a usable set, or undefined when they are. */
export function inconsistency(files: CertificateFiles): { reason?: string; keyMatches: boolean } {
  let cert: X509Certificate;
  let key: KeyObject;
  try {
    cert = new X509Certificate(files.cert);
  } catch {
    return { reason: 'cert.pem does not hold a certificate', keyMatches: false };
  }
  try {
    key = createPrivateKey(files.privkey);
  } catch {
    return { reason: 'privkey.pem does not hold a private key', keyMatches: false };
  }
  const keyMatches = cert.checkPrivateKey(key);
  const full = pemBlocks(files.fullchain);
  const leaf = pemBlocks(files.cert)[0] ?? '';
  if (full.length === 0 || normalizePem(full[0] ?? '') !== normalizePem(leaf)) return { reason: 'fullchain.pem does not start with cert.pem', keyMatches };
  if (!keyMatches) return { reason: 'the private key does not belong to the certificate', keyMatches };
  return { keyMatches };
}

// ---------------------------------------------------------------------------------------------------------

const README_TEXT = (prefix: string): string =>
  'This directory contains your keys and certificates.\n\n' +
  `\`${prefix}privkey.pem\`  : the private key for your certificate.\n` +
  `\`${prefix}fullchain.pem\`: the certificate file used in most server software.\n` +
  `\`${prefix}chain.pem\`    : used for OCSP stapling in Nginx >=1.3.7.\n` +
  `\`${prefix}cert.pem\`     : will break many server configurations, and should not be used\n` +
  '                 without reading further documentation (see link below).\n\n' +
  'WARNING: DO NOT MOVE OR RENAME THESE FILES!\n' +
  '         Certbot expects these files to remain in this location in order\n' +
  '         to function properly!\n\n' +
  'We recommend not moving these files. For more information, see the Certbot\n' +
  'User Guide at https://certbot.eff.org/docs/using.html#where-are-my-certificates.\n';

const ARCHIVE_RE = /^(cert|chain|fullchain|privkey)(\d+)\.pem$/;

export class CertificateStore {
  constructor(
    readonly dir: string,
    private readonly opts: StoreOptions = {},
  ) {}

  archiveDir(name: string): string {
    return join(this.dir, 'archive', name);
  }
  liveDir(name: string): string {
    return join(this.dir, 'live', name);
  }
  renewalConfPath(name: string): string {
    return join(this.dir, 'renewal', `${name}.conf`);
  }

  private async step(name: string): Promise<void> {
    if (this.opts.beforeStep) await this.opts.beforeStep(name);
  }

  /** Archive versions present, per version the kinds that exist. */
  async archiveVersions(name: string): Promise<Map<number, Set<PemKind>>> {
    const versions = new Map<number, Set<PemKind>>();
    let entries: string[];
    try {
      entries = await readdir(this.archiveDir(name));
    } catch {
      return versions;
    }
    for (const e of entries) {
      const m = ARCHIVE_RE.exec(e);
      if (!m) continue;
      const v = Number(m[2]);
      const set = versions.get(v) ?? new Set<PemKind>();
      set.add(m[1] as PemKind);
      versions.set(v, set);
    }
    return versions;
  }

  async readRenewalConf(name: string): Promise<ConfigObj | undefined> {
    const text = await readIfExists(this.renewalConfPath(name));
    if (text === undefined) return undefined;
    try {
      return parseConfigObj(text);
    } catch (err) {
      this.opts.logger?.warn({ file: this.renewalConfPath(name), err: (err as Error).message }, 'cannot parse renewal conf; ignoring it');
      return undefined;
    }
  }

  private async readArchiveVersion(name: string, version: number): Promise<CertificateFiles | undefined> {
    const files: Partial<CertificateFiles> = {};
    for (const kind of KINDS) {
      const text = await readIfExists(join(this.archiveDir(name), `${kind}${version}.pem`));
      if (text === undefined) return undefined;
      files[kind] = text;
    }
    return files as CertificateFiles;
  }

  /** What live/NAME/KIND.pem is: a link to archive version N, a plain file, or nothing. */
  private async liveEntry(name: string, kind: PemKind): Promise<{ type: 'link'; version: number | undefined; target: string } | { type: 'file' } | { type: 'missing' }> {
    const path = join(this.liveDir(name), `${kind}.pem`);
    let st;
    try {
      st = await lstat(path);
    } catch {
      return { type: 'missing' };
    }
    if (st.isSymbolicLink()) {
      const target = await readlink(path);
      // ../../archive/NAME/cert3.pem (certbot), or an absolute path from another mount point.
      const m = /(?:^|\/)archive\/([^/]+)\/(cert|chain|fullchain|privkey)(\d+)\.pem$/.exec(target);
      const version = m && m[1] === name && m[2] === kind ? Number(m[3]) : undefined;
      return { type: 'link', version, target: isAbsolute(target) ? target : resolve(dirname(path), target) };
    }
    return st.isFile() ? { type: 'file' } : { type: 'missing' };
  }

  private async lineageFrom(name: string, files: CertificateFiles, version: number | undefined, source: StoredLineage['source'], keyMatches: boolean): Promise<StoredLineage> {
    const d = describeCertificate(files.cert);
    const conf = await this.readRenewalConf(name);
    const params = conf?.sections.renewalparams ?? {};
    return {
      ...files,
      name,
      version,
      source,
      names: d.subjectAltNames,
      notBefore: d.notBefore,
      notAfter: d.notAfter,
      serial: d.serial,
      issuer: d.issuer,
      keyMatches,
      server: params.server,
      renewalParams: params,
    };
  }

  /**
   * The lineage as it should be served, or undefined when there is none. Robust against interrupted writes
   * (see the module comment). Also reads lineages written by certbot (any version) and plain live files.
   */
  async read(name: string): Promise<StoredLineage | undefined> {
    const log = this.opts.logger;
    const entries = await Promise.all(KINDS.map((k) => this.liveEntry(name, k)));
    const linkVersions = entries.map((e) => (e.type === 'link' ? e.version : undefined));
    const agreed = linkVersions[0];
    if (agreed !== undefined && linkVersions.every((v) => v === agreed)) {
      const files = await this.readArchiveVersion(name, agreed);
      if (files) {
        const check = inconsistency(files);
        if (!check.reason) return this.lineageFrom(name, files, agreed, 'archive', true);
        log?.warn({ lineage: name, version: agreed, problem: check.reason }, 'live links point at an unusable version; looking for another');
      }
    } else if (entries.every((e) => e.type === 'file')) {
      const files: Partial<CertificateFiles> = {};
      for (const kind of KINDS) files[kind] = await readFile(join(this.liveDir(name), `${kind}.pem`), 'utf8');
      const check = inconsistency(files as CertificateFiles);
      if (check.reason === undefined || check.reason === 'the private key does not belong to the certificate') {
        return this.lineageFrom(name, files as CertificateFiles, undefined, 'live-files', check.keyMatches);
      }
      log?.warn({ lineage: name, problem: check.reason }, 'live directory holds unusable files');
    } else if (entries.some((e) => e.type === 'link')) {
      // Links of a different lineage or a half-finished swap: resolve what the links point at first.
      if (entries.every((e) => e.type === 'link' && e.version === undefined)) {
        const files: Partial<CertificateFiles> = {};
        let complete = true;
        for (let i = 0; i < KINDS.length; i += 1) {
          const e = entries[i];
          const text = e && e.type === 'link' ? await readIfExists(e.target) : undefined;
          if (text === undefined) complete = false;
          else files[KINDS[i] as PemKind] = text;
        }
        if (complete && !inconsistency(files as CertificateFiles).reason) return this.lineageFrom(name, files as CertificateFiles, undefined, 'live-files', true);
      }
    }
    // Fall back on the newest complete, consistent archive version.
    const versions = [...(await this.archiveVersions(name)).entries()].filter(([, kinds]) => kinds.size === KINDS.length).map(([v]) => v).sort((a, b) => b - a);
    for (const v of versions) {
      const files = await this.readArchiveVersion(name, v);
      if (!files) continue;
      const check = inconsistency(files);
      if (check.reason) {
        log?.warn({ lineage: name, version: v, problem: check.reason }, 'archive version unusable; skipping it');
        continue;
      }
      if (entries.some((e) => e.type !== 'missing')) log?.warn({ lineage: name, version: v, links: linkVersions }, 'live links inconsistent (interrupted update?); serving the newest complete archive version');
      return this.lineageFrom(name, files, v, 'archive', true);
    }
    return undefined;
  }

  private async cleanTemporaries(dir: string): Promise<void> {
    let entries: string[];
    try {
      entries = await readdir(dir);
    } catch {
      return;
    }
    await Promise.all(entries.filter((e) => TEMP_FILE.test(e)).map((e) => unlink(join(dir, e)).catch(() => undefined)));
  }

  /** Store a new version of the lineage (see the module comment for the order) and return it as read back. */
  async write(name: string, files: CertificateFiles, renewal: RenewalInfo): Promise<StoredLineage> {
    const check = inconsistency(files);
    if (check.reason) throw new Error(`Refusing to store certificate lineage ${name}: ${check.reason}.`);
    const archive = this.archiveDir(name);
    const live = this.liveDir(name);
    await this.step('mkdir');
    await ensureDir(archive);
    await ensureDir(live);
    await ensureDir(join(this.dir, 'renewal'));
    await this.cleanTemporaries(archive);
    await this.cleanTemporaries(live);
    const versions = await this.archiveVersions(name);
    const version = Math.max(0, ...versions.keys()) + 1;

    for (const kind of KINDS) {
      await this.step(`archive:${kind}`);
      await writeFileAtomic(join(archive, `${kind}${version}.pem`), files[kind], { mode: kind === 'privkey' ? 0o600 : 0o644, beforeRename: () => this.step(`archive:${kind}:rename`) });
    }
    if ((await readIfExists(join(live, 'README'))) === undefined) await writeFileAtomic(join(live, 'README'), README_TEXT(''), { mode: 0o644 });
    if ((await readIfExists(join(this.dir, 'live', 'README'))) === undefined) await writeFileAtomic(join(this.dir, 'live', 'README'), README_TEXT('[cert name]/'), { mode: 0o644 });
    for (const kind of KINDS) {
      await this.step(`link:${kind}`);
      await replaceSymlink(join(live, `${kind}.pem`), `../../archive/${name}/${kind}${version}.pem`, () => this.step(`link:${kind}:rename`));
    }
    await this.step('renewal-conf');
    await writeFileAtomic(this.renewalConfPath(name), this.renewalConfText(name, renewal), { mode: 0o644, beforeRename: () => this.step('renewal-conf:rename') });
    this.opts.logger?.debug({ lineage: name, version }, 'lineage stored');
    const stored = await this.read(name);
    if (!stored) throw new Error(`Certificate lineage ${name} cannot be read back after writing it.`);
    return stored;
  }

  renewalConfText(name: string, r: RenewalInfo): string {
    const abs = resolve(this.dir);
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
}

// ---------------------------------------------------------------------------------------------------------
// Is a stored lineage good enough for the configuration?

/** Does a certificate name (possibly `*.x`) cover `wanted`? A wildcard covers exactly one label, and covers
 * the configured wildcard itself; it never covers the apex or deeper names. */
export function nameCovered(certNames: string[], wanted: string): boolean {
  const w = wanted.trim().toLowerCase().replace(/\.$/, '');
  const names = certNames.map((n) => n.trim().toLowerCase().replace(/\.$/, ''));
  if (names.includes(w)) return true;
  if (w.startsWith('*.')) return false;
  const dot = w.indexOf('.');
  if (dot <= 0) return false;
  return names.includes(`*.${w.slice(dot + 1)}`);
}

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
