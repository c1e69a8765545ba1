/**
 * The first hour of an operator, as a process (`node dist/cli.js`): SIGHUP reloads instead of killing, an
 * edited configuration applies what can change live and names what needs a restart, a taken ops port does
 * not stop MQTT, e-mail addresses stay out of the log, log lines have no duplicate keys and `broker ready`
 * comes once the listeners are open.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { connectMqtt } from '../support/clients.js';
import { processBrokerConfig, spawnBroker, USERS, type SpawnedBroker } from '../support/broker.js';

const exec = promisify(execFile);
const running: SpawnedBroker[] = [];
afterAll(async () => {
  await Promise.all(running.map((b) => b.stop('SIGKILL')));
});

async function start(configFile: string, env: NodeJS.ProcessEnv = {}): Promise<SpawnedBroker> {
  const b = await spawnBroker(['serve', '--config', configFile], { LOG_LEVEL: 'info', ...env }, 1);
  running.push(b);
  return b;
}

/** The keys of a JSON object's top level, in order, duplicates kept (JSON.parse would keep only the last). */
function topLevelKeys(line: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '"') {
      let j = i + 1;
      while (j < line.length && line[j] !== '"') j += line[j] === '\\' ? 2 : 1;
      if (depth === 1 && line[j + 1] === ':') keys.push(line.slice(i + 1, j));
      i = j;
    } else if (c === '{' || c === '[') depth += 1;
    else if (c === '}' || c === ']') depth -= 1;
  }
  return keys;
}

describe('signals and reloads', () => {
  it('SIGHUP reloads passwd and certificates, logs what was reloaded, and the broker keeps serving', async () => {
    const { dir, pki, configFile } = await processBrokerConfig('mab-op-hup-');
    const broker = await start(configFile);
    const port = broker.ports[0]!;
    const before = await connectMqtt({ port, ca: pki.ca.cert, username: 'cam', password: USERS.cam });

    await exec('mosquitto_passwd', ['-b', join(dir, 'passwd'), 'dave', 'dave-pw']);
    broker.child.kill('SIGHUP');
    await expect.poll(() => broker.logs.find(/^SIGHUP: reloaded /), { timeout: 15_000 }).toBeDefined();
    const done = broker.logs.find(/^SIGHUP: reloaded /)!;
    expect(done.reloaded).toEqual(expect.arrayContaining(['passwd', expect.stringMatching(/^files .*server\.crt$/)]));
    expect(broker.child.exitCode).toBeNull();

    // The new user gets in; the client connected before the signal is still there.
    const dave = await connectMqtt({ port, ca: pki.ca.cert, username: 'dave', password: 'dave-pw' });
    expect(before.connected).toBe(true);
    await dave.endAsync();
    await before.endAsync();
    expect(await broker.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });

  it('an edited config.json applies max_keepalive live and names the new listener as needing a restart', async () => {
    const { pki, configFile } = await processBrokerConfig('mab-op-conf-');
    const broker = await start(configFile);
    const port = broker.ports[0]!;
    const ok = await connectMqtt({ port, ca: pki.ca.cert, username: 'cam', password: USERS.cam, keepalive: 60 });
    await ok.endAsync();

    const config = JSON.parse(await readFile(configFile, 'utf8')) as { listeners: object[] };
    await writeFile(configFile, JSON.stringify({ ...config, maxKeepalive: 30, listeners: [...config.listeners, { port: 0, host: '127.0.0.1', protocol: 'mqtt' }] }));
    await expect.poll(() => broker.logs.find(/^configuration reloaded: these settings apply/), { timeout: 15_000 }).toBeDefined();
    expect(JSON.stringify(broker.logs.find(/^configuration reloaded: these settings apply/)!.settings)).toMatch(/keepalive/i);
    const restart = broker.logs.find(/needs? a restart to take effect/);
    expect(restart?.level).toBe('warn');
    expect(JSON.stringify(restart?.settings)).toMatch(/listener/);

    // A keepalive above the new maximum is refused (MQTT 3.1.1 CONNACK 0x02, as mosquitto does).
    await expect(connectMqtt({ port, ca: pki.ca.cert, username: 'cam', password: USERS.cam, keepalive: 60 })).rejects.toThrow(/Identifier rejected/i);
    const short = await connectMqtt({ port, ca: pki.ca.cert, username: 'cam', password: USERS.cam, keepalive: 20 });
    await short.endAsync();

    // A broken edit keeps the running configuration and says why.
    await writeFile(configFile, '{ "maxKeepalive": ');
    await expect.poll(() => broker.logs.find(/the changed configuration is not valid; keeping the running one/), { timeout: 15_000 }).toBeDefined();
    expect(broker.child.exitCode).toBeNull();
  });
});

describe('start-up', () => {
  let blocker: Server | undefined;
  afterAll(() => blocker?.close());

  it('keeps serving MQTT when the ops port is taken, logs why, says ready after the listeners, no duplicate keys, no e-mail', async () => {
    blocker = createServer();
    await new Promise<void>((r) => blocker!.listen(0, '127.0.0.1', () => r()));
    const taken = (blocker.address() as AddressInfo).port;
    const { pki, configFile } = await processBrokerConfig('mab-op-start-', { ops: { port: taken, host: '127.0.0.1' } });
    const broker = await start(configFile, { EMAIL: 'jane.doe@example.net', OPS_PORT: String(taken), OPS_HOST: '127.0.0.1' });
    const port = broker.ports[0]!;
    const client = await connectMqtt({ port, ca: pki.ca.cert, username: 'cam', password: USERS.cam });
    await client.endAsync();

    const opsError = broker.logs.find(/the ops HTTP endpoint .* could not be started; serving MQTT without it/);
    expect(opsError?.level).toBe('error');
    expect(String(opsError?.error)).toMatch(/EADDRINUSE/);

    await expect.poll(() => broker.logs.find('broker ready')).toBeDefined();
    const order = broker.logs.lines.map((l) => l.msg);
    expect(order.indexOf('broker ready')).toBeGreaterThan(order.lastIndexOf('listening'));

    const text = broker.logs.text();
    expect(text).not.toMatch(/jane\.doe/);
    expect(text).toMatch(/@example\.net/);
    for (const line of text.split('\n').filter((l) => l.startsWith('{'))) {
      const keys = topLevelKeys(line);
      expect(keys.filter((k, i) => keys.indexOf(k) !== i), line).toEqual([]);
    }
    expect(await broker.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });
});

describe('LOG_FORMAT=pretty', () => {
  it('the process writes readable lines, not JSON, and stops cleanly', async () => {
    const { spawn } = await import('node:child_process');
    const { CLI } = await import('../support/broker.js');
    const { configFile } = await processBrokerConfig('mab-op-pretty-');
    const child = spawn(process.execPath, [CLI, '--config', configFile], { env: { PATH: process.env.PATH, LOG_FORMAT: 'pretty', OPS_PORT: '-1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      await expect.poll(() => out, { timeout: 15_000 }).toMatch(/INFO +\[broker\] broker ready/);
      const lines = out.split('\n').filter((l) => l !== '');
      expect(lines.every((l) => !l.startsWith('{'))).toBe(true);
      expect(out).toMatch(/^\d{2}:\d{2}:\d{2}\.\d{3} INFO +\[listener\] listening +listener=mqtts:\d+/m);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exit).toBe(0);
    expect(out).toMatch(/INFO +stopped/);
  });
});

describe('refusals and readiness, in process', () => {
  it('counts a refused protocol version, logs one line per refused connection, and /readyz details agree with ok', async () => {
    const { startTestBroker } = await import('../support/broker.js');
    const { connect } = await import('node:tls');
    const b = await startTestBroker();
    try {
      // An MQTT protocol level this broker does not speak (7), then a wrong password.
      const raw = connect({ host: '127.0.0.1', port: b.port, ca: b.pki.ca.cert, servername: 'localhost' });
      await new Promise<void>((r) => raw.once('secureConnect', () => r()));
      raw.write(Buffer.from([0x10, 12, 0, 4, 0x4d, 0x51, 0x54, 0x54, 7, 0x02, 0, 60, 0, 0]));
      const connack = await new Promise<Buffer>((r) => raw.once('data', (d: Buffer) => r(d)));
      expect([...connack]).toEqual([0x20, 2, 0, 1]);
      await new Promise<void>((r) => raw.once('close', () => r()));
      await expect(connectMqtt({ port: b.port, ca: b.pki.ca.cert, username: 'cam', password: 'wrong' })).rejects.toThrow();

      const metrics = (await b.running.metrics.scrape()).body;
      expect(metrics).toMatch(/connections_refused_total\{reason="unacceptable_protocol_version"\} 1/);
      expect(metrics).toMatch(/connections_refused_total\{reason="bad_credentials"\} 1/);
      // Everything logged at info or above after the start: one line for each refused connection.
      const infoOrAbove = (l: Record<string, unknown>): boolean => ['info', 'warn', 'error'].includes(String(l.level));
      const after = b.logs.lines.slice(b.logs.lines.findIndex((l) => l.msg === 'broker ready') + 1).filter(infoOrAbove);
      expect(after.map((l) => l.reason)).toEqual(['unacceptable_protocol_version', 'bad_credentials']);

      const readyz = await fetch(`http://127.0.0.1:${b.running.opsPort}/readyz`);
      const body = (await readyz.json()) as { checks: { name: string; ok: boolean; detail: string }[] };
      expect(readyz.status).toBe(200);
      for (const check of body.checks) {
        expect(check.ok, check.name).toBe(true);
        expect(check.detail, check.name).not.toMatch(/starting|not open|waiting|shutting|no certificate/);
      }
      expect(body.checks.find((c) => c.name === 'certificate')?.detail).toMatch(/files certificate from files .*server\.crt, valid until/);
    } finally {
      await b.close();
    }
  });
});
