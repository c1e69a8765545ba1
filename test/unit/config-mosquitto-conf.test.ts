import { describe, expect, it } from 'vitest';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseMosquittoConf, PERSISTENCE_DB_NAME } from '../../src/config/mosquitto-conf.js';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/config-error.js';

const FILE = '/etc/test/mosquitto.conf';
const CWD = '/srv/broker';

function parse(text: string) {
  return parseMosquittoConf(text, { file: FILE, cwd: CWD });
}

function parseError(text: string): ConfigError {
  try {
    parse(text);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

/** Load a mosquitto.conf (written to a temp dir) through the whole loader, without the old image's defaults. */
async function load(text: string, env: NodeJS.ProcessEnv = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'mab-conf-'));
  const file = join(dir, 'mosquitto.conf');
  await writeFile(file, text);
  const result = await loadConfig({ mosquittoConf: file, env, cwd: dir, defaults: { mosquittoConf: null, passwordFile: null } });
  return { ...result, file, dir };
}

async function loadError(text: string, env: NodeJS.ProcessEnv = {}): Promise<{ error: ConfigError; file: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'mab-conf-'));
  const file = join(dir, 'mosquitto.conf');
  await writeFile(file, text);
  try {
    await loadConfig({ mosquittoConf: file, env, cwd: dir, defaults: { mosquittoConf: null, passwordFile: null } });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return { error: err as ConfigError, file };
  }
  throw new Error('expected a ConfigError');
}

describe('mosquitto.conf subset', () => {
  it('reads listeners with their options and the global directives, resolving paths against cwd', () => {
    const { layer, warnings } = parse(
      [
        '# a comment',
        '',
        'listener 8883',
        'certfile certs/server.crt',
        'keyfile /etc/ssl/server.key',
        'cafile ca.pem',
        'require_certificate true',
        'listener 9001 127.0.0.1',
        'protocol websockets',
        'password_file /mosquitto/conf/passwd',
        'acl_file acl',
        'allow_anonymous true',
        'per_listener_settings false',
        'persistence false',
        'persistence_location /mosquitto/data/',
        'max_connections 100',
        'message_size_limit 1048576',
        'max_keepalive 300',
        'max_inflight_messages 10',
        'max_queued_messages 500',
        'retain_available false',
        'log_dest stdout',
      ].join('\n'),
    );
    // max_connections sits in a listener section of a file with two listeners: it limits the whole broker here.
    expect(warnings).toEqual([`${FILE}:16: max_connections: limits the whole broker here (mosquitto applies it to one listener)`]);
    const v = layer.values;
    expect(v.listeners).toEqual([
      { port: 8883, protocol: 'mqtt', certfile: '/srv/broker/certs/server.crt', keyfile: '/etc/ssl/server.key', cafile: '/srv/broker/ca.pem', requireCertificate: true, selfSigned: false },
      { port: 9001, host: '127.0.0.1', protocol: 'websockets', requireCertificate: false, selfSigned: false },
    ]);
    expect(v.passwordFile).toBe('/mosquitto/conf/passwd');
    expect(v.aclFile).toBe('/srv/broker/acl');
    expect(v.allowAnonymous).toBe(true);
    expect(v.persistence).toBe(false);
    expect(v.persistenceLocation).toBe(`/mosquitto/data/${PERSISTENCE_DB_NAME}`);
    expect(v).toMatchObject({ maxConnections: 100, messageSizeLimit: 1048576, maxKeepalive: 300, maxInflightMessages: 10, maxQueuedMessages: 500, retainAvailable: false });
    expect(layer.sources['listeners[1].protocol']).toBe(`${FILE}:9: protocol`);
    expect(layer.sources['listeners[0].certfile']).toBe(`${FILE}:4: certfile`);
    expect(layer.sources.maxKeepalive).toBe(`${FILE}:18: max_keepalive`);
  });

  it('takes the rest of the line as a path (mosquitto allows spaces) and accepts CRLF line ends', () => {
    const { layer } = parse('listener 8883\r\ncertfile /certs/my server.crt\r\nkeyfile /certs/my server.key  \r\n');
    expect(layer.values.listeners?.[0]).toMatchObject({ certfile: '/certs/my server.crt', keyfile: '/certs/my server.key' });
  });

  it('builds the default listener from port, bind_address and the listener options before the first listener line', () => {
    const { layer, warnings } = parse('certfile /c.pem\nkeyfile /k.pem\nport 1884\nbind_address 127.0.0.1\nlistener 8883\ncafile /ca.pem\n');
    expect(warnings).toEqual([]);
    expect(layer.values.listeners).toEqual([
      { port: 8883, protocol: 'mqtt', cafile: '/ca.pem', requireCertificate: false, selfSigned: false },
      { port: 1884, host: '127.0.0.1', protocol: 'mqtt', certfile: '/c.pem', keyfile: '/k.pem', requireCertificate: false, selfSigned: false },
    ]);
    expect(layer.sources['listeners[1].port']).toBe(`${FILE}:3: port`);
  });

  it('puts the default listener on 1883 when options precede any listener and no port is set, as mosquitto does, and says so', () => {
    const { layer, warnings } = parse('protocol websockets\nlistener 8883\n');
    expect(layer.values.listeners?.map((l) => [l.port, l.protocol])).toEqual([[8883, 'mqtt'], [1883, 'websockets']]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`${FILE}:1: protocol`);
    expect(warnings[0]).toContain('1883');
  });

  it('keeps the old single-listener form: port alone is the only listener', () => {
    const { layer, warnings } = parse('port 8883\ncertfile /c.pem\nkeyfile /k.pem\n');
    expect(warnings).toEqual([]);
    expect(layer.values.listeners).toEqual([{ port: 8883, protocol: 'mqtt', certfile: '/c.pem', keyfile: '/k.pem', requireCertificate: false, selfSigned: false }]);
  });

  it('treats max_connections as broker-wide: no default listener from it, and <= 0 means unlimited', () => {
    expect(parse('max_connections 10\nlistener 8883\n').layer.values.listeners).toHaveLength(1);
    expect(parse('max_connections 0\n').layer.values.maxConnections).toBe(-1);
    expect(parse('max_connections -2\n').layer.values.maxConnections).toBe(-1);
    expect(parse('max_connections 50\n').layer.values.listeners).toBeUndefined();
    const multi = parse('listener 1883\nmax_connections 5\nlistener 8883\n');
    expect(multi.warnings.join('\n')).toContain(`${FILE}:2: max_connections: limits the whole broker`);
  });

  it.each([
    [['log_type error', 'log_type information'], 'info'],
    [['log_type warning'], 'warn'],
    [['log_type error', 'log_type debug', 'log_type notice'], 'debug'],
    [['log_type all'], 'debug'],
    [['log_type none'], 'silent'],
    [['log_type debug', 'log_type none'], 'silent'],
    [['log_type none', 'log_type error'], 'error'],
  ])('log_type lines %j accumulate to the pino level %s', (lines, level) => {
    expect(parse(lines.join('\n')).layer.values.logLevel).toBe(level);
  });

  it('leaves the log level alone without log_type', () => {
    expect(parse('listener 1883\n').layer.values.logLevel).toBeUndefined();
  });

  it('accepts log_dest stdout/stderr silently and warns that file/syslog/topic logs go to stdout', () => {
    expect(parse('log_dest stdout\nlog_dest stderr\n').warnings).toEqual([]);
    const { warnings } = parse('log_dest file /var/log/mosquitto.log\nlog_dest syslog\nlog_dest topic\n');
    expect(warnings).toHaveLength(3);
    expect(warnings[0]).toMatch(new RegExp(`^${FILE}:1: log_dest: .*stdout`));
    expect(warnings[2]).toContain(`${FILE}:3: log_dest`);
  });

  it('warns about directives mosquitto knows but this broker does not implement, naming file:line and directive', () => {
    const { warnings } = parse(
      'persistence_file mosquitto.db\nautosave_interval 1800\nconnection_messages true\ninclude_dir /etc/mosquitto/conf.d\ncrlfile /crl.pem\nplugin_opt_x 1\n',
    );
    expect(warnings).toHaveLength(6);
    expect(warnings[0]).toBe(`${FILE}:1: persistence_file: not supported by mqtt-acme-broker; ignored`);
    expect(warnings[3]).toContain(`${FILE}:4: include_dir`);
    expect(warnings[3]).toContain('NOT read');
    expect(warnings[4]).toContain(`${FILE}:5: crlfile`);
  });

  // A bridge that silently does not run loses the messages it should forward: refused, not warned about.
  it.each([
    ['connection bridge1\naddress 10.0.0.1:1883\ntopic # both 0', 1, 'connection', /bridges are not supported yet, so the bridge "bridge1" would not run/],
    ['listener 1883\naddress 10.0.0.1:1883', 2, 'address', /bridges are not supported yet/],
    ['addresses a.example:1883 b.example:1883', 1, 'addresses', /bridges are not supported yet/],
    ['topic sensors/# out 1', 1, 'topic', /bridges are not supported yet/],
    ['remote_username cam', 1, 'remote_username', /bridges are not supported yet/],
    ['remote_password s3cret', 1, 'remote_password', /bridges are not supported yet/],
    ['remote_clientid edge', 1, 'remote_clientid', /bridges are not supported yet/],
    ['start_type automatic', 1, 'start_type', /bridges are not supported yet/],
    ['cleansession true', 1, 'cleansession', /bridges are not supported yet/],
    ['try_private false', 1, 'try_private', /bridges are not supported yet/],
    ['notifications false', 1, 'notifications', /bridges are not supported yet/],
    ['round_robin true', 1, 'round_robin', /bridges are not supported yet/],
    ['keepalive_interval 30', 1, 'keepalive_interval', /bridges are not supported yet/],
    ['bridge_cafile /ca.pem', 1, 'bridge_cafile', /bridges are not supported yet/],
    ['bridge_protocol_version mqttv50', 1, 'bridge_protocol_version', /bridges are not supported yet/],
    ['bridge_some_future_option 1', 1, 'bridge_some_future_option', /bridges are not supported yet/],
  ])('a bridge directive is refused: %j names line %i, %s', (text, line, directive, problem) => {
    const error = parseError(text);
    expect(error.message.startsWith(`${FILE}:${line}: ${directive}: `)).toBe(true);
    expect(error.message).toMatch(problem);
    // The remote password is never echoed.
    expect(error.message).not.toContain('s3cret');
  });

  it('reads tls_version, ciphers and ciphers_tls1.3 into their listener, including the default listener', () => {
    const { layer, warnings } = parse(
      [
        'tls_version tlsv1.3',
        'port 8884',
        'certfile /d.pem',
        'keyfile /d.key',
        'listener 8883',
        'certfile /c.pem',
        'keyfile /c.key',
        'tls_version tlsv1',
        'ciphers DEFAULT:@SECLEVEL=0',
        'ciphers_tls1.3 TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256',
      ].join('\n'),
    );
    expect(warnings).toEqual([]);
    expect(layer.values.listeners).toEqual([
      { port: 8883, protocol: 'mqtt', certfile: '/c.pem', keyfile: '/c.key', requireCertificate: false, selfSigned: false, tlsVersion: 'tlsv1', ciphers: 'DEFAULT:@SECLEVEL=0', ciphersTls13: 'TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256' },
      { port: 8884, protocol: 'mqtt', certfile: '/d.pem', keyfile: '/d.key', requireCertificate: false, selfSigned: false, tlsVersion: 'tlsv1.3' },
    ]);
    expect(layer.sources['listeners[0].tlsVersion']).toBe(`${FILE}:8: tls_version`);
    expect(layer.sources['listeners[0].ciphersTls13']).toBe(`${FILE}:10: ciphers_tls1.3`);
    expect(layer.sources['listeners[1].tlsVersion']).toBe(`${FILE}:1: tls_version`);
  });

  it('warns about extra arguments mosquitto ignores, and a comment after the listener port', () => {
    const { layer, warnings } = parse('allow_anonymous true extra\nlistener 8883 # TLS\n');
    expect(layer.values.allowAnonymous).toBe(true);
    expect(layer.values.listeners?.[0]?.host).toBeUndefined();
    expect(warnings[0]).toContain(`${FILE}:1: allow_anonymous: extra text "extra" ignored`);
    expect(warnings[1]).toContain(`${FILE}:2: listener`);
  });

  it.each([
    ['listener abc', 1, 'listener', /invalid port "abc"/],
    ['listener', 1, 'listener', /missing port/],
    ['listener 0', 1, 'listener', /unix socket/],
    ['listener 70000', 1, 'listener', /1\.\.65535/],
    ['port 0', 1, 'port', /1\.\.65535/],
    ['# fine\nallow_anonymous maybe', 2, 'allow_anonymous', /"maybe".*true or false/],
    ['allow_anonymous TRUE', 1, 'allow_anonymous', /lower case/],
    ['allow_anonymous', 1, 'allow_anonymous', /missing value/],
    ['max_connections -5x', 1, 'max_connections', /invalid value "-5x"/],
    ['message_size_limit 1k', 1, 'message_size_limit', /invalid value "1k"/],
    ['per_listener_settings true', 1, 'per_listener_settings', /not supported.*every listener/],
    ['listener 1883\nprotocol mqtts', 2, 'protocol', /mqtt or websockets/],
    ['log_type verbose', 1, 'log_type', /invalid value "verbose"/],
    ['log_dest printer', 1, 'log_dest', /invalid value "printer"/],
    ['log_dest file', 1, 'log_dest', /missing file path/],
    ['password_file', 1, 'password_file', /missing value/],
    ['listener 1883\ncertfile /a.pem\ncertfile /b.pem', 3, 'certfile', /given twice/],
    ['password_file /a\npassword_file /b', 2, 'password_file', /given twice/],
    ['listener 8883\ntls_version tlsv1.4', 2, 'tls_version', /invalid value "tlsv1.4"; use tlsv1, tlsv1.1, tlsv1.2 or tlsv1.3/],
    ['listener 8883\ntls_version', 2, 'tls_version', /missing value/],
  ])('%j is an error naming file:line and directive', (text, line, directive, problem) => {
    const error = parseError(text);
    expect(error.message.startsWith(`${FILE}:${line}: ${directive}: `)).toBe(true);
    expect(error.message).toMatch(problem);
  });

  it.each([
    ['allow_anonymus false', 'allow_anonymus', /unknown directive, ignored; did you mean "allow_anonymous"/],
    ['frobnicate 1', 'frobnicate', /unknown directive, ignored$/],
  ])('%j is a warning naming file:line and directive, and changes nothing', (text, directive, problem) => {
    const { layer, warnings } = parse(text);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.startsWith(`${FILE}:1: ${directive}: `)).toBe(true);
    expect(warnings[0]).toMatch(problem);
    expect(layer.values.allowAnonymous).toBeUndefined();
  });

  it('refuses an indented comment, as mosquitto does, naming the line', () => {
    const error = parseError('listener 1883\n   # indented\n');
    expect(error.message).toMatch(new RegExp(`^${FILE}:2: .*beginning of the line`));
  });

  it('tolerates indentation before a directive', () => {
    expect(parse('listener 1883\n  allow_anonymous true\n').layer.values.allowAnonymous).toBe(true);
  });
});

describe('mosquitto.conf through the loader', () => {
  it('reports a value out of range with file:line and directive', async () => {
    const { error, file } = await loadError('listener 8883\nmax_keepalive 0\n');
    expect(error.message).toMatch(new RegExp(`^${file}:2: max_keepalive: 0 is out of range`));
    const big = await loadError('message_size_limit 300000000\n');
    expect(big.error.message).toContain(`${big.file}:1: message_size_limit`);
    const inflight = await loadError('max_inflight_messages 70000\n');
    expect(inflight.error.message).toContain(`${inflight.file}:1: max_inflight_messages`);
  });

  it('refuses a certfile without keyfile (and the reverse), naming the line', async () => {
    const a = await loadError('listener 8883\ncertfile /c.pem\n');
    expect(a.error.message).toMatch(new RegExp(`^${a.file}:2: certfile: .*keyfile`));
    const b = await loadError('listener 8883\n\nkeyfile /k.pem\n');
    expect(b.error.message).toMatch(new RegExp(`^${b.file}:3: keyfile: .*certfile`));
  });

  it('refuses require_certificate without cafile, and a cafile on a plain listener', async () => {
    const a = await loadError('listener 8883\ncertfile /c\nkeyfile /k\nrequire_certificate true\n');
    expect(a.error.message).toMatch(new RegExp(`^${a.file}:4: require_certificate: .*cafile`));
    const b = await loadError('listener 1883\ncafile /ca.pem\n');
    expect(b.error.message).toMatch(new RegExp(`^${b.file}:2: cafile: .*no TLS certificate`));
  });

  it('refuses tls_version on a listener without TLS, naming its line; ciphers there are only warned about', async () => {
    const plain = await loadError('listener 1883\nallow_anonymous true\ntls_version tlsv1.2\n');
    expect(plain.error.message).toMatch(new RegExp(`^${plain.file}:3: tls_version: listener 1883 does not speak TLS`));
    const ciphers = await load('listener 1883\nciphers HIGH\nciphers_tls1.3 TLS_AES_256_GCM_SHA384\nlistener 8883\ncertfile /c\nkeyfile /k\nciphers HIGH\n');
    expect(ciphers.warnings.filter((w) => w.includes('cipher list is not used'))).toEqual([
      `${ciphers.file}:2: ciphers: listener 1883 does not speak TLS (no certificate), so its cipher list is not used`,
      `${ciphers.file}:3: ciphers_tls1.3: listener 1883 does not speak TLS (no certificate), so its cipher list is not used`,
    ]);
    // The ACME-managed listener speaks TLS without a certfile of its own.
    const managed = await load('listener 8883\ntls_version tlsv1.1\n', { DOMAIN: 'example.com', CLOUDFLARE_API_TOKEN: 'tok' });
    expect(managed.config.listeners[0]?.tlsVersion).toBe('tlsv1.1');
  });

  it('refuses a cipher list OpenSSL does not know, naming the line', async () => {
    const bad = await loadError('listener 8883\ncertfile /c\nkeyfile /k\nciphers NOT-A-CIPHER\n');
    expect(bad.error.message).toMatch(new RegExp(`^${bad.file}:4: ciphers: "NOT-A-CIPHER" is not a cipher list OpenSSL accepts`));
    const tls12 = await loadError('listener 8883\ncertfile /c\nkeyfile /k\nciphers_tls1.3 ECDHE-RSA-AES128-GCM-SHA256\n');
    expect(tls12.error.message).toMatch(new RegExp(`^${tls12.file}:4: ciphers_tls1.3: .*not a list of TLS 1.3 cipher suites`));
  });

  it('refuses two listeners on one port, naming both lines', async () => {
    const { error, file } = await loadError('listener 8883\nlistener 1883 127.0.0.1\nlistener 8883 127.0.0.1\n');
    expect(error.message).toMatch(new RegExp(`^${file}:3: listener: port 8883 is already used.*${file}:1: listener`));
    // The same port on two distinct addresses is fine.
    const ok = await load('listener 1883 127.0.0.1\nlistener 1883 ::1\n');
    expect(ok.config.listeners).toHaveLength(2);
  });

  it('a bind address that is neither an IP nor a host name is an error on its line', async () => {
    const { error, file } = await loadError('listener 1883 not_a_host!\n');
    expect(error.message).toMatch(new RegExp(`^${file}:1: listener: "not_a_host!"`));
  });

  it('applies allow_anonymous false by default (mosquitto 2.0) and warns that nobody could log in without a password file', async () => {
    const { config, warnings } = await load('listener 1883\n');
    expect(config.allowAnonymous).toBe(false);
    expect(warnings.join('\n')).toMatch(/every client will be refused/);
  });
});
