import { describe, expect, it } from 'vitest';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readEnv } from '../../src/config/env.js';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/config-error.js';
import { LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING } from '../../src/config/managed.js';

const TOKEN = 'cf-token-Zq8xW3vN';
const CREDS = { CLOUDFLARE_API_TOKEN: TOKEN };

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'mab-env-'));
}

function load(env: NodeJS.ProcessEnv, cwd = '/srv/broker') {
  return loadConfig({ env, cwd, defaults: { mosquittoConf: null, passwordFile: null } });
}

async function loadError(env: NodeJS.ProcessEnv, cwd = '/srv/broker'): Promise<ConfigError> {
  try {
    await load(env, cwd);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('environment variables', () => {
  it('maps every variable onto the config, with the variable as source', async () => {
    const { config, sources } = await load({
      DOMAIN: '*.Example.com, example.com',
      EMAIL: 'admin@example.com',
      CLOUDFLARE_API_TOKEN: TOKEN,
      CLOUDFLARE_EMAIL: 'cf@example.com',
      TESTCERT: 'true',
      CLOUDFLARE_BASE_URL: 'http://127.0.0.1:8787/client/v4',
      ACME_DNS_RESOLVERS: '1.1.1.1:53, [2606:4700:4700::1111]:53,8.8.8.8',
      LETSENCRYPT_DIR: 'le',
      MQTTS_PORT: '8884',
      CERT_KEY_TYPE: 'rsa-2048',
      CERT_REUSE_KEY: 'yes',
      ACME_SELF_SIGNED_WHILE_WAITING: '1',
      DATA_DIR: 'state',
      LOG_LEVEL: 'DEBUG',
      OPS_PORT: '-1',
      OPS_HOST: '127.0.0.1',
    });
    expect(config.acme).toEqual({
      domains: ['*.example.com', 'example.com'],
      email: 'admin@example.com',
      directoryUrl: LETSENCRYPT_STAGING,
      staging: true,
      cloudflare: { apiToken: TOKEN, email: 'cf@example.com' },
      cloudflareBaseUrl: 'http://127.0.0.1:8787/client/v4',
      dnsResolvers: ['1.1.1.1:53', '[2606:4700:4700::1111]:53', '8.8.8.8:53'],
      letsencryptDir: '/srv/broker/le',
      mqttsPort: 8884,
      keyType: 'rsa-2048',
      reuseKey: true,
      selfSignedWhileWaiting: true,
    });
    expect(config.dataDir).toBe('/srv/broker/state');
    expect(config.persistenceLocation).toBe('/srv/broker/state/persistence');
    expect(config.logLevel).toBe('debug');
    expect(config.ops).toEqual({ port: -1, host: '127.0.0.1' });
    expect(sources.values['acme.domains']).toBe('env DOMAIN');
    expect(sources.values['acme.mqttsPort']).toBe('env MQTTS_PORT');
  });

  it.each([
    ['true', LETSENCRYPT_STAGING],
    ['1', LETSENCRYPT_STAGING],
    ['YES', LETSENCRYPT_STAGING],
    ['false', LETSENCRYPT_PRODUCTION],
    ['0', LETSENCRYPT_PRODUCTION],
    ['no', LETSENCRYPT_PRODUCTION],
    ['', LETSENCRYPT_PRODUCTION],
  ])('TESTCERT=%j selects %s', async (value, url) => {
    const { config } = await load({ TESTCERT: value });
    expect(config.acme.directoryUrl).toBe(url);
    expect(config.acme.staging).toBe(url === LETSENCRYPT_STAGING);
  });

  it('refuses any other TESTCERT value, naming the variable', async () => {
    const error = await loadError({ TESTCERT: 'staging' });
    expect(error.message).toMatch(/^env TESTCERT: expected true\/1\/yes or false\/0\/no/);
  });

  it('ACME_DIRECTORY_URL overrides TESTCERT', async () => {
    const { config } = await load({ TESTCERT: 'true', ACME_DIRECTORY_URL: 'https://127.0.0.1:14000/dir' });
    expect(config.acme.directoryUrl).toBe('https://127.0.0.1:14000/dir');
  });

  it.each([
    [{ DOMAIN: 'foo.*.example.com', ...CREDS }, 'DOMAIN', /not a valid domain name/],
    [{ DOMAIN: '*example.com', ...CREDS }, 'DOMAIN', /not a valid domain name/],
    [{ DOMAIN: 'exa mple.com', ...CREDS }, 'DOMAIN', /not a valid domain name/],
    [{ DOMAIN: 'localhost', ...CREDS }, 'DOMAIN', /not a valid domain name/],
    [{ DOMAIN: '10.0.0.1', ...CREDS }, 'DOMAIN', /not a valid domain name/],
    [{ EMAIL: 'admin' }, 'EMAIL', /not an e-mail address/],
    [{ ACME_DIRECTORY_URL: 'acme.example' }, 'ACME_DIRECTORY_URL', /not an http\(s\) URL/],
    [{ CLOUDFLARE_BASE_URL: 'ftp://x' }, 'CLOUDFLARE_BASE_URL', /not an http\(s\) URL/],
    [{ ACME_DNS_RESOLVERS: 'dns.google:53' }, 'ACME_DNS_RESOLVERS', /IP:port/],
    [{ ACME_DNS_RESOLVERS: '1.1.1.1:99999' }, 'ACME_DNS_RESOLVERS', /IP:port/],
    [{ MQTTS_PORT: 'https' }, 'MQTTS_PORT', /port number/],
    [{ MQTTS_PORT: '70000' }, 'MQTTS_PORT', /out of range/],
    [{ OPS_PORT: '-2' }, 'OPS_PORT', /out of range.*-1 = off/],
    [{ OPS_HOST: 'bad host' }, 'OPS_HOST', /not an IP address or host name/],
    [{ CERT_KEY_TYPE: 'ed25519' }, 'CERT_KEY_TYPE', /ecdsa-p256, rsa-2048, rsa-4096/],
    [{ CERT_REUSE_KEY: 'sometimes' }, 'CERT_REUSE_KEY', /true\/1\/yes/],
    [{ ACME_SELF_SIGNED_WHILE_WAITING: 'y' }, 'ACME_SELF_SIGNED_WHILE_WAITING', /true\/1\/yes/],
    [{ LOG_LEVEL: 'verbose' }, 'LOG_LEVEL', /fatal, error, warn, info, debug, trace, silent/],
  ])('%j is an error naming %s', async (env, name, problem) => {
    const error = await loadError(env);
    expect(error.message.startsWith(`env ${name}: `)).toBe(true);
    expect(error.message).toMatch(problem);
  });

  it('lower-cases domains and drops a duplicate with a warning', async () => {
    const { config, warnings } = await load({ DOMAIN: 'Example.com,example.COM,', ...CREDS });
    expect(config.acme.domains).toEqual(['example.com']);
    expect(warnings.join('\n')).toContain('env DOMAIN: "example.COM" is listed twice');
  });

  it('refuses a token together with a global key, naming both variables', async () => {
    const error = await loadError({ CLOUDFLARE_API_TOKEN: TOKEN, CLOUDFLARE_KEY: 'k', CLOUDFLARE_EMAIL: 'a@b.c' });
    expect(error.message).toMatch(/^env CLOUDFLARE_API_TOKEN: .*CLOUDFLARE_KEY.*keep only one/);
    expect(error.message).not.toContain(TOKEN);
  });

  it('refuses a global key without its e-mail, and ACME without any credentials, saying what to set', async () => {
    const noEmail = await loadError({ CLOUDFLARE_KEY: 'abc123', DOMAIN: 'example.com' });
    expect(noEmail.message).toMatch(/^env CLOUDFLARE_KEY: .*set CLOUDFLARE_EMAIL/);
    const none = await loadError({ DOMAIN: 'example.com', EMAIL: 'a@example.com' });
    expect(none.message).toMatch(/^env DOMAIN: ACME needs Cloudflare credentials.*CLOUDFLARE_API_TOKEN.*CLOUDFLARE_KEY and CLOUDFLARE_EMAIL/);
  });

  it('accepts the global key + e-mail as the old image used them', async () => {
    const { config } = await load({ DOMAIN: '*.example.com', CLOUDFLARE_KEY: 'globalkey', CLOUDFLARE_EMAIL: 'cf@example.com' });
    expect(config.acme.cloudflare).toEqual({ apiKey: 'globalkey', email: 'cf@example.com' });
  });

  it('warns when credentials are set but DOMAIN is not (ACME stays off)', async () => {
    const { config, warnings } = await load(CREDS);
    expect(config.acme.domains).toEqual([]);
    expect(warnings.join('\n')).toMatch(/env CLOUDFLARE_API_TOKEN: .*no domain/);
  });

  it('treats an empty variable as unset', async () => {
    const { config } = await load({ DOMAIN: '', CLOUDFLARE_KEY: '', MQTTS_PORT: '', LOG_LEVEL: '' });
    expect(config.acme.domains).toEqual([]);
    expect(config.acme.cloudflare).toEqual({});
    expect(config.acme.mqttsPort).toBe(8883);
    expect(config.logLevel).toBe('info');
  });

  describe('secrets', () => {
    it('reads NAME_FILE relative to cwd, for every secret', async () => {
      const dir = await tempDir();
      await writeFile(join(dir, 'token'), TOKEN);
      await writeFile(join(dir, 'email'), 'admin@example.com');
      await writeFile(join(dir, 'cfemail'), 'cf@example.com');
      const { config, sources } = await load({ DOMAIN: 'example.com', CLOUDFLARE_API_TOKEN_FILE: 'token', EMAIL_FILE: join(dir, 'email'), CLOUDFLARE_EMAIL_FILE: 'cfemail' }, dir);
      expect(config.acme.cloudflare).toEqual({ apiToken: TOKEN, email: 'cf@example.com' });
      expect(config.acme.email).toBe('admin@example.com');
      expect(sources.values['acme.cloudflare.apiToken']).toBe('env CLOUDFLARE_API_TOKEN_FILE');
      await writeFile(join(dir, 'key'), 'globalkey');
      const key = await load({ CLOUDFLARE_KEY_FILE: 'key', CLOUDFLARE_EMAIL: 'cf@example.com' }, dir);
      expect(key.config.acme.cloudflare.apiKey).toBe('globalkey');
    });

    it('refuses NAME together with NAME_FILE', async () => {
      const error = await loadError({ CLOUDFLARE_KEY: 'k', CLOUDFLARE_KEY_FILE: '/run/secrets/key' });
      expect(error.message).toMatch(/^env CLOUDFLARE_KEY: both CLOUDFLARE_KEY and CLOUDFLARE_KEY_FILE are set/);
    });

    it('names the variable and the path when NAME_FILE cannot be read or is empty', async () => {
      const dir = await tempDir();
      const missing = await loadError({ CLOUDFLARE_API_TOKEN_FILE: 'nope' }, dir);
      expect(missing.message).toMatch(new RegExp(`^env CLOUDFLARE_API_TOKEN_FILE: cannot read ${dir}/nope \\(ENOENT\\)`));
      await writeFile(join(dir, 'empty'), '\n');
      const empty = await loadError({ EMAIL_FILE: 'empty' }, dir);
      expect(empty.message).toMatch(/^env EMAIL_FILE: the file .* is empty/);
    });

    it('trims the trailing newline of `echo` (variable or file) with a warning that names the variable, not the value', async () => {
      const dir = await tempDir();
      await writeFile(join(dir, 'email'), 'cf-owner@example.com\n');
      const result = await readEnv({ CLOUDFLARE_API_TOKEN: `${TOKEN}\n`, CLOUDFLARE_EMAIL_FILE: 'email', DOMAIN: 'example.com \n' }, dir);
      expect(result.layer.values.acme?.cloudflare).toEqual({ apiToken: TOKEN, email: 'cf-owner@example.com' });
      expect(result.layer.values.acme?.domains).toEqual(['example.com']);
      expect(result.warnings).toHaveLength(3);
      expect(result.warnings.some((w) => w.startsWith('CLOUDFLARE_API_TOKEN: '))).toBe(true);
      expect(result.warnings.some((w) => w.startsWith('CLOUDFLARE_EMAIL_FILE (file '))).toBe(true);
      expect(result.warnings.some((w) => w.startsWith('DOMAIN: '))).toBe(true);
      for (const w of result.warnings) {
        expect(w).not.toContain(TOKEN);
        expect(w).not.toContain('cf-owner');
      }
    });

    it('refuses any other control character, naming the variable but never the value', async () => {
      const error = await loadError({ CLOUDFLARE_API_TOKEN: `${TOKEN}\nsecond-line` });
      expect(error.message).toMatch(/^env CLOUDFLARE_API_TOKEN: the value contains a control character/);
      expect(error.message).not.toContain(TOKEN);
      expect(error.message).not.toContain('second-line');
      const dir = await tempDir();
      await writeFile(join(dir, 'key'), 'QQsecretQQ\u0000ZZtail');
      const fromFile = await loadError({ CLOUDFLARE_KEY_FILE: 'key', CLOUDFLARE_EMAIL: 'x@y.z' }, dir);
      expect(fromFile.message).toMatch(/CLOUDFLARE_KEY_FILE.*control character/);
      expect(fromFile.message).not.toContain('QQsecret');
      expect(fromFile.message).not.toContain('ZZtail');
    });

    it('warns that NAME_FILE is read only for secrets', async () => {
      const { warnings } = await readEnv({ DOMAIN_FILE: '/run/secrets/domain' }, '/');
      expect(warnings).toEqual([expect.stringMatching(/^DOMAIN_FILE is not read/)]);
    });
  });
});
