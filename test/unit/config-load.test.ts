import { describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { loadConfig, type LoadOptions } from '../../src/config/load.js';
import { defaultConfig } from '../../src/config/schema.js';
import { ConfigError } from '../../src/config/config-error.js';
import { isManagedListener, isTlsListener } from '../../src/config/managed.js';
import { maskSecrets } from '../../src/config/mask.js';
import { createLogger } from '../../src/log.js';
import { PERSISTENCE_DB_NAME } from '../../src/config/mosquitto-conf.js';

const NO_DEFAULTS = { mosquittoConf: null, passwordFile: null };
const CREDS = { CLOUDFLARE_API_TOKEN: 'tok' };

interface Setup {
  dir: string;
  json?: string;
  conf?: string;
}

/** A temp dir with config.json and/or mosquitto.conf. */
async function setup(files: { json?: unknown; conf?: string }): Promise<Setup> {
  const dir = await mkdtemp(join(tmpdir(), 'mab-load-'));
  const result: Setup = { dir };
  if (files.json !== undefined) {
    result.json = join(dir, 'config.json');
    await writeFile(result.json, JSON.stringify(files.json));
  }
  if (files.conf !== undefined) {
    result.conf = join(dir, 'mosquitto.conf');
    await writeFile(result.conf, files.conf);
  }
  return result;
}

function load(s: Setup, env: NodeJS.ProcessEnv = {}, extra: Partial<LoadOptions> = {}) {
  return loadConfig({
    ...(s.json === undefined ? {} : { configJson: s.json }),
    ...(s.conf === undefined ? {} : { mosquittoConf: s.conf }),
    env,
    cwd: s.dir,
    defaults: NO_DEFAULTS,
    ...extra,
  });
}

describe('precedence: defaults < config.json < mosquitto.conf < environment', () => {
  it('a value set in every source takes the environment one, then mosquitto.conf, then config.json, then the default', async () => {
    const json = { logLevel: 'error', listeners: [{ port: 1883 }] };
    const conf = 'listener 1883\nlog_type warning\n';
    const all = await setup({ json, conf });
    expect((await load(all, { LOG_LEVEL: 'trace' })).config.logLevel).toBe('trace');
    const r = await load(all);
    expect(r.config.logLevel).toBe('warn');
    expect(r.sources.values.logLevel).toBe(`${all.conf}:2: log_type`);
    expect((await load(await setup({ json }))).config.logLevel).toBe('error');
    expect((await load(await setup({}))).config.logLevel).toBe(defaultConfig().logLevel);
  });

  it('mosquitto.conf overrides config.json key by key and leaves the other keys alone', async () => {
    const s = await setup({
      json: { allowAnonymous: false, maxQueuedMessages: 5, persistenceLocation: 'db', listeners: [{ port: 1883 }] },
      conf: 'allow_anonymous true\npersistence_location /var/lib/mq/\n',
    });
    const { config, sources } = await load(s);
    expect(config.allowAnonymous).toBe(true);
    expect(config.persistenceLocation).toBe(`/var/lib/mq/${PERSISTENCE_DB_NAME}`);
    expect(config.maxQueuedMessages).toBe(5);
    expect(sources.values.maxQueuedMessages).toBe(`${s.json}: maxQueuedMessages`);
    expect(config.listeners.map((l) => l.port)).toEqual([1883]);
  });

  it('listeners are one value: mosquitto.conf listeners replace those of config.json, with a warning', async () => {
    const s = await setup({ json: { listeners: [{ port: 1883 }, { port: 1884 }] }, conf: 'listener 8883\ncertfile /c\nkeyfile /k\n' });
    const { config, warnings, sources } = await load(s);
    expect(config.listeners.map((l) => l.port)).toEqual([8883]);
    expect(warnings.join('\n')).toContain(`${s.conf}: defines the listeners, so the 2 listener(s) of ${s.json}: listeners are not used`);
    expect(sources.values['listeners[1].port']).toBeUndefined();
  });

  it('the environment overrides ACME settings from config.json; TESTCERT beats a directory URL from a file', async () => {
    const s = await setup({ json: { acme: { domains: ['old.example.com'], mqttsPort: 8884, directoryUrl: 'https://ca.example/dir', cloudflare: { apiToken: 'json-token' } } } });
    const { config } = await load(s, { DOMAIN: 'new.example.com', MQTTS_PORT: '8885', TESTCERT: 'true', CLOUDFLARE_API_TOKEN: 'env-token' });
    expect(config.acme.domains).toEqual(['new.example.com']);
    expect(config.acme.mqttsPort).toBe(8885);
    expect(config.acme.directoryUrl).toMatch(/acme-staging/);
    expect(config.acme.cloudflare.apiToken).toBe('env-token');
    expect((await load(s)).config.acme.directoryUrl).toBe('https://ca.example/dir');
  });

  it('a token from one source and a global key from another are refused, naming both sources', async () => {
    const s = await setup({ json: { acme: { cloudflare: { apiKey: 'k', email: 'a@b.c' } } } });
    const error = await load(s, { CLOUDFLARE_API_TOKEN: 'tok' }).catch((e: unknown) => e as ConfigError);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(new RegExp(`^env CLOUDFLARE_API_TOKEN: .*\\(${s.json}: acme.cloudflare.apiKey\\)`));
  });

  it('relative paths: config.json against its directory, mosquitto.conf and env against cwd', async () => {
    const s = await setup({});
    await mkdir(join(s.dir, 'etc'));
    const json = join(s.dir, 'etc', 'config.json');
    await writeFile(json, JSON.stringify({ aclFile: 'acl', dataDir: 'state' }));
    const conf = join(s.dir, 'etc', 'mosquitto.conf');
    await writeFile(conf, 'password_file passwd\n');
    const { config } = await loadConfig({ configJson: json, mosquittoConf: conf, env: { LETSENCRYPT_DIR: 'le' }, cwd: s.dir, defaults: NO_DEFAULTS });
    expect(config.aclFile).toBe(join(s.dir, 'etc', 'acl'));
    expect(config.dataDir).toBe(join(s.dir, 'etc', 'state'));
    expect(config.passwordFile).toBe(join(s.dir, 'passwd'));
    expect(config.acme.letsencryptDir).toBe(join(s.dir, 'le'));
  });
});

describe('derived values', () => {
  it('with no listener anywhere: one MQTTS listener on 8883 with a self-signed certificate, and a note saying so', async () => {
    const s = await setup({});
    const { config, notes } = await load(s, { DATA_DIR: '/var/lib/mab' });
    expect(config.listeners).toEqual([{ port: 8883, protocol: 'mqtt', requireCertificate: false, selfSigned: true }]);
    expect(notes).toContain('no listener configured: serving MQTTS on 8883 with a self-signed certificate kept in /var/lib/mab (DATA_DIR)');
    expect(config.dataDir).toBe('/var/lib/mab');
    expect(config.persistenceLocation).toBe('/var/lib/mab/persistence');
  });

  it('no zero-config listener when a source defines one', async () => {
    const { config, notes } = await load(await setup({ conf: 'listener 1883 127.0.0.1\nallow_anonymous true\n' }));
    expect(config.listeners).toHaveLength(1);
    expect(config.listeners[0]?.selfSigned).toBe(false);
    expect(notes).toEqual([]);
  });

  it('ACME on and no listener on acme.mqttsPort: a managed TLS listener is added', async () => {
    const s = await setup({ conf: 'listener 1883 127.0.0.1\n' });
    const { config, notes } = await load(s, { DOMAIN: 'mqtt.example.com', MQTTS_PORT: '8884', ...CREDS });
    expect(config.listeners.map((l) => l.port)).toEqual([1883, 8884]);
    const added = config.listeners[1]!;
    expect(added).toEqual({ port: 8884, protocol: 'mqtt', requireCertificate: false, selfSigned: false });
    expect(isManagedListener(config, added)).toBe(true);
    expect(isTlsListener(config, added)).toBe(true);
    expect(isTlsListener(config, config.listeners[0]!)).toBe(false);
    expect(notes.join('\n')).toContain('port 8884');
  });

  it("the old recipe's listener with certbot's files becomes the managed listener (a note, no warning)", async () => {
    const s = await setup({
      conf: 'listener 8883\ncertfile /etc/letsencrypt/live/example.com/fullchain.pem\nkeyfile /etc/letsencrypt/live/example.com/privkey.pem\ncafile /etc/letsencrypt/live/example.com/chain.pem\npassword_file /p\n',
    });
    const { config, warnings, notes } = await load(s, { DOMAIN: '*.example.com', ...CREDS });
    expect(config.listeners).toEqual([{ port: 8883, protocol: 'mqtt', requireCertificate: false, selfSigned: false }]);
    expect(warnings).toEqual([]);
    expect(notes.join('\n')).toMatch(new RegExp(`${s.conf}:2: certfile: port 8883 serves the ACME-managed certificate`));
  });

  it("a second listener on the ACME lineage's files serves the managed certificate itself (old cameras on 8884)", async () => {
    const conf = [
      'listener 8883',
      'listener 8884',
      'tls_version tlsv1',
      'certfile /etc/letsencrypt/live/example.com/fullchain.pem',
      'keyfile /etc/letsencrypt/live/example.com/privkey.pem',
      'listener 8885',
      'certfile /etc/letsencrypt/live/other.org/fullchain.pem',
      'keyfile /etc/letsencrypt/live/other.org/privkey.pem',
      '',
    ].join('\n');
    const { config, notes } = await load(await setup({ conf }), { DOMAIN: '*.example.com', ...CREDS });
    const [managed, legacy, other] = config.listeners;
    expect(isManagedListener(config, managed!)).toBe(true);
    // No files read (they may not exist yet on a fresh volume): the certificate comes from the ACME source.
    expect(legacy).toMatchObject({ port: 8884, acme: true, tlsVersion: 'tlsv1' });
    expect(legacy?.certfile).toBeUndefined();
    expect(isManagedListener(config, legacy!)).toBe(true);
    expect(notes.join('\n')).toMatch(/port 8884 serves the ACME-managed certificate/);
    // Another lineage is not ours: its files are served as files.
    expect(other).toMatchObject({ port: 8885, certfile: '/etc/letsencrypt/live/other.org/fullchain.pem' });
    expect(isManagedListener(config, other!)).toBe(false);
  });

  it('listeners[].acme without ACME is an error naming the listener', async () => {
    await expect(load(await setup({ json: { listeners: [{ port: 8884, acme: true }] } }))).rejects.toThrow(/listeners\[0\]\.acme.*ACME is off/);
  });

  it('other certificate files or selfSigned on the managed port are dropped: a warning for files, a note for selfSigned', async () => {
    const files = await load(await setup({ conf: 'listener 8883\ncertfile /srv/c.pem\nkeyfile /srv/k.pem\n' }), { DOMAIN: 'example.com', ...CREDS });
    expect(files.config.listeners[0]?.certfile).toBeUndefined();
    expect(files.warnings.join('\n')).toMatch(/\/srv\/c.pem and \/srv\/k.pem are not used/);
    const selfSigned = await load(await setup({ json: { listeners: [{ port: 8883, selfSigned: true }] } }), { DOMAIN: 'example.com', ...CREDS });
    expect(selfSigned.config.listeners[0]?.selfSigned).toBe(false);
    expect(selfSigned.notes.join('\n')).toMatch(/ACME_SELF_SIGNED_WHILE_WAITING/);
  });

  it('persistenceLocation "" resolves to <dataDir>/persistence', async () => {
    const { config } = await load(await setup({ json: { dataDir: '/var/mab', persistenceLocation: '' } }));
    expect(config.persistenceLocation).toBe('/var/mab/persistence');
  });
});

describe("the old image's default paths", () => {
  async function oldImage() {
    const root = await mkdtemp(join(tmpdir(), 'mab-old-'));
    const conf = join(root, 'mosquitto.conf');
    const passwd = join(root, 'passwd');
    await writeFile(conf, 'listener 8883\nlog_type debug\n');
    await writeFile(passwd, 'cam:$7$101$x$y\n');
    return { root, conf, passwd };
  }

  it('uses the default mosquitto.conf and passwd when nothing is given and they exist', async () => {
    const o = await oldImage();
    const { config, sources, notes } = await loadConfig({ env: {}, cwd: o.root, defaults: { mosquittoConf: o.conf, passwordFile: o.passwd } });
    expect(sources.mosquittoConf).toBe(o.conf);
    expect(config.logLevel).toBe('debug');
    expect(config.passwordFile).toBe(o.passwd);
    expect(sources.values.passwordFile).toBe(`default ${o.passwd}`);
    expect(notes.join('\n')).toContain(o.conf);
    expect(notes.join('\n')).toContain(o.passwd);
  });

  it('does not read the default mosquitto.conf when a config file is given, but still finds the default passwd', async () => {
    const o = await oldImage();
    const s = await setup({ json: { listeners: [{ port: 1883 }] } });
    const { config, sources } = await loadConfig({ configJson: s.json, env: {}, cwd: s.dir, defaults: { mosquittoConf: o.conf, passwordFile: o.passwd } });
    expect(sources.mosquittoConf).toBeUndefined();
    expect(config.logLevel).toBe('info');
    expect(config.passwordFile).toBe(o.passwd);
  });

  it('a configured password_file wins over the default one; absent defaults change nothing', async () => {
    const o = await oldImage();
    const s = await setup({ conf: 'password_file /etc/mq/passwd\n' });
    expect((await load(s, {}, { defaults: { mosquittoConf: o.conf, passwordFile: o.passwd } })).config.passwordFile).toBe('/etc/mq/passwd');
    const none = await loadConfig({ env: {}, cwd: o.root, defaults: { mosquittoConf: join(o.root, 'nope.conf'), passwordFile: join(o.root, 'nope') } });
    expect(none.sources.mosquittoConf).toBeUndefined();
    expect(none.config.passwordFile).toBeUndefined();
  });
});

describe('loader plumbing', () => {
  it('names a missing mosquitto.conf and says what to check', async () => {
    const s = await setup({});
    await expect(load({ ...s, conf: join(s.dir, 'missing.conf') })).rejects.toThrow(`${s.dir}/missing.conf: cannot read the mosquitto.conf (ENOENT); check the -c path`);
  });

  it('logs notes and warnings to the given logger, component config', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const logger = createLogger('info', sink);
    const { warnings, notes } = await load(await setup({ conf: 'autosave_interval 10\n' }), {}, { logger });
    logger.flush();
    await new Promise((r) => setTimeout(r, 20));
    const records = lines.join('').trim().split('\n').map((l) => JSON.parse(l) as { level: string; msg: string; component: string });
    expect(records.filter((r) => r.level === 'warn').map((r) => r.msg)).toEqual(warnings);
    expect(records.filter((r) => r.level === 'info').map((r) => r.msg)).toEqual(notes);
    expect(records.every((r) => r.component === 'config')).toBe(true);
    expect(warnings.length).toBeGreaterThan(0);
  });

  it('maskSecrets hides the token and key completely, e-mail addresses but their domain, and leaves the config itself untouched', () => {
    const config = defaultConfig();
    config.acme.cloudflare = { apiToken: 'abcdef123456', apiKey: 'zyxwvu987654', email: 'cf.owner@example.com' };
    config.acme.email = 'jane.doe@mail.example.org';
    const masked = maskSecrets(config);
    expect(masked.acme.cloudflare).toEqual({ apiToken: '****', apiKey: '****', email: '****@example.com' });
    expect(masked.acme.email).toBe('****@mail.example.org');
    expect(JSON.stringify(masked)).not.toMatch(/abcdef|123456|zyxwvu|987654|cf\.owner|jane|doe/);
    expect(config.acme.cloudflare.apiToken).toBe('abcdef123456');
    expect(config.acme.email).toBe('jane.doe@mail.example.org');
    expect(maskSecrets(defaultConfig()).acme.cloudflare).toEqual({});
    expect(maskSecrets(defaultConfig()).acme.email).toBeUndefined();
  });
});
