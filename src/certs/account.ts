/**
 * The ACME account, kept on the volume exactly as certbot keeps it, so that an account made by the old certbot
 * image is reused and one made by us can be used by certbot:
 *
 *   accounts/HOST[:PORT]PATH/ID/private_key.json   the account key as a JWK (0400)
 *   accounts/HOST[:PORT]PATH/ID/regr.json          {"body": {}, "uri": ACCOUNT_URL}
 *   accounts/HOST[:PORT]PATH/ID/meta.json          {"creation_dt": ..., "creation_host": ...}
 *
 * e.g. accounts/acme-v02.api.letsencrypt.org/directory/0123abcd.../. ID is certbot's: the MD5 (hex) of the
 * public key's SubjectPublicKeyInfo PEM. New keys are RSA 2048 like certbot's. Directories 0700.
 */
import { createHash, createPrivateKey, createPublicKey, type JsonWebKey } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { writeFileAtomic } from '../files/atomic.js';
import { ensureDir } from '../files/directory.js';
import { generatePrivateKey } from './private-key.js';

export interface AcmeAccount {
  /** certbot's account id. */
  id: string;
  /** PKCS#8 PEM of the account key. */
  keyPem: string;
  /** Account URL (kid), when known. */
  url: string | undefined;
  directoryUrl: string;
  /** Absolute directory holding the three files. */
  dir: string;
}

/** certbot's server_path: netloc + path of the directory URL (`127.0.0.1:14000/dir`). */
export function serverPath(directoryUrl: string): string {
  const u = new URL(directoryUrl);
  const path = u.pathname.split('/').filter((p) => p !== '' && p !== '.' && p !== '..').join('/');
  return path ? `${u.host}/${path}` : u.host;
}

/** certbot's account id: md5 hex of the public key as SubjectPublicKeyInfo PEM. */
export function certbotAccountId(keyPem: string): string {
  const spki = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'pem' }).toString();
  return createHash('md5').update(spki).digest('hex');
}

/** A new account key: RSA 2048, as certbot makes them. */
export function generateAccountKey(): Promise<string> {
  return generatePrivateKey('rsa-2048');
}

export class AccountStore {
  constructor(
    readonly letsencryptDir: string,
    private readonly logger?: Logger,
  ) {}

  accountsDir(directoryUrl: string): string {
    return join(this.letsencryptDir, 'accounts', serverPath(directoryUrl));
  }

  private async load(directoryUrl: string, id: string): Promise<AcmeAccount | undefined> {
    const dir = join(this.accountsDir(directoryUrl), id);
    try {
      const jwk = JSON.parse(await readFile(join(dir, 'private_key.json'), 'utf8')) as JsonWebKey;
      const keyPem = createPrivateKey({ key: jwk, format: 'jwk' }).export({ type: 'pkcs8', format: 'pem' }).toString();
      let url: string | undefined;
      try {
        const regr = JSON.parse(await readFile(join(dir, 'regr.json'), 'utf8')) as { uri?: unknown };
        if (typeof regr.uri === 'string' && regr.uri) url = regr.uri;
      } catch {
        url = undefined;
      }
      return { id, keyPem, url, directoryUrl, dir };
    } catch (err) {
      this.logger?.warn({ account: id, dir, err: (err as Error).message }, 'cannot load ACME account; ignoring it');
      return undefined;
    }
  }

  /** The account to use for this directory: `preferredId` (the renewal conf's) if present, else the oldest. */
  async find(directoryUrl: string, preferredId?: string): Promise<AcmeAccount | undefined> {
    if (preferredId && /^[0-9a-f]{32}$/.test(preferredId)) {
      const acc = await this.load(directoryUrl, preferredId);
      if (acc) return acc;
    }
    let ids: string[];
    try {
      ids = await readdir(this.accountsDir(directoryUrl));
    } catch {
      return undefined;
    }
    const candidates: { id: string; mtime: number }[] = [];
    for (const id of ids) {
      try {
        const st = await stat(join(this.accountsDir(directoryUrl), id, 'private_key.json'));
        candidates.push({ id, mtime: st.mtimeMs });
      } catch {
        // not an account directory
      }
    }
    candidates.sort((a, b) => a.mtime - b.mtime || a.id.localeCompare(b.id));
    for (const c of candidates) {
      const acc = await this.load(directoryUrl, c.id);
      if (acc) return acc;
    }
    return undefined;
  }

  /** Persist a (new) account: key 0400, meta, regr. */
  async save(directoryUrl: string, keyPem: string, url: string): Promise<AcmeAccount> {
    const id = certbotAccountId(keyPem);
    const dir = join(this.accountsDir(directoryUrl), id);
    await ensureDir(dir);
    const jwk = createPrivateKey(keyPem).export({ format: 'jwk' });
    let hasKey = true;
    try {
      await stat(join(dir, 'private_key.json'));
    } catch {
      hasKey = false;
    }
    if (!hasKey) await writeFileAtomic(join(dir, 'private_key.json'), JSON.stringify(jwk), { mode: 0o400 });
    const meta = { creation_dt: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'), creation_host: hostname() };
    try {
      await stat(join(dir, 'meta.json'));
    } catch {
      await writeFileAtomic(join(dir, 'meta.json'), JSON.stringify(meta), { mode: 0o644 });
    }
    await this.updateUrl({ id, keyPem, url, directoryUrl, dir }, url);
    return { id, keyPem, url, directoryUrl, dir };
  }

  async updateUrl(account: AcmeAccount, url: string): Promise<void> {
    await writeFileAtomic(join(account.dir, 'regr.json'), JSON.stringify({ body: {}, uri: url }), { mode: 0o644 });
    account.url = url;
  }
}
