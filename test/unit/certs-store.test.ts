import { execFileSync } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING } from '../../src/config/managed.js';
import { AccountStore, certbotAccountId, generateAccountKey, serverPath } from '../../src/certs/account.js';
import { createCertificate, type IssuedCertificate } from '../../src/certs/self-signed.js';
import { assessLineage, sameDirectoryUrl } from '../../src/certs/lineage-assessment.js';
import { checkLineageFiles, type CertificateFiles } from '../../src/certs/lineage-files.js';
import { CertificateStore } from '../../src/certs/lineage-store.js';
import { lineageNameFor } from '../../src/x509/dns-name.js';
import { parseConfigObj, type RenewalInfo } from '../../src/certs/renewal-conf.js';
import { nameCovered, normalizeDnsName, withoutWildcard } from '../../src/x509/dns-name.js';

const DAY = 86_400_000;
const RENEWAL: RenewalInfo = { server: 'https://127.0.0.1:14000/dir', account: '0123456789abcdef0123456789abcdef', keyType: 'ecdsa-p256', reuseKey: false };

let ca: IssuedCertificate;
let root: string;

async function lineageFiles(names = ['*.example.test', 'example.test'], opts: { validDays?: number; notBeforeOffsetDays?: number; issuer?: IssuedCertificate; cn?: string } = {}): Promise<CertificateFiles> {
  const issuer = opts.issuer ?? ca;
  const leaf = await createCertificate({ commonName: opts.cn ?? names[0] ?? 'x', altNames: names, issuer, validDays: opts.validDays ?? 90, notBeforeOffsetDays: opts.notBeforeOffsetDays ?? -1 });
  return { cert: leaf.cert, chain: issuer.cert, fullchain: leaf.cert + issuer.cert, privkey: leaf.key };
}

async function freshDir(): Promise<string> {
  return mkdtemp(join(root, 'le-'));
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'mab-store-'));
  ca = await createCertificate({ commonName: 'Store Test CA', isCA: true, validDays: 3650 });
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('lineage names and matching', () => {
  it('names the lineage like certbot: first domain, lower case, without a leading *.', () => {
    expect(lineageNameFor(['*.Example.com', 'example.com'])).toBe('example.com');
    expect(lineageNameFor(['mqtt.example.com', '*.example.com'])).toBe('mqtt.example.com');
    expect(() => lineageNameFor([])).toThrow(/No domains/);
  });

  it('a wildcard covers exactly one label and the configured wildcard, never the apex or deeper names', () => {
    const sans = ['*.example.com'];
    expect(nameCovered(sans, '*.example.com')).toBe(true);
    expect(nameCovered(sans, 'mqtt.example.com')).toBe(true);
    expect(nameCovered(sans, 'MQTT.Example.com.')).toBe(true);
    expect(nameCovered(sans, 'example.com')).toBe(false);
    expect(nameCovered(sans, 'a.b.example.com')).toBe(false);
    expect(nameCovered(sans, '*.b.example.com')).toBe(false);
    expect(nameCovered(['mqtt.example.com'], '*.example.com')).toBe(false);
  });

  it('normalizes DNS names one way: trimmed, lower case, no trailing dot, a wildcard kept until asked', () => {
    expect(normalizeDnsName(' MQTT.Example.COM. ')).toBe('mqtt.example.com');
    expect(normalizeDnsName('*.Example.com')).toBe('*.example.com');
    expect(withoutWildcard('*.example.com')).toBe('example.com');
    expect(withoutWildcard('mqtt.example.com')).toBe('mqtt.example.com');
    expect(withoutWildcard('a.*.example.com')).toBe('a.*.example.com');
  });

  it('compares directory URLs ignoring a trailing slash and host case only', () => {
    expect(sameDirectoryUrl('https://ACME.example/dir/', 'https://acme.example/dir')).toBe(true);
    expect(sameDirectoryUrl(LETSENCRYPT_STAGING, LETSENCRYPT_PRODUCTION)).toBe(false);
  });
});

describe('the four files of a lineage', () => {
  it('a usable set: the key is the certificate\u2019s and fullchain starts with cert (line wrapping aside)', async () => {
    const files = await lineageFiles();
    expect(checkLineageFiles(files)).toEqual({ keyMatches: true, wellFormed: true });
    const body = files.cert.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
    const rewrapped = `-----BEGIN CERTIFICATE-----\n${body.match(/.{1,76}/g)?.join('\n')}\n-----END CERTIFICATE-----\n`;
    expect(checkLineageFiles({ ...files, fullchain: rewrapped + files.chain })).toEqual({ keyMatches: true, wellFormed: true });
  });

  it('names the first problem; only a wrong key leaves the set well formed', async () => {
    const files = await lineageFiles();
    const other = await lineageFiles();
    expect(checkLineageFiles({ ...files, privkey: other.privkey })).toEqual({ reason: 'the private key does not belong to the certificate', keyMatches: false, wellFormed: true });
    expect(checkLineageFiles({ ...files, fullchain: files.chain + files.cert })).toEqual({ reason: 'fullchain.pem does not start with cert.pem', keyMatches: true, wellFormed: false });
    expect(checkLineageFiles({ ...files, fullchain: other.fullchain, privkey: other.privkey })).toMatchObject({ reason: 'fullchain.pem does not start with cert.pem', wellFormed: false });
    expect(checkLineageFiles({ ...files, fullchain: '' })).toMatchObject({ reason: 'fullchain.pem does not start with cert.pem' });
    expect(checkLineageFiles({ ...files, cert: 'garbage' })).toEqual({ reason: 'cert.pem does not hold a certificate', keyMatches: false, wellFormed: false });
    expect(checkLineageFiles({ ...files, privkey: files.cert })).toEqual({ reason: 'privkey.pem does not hold a private key', keyMatches: false, wellFormed: false });
  });
});

describe('CertificateStore layout', () => {
  it('writes certbot layout: archive N files with modes, relative live links, README, renewal conf; reads it back', async () => {
    const dir = await freshDir();
    const store = new CertificateStore(dir);
    const files = await lineageFiles();
    const stored = await store.write('example.test', files, RENEWAL);
    expect(stored.version).toBe(1);
    expect(stored.names).toEqual(['*.example.test', 'example.test']);
    expect(stored.server).toBe(RENEWAL.server);
    expect(stored.keyMatches).toBe(true);

    for (const d of ['archive', 'live', 'renewal', 'archive/example.test', 'live/example.test']) {
      expect(((await lstat(join(dir, d))).mode & 0o777).toString(8), d).toBe('700');
    }
    for (const kind of ['cert', 'chain', 'fullchain', 'privkey']) {
      const archived = join(dir, 'archive', 'example.test', `${kind}1.pem`);
      expect(((await lstat(archived)).mode & 0o777).toString(8), kind).toBe(kind === 'privkey' ? '600' : '644');
      const link = join(dir, 'live', 'example.test', `${kind}.pem`);
      expect((await lstat(link)).isSymbolicLink()).toBe(true);
      expect(await readlink(link)).toBe(`../../archive/example.test/${kind}1.pem`);
      expect(await readFile(link, 'utf8')).toBe(files[kind as keyof CertificateFiles]);
    }
    expect(await readFile(join(dir, 'live', 'example.test', 'README'), 'utf8')).toMatch(/^This directory contains your keys and certificates\.\n\n`privkey\.pem`/);
    expect(await readFile(join(dir, 'live', 'README'), 'utf8')).toMatch(/`\[cert name\]\/privkey\.pem`/);

    const conf = await readFile(join(dir, 'renewal', 'example.test.conf'), 'utf8');
    expect(conf.split('\n').slice(0, 2)).toEqual(['# renew_before_expiry = 30 days', 'version = 2.1.0']);
    const parsed = parseConfigObj(conf);
    expect(parsed.top).toMatchObject({
      archive_dir: join(dir, 'archive', 'example.test'),
      cert: join(dir, 'live', 'example.test', 'cert.pem'),
      privkey: join(dir, 'live', 'example.test', 'privkey.pem'),
      chain: join(dir, 'live', 'example.test', 'chain.pem'),
      fullchain: join(dir, 'live', 'example.test', 'fullchain.pem'),
    });
    expect(parsed.sections.renewalparams).toMatchObject({ account: RENEWAL.account, server: RENEWAL.server, key_type: 'ecdsa', authenticator: 'dns-cloudflare' });
  });

  it('a second write makes version 2, moves the links and keeps version 1 in the archive', async () => {
    const dir = await freshDir();
    const store = new CertificateStore(dir);
    const one = await lineageFiles();
    const two = await lineageFiles();
    await store.write('example.test', one, RENEWAL);
    const stored = await store.write('example.test', two, { ...RENEWAL, keyType: 'rsa-2048' });
    expect(stored.version).toBe(2);
    expect(stored.cert).toBe(two.cert);
    expect(await readFile(join(dir, 'archive', 'example.test', 'cert1.pem'), 'utf8')).toBe(one.cert);
    expect(await readlink(join(dir, 'live', 'example.test', 'privkey.pem'))).toBe('../../archive/example.test/privkey2.pem');
    expect(stored.renewalParams).toMatchObject({ key_type: 'rsa', rsa_key_size: '2048' });
  });

  it('refuses to store a key that does not belong to the certificate', async () => {
    const a = await lineageFiles();
    const b = await lineageFiles();
    await expect(new CertificateStore(await freshDir()).write('example.test', { ...a, privkey: b.privkey }, RENEWAL)).rejects.toThrow(/private key does not belong/);
  });
});

describe('CertificateStore crash safety', () => {
  async function steps(): Promise<string[]> {
    const seen: string[] = [];
    const store = new CertificateStore(await freshDir(), { beforeStep: (s) => void seen.push(s) });
    await store.write('example.test', await lineageFiles(), RENEWAL);
    return seen;
  }

  it('a crash before any step of a renewal leaves a lineage read() serves: the old one or the new one, never a mix', async () => {
    const all = await steps();
    expect(all).toContain('link:privkey:rename');
    const oldFiles = await lineageFiles();
    const newFiles = await lineageFiles();
    const seenOutcomes = new Set<string>();
    for (const crashAt of all) {
      const dir = await freshDir();
      await new CertificateStore(dir).write('example.test', oldFiles, RENEWAL);
      const crashing = new CertificateStore(dir, {
        beforeStep: (s) => {
          if (s === crashAt) throw new Error(`crash at ${s}`);
        },
      });
      await expect(crashing.write('example.test', newFiles, RENEWAL)).rejects.toThrow(/crash at/);
      const read = await new CertificateStore(dir).read('example.test');
      expect(read, crashAt).toBeDefined();
      expect(read?.keyMatches, crashAt).toBe(true);
      expect([oldFiles.cert, newFiles.cert], crashAt).toContain(read?.cert);
      const pair = read?.cert === oldFiles.cert ? oldFiles : newFiles;
      expect(read?.privkey, crashAt).toBe(pair.privkey);
      expect(read?.fullchain, crashAt).toBe(pair.fullchain);
      seenOutcomes.add(read?.cert === oldFiles.cert ? 'old' : 'new');

      // The next write succeeds, takes the next free number and cleans up temporaries.
      const third = await lineageFiles();
      const after = await new CertificateStore(dir).write('example.test', third, RENEWAL);
      expect(after.cert, crashAt).toBe(third.cert);
      const leftovers = [...(await readdir(join(dir, 'archive', 'example.test'))), ...(await readdir(join(dir, 'live', 'example.test')))].filter((f) => f.includes('.tmp-'));
      expect(leftovers, crashAt).toEqual([]);
    }
    // Crashing while swapping links serves the complete new version; crashing before, the old one.
    expect([...seenOutcomes].sort()).toEqual(['new', 'old']);
  });

  it('a crash during the first write leaves either no lineage or the complete new one', async () => {
    const all = await steps();
    const files = await lineageFiles();
    for (const crashAt of all) {
      const dir = await freshDir();
      const crashing = new CertificateStore(dir, {
        beforeStep: (s) => {
          if (s === crashAt) throw new Error('crash');
        },
      });
      await expect(crashing.write('example.test', files, RENEWAL)).rejects.toThrow('crash');
      const read = await new CertificateStore(dir).read('example.test');
      if (read) {
        expect(read.cert, crashAt).toBe(files.cert);
        expect(read.privkey, crashAt).toBe(files.privkey);
      }
    }
  });

  it('ignores a half-written newer archive version while the live links agree on an older one', async () => {
    const dir = await freshDir();
    const store = new CertificateStore(dir);
    const one = await lineageFiles();
    await store.write('example.test', one, RENEWAL);
    const two = await lineageFiles();
    await writeFile(join(dir, 'archive', 'example.test', 'cert2.pem'), two.cert);
    await writeFile(join(dir, 'archive', 'example.test', 'privkey2.pem'), '');
    const read = await store.read('example.test');
    expect(read?.version).toBe(1);
    expect(read?.cert).toBe(one.cert);
    // certbot's rule for the next number: one past the highest present.
    expect((await store.write('example.test', await lineageFiles(), RENEWAL)).version).toBe(3);
  });

  it('live links pointing at a damaged version fall back to the newest complete consistent archive version', async () => {
    const dir = await freshDir();
    const store = new CertificateStore(dir);
    const one = await lineageFiles();
    await store.write('example.test', one, RENEWAL);
    await store.write('example.test', await lineageFiles(), RENEWAL);
    const other = await lineageFiles();
    await writeFile(join(dir, 'archive', 'example.test', 'privkey2.pem'), other.privkey); // key no longer matches cert2
    const read = await store.read('example.test');
    expect(read?.version).toBe(1);
    expect(read?.cert).toBe(one.cert);
  });
});

describe('reading lineages we did not write', () => {
  it('reads a certbot lineage with absolute links from another mount point and an old-image (certbot --manual) renewal conf', async () => {
    const dir = await freshDir();
    const files = await lineageFiles();
    await mkdir(join(dir, 'archive', 'example.test'), { recursive: true });
    await mkdir(join(dir, 'live', 'example.test'), { recursive: true });
    await mkdir(join(dir, 'renewal'), { recursive: true });
    for (const kind of ['cert', 'chain', 'fullchain', 'privkey'] as const) {
      await writeFile(join(dir, 'archive', 'example.test', `${kind}3.pem`), files[kind]);
      await symlink(`/etc/letsencrypt/archive/example.test/${kind}3.pem`, join(dir, 'live', 'example.test', `${kind}.pem`));
    }
    await writeFile(
      join(dir, 'renewal', 'example.test.conf'),
      [
        '# renew_before_expiry = 30 days',
        'version = 0.31.0',
        'archive_dir = /etc/letsencrypt/archive/example.test',
        'cert = /etc/letsencrypt/live/example.test/cert.pem',
        'privkey = /etc/letsencrypt/live/example.test/privkey.pem',
        'chain = /etc/letsencrypt/live/example.test/chain.pem',
        'fullchain = /etc/letsencrypt/live/example.test/fullchain.pem',
        '',
        '# Options used in the renewal process',
        '[renewalparams]',
        'account = 6b7c0f8b1b6e4bb5a1b0fb2b5e4c9d1a',
        'pref_challs = dns-01,',
        'manual_auth_hook = /scripts/auth.sh',
        'manual_cleanup_hook = "/scripts/cleanup.sh # really"',
        'authenticator = manual',
        'manual_public_ip_logging_ok = True',
        'server = https://acme-v02.api.letsencrypt.org/directory',
        '',
      ].join('\n'),
    );
    const read = await new CertificateStore(dir).read('example.test');
    expect(read?.version).toBe(3);
    expect(read?.cert).toBe(files.cert);
    expect(read?.server).toBe(LETSENCRYPT_PRODUCTION);
    expect(read?.renewalParams).toMatchObject({ authenticator: 'manual', account: '6b7c0f8b1b6e4bb5a1b0fb2b5e4c9d1a', manual_cleanup_hook: '/scripts/cleanup.sh # really' });
    // And we keep the lineage going: version 4, the links become relative.
    const next = await new CertificateStore(dir).write('example.test', await lineageFiles(), { ...RENEWAL, server: LETSENCRYPT_PRODUCTION });
    expect(next.version).toBe(4);
    expect(await readlink(join(dir, 'live', 'example.test', 'cert.pem'))).toBe('../../archive/example.test/cert4.pem');
  });

  it('reads a plain live directory with real files (no archive, no renewal conf) and turns it into a lineage on write', async () => {
    const dir = await freshDir();
    const files = await lineageFiles();
    await mkdir(join(dir, 'live', 'example.test'), { recursive: true });
    for (const kind of ['cert', 'chain', 'fullchain', 'privkey'] as const) await writeFile(join(dir, 'live', 'example.test', `${kind}.pem`), files[kind]);
    const store = new CertificateStore(dir);
    const read = await store.read('example.test');
    expect(read).toMatchObject({ source: 'live-files', version: undefined, server: undefined, keyMatches: true, cert: files.cert });
    const next = await store.write('example.test', await lineageFiles(), RENEWAL);
    expect(next.version).toBe(1);
    expect((await lstat(join(dir, 'live', 'example.test', 'cert.pem'))).isSymbolicLink()).toBe(true);
  });

  it('reports a plain live directory whose key does not match (so it is not valid) and returns nothing for an absent lineage', async () => {
    const dir = await freshDir();
    const a = await lineageFiles();
    const b = await lineageFiles();
    await mkdir(join(dir, 'live', 'example.test'), { recursive: true });
    for (const kind of ['cert', 'chain', 'fullchain'] as const) await writeFile(join(dir, 'live', 'example.test', `${kind}.pem`), a[kind]);
    await writeFile(join(dir, 'live', 'example.test', 'privkey.pem'), b.privkey);
    const read = await new CertificateStore(dir).read('example.test');
    expect(read?.keyMatches).toBe(false);
    expect(assessLineage(read!, { domains: ['example.test'], directoryUrl: RENEWAL.server }, Date.now()).reasons).toContain('its private key does not match the certificate');
    expect(await new CertificateStore(dir).read('other.test')).toBeUndefined();
  });

  it('returns nothing for a plain live directory whose fullchain is not the certificate\u2019s', async () => {
    const dir = await freshDir();
    const a = await lineageFiles();
    const b = await lineageFiles();
    await mkdir(join(dir, 'live', 'example.test'), { recursive: true });
    for (const kind of ['cert', 'chain', 'privkey'] as const) await writeFile(join(dir, 'live', 'example.test', `${kind}.pem`), a[kind]);
    await writeFile(join(dir, 'live', 'example.test', 'fullchain.pem'), b.fullchain);
    expect(await new CertificateStore(dir).read('example.test')).toBeUndefined();
  });
});

describe('is a lineage valid for the configuration?', () => {
  const cfg = { domains: ['*.example.test', 'example.test'], directoryUrl: 'https://127.0.0.1:14000/dir' };

  it('valid: right names, right CA, key matches, not due', async () => {
    const l = await new CertificateStore(await freshDir()).write('example.test', await lineageFiles(), RENEWAL);
    expect(assessLineage(l, cfg, Date.now())).toEqual({ valid: true, servable: true, due: false, reasons: [] });
  });

  it('not valid when a configured name is missing, or when it comes from another directory (staging vs production)', async () => {
    const store = new CertificateStore(await freshDir());
    const l = await store.write('example.test', await lineageFiles(['*.example.test']), { ...RENEWAL, server: LETSENCRYPT_STAGING });
    const a = assessLineage(l, { domains: cfg.domains, directoryUrl: LETSENCRYPT_PRODUCTION }, Date.now());
    expect(a.valid).toBe(false);
    expect(a.servable).toBe(false);
    expect(a.reasons.join(' | ')).toMatch(/does not cover example\.test \| comes from https:\/\/acme-staging-v02/);
  });

  it('without a renewal conf the origin is unknown: accepted, unless the issuer is a Let\u2019s Encrypt staging CA and production is configured', async () => {
    const staging = await createCertificate({ commonName: '(STAGING) Ersatz Edamame E1', isCA: true, validDays: 3650 });
    const dir = await freshDir();
    await mkdir(join(dir, 'live', 'example.test'), { recursive: true });
    const files = await lineageFiles(['*.example.test', 'example.test'], { issuer: staging });
    for (const kind of ['cert', 'chain', 'fullchain', 'privkey'] as const) await writeFile(join(dir, 'live', 'example.test', `${kind}.pem`), files[kind]);
    const l = (await new CertificateStore(dir).read('example.test'))!;
    expect(assessLineage(l, { ...cfg, directoryUrl: LETSENCRYPT_PRODUCTION }, Date.now()).reasons.join()).toMatch(/staging certificate/);
    expect(assessLineage(l, { ...cfg, directoryUrl: LETSENCRYPT_STAGING }, Date.now()).valid).toBe(true);
  });

  it('due when a third of the lifetime is left: servable but not valid; expired is neither', async () => {
    const store = new CertificateStore(await freshDir());
    const due = await store.write('example.test', await lineageFiles(undefined, { validDays: 90, notBeforeOffsetDays: -61 }), RENEWAL);
    expect(assessLineage(due, cfg, Date.now())).toMatchObject({ valid: false, servable: true, due: true, reasons: ['is due for renewal'] });
    const expired = await store.write('example.test', await lineageFiles(undefined, { validDays: 10, notBeforeOffsetDays: -20 }), RENEWAL);
    expect(assessLineage(expired, cfg, Date.now())).toMatchObject({ valid: false, servable: false, due: false });
    expect(assessLineage(due, cfg, due.notAfter.getTime() - 31 * DAY).valid).toBe(true);
  });
});

describe('ACME accounts in certbot format', () => {
  it('uses certbot account paths: accounts/HOST[:PORT]PATH/ID', () => {
    expect(serverPath(LETSENCRYPT_PRODUCTION)).toBe('acme-v02.api.letsencrypt.org/directory');
    expect(serverPath('https://127.0.0.1:14000/dir')).toBe('127.0.0.1:14000/dir');
  });

  it('computes certbot\u2019s account id (md5 of the SubjectPublicKeyInfo PEM, as python cryptography writes it)', async () => {
    const key = await generateAccountKey();
    const id = certbotAccountId(key);
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    const spki = createPublicKey(createPrivateKey(key)).export({ type: 'spki', format: 'pem' }).toString();
    expect(id).toBe(createHash('md5').update(spki).digest('hex'));
    if (existsSync('/usr/bin/python3')) {
      const py = [
        'import sys, hashlib',
        'from cryptography.hazmat.primitives import serialization',
        'k = serialization.load_pem_private_key(sys.stdin.buffer.read(), None)',
        'print(hashlib.md5(k.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest())',
      ].join('\n');
      let out: string | undefined;
      try {
        out = execFileSync('/usr/bin/python3', ['-c', py], { input: key }).toString().trim();
      } catch {
        out = undefined; // python3-cryptography not installed: the node computation above still holds
      }
      if (out !== undefined) expect(out).toBe(id);
    }
  });

  it('saves private_key.json (JWK, 0400), regr.json and meta.json; finds the preferred account or else the oldest', async () => {
    const dir = await freshDir();
    const accounts = new AccountStore(dir);
    const url = 'https://127.0.0.1:14000/dir';
    const k1 = await generateAccountKey();
    const a1 = await accounts.save(url, k1, 'https://127.0.0.1:14000/my-account/1');
    expect(a1.dir).toBe(join(dir, 'accounts', '127.0.0.1:14000', 'dir', a1.id));
    expect(((await lstat(join(a1.dir, 'private_key.json'))).mode & 0o777).toString(8)).toBe('400');
    expect(((await lstat(a1.dir)).mode & 0o777).toString(8)).toBe('700');
    const jwk = JSON.parse(await readFile(join(a1.dir, 'private_key.json'), 'utf8')) as Record<string, string>;
    expect(Object.keys(jwk).sort()).toEqual(['d', 'dp', 'dq', 'e', 'kty', 'n', 'p', 'q', 'qi']);
    expect(JSON.parse(await readFile(join(a1.dir, 'regr.json'), 'utf8'))).toEqual({ body: {}, uri: 'https://127.0.0.1:14000/my-account/1' });
    expect(JSON.parse(await readFile(join(a1.dir, 'meta.json'), 'utf8'))).toMatchObject({ creation_dt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/), creation_host: expect.any(String) });

    await new Promise((r) => setTimeout(r, 20));
    const a2 = await accounts.save(url, await generateAccountKey(), 'https://127.0.0.1:14000/my-account/2');
    expect((await accounts.find(url))?.id).toBe(a1.id);
    expect((await accounts.find(url, a2.id))?.url).toBe('https://127.0.0.1:14000/my-account/2');
    const loaded = await accounts.find(url, a1.id);
    expect(createPublicKey(loaded!.keyPem).export({ type: 'spki', format: 'der' })).toEqual(createPublicKey(k1).export({ type: 'spki', format: 'der' }));
    expect(await accounts.find('https://other.example/dir')).toBeUndefined();
  });

  it('loads an EC account key JWK as newer certbot versions may write', async () => {
    const dir = await freshDir();
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = privateKey.export({ format: 'jwk' });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const id = certbotAccountId(pem);
    const accDir = join(dir, 'accounts', 'acme.example', 'directory', id);
    await mkdir(accDir, { recursive: true });
    await writeFile(join(accDir, 'private_key.json'), JSON.stringify(jwk));
    await writeFile(join(accDir, 'regr.json'), JSON.stringify({ body: { contact: ['mailto:a@example.test'] }, uri: 'https://acme.example/acct/7', new_authzr_uri: 'https://acme.example/new-authz' }));
    const found = await new AccountStore(dir).find('https://acme.example/directory');
    expect(found).toMatchObject({ id, url: 'https://acme.example/acct/7' });
  });
});
