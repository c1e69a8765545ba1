import { describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/load.js';
import { parseConfigJson } from '../../src/config/config-json.js';
import { ConfigError } from '../../src/config/config-error.js';
import { LETSENCRYPT_PRODUCTION } from '../../src/config/managed.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const NO_DEFAULTS = { mosquittoConf: null, passwordFile: null };

async function writeJson(data: unknown): Promise<{ dir: string; file: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'mab-json-'));
  const file = join(dir, 'config.json');
  await writeFile(file, typeof data === 'string' ? data : JSON.stringify(data));
  return { dir, file };
}

async function jsonError(data: unknown): Promise<{ error: ConfigError; file: string }> {
  const { file } = await writeJson(data);
  try {
    await loadConfig({ configJson: file, env: {}, cwd: '/', defaults: NO_DEFAULTS });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return { error: err as ConfigError, file };
  }
  throw new Error('expected a ConfigError');
}

describe('config.json', () => {
  it('config.example.json is what a fresh machine runs: MQTTS 8883 self-signed, example users, persistence in data/, ACME off', async () => {
    const elsewhere = await mkdtemp(join(tmpdir(), 'mab-cwd-'));
    const { config, warnings } = await loadConfig({ configJson: join(REPO, 'config.example.json'), env: {}, cwd: elsewhere, defaults: NO_DEFAULTS });
    expect(warnings).toEqual([]);
    expect(config.listeners).toEqual([{ port: 8883, protocol: 'mqtt', requireCertificate: false, selfSigned: true }]);
    // Relative paths resolve against the JSON file's directory, not the working directory.
    expect(config.passwordFile).toBe(join(REPO, 'examples/passwd'));
    expect(config.aclFile).toBe(join(REPO, 'examples/acl'));
    expect(config.dataDir).toBe(join(REPO, 'data'));
    expect(config.persistence).toBe(true);
    expect(config.persistenceLocation).toBe(join(REPO, 'data/persistence'));
    expect(config.logLevel).toBe('info');
    expect(config.ops).toEqual({ port: 9883 });
    expect(config.acme.domains).toEqual([]);
    expect(config.acme.directoryUrl).toBe(LETSENCRYPT_PRODUCTION);
    expect(config.acme.cloudflare).toEqual({});
  });

  it('reads every key of Config, with listener defaults filled in', async () => {
    const { dir, file } = await writeJson({
      listeners: [{ port: 1883, host: '127.0.0.1' }, { port: 8883, certfile: 'tls/c.pem', keyfile: '/abs/k.pem', cafile: 'ca.pem', requireCertificate: true, protocol: 'websockets' }],
      allowAnonymous: true,
      persistence: false,
      maxConnections: 10,
      messageSizeLimit: 1000,
      maxKeepalive: 60,
      maxInflightMessages: 5,
      maxQueuedMessages: 7,
      retainAvailable: false,
      logLevel: 'warn',
      acme: { domains: ['example.com'], email: 'a@example.com', staging: true, cloudflare: { apiToken: 't' }, dnsResolvers: ['9.9.9.9'], mqttsPort: 9883, keyType: 'rsa-4096', reuseKey: true, selfSignedWhileWaiting: true, letsencryptDir: 'le' },
      ops: { port: 0, host: 'localhost' },
    });
    const { config, sources } = await loadConfig({ configJson: file, env: {}, cwd: '/', defaults: NO_DEFAULTS });
    expect(config.listeners[0]).toEqual({ port: 1883, host: '127.0.0.1', protocol: 'mqtt', requireCertificate: false, selfSigned: false });
    expect(config.listeners[1]).toEqual({ port: 8883, certfile: join(dir, 'tls/c.pem'), keyfile: '/abs/k.pem', cafile: join(dir, 'ca.pem'), requireCertificate: true, protocol: 'websockets', selfSigned: false });
    // ACME adds its listener on mqttsPort.
    expect(config.listeners[2]).toEqual({ port: 9883, protocol: 'mqtt', requireCertificate: false, selfSigned: false });
    expect(config).toMatchObject({ allowAnonymous: true, persistence: false, maxConnections: 10, messageSizeLimit: 1000, maxKeepalive: 60, maxInflightMessages: 5, maxQueuedMessages: 7, retainAvailable: false, logLevel: 'warn' });
    expect(config.acme).toMatchObject({ staging: true, dnsResolvers: ['9.9.9.9:53'], mqttsPort: 9883, keyType: 'rsa-4096', letsencryptDir: join(dir, 'le') });
    expect(config.acme.directoryUrl).toMatch(/staging/);
    expect(config.ops).toEqual({ port: 0, host: 'localhost' });
    expect(sources.configJson).toBe(file);
    expect(sources.values['listeners[1].certfile']).toBe(`${file}: listeners[1].certfile`);
  });

  it.each([
    [{ listner: [] }, 'listner', /unknown key; did you mean "listeners"/],
    [{ acme: { cloudflare: { apiTokn: 'x' } } }, 'acme.cloudflare.apiTokn', /unknown key; did you mean "apiToken".*known keys of acme.cloudflare: apiToken, apiKey, email/],
    [{ listeners: [{ port: 1883, tls: true }] }, 'listeners[0].tls', /unknown key/],
    [{ listeners: [{ port: '8883' }] }, 'listeners[0].port', /expected an integer, got a string/],
    [{ listeners: [{ port: 1.5 }] }, 'listeners[0].port', /expected an integer, got a number/],
    [{ listeners: [{ host: 'x' }] }, 'listeners[0]', /"port" is required/],
    [{ listeners: {} }, 'listeners', /expected an array, got an object/],
    [{ allowAnonymous: 'false' }, 'allowAnonymous', /expected true or false, got a string/],
    [{ logLevel: 'verbose' }, 'logLevel', /expected one of fatal, error, warn, info, debug, trace, silent, got "verbose"/],
    [{ acme: { domains: 'example.com' } }, 'acme.domains', /expected an array of strings, got a string/],
    [{ acme: { domains: ['a.com', 3] } }, 'acme.domains[1]', /expected a string, got an integer/],
    [{ acme: { keyType: 'ed25519' } }, 'acme.keyType', /expected one of ecdsa-p256/],
    [{ ops: null }, 'ops', /expected an object, got null/],
    [{ maxKeepalive: 0 }, 'maxKeepalive', /0 is out of range: use 1\.\.65535/],
    [{ maxConnections: 0 }, 'maxConnections', /use -1 for unlimited/],
    [{ maxQueuedMessages: -1 }, 'maxQueuedMessages', /out of range/],
    [{ listeners: [{ port: 65536 }] }, 'listeners[0].port', /out of range/],
    [{ acme: { domains: ['*.*.example.com'], cloudflare: { apiToken: 't' } } }, 'acme.domains', /not a valid domain name/],
    [{ listeners: [{ port: 1883, certfile: 'c.pem' }] }, 'listeners[0].certfile', /needs its keyfile/],
    [{ listeners: [{ port: 1883, certfile: 'c', keyfile: 'k', selfSigned: true }] }, 'listeners[0].selfSigned', /either its own certfile\/keyfile or a self-signed/],
    // The ops server's default port is 9883 (9090 is Prometheus' own).
    [{ listeners: [{ port: 9883 }] }, 'listeners[0].port', /also the ops HTTP server's \(ops.port \(default\)\)/],
    [{ listeners: [{ port: 8883, selfSigned: true, tlsVersion: 'tls1.2' }] }, 'listeners[0].tlsVersion', /expected one of tlsv1, tlsv1.1, tlsv1.2, tlsv1.3, got "tls1.2"/],
    [{ listeners: [{ port: 1883, tlsVersion: 'tlsv1.2' }] }, 'listeners[0].tlsVersion', /listener 1883 does not speak TLS.*remove tls_version/],
    [{ listeners: [{ port: 8883, selfSigned: true, ciphers: 'NO-SUCH-CIPHER' }] }, 'listeners[0].ciphers', /"NO-SUCH-CIPHER" is not a cipher list OpenSSL accepts/],
    [{ listeners: [{ port: 8883, selfSigned: true, ciphersTls13: 'ECDHE-RSA-AES128-GCM-SHA256' }] }, 'listeners[0].ciphersTls13', /not a list of TLS 1.3 cipher suites/],
    [{ $schema: 3 }, '$schema', /expected a string, got an integer/],
  ])('%j is an error naming the key path %s', async (data, path, problem) => {
    const { error, file } = await jsonError(data);
    expect(error.message.startsWith(`${file}: ${path}: `)).toBe(true);
    expect(error.message).toMatch(problem);
  });

  it('reads the TLS settings of a listener: tlsVersion, ciphers, ciphersTls13 ("" = not set)', async () => {
    const { file } = await writeJson({
      listeners: [
        { port: 8883, selfSigned: true, tlsVersion: 'tlsv1', ciphers: 'DEFAULT:@SECLEVEL=0', ciphersTls13: 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256' },
        { port: 8884, selfSigned: true, tlsVersion: 'tlsv1.3', ciphers: '', ciphersTls13: '' },
      ],
    });
    const { config, sources } = await loadConfig({ configJson: file, env: {}, cwd: '/', defaults: NO_DEFAULTS });
    expect(config.listeners[0]).toMatchObject({ tlsVersion: 'tlsv1', ciphers: 'DEFAULT:@SECLEVEL=0', ciphersTls13: 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256' });
    expect(config.listeners[1]?.tlsVersion).toBe('tlsv1.3');
    expect(config.listeners[1]?.ciphers).toBeUndefined();
    expect(config.listeners[1]?.ciphersTls13).toBeUndefined();
    expect(sources.values['listeners[0].tlsVersion']).toBe(`${file}: listeners[0].tlsVersion`);
  });

  it('accepts and ignores "$schema", the pointer to config.schema.json that config.example.json has', async () => {
    const { file } = await writeJson({ $schema: './config.schema.json', allowAnonymous: true });
    const { config, sources } = await loadConfig({ configJson: file, env: {}, cwd: '/', defaults: NO_DEFAULTS });
    expect(config.allowAnonymous).toBe(true);
    expect(config).not.toHaveProperty('$schema');
    expect(sources.values).not.toHaveProperty('$schema');
    const example = JSON.parse(await readFile(join(REPO, 'config.example.json'), 'utf8')) as Record<string, unknown>;
    expect(example.$schema).toBe('./config.schema.json');
  });

  it('never echoes the value of a secret key in a type error', async () => {
    const { error } = await jsonError({ acme: { cloudflare: { apiToken: ['sekrit-7781'] } } });
    expect(error.message).toContain('acme.cloudflare.apiToken: expected a string, got an array');
    expect(error.message).not.toContain('sekrit');
  });

  it('reports a JSON syntax error with the file, line and column', async () => {
    const { error, file } = await jsonError('{\n  "logLevel": "info",\n}\n');
    expect(error.message).toMatch(new RegExp(`^${file}: not valid JSON at line 3, column 1`));
  });

  it('treats an empty string as "not set" for optional strings', () => {
    const layer = parseConfigJson(JSON.stringify({ passwordFile: '', acme: { email: '', cloudflare: { apiKey: '' } }, ops: { host: '' } }), '/x/config.json');
    expect(layer.values).toEqual({ acme: { cloudflare: {} }, ops: {} });
    expect(layer.sources.passwordFile).toBeUndefined();
  });

  it('names the path of a config.json that cannot be read', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mab-json-'));
    await mkdir(join(dir, 'sub'));
    await expect(loadConfig({ configJson: 'sub/missing.json', env: {}, cwd: dir, defaults: NO_DEFAULTS })).rejects.toThrow(
      new RegExp(`^${dir}/sub/missing.json: cannot read the config file \\(ENOENT\\); check the --config path`),
    );
  });
});
