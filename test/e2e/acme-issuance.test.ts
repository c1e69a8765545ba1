/**
 * Real issuance: pebble validates DNS-01 through the loopback DNS server, which serves what the fake Cloudflare
 * API was told by the official SDK, in the issuing child process forked by CertificateManager.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, lstat, mkdtemp, readFile, readdir, readlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LETSENCRYPT_STAGING } from '../../src/config/managed.js';
import type { ServedCertificate } from '../../src/certs/stand-in.js';
import { CertificateStore } from '../../src/certs/lineage-store.js';
import { parseConfigObj } from '../../src/certs/renewal-conf.js';
import { serverPath } from '../../src/certs/account.js';
import { createTestPki } from '../support/tls.js';
import { nextEvent, startAcmeTestbed, writeCertbotStyleLineage, type AcmeTestbed } from '../support/pebble.js';

const CERTBOT = '/usr/bin/certbot';
const hasCertbot = existsSync(CERTBOT);

/** Serve `cert` with a real TLS server; connect trusting only `root`; 'ok' or the client's error message. */
async function handshake(cert: ServedCertificate, root: string, servername: string): Promise<string> {
  const server = createServer({ cert: cert.cert, key: cert.key }, (s) => s.end('ok'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  try {
    return await new Promise<string>((resolve) => {
      const s = connect({ host: '127.0.0.1', port, ca: root, servername }, () => {
        s.once('data', (d: Buffer) => {
          resolve(d.toString());
          s.destroy();
        });
      });
      s.on('error', (e) => resolve(e.message));
    });
  } finally {
    server.close();
  }
}

describe('ACME issuance through pebble (DNS-01 via the fake Cloudflare and loopback DNS)', () => {
  let bed: AcmeTestbed;
  let firstDir: string;
  let first: ServedCertificate;

  beforeAll(async () => {
    bed = await startAcmeTestbed();
  });
  afterEach(async () => {
    await bed?.reset();
  });
  afterAll(async () => {
    await bed?.close();
  });

  it('obtains a wildcard + apex certificate, stores it in certbot\u2019s layout and cleans up its TXT records', async () => {
    firstDir = await bed.newDir();
    const m = bed.manager(bed.config(firstDir));
    const issued = nextEvent(m, 'issued');
    expect(m.hasCaCertificate).toBe(false);
    await m.start();
    first = await m.whenCaCertificate();
    await issued;
    await m.stop();

    expect(first).toMatchObject({ fromCa: true, lineage: 'example.test', names: ['*.example.test', 'example.test'] });
    expect(m.hasCaCertificate).toBe(true);
    expect(m.stats()).toMatchObject({ hasCaCertificate: true, renewalsSucceeded: 1, renewalsFailed: 0, notAfter: first.notAfter });
    expect(bed.pebble.orderCount()).toBe(1);

    // Both values of the one _acme-challenge name existed at once; both removed by id; nothing left.
    const writes = bed.cloudflare.requests.filter((r) => r.method !== 'GET').map((r) => `${r.method} ${r.status}`);
    expect(writes).toEqual(['POST 200', 'POST 200', 'DELETE 200', 'DELETE 200']);
    expect(bed.cloudflare.records()).toEqual([]);

    // certbot's layout, modes and links.
    const live = join(firstDir, 'live', 'example.test');
    for (const kind of ['cert', 'chain', 'fullchain', 'privkey']) {
      expect(await readlink(join(live, `${kind}.pem`))).toBe(`../../archive/example.test/${kind}1.pem`);
      expect(((await lstat(join(firstDir, 'archive', 'example.test', `${kind}1.pem`))).mode & 0o777).toString(8)).toBe(kind === 'privkey' ? '600' : '644');
    }
    expect(await readFile(join(live, 'fullchain.pem'), 'utf8')).toBe(first.cert);
    expect(await readFile(join(live, 'privkey.pem'), 'utf8')).toBe(first.key);
    expect(first.key).toMatch(/BEGIN PRIVATE KEY/);
    const conf = parseConfigObj(await readFile(join(firstDir, 'renewal', 'example.test.conf'), 'utf8'));
    const accountsDir = join(firstDir, 'accounts', serverPath(bed.pebble.directoryUrl));
    const accountIds = await readdir(accountsDir);
    expect(accountIds).toHaveLength(1);
    expect(conf.sections.renewalparams).toMatchObject({ server: bed.pebble.directoryUrl, account: accountIds[0], key_type: 'ecdsa' });
    expect(((await lstat(join(accountsDir, accountIds[0] ?? '', 'private_key.json'))).mode & 0o777).toString(8)).toBe('400');

    // Progress was logged step by step, by the child process.
    const msgs = bed.logs.entries().map((e) => e.msg);
    for (const step of ['issuing process started', 'ACME account created and stored', 'order created', 'TXT record created', 'waiting for TXT records to propagate', 'challenge completed', 'TXT record removed', 'certificate stored']) {
      expect(msgs, step).toContain(step);
    }
    const stored = bed.logs.entries().find((e) => e.msg === 'certificate stored');
    expect(stored?.notAfter).toBe(first.notAfter.toISOString());
    expect(bed.logs.text()).not.toContain(bed.cloudflare.apiToken);
  });

  it('the issued certificate, served by a TLS server, is trusted for covered names by a client trusting pebble\u2019s root, refused for others', async () => {
    const root = await bed.pebble.issuingRoot();
    expect(await handshake(first, root, 'mqtt.example.test')).toBe('ok');
    expect(await handshake(first, root, 'example.test')).toBe('ok');
    expect(await handshake(first, root, 'a.b.example.test')).toMatch(/Hostname\/IP does not match certificate's altnames/);
    expect(await handshake(first, root, 'mqtt.other.test')).toMatch(/Hostname\/IP does not match certificate's altnames/);
    const foreign = await createTestPki(await bed.newDir());
    expect(await handshake(first, foreign.ca.cert, 'mqtt.example.test')).toMatch(/unable to get local issuer certificate/);
  });

  it('a restart with a valid stored lineage serves it at once and makes no ACME request', async () => {
    const orders = bed.pebble.orderCount();
    const apiCalls = bed.cloudflare.requests.length;
    const m = bed.manager(bed.config(firstDir));
    const served: ServedCertificate[] = [];
    let children = 0;
    m.on('certificate', (c: ServedCertificate) => served.push(c));
    m.on('issuing', () => (children += 1));
    const scheduled = nextEvent<{ reason: string; inMs: number }>(m, 'scheduled');
    await m.start();
    expect(served).toHaveLength(1);
    expect(served[0]?.serial).toBe(first.serial);
    expect(m.hasCaCertificate).toBe(true);
    expect((await scheduled).reason).toBe('renewal-check');
    await m.stop();
    expect(children).toBe(0);
    expect(bed.pebble.orderCount()).toBe(orders);
    expect(bed.cloudflare.requests.length).toBe(apiCalls);
  });

  it('picks up a lineage written in certbot\u2019s layout by someone else (the old image) without a new order', async () => {
    const dir = await bed.newDir();
    const made = await writeCertbotStyleLineage(dir, { name: 'example.test', names: ['*.example.test', 'example.test'], server: bed.pebble.directoryUrl });
    const orders = bed.pebble.orderCount();
    const m = bed.manager(bed.config(dir));
    await m.start();
    expect(m.current()).toMatchObject({ serial: made.serial, key: made.key, fromCa: true });
    await m.stop();
    expect(bed.pebble.orderCount()).toBe(orders);
  });

  it('replaces a staging lineage when production (here: pebble) is configured, serving the staging one as a stand-in meanwhile', async () => {
    const dir = await bed.newDir();
    const staging = await writeCertbotStyleLineage(dir, { name: 'example.test', names: ['*.example.test', 'example.test'], server: LETSENCRYPT_STAGING, issuerName: '(STAGING) Ersatz Edamame E1' });
    const orders = bed.pebble.orderCount();
    const m = bed.manager(bed.config(dir, { selfSignedWhileWaiting: true }));
    const served: ServedCertificate[] = [];
    m.on('certificate', (c: ServedCertificate) => served.push(c));
    await m.start();
    // Better than nothing, and better than self-signed: the staging certificate for the same names.
    expect(served.map((c) => [c.origin, c.serial])).toEqual([['staging', staging.serial]]);
    expect(m.hasCaCertificate).toBe(false);
    const cert = await m.whenCaCertificate();
    await m.stop();
    expect(served.map((c) => c.origin)).toEqual(['staging', 'ca']);
    expect(cert.serial).not.toBe(staging.serial);
    expect(bed.pebble.orderCount()).toBe(orders + 1);
    const stored = await new CertificateStore(dir).read('example.test');
    expect(stored).toMatchObject({ version: 2, serial: cert.serial, server: bed.pebble.directoryUrl });
    expect(await readFile(join(dir, 'archive', 'example.test', 'cert1.pem'), 'utf8')).toBe(staging.cert);
    expect(await handshake(cert, await bed.pebble.issuingRoot(), 'mqtt.example.test')).toBe('ok');
  });

  it('RSA keys on request; reuseKey keeps the private key when the certificate is replaced', async () => {
    const dir = await bed.newDir();
    const cfg = bed.config(dir, { keyType: 'rsa-2048', reuseKey: true });
    const m1 = bed.manager(cfg);
    await m1.start();
    const c1 = await m1.whenCaCertificate();
    await m1.stop();
    // A name the stored certificate does not cover makes it invalid: a new one is obtained with the same key.
    const m2 = bed.manager({ ...cfg, domains: [...cfg.domains, 'deep.sub.example.test'] });
    await m2.start();
    const c2 = await m2.whenCaCertificate();
    await m2.stop();
    expect(c2.names).toEqual(['*.example.test', 'example.test', 'deep.sub.example.test']);
    expect(c2.serial).not.toBe(c1.serial);
    expect(c2.key).toBe(c1.key);
    const { createPrivateKey } = await import('node:crypto');
    expect(createPrivateKey(c2.key).asymmetricKeyDetails?.modulusLength).toBe(2048);
    const conf = parseConfigObj(await readFile(join(dir, 'renewal', 'example.test.conf'), 'utf8'));
    expect(conf.sections.renewalparams).toMatchObject({ key_type: 'rsa', rsa_key_size: '2048', reuse_key: 'True' });
    expect(await readdir(join(dir, 'accounts', serverPath(bed.pebble.directoryUrl)))).toHaveLength(1);
  });

  describe.skipIf(!hasCertbot)('with certbot itself (Debian package certbot)', () => {
    const run = promisify(execFile);
    async function certbot(args: string[], dir: string): Promise<string> {
      const caFile = join(dir, '..', `${dir.split('/').pop() ?? 'x'}-pebble-ca.pem`);
      await writeFile(caFile, bed.pebble.apiCa);
      const work = await mkdtemp(join(tmpdir(), 'mab-certbot-'));
      const { stdout, stderr } = await run(CERTBOT, [...args, '--config-dir', dir, '--work-dir', work, '--logs-dir', work], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', REQUESTS_CA_BUNDLE: caFile, HOME: work },
      });
      return stdout + stderr;
    }

    it('certbot reads the lineage and the account we wrote', async () => {
      const out = await certbot(['certificates'], firstDir);
      expect(out).toMatch(/Certificate Name: example\.test/);
      expect(out).toMatch(/Domains: \*\.example\.test example\.test/);
      expect(out).toMatch(/Certificate Path: .*\/live\/example\.test\/fullchain\.pem/);
      expect(out).not.toMatch(/invalid|broken|error/i);
      const account = await certbot(['show_account', '--server', bed.pebble.directoryUrl], firstDir);
      const id = (await readdir(join(firstDir, 'accounts', serverPath(bed.pebble.directoryUrl))))[0] ?? '';
      const regr = JSON.parse(await readFile(join(firstDir, 'accounts', serverPath(bed.pebble.directoryUrl), id, 'regr.json'), 'utf8')) as { uri: string };
      expect(account).toContain(`Account URL: ${regr.uri}`);
    });

    it('a lineage certbot made with manual hooks (as the old image did) is served without a new order, and its account is reused', async () => {
      const dir = await bed.newDir();
      const hooks = await mkdtemp(join(tmpdir(), 'mab-hooks-'));
      const zone = bed.cloudflare.zones[0]?.id ?? '';
      const headers = `{ 'X-Auth-Email': ${JSON.stringify(bed.cloudflare.email)}, 'X-Auth-Key': ${JSON.stringify(bed.cloudflare.apiKey)}, 'content-type': 'application/json' }`;
      const base = `${bed.cloudflare.baseUrl}/zones/${zone}/dns_records`;
      await writeFile(
        join(hooks, 'auth.mjs'),
        `#!${process.execPath}\nconst r = await fetch(${JSON.stringify(base)}, { method: 'POST', headers: ${headers}, body: JSON.stringify({ type: 'TXT', name: '_acme-challenge.' + process.env.CERTBOT_DOMAIN, content: process.env.CERTBOT_VALIDATION, ttl: 120 }) });\nif (!r.ok) { console.error(await r.text()); process.exit(1); }\n`,
      );
      // The old image deleted every TXT record of the name.
      await writeFile(
        join(hooks, 'cleanup.mjs'),
        `#!${process.execPath}\nconst list = await (await fetch(${JSON.stringify(base)} + '?type=TXT&name=_acme-challenge.' + process.env.CERTBOT_DOMAIN, { headers: ${headers} })).json();\nfor (const r of list.result) await fetch(${JSON.stringify(base)} + '/' + r.id, { method: 'DELETE', headers: ${headers} });\n`,
      );
      await chmod(join(hooks, 'auth.mjs'), 0o755);
      await chmod(join(hooks, 'cleanup.mjs'), 0o755);
      const orders = bed.pebble.orderCount();
      await certbot(
        ['certonly', '--non-interactive', '--agree-tos', '-m', 'admin@example.test', '--no-eff-email', '--manual', '--preferred-challenges', 'dns',
          '--manual-auth-hook', join(hooks, 'auth.mjs'), '--manual-cleanup-hook', join(hooks, 'cleanup.mjs'),
          '-d', '*.example.test', '-d', 'example.test', '--server', bed.pebble.directoryUrl],
        dir,
      );
      expect(bed.pebble.orderCount()).toBe(orders + 1);
      expect(bed.cloudflare.records()).toEqual([]);
      const certbotAccount = (await readdir(join(dir, 'accounts', serverPath(bed.pebble.directoryUrl))))[0];

      const m1 = bed.manager(bed.config(dir));
      await m1.start();
      const served = m1.current();
      await m1.stop();
      expect(served?.fromCa).toBe(true);
      expect(served?.cert).toBe(await readFile(join(dir, 'live', 'example.test', 'fullchain.pem'), 'utf8'));
      expect(bed.pebble.orderCount()).toBe(orders + 1);

      // A name it does not cover: we obtain a new one with certbot's account, and certbot can still read it all.
      const m2 = bed.manager(bed.config(dir, { domains: ['*.example.test', 'example.test', 'deep.sub.example.test'] }));
      await m2.start();
      const c2 = await m2.whenCaCertificate();
      await m2.stop();
      expect(await readdir(join(dir, 'accounts', serverPath(bed.pebble.directoryUrl)))).toEqual([certbotAccount]);
      expect(parseConfigObj(await readFile(join(dir, 'renewal', 'example.test.conf'), 'utf8')).sections.renewalparams?.account).toBe(certbotAccount);
      expect((await new CertificateStore(dir).read('example.test'))?.version).toBe(2);
      expect(c2.names).toContain('deep.sub.example.test');
      const out = await certbot(['certificates'], dir);
      expect(out).toMatch(/Domains: \*\.example\.test example\.test deep\.sub\.example\.test/);
    });
  });
});
