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
 *
 * The four files and when they are consistent: lineage-files.ts. The renewal conf: renewal-conf.ts.
 */
import { lstat, readdir, readlink } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { Logger } from '../log.js';
import { removeTemporaries, replaceSymlink, writeFileAtomic } from '../files/atomic.js';
import { ensureDir } from '../files/directory.js';
import { readIfExists, readText } from '../files/read.js';
import { describeCertificate } from '../x509/certificate-info.js';
import { certbotReadme } from './certbot-readme.js';
import { KINDS, checkLineageFiles, type CertificateFiles, type PemKind } from './lineage-files.js';
import { parseConfigObj, renewalConfText, type ConfigObj, type RenewalInfo } from './renewal-conf.js';

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

export interface StoreOptions {
  logger?: Logger;
  /**
   * Called before every step of a write, with the step's name; a throw stops the write there, which is how
   * tests simulate a crash at each point.
   */
  beforeStep?: (step: string) => void | Promise<void>;
}

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
        const check = checkLineageFiles(files);
        if (!check.reason) return this.lineageFrom(name, files, agreed, 'archive', true);
        log?.warn({ lineage: name, version: agreed, problem: check.reason }, 'live links point at an unusable version; looking for another');
      }
    } else if (entries.every((e) => e.type === 'file')) {
      const files: Partial<CertificateFiles> = {};
      for (const kind of KINDS) files[kind] = await readText(join(this.liveDir(name), `${kind}.pem`), `certificate lineage's ${kind}.pem`);
      // A wrong key still yields the lineage (keyMatches false), so that the assessment can say why it is not valid.
      const check = checkLineageFiles(files as CertificateFiles);
      if (check.wellFormed) {
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
        if (complete && !checkLineageFiles(files as CertificateFiles).reason) return this.lineageFrom(name, files as CertificateFiles, undefined, 'live-files', true);
      }
    }
    // Fall back on the newest complete, consistent archive version.
    const versions = [...(await this.archiveVersions(name)).entries()].filter(([, kinds]) => kinds.size === KINDS.length).map(([v]) => v).sort((a, b) => b - a);
    for (const v of versions) {
      const files = await this.readArchiveVersion(name, v);
      if (!files) continue;
      const check = checkLineageFiles(files);
      if (check.reason) {
        log?.warn({ lineage: name, version: v, problem: check.reason }, 'archive version unusable; skipping it');
        continue;
      }
      if (entries.some((e) => e.type !== 'missing')) log?.warn({ lineage: name, version: v, links: linkVersions }, 'live links inconsistent (interrupted update?); serving the newest complete archive version');
      return this.lineageFrom(name, files, v, 'archive', true);
    }
    return undefined;
  }

  /** Store a new version of the lineage (see the module comment for the order) and return it as read back. */
  async write(name: string, files: CertificateFiles, renewal: RenewalInfo): Promise<StoredLineage> {
    const check = checkLineageFiles(files);
    if (check.reason) throw new Error(`Refusing to store certificate lineage ${name}: ${check.reason}.`);
    const archive = this.archiveDir(name);
    const live = this.liveDir(name);
    await this.step('mkdir');
    await ensureDir(archive);
    await ensureDir(live);
    await ensureDir(join(this.dir, 'renewal'));
    await removeTemporaries(archive);
    await removeTemporaries(live);
    const versions = await this.archiveVersions(name);
    const version = Math.max(0, ...versions.keys()) + 1;

    for (const kind of KINDS) {
      await this.step(`archive:${kind}`);
      await writeFileAtomic(join(archive, `${kind}${version}.pem`), files[kind], { mode: kind === 'privkey' ? 0o600 : 0o644, beforeRename: () => this.step(`archive:${kind}:rename`) });
    }
    if ((await readIfExists(join(live, 'README'))) === undefined) await writeFileAtomic(join(live, 'README'), certbotReadme(''), { mode: 0o644 });
    if ((await readIfExists(join(this.dir, 'live', 'README'))) === undefined) await writeFileAtomic(join(this.dir, 'live', 'README'), certbotReadme('[cert name]/'), { mode: 0o644 });
    for (const kind of KINDS) {
      await this.step(`link:${kind}`);
      await replaceSymlink(join(live, `${kind}.pem`), `../../archive/${name}/${kind}${version}.pem`, () => this.step(`link:${kind}:rename`));
    }
    await this.step('renewal-conf');
    await writeFileAtomic(this.renewalConfPath(name), renewalConfText(this.dir, name, renewal), { mode: 0o644, beforeRename: () => this.step('renewal-conf:rename') });
    this.opts.logger?.debug({ lineage: name, version }, 'lineage stored');
    const stored = await this.read(name);
    if (!stored) throw new Error(`Certificate lineage ${name} cannot be read back after writing it.`);
    return stored;
  }
}
