/**
 * Issue 13: old clients (Xiaomi Dafang cameras: mosquitto_pub --tls-version tlsv1) and mosquitto's TLS
 * directives per listener: `tls_version` (the lowest version accepted), `ciphers` (TLS 1.2 and below),
 * `ciphers_tls1.3`. Real clients (Node's TLS client, mqtt.js, openssl s_client carrying hand-built MQTT,
 * Debian's mosquitto_pub/sub) against one in-process broker with a listener per policy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, execFile } from 'node:child_process';
import { rename, writeFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import type { ListenerConfig } from '../../src/config/schema.js';
import { connectMqtt, collectMessages, mosquittoArgs, startMosquittoSub, type ConnectOptions } from '../support/clients.js';
import { startTestBroker, USERS, type TestBroker } from '../support/broker.js';
import { createTestPki, onlyTls, opensslClientConf, tlsHandshake, type TestPki } from '../support/tls.js';
import { waitFor } from '../support/wait.js';

let broker: TestBroker;
let pki: TestPki;
let legacyCert: { certFile: string; keyFile: string };
const handshakes: [string, string][] = [];
const failures: [string, string][] = [];

const POLICIES: Record<string, Partial<ListenerConfig>> = {
  tlsv1: { tlsVersion: 'tlsv1' },
  'tlsv1.1': { tlsVersion: 'tlsv1.1' },
  'tlsv1.3': { tlsVersion: 'tlsv1.3' },
  ciphers: { ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305' },
  ciphers13: { ciphersTls13: 'TLS_CHACHA20_POLY1305_SHA256' },
  // As k8s/mosquitto.conf's legacy listener has it: a list that sets its own security level is kept.
  wss: { protocol: 'websockets', tlsVersion: 'tlsv1', ciphers: 'DEFAULT:@SECLEVEL=0' },
};

beforeAll(async () => {
  pki = await createTestPki();
  // The policy listeners share one certificate of their own (the first, default listener has another).
  legacyCert = await pki.issue(['localhost', '127.0.0.1'], 'legacy');
  broker = await startTestBroker({
    dir: pki.dir,
    pki,
    extraListeners: Object.values(POLICIES).map((p) => ({ certfile: legacyCert.certFile, keyfile: legacyCert.keyFile, ...p })),
    start: {
      observer: {
        tlsHandshake: (listener, protocol) => handshakes.push([listener, protocol]),
        tlsError: (listener, reason) => failures.push([listener, reason]),
      },
    },
  });
});
afterAll(async () => {
  await broker?.close();
});

const ca = (): string => pki.ca.cert;
/** The running listener configured with `policy` (a key of POLICIES), or the default one. */
function listener(policy: keyof typeof POLICIES | 'default'): { port: number; name: string } {
  const wanted = policy === 'default' ? undefined : POLICIES[policy];
  const found = broker.running.listeners.find((l) =>
    wanted === undefined
      ? l.config.certfile !== legacyCert.certFile
      : l.config.certfile === legacyCert.certFile && Object.entries(wanted).every(([k, v]) => l.config[k as keyof ListenerConfig] === v) && (wanted.protocol ?? 'mqtt') === l.config.protocol,
  );
  if (found === undefined) throw new Error(`no ${policy} listener`);
  return { port: found.port, name: found.name };
}

/** mqtt.js over TLS with these TLS client options; returns the client and what its socket negotiated. */
async function mqttJs(port: number, tls: Pick<ConnectionOptions, 'minVersion' | 'maxVersion' | 'ciphers'>, username: keyof typeof USERS = 'cam') {
  // mqtt.js hands its options to tls.connect: the TLS client options pass straight through.
  const options: ConnectOptions = { port, ca: ca(), username, password: USERS[username], ...tls };
  const client = await connectMqtt(options);
  const socket = client.stream as TLSSocket;
  return { client, protocol: socket.getProtocol(), cipher: socket.getCipher().name };
}

/** Publish on one client, receive on another: the broker behind the listener really serves MQTT. */
async function roundTrip(sub: Awaited<ReturnType<typeof connectMqtt>>, pub: Awaited<ReturnType<typeof connectMqtt>>, topic: string): Promise<void> {
  await sub.subscribeAsync(topic, { qos: 1 });
  const got = collectMessages(sub, 1);
  await pub.publishAsync(topic, `via ${topic}`, { qos: 1 });
  expect((await got)[0]).toMatchObject({ topic, payload: `via ${topic}`, qos: 1 });
}

// ---- hand-built MQTT 3.1.1 packets, for openssl s_client -------------------------------------------------
const str = (s: string): Buffer => Buffer.concat([Buffer.from([Buffer.byteLength(s) >> 8, Buffer.byteLength(s) & 0xff]), Buffer.from(s)]);
function packet(header: number, ...body: Buffer[]): Buffer {
  const payload = Buffer.concat(body);
  const length: number[] = [];
  let n = payload.length;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    length.push(byte);
  } while (n > 0);
  return Buffer.concat([Buffer.from([header, ...length]), payload]);
}
// CONNECT: protocol MQTT level 4, flags 0xC2 (user name, password, clean session), keep-alive 60.
const CONNECT = packet(0x10, str('MQTT'), Buffer.from([4, 0xc2, 0, 60]), str('dafang-openssl'), str('cam'), str(USERS.cam));
const SUBSCRIBE = packet(0x82, Buffer.from([0, 1]), str('cam/motion'), Buffer.from([0]));
const PUBLISH = packet(0x30, str('cam/motion'), Buffer.from('ON'));
const CONNACK = Buffer.from([0x20, 2, 0, 0]);
const SUBACK = Buffer.from([0x90, 3, 0, 1, 0]);

/**
 * `openssl s_client <versionFlag> -quiet` as a camera's MQTT client: CONNECT, then SUBSCRIBE, then PUBLISH to
 * the subscribed topic, each after the previous answer. Resolves with the bytes the broker sent back.
 */
function opensslMqtt(port: number, versionFlag: string): Promise<{ received: Buffer; stderr: string }> {
  const child = spawn('openssl', ['s_client', versionFlag, '-cipher', 'DEFAULT:@SECLEVEL=0', '-quiet', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', pki.caFile, '-verify_return_error'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let received = Buffer.alloc(0);
  let stderr = '';
  const steps: [Buffer, Buffer][] = [
    [SUBSCRIBE, CONNACK],
    [PUBLISH, Buffer.concat([CONNACK, SUBACK])],
  ];
  child.stdin.write(CONNECT);
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      child.kill();
      resolve({ received, stderr });
    };
    const timer = setTimeout(done, 8000);
    child.stdout.on('data', (d: Buffer) => {
      received = Buffer.concat([received, d]);
      const next = steps[0];
      if (next !== undefined && received.length >= next[1].length) {
        steps.shift();
        child.stdin.write(next[0]);
      } else if (steps.length === 0 && received.length >= CONNACK.length + SUBACK.length + PUBLISH.length) {
        done();
      }
    });
    child.on('exit', () => {
      clearTimeout(timer);
      resolve({ received, stderr });
    });
  });
}

function mosquittoPub(port: number, extra: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stderr: string }> {
  const args = [...mosquittoArgs(port, pki.caFile, 'cam', USERS.cam), '-t', 'cam/pub', '-m', 'hello', '-q', '1', ...extra];
  return new Promise((resolve) => {
    execFile('mosquitto_pub', args, { timeout: 15_000, env: { ...process.env, ...env } }, (err, _stdout, stderr) => {
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0, stderr: stderr.toString() });
    });
  });
}

describe('tls_version tlsv1 (TLS 1.0, for old cameras)', () => {
  it('a Node client limited to TLS 1.0 publishes and receives on the tlsv1 listener; a default listener refuses it', async () => {
    const legacy = listener('tlsv1');
    const cam = await mqttJs(legacy.port, onlyTls('TLSv1'));
    expect(cam.protocol).toBe('TLSv1');
    // TLS 1.0 has no AEAD ciphers: a CBC suite with SHA-1 MACs.
    expect(cam.cipher).toMatch(/^ECDHE-ECDSA-AES(128|256)-SHA$/);
    const modern = await mqttJs(listener('default').port, {}, 'bob');
    await roundTrip(cam.client, modern.client, 'cam/tls1-in');
    await roundTrip(modern.client, cam.client, 'cam/tls1-out');
    expect(handshakes).toContainEqual([legacy.name, 'TLSv1']);
    await Promise.all([cam.client.endAsync(), modern.client.endAsync()]);

    const before = failures.length;
    await expect(tlsHandshake(listener('default').port, ca(), onlyTls('TLSv1'))).rejects.toMatchObject({ code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
    await waitFor('the refusal to be reported', () => failures.length > before);
    expect(failures.slice(before)).toEqual([[listener('default').name, 'unsupported_protocol']]);

    // The operator sees both in /metrics: who still speaks TLS 1.0, and who was turned away.
    const metrics = (await broker.running.metrics.scrape()).body;
    const count = (re: RegExp): number => Number(re.exec(metrics)?.[1] ?? 0);
    expect(count(new RegExp(`tls_handshakes_total\\{listener="${legacy.name}",version="TLSv1"\\} (\\d+)`))).toBeGreaterThanOrEqual(1);
    expect(count(new RegExp(`tls_handshake_failures_total\\{listener="${listener('default').name}",reason="unsupported_protocol"\\} (\\d+)`))).toBeGreaterThanOrEqual(1);
  });

  it('openssl s_client -tls1 -quiet carrying hand-built CONNECT, SUBSCRIBE and PUBLISH gets CONNACK, SUBACK and its message back', async () => {
    const { received, stderr } = await opensslMqtt(listener('tlsv1').port, '-tls1');
    expect(stderr).not.toMatch(/error/i);
    expect(received.toString('hex')).toBe(Buffer.concat([CONNACK, SUBACK, PUBLISH]).toString('hex'));
    expect(handshakes.filter(([l]) => l === listener('tlsv1').name).map(([, p]) => p)).toContain('TLSv1');

    const refused = await opensslMqtt(listener('default').port, '-tls1');
    expect(refused.received.length).toBe(0);
    expect(refused.stderr).toMatch(/alert protocol version|unsupported protocol|no protocols available/i);
  });

  it('warns at start that the listener accepts versions deprecated by RFC 8996, naming it; not for the others', () => {
    const warnings = broker.logs.lines.filter((l) => l.level === 'warn' && /RFC 8996/.test(String(l.msg)));
    expect(warnings.map((l) => l.listener).sort()).toEqual([listener('tlsv1').name, listener('tlsv1.1').name, listener('wss').name].sort());
    expect(warnings.find((l) => l.listener === listener('tlsv1').name)?.msg).toMatch(/accepts TLS 1\.0 and 1\.1/);
    expect(warnings.find((l) => l.listener === listener('tlsv1.1').name)?.msg).toMatch(/accepts TLS 1\.1,/);
    expect(broker.logs.lines.find((l) => l.msg === 'listening' && l.listener === listener('tlsv1').name)).toMatchObject({ minTlsVersion: 'TLSv1', opensslSecurityLevel: 0 });
    expect(broker.logs.lines.find((l) => l.msg === 'listening' && l.listener === listener('ciphers').name)).toMatchObject({ minTlsVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305' });
  });
});

describe('tls_version tlsv1.1', () => {
  it('accepts TLS 1.1 (Node, and mosquitto_pub capped at TLS 1.1) but not TLS 1.0; a default listener refuses TLS 1.1', async () => {
    const l = listener('tlsv1.1');
    const node = await tlsHandshake(l.port, ca(), onlyTls('TLSv1.1'));
    expect(node).toMatchObject({ protocol: 'TLSv1.1', cipher: expect.stringMatching(/^ECDHE-ECDSA-AES(128|256)-SHA$/) });
    await expect(tlsHandshake(l.port, ca(), onlyTls('TLSv1'))).rejects.toMatchObject({ code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
    await expect(tlsHandshake(listener('default').port, ca(), onlyTls('TLSv1.1'))).rejects.toMatchObject({ code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });

    // mosquitto_pub 2.0.11 has no maximum version (--tls-version is its minimum): cap it with OpenSSL's
    // configuration, as an old camera's library would be.
    const conf = await opensslClientConf(pki.dir, { max: 'TLSv1.1' });
    const sub = await connectMqtt({ port: listener('default').port, ca: ca(), username: 'bob', password: USERS.bob });
    await sub.subscribeAsync('cam/pub', { qos: 1 });
    const got = collectMessages(sub, 1);
    const seen = handshakes.length;
    expect(await mosquittoPub(l.port, ['--tls-version', 'tlsv1.1'], { OPENSSL_CONF: conf })).toMatchObject({ code: 0 });
    expect((await got)[0]?.payload).toBe('hello');
    expect(handshakes.slice(seen)).toContainEqual([l.name, 'TLSv1.1']);
    expect((await mosquittoPub(listener('default').port, ['--tls-version', 'tlsv1.1'], { OPENSSL_CONF: conf })).code).not.toBe(0);
    await sub.endAsync();
  });

  it('openssl s_client -tls1_1 carrying hand-built MQTT is served', async () => {
    const { received } = await opensslMqtt(listener('tlsv1.1').port, '-tls1_1');
    expect(received.toString('hex')).toBe(Buffer.concat([CONNACK, SUBACK, PUBLISH]).toString('hex'));
  });
});

describe('tls_version tlsv1.3', () => {
  it('refuses a TLS 1.2 client and serves mqtt.js, mosquitto_sub and mosquitto_pub over TLS 1.3', async () => {
    const l = listener('tlsv1.3');
    await expect(tlsHandshake(l.port, ca(), onlyTls('TLSv1.2'))).rejects.toMatchObject({ code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
    const js = await mqttJs(l.port, {});
    expect(js.protocol).toBe('TLSv1.3');

    const seen = handshakes.length;
    const sub = await startMosquittoSub([...mosquittoArgs(l.port, pki.caFile, 'bob', USERS.bob), '-t', 'cam/pub'], 2);
    expect(await mosquittoPub(l.port, ['--tls-version', 'tlsv1.3'])).toMatchObject({ code: 0 });
    // mosquitto-clients 2.0.11 take --tls-version as the LOWEST version (SSL_OP_NO_* below it), so
    // `--tls-version tlsv1.2` still negotiates TLS 1.3 here; only a client that cannot go above 1.2 fails.
    expect(await mosquittoPub(l.port, ['--tls-version', 'tlsv1.2'])).toMatchObject({ code: 0 });
    const { lines } = await sub.done;
    expect(lines).toEqual(['hello', 'hello']);
    const mine = handshakes.slice(seen).filter(([name]) => name === l.name);
    expect(mine.length).toBeGreaterThanOrEqual(3);
    expect(new Set(mine.map(([, p]) => p))).toEqual(new Set(['TLSv1.3']));

    const capped = await opensslClientConf(pki.dir, { max: 'TLSv1.2' });
    const before = failures.length;
    const refused = await mosquittoPub(l.port, ['--tls-version', 'tlsv1.2'], { OPENSSL_CONF: capped });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/TLS error/i);
    await waitFor('the refusal to be reported', () => failures.length > before);
    expect(failures.slice(before)).toEqual([[l.name, 'unsupported_protocol']]);
    await js.client.endAsync();
  });
});

describe('ciphers and ciphers_tls1.3', () => {
  it('ciphers restricts TLS 1.2 to the list, refuses a client offering only others, and keeps the default TLS 1.3 suites', async () => {
    const l = listener('ciphers');
    // Node's client prefers AES-128-GCM; the listener allows only ChaCha20.
    expect(await tlsHandshake(l.port, ca(), onlyTls('TLSv1.2'))).toMatchObject({ protocol: 'TLSv1.2', cipher: 'ECDHE-ECDSA-CHACHA20-POLY1305' });
    expect(await tlsHandshake(listener('default').port, ca(), onlyTls('TLSv1.2'))).toMatchObject({ cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
    const before = failures.length;
    await expect(tlsHandshake(l.port, ca(), { ...onlyTls('TLSv1.2'), ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' })).rejects.toMatchObject({ code: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' });
    await waitFor('the refusal to be reported', () => failures.length > before);
    expect(failures.slice(before)).toEqual([[l.name, 'no_shared_cipher']]);
    // TLS 1.3 is still there, with Node's default suites (a `ciphers` string alone would switch it off).
    expect(await tlsHandshake(l.port, ca())).toMatchObject({ protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' });
    const js = await mqttJs(l.port, onlyTls('TLSv1.2'));
    expect(js.cipher).toBe('ECDHE-ECDSA-CHACHA20-POLY1305');
    await js.client.endAsync();
  });

  it('ciphers_tls1.3 restricts TLS 1.3 to its suites, refuses a client offering only others, and keeps the default TLS 1.2 list', async () => {
    const l = listener('ciphers13');
    expect(await tlsHandshake(listener('default').port, ca())).toMatchObject({ protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' });
    expect(await tlsHandshake(l.port, ca())).toMatchObject({ protocol: 'TLSv1.3', cipher: 'TLS_CHACHA20_POLY1305_SHA256' });
    const before = failures.length;
    await expect(tlsHandshake(l.port, ca(), { ...onlyTls('TLSv1.3'), ciphers: 'TLS_AES_256_GCM_SHA384' })).rejects.toMatchObject({ code: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' });
    await waitFor('the refusal to be reported', () => failures.length > before);
    expect(failures.slice(before)).toEqual([[l.name, 'no_shared_cipher']]);
    expect(await tlsHandshake(l.port, ca(), onlyTls('TLSv1.2'))).toMatchObject({ protocol: 'TLSv1.2', cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
    const js = await mqttJs(l.port, {});
    expect([js.protocol, js.cipher]).toEqual(['TLSv1.3', 'TLS_CHACHA20_POLY1305_SHA256']);
    await js.client.endAsync();
  });
});

describe('secure websockets', () => {
  it('applies the policy and reports the negotiated version for wss listeners too', async () => {
    const l = listener('wss');
    const seen = handshakes.length;
    expect(await tlsHandshake(l.port, ca(), onlyTls('TLSv1'))).toMatchObject({ protocol: 'TLSv1' });
    const { default: mqtt } = await import('mqtt');
    const client = mqtt.connect(`wss://localhost:${l.port}`, { username: 'cam', password: USERS.cam, reconnectPeriod: 0, ca: ca() });
    await new Promise((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
    });
    await client.endAsync();
    expect(handshakes.slice(seen)).toEqual([
      [l.name, 'TLSv1'],
      [l.name, 'TLSv1.3'],
    ]);
  });
});

describe('certificate replaced', () => {
  it('keeps every listener\'s policy: new certificate, same versions and ciphers', async () => {
    const old = await tlsHandshake(listener('tlsv1').port, ca(), onlyTls('TLSv1'));
    const next = await pki.issue(['localhost', '127.0.0.1'], 'legacy-next');
    await writeFile(`${legacyCert.keyFile}.new`, next.key);
    await writeFile(`${legacyCert.certFile}.new`, next.cert);
    await rename(`${legacyCert.keyFile}.new`, legacyCert.keyFile);
    await rename(`${legacyCert.certFile}.new`, legacyCert.certFile);
    await broker.running.reload();
    const serial = new X509Certificate(next.cert).serialNumber;
    const now = await waitFor('the new certificate on the tlsv1 listener', async () => {
      const h = await tlsHandshake(listener('tlsv1').port, ca(), onlyTls('TLSv1')).catch(() => undefined);
      return h?.serial === serial ? h : undefined;
    });
    expect(old.serial).not.toBe(serial);
    expect(now.protocol).toBe('TLSv1');
    expect(await tlsHandshake(listener('tlsv1.1').port, ca(), onlyTls('TLSv1.1'))).toMatchObject({ protocol: 'TLSv1.1', serial });
    await expect(tlsHandshake(listener('tlsv1.3').port, ca(), onlyTls('TLSv1.2'))).rejects.toMatchObject({ code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
    expect(await tlsHandshake(listener('ciphers').port, ca(), onlyTls('TLSv1.2'))).toMatchObject({ cipher: 'ECDHE-ECDSA-CHACHA20-POLY1305', serial });
    expect(await tlsHandshake(listener('ciphers13').port, ca())).toMatchObject({ cipher: 'TLS_CHACHA20_POLY1305_SHA256', serial });
    expect(await tlsHandshake(listener('wss').port, ca(), onlyTls('TLSv1'))).toMatchObject({ protocol: 'TLSv1', serial });
    await expect(tlsHandshake(listener('default').port, ca(), onlyTls('TLSv1'))).rejects.toMatchObject({ code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
  });
});

describe('start', () => {
  it('stops with an error naming the listener when OpenSSL refuses its cipher string', async () => {
    await expect(
      startTestBroker({ extraListeners: [{ certfile: legacyCert.certFile, keyfile: legacyCert.keyFile, ciphers: 'ECDHE-ECDSA-AES129-GCM-SHA256' }] }),
    ).rejects.toThrow(/^listener mqtts:\d+: ciphers "ECDHE-ECDSA-AES129-GCM-SHA256" is refused by OpenSSL \(no cipher match\)/);
  });
});
