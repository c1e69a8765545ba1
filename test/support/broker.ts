/**
 * Harnesses for a real broker: in-process (startServer with a Config on port 0) and as a child process
 * (`node dist/cli.js`, for restarts and signals). Both on loopback, with a CA made at test time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { defaultConfig, type Config, type ListenerConfig } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import { startServer, type RunningServer, type StartOptions } from '../../src/server/start.js';
import { createTestPki, type TestPki } from './tls.js';

/** Users from FACTS.md, written by mosquitto_passwd 2.0.11. */
export const PASSWD = [
  'cam:$7$101$0eyo1LK2tTCkVyoE$TfD+UAkPpXvqGbA1d0owxs3bAfGUY7jCKfITOwTk3Or6LAiHgKPAC4ABTZO9xtw478xwXp1iy9HLT0J0Nx2pBg==',
  'bob:$7$101$Xw2crMfuucSq3Pc4$E/FqK+cGWM6sqOPJcWi4gyTtZy5OuhwArdh6wry2Bk0jwTKNiiRDm/b9q2P9wlB78nznpwRWxLJOT3OfrPvL5Q==',
  '',
].join('\n');
export const USERS = { cam: 's3cret', bob: 'hunter2' } as const;

export const REPO_ROOT = resolve(import.meta.dirname, '../..');
export const CLI = join(REPO_ROOT, 'dist/cli.js');
/** The compiled ACME issuing child, for managers run from src/ by vitest. */
export const ISSUE_SCRIPT = join(REPO_ROOT, 'dist/certs/issue-process.js');

/** Collects pino lines written by the broker, for assertions on logs. */
export class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  readonly raw: string[] = [];
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      this.raw.push(line);
      try {
        this.lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not JSON: keep it in raw only
      }
    }
    cb();
  }
  text(): string {
    return this.raw.join('\n');
  }
  find(msg: string | RegExp): Record<string, unknown> | undefined {
    return this.lines.find((l) => (typeof msg === 'string' ? l.msg === msg : msg.test(String(l.msg))));
  }
}

export interface TestBroker {
  dir: string;
  pki: TestPki;
  config: Config;
  running: RunningServer;
  logs: LogCapture;
  /** Port of the first listener (MQTTS). */
  port: number;
  passwdFile: string;
  aclFile: string | undefined;
  close(): Promise<void>;
}

export interface TestBrokerOptions {
  acl?: string;
  passwd?: string;
  config?: Partial<Config>;
  /** Extra listeners besides the MQTTS one. */
  extraListeners?: Partial<ListenerConfig>[];
  dir?: string;
  pki?: TestPki;
  start?: StartOptions;
}

export async function startTestBroker(options: TestBrokerOptions = {}): Promise<TestBroker> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'mab-broker-')));
  const pki = options.pki ?? (await createTestPki(dir));
  const leaf = await pki.issue(['localhost', '127.0.0.1'], 'server');
  const passwdFile = join(dir, 'passwd');
  await writeFile(passwdFile, options.passwd ?? PASSWD);
  let aclFile: string | undefined;
  if (options.acl !== undefined) {
    aclFile = join(dir, 'acl');
    await writeFile(aclFile, options.acl);
  }
  const base = defaultConfig();
  const mqtts: ListenerConfig = {
    port: 0,
    host: '127.0.0.1',
    protocol: 'mqtt',
    certfile: leaf.certFile,
    keyfile: leaf.keyFile,
    requireCertificate: false,
    selfSigned: false,
  };
  const extra = (options.extraListeners ?? []).map(
    (l): ListenerConfig => ({ port: 0, host: '127.0.0.1', protocol: 'mqtt', requireCertificate: false, selfSigned: false, ...l }),
  );
  const config: Config = {
    ...base,
    listeners: [mqtts, ...extra],
    passwordFile: passwdFile,
    ...(aclFile === undefined ? {} : { aclFile }),
    dataDir: dir,
    persistence: false,
    persistenceLocation: join(dir, 'persistence'),
    logLevel: 'debug',
    ops: { port: 0, host: '127.0.0.1' },
    ...options.config,
  };
  const logs = new LogCapture();
  const logger = createLogger(config.logLevel, logs);
  const running = await startServer(config, logger, options.start);
  const first = running.listeners[0];
  if (!first) throw new Error('no listener started');
  return {
    dir,
    pki,
    config,
    running,
    logs,
    port: first.port,
    passwdFile,
    aclFile,
    close: () => running.close(),
  };
}

export interface SpawnedBroker {
  child: ChildProcess;
  logs: LogCapture;
  /** Ports by listener name, e.g. { 'mqtts:34567': 34567 }; resolves once every listener listens. */
  ports: number[];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Run the built CLI (`npm test` builds it first) and wait until `listeners` listeners log "listening". */
export async function spawnBroker(args: string[], env: NodeJS.ProcessEnv = {}, listeners = 1, cwd = REPO_ROOT): Promise<SpawnedBroker> {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd,
    env: { PATH: process.env.PATH, OPS_PORT: '-1', LOG_LEVEL: 'debug', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs = new LogCapture();
  child.stdout?.pipe(logs);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.on('exit', (code, signal) => res({ code, signal })),
  );
  const ports = await new Promise<number[]>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`broker did not start in 20 s:\n${logs.text()}\n${stderr}`)), 20_000);
    const check = (): void => {
      const found = logs.lines.filter((l) => l.msg === 'listening').map((l) => Number(l.port));
      if (found.length >= listeners) {
        clearTimeout(timer);
        res(found);
      }
    };
    logs.on('finish', check);
    child.stdout?.on('data', () => setImmediate(check));
    void exit.then(({ code }) => {
      clearTimeout(timer);
      rej(new Error(`broker exited with ${code} before listening:\n${logs.text()}\n${stderr}`));
    });
  });
  return {
    child,
    logs,
    ports,
    exit,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exit;
    },
  };
}

/**
 * For brokers run as a process (spawnBroker): a directory with a test CA, a server certificate, the
 * passwd file and a config.json with one TLS listener on a random port; `extra` overrides keys.
 */
export async function processBrokerConfig(prefix: string, extra: Record<string, unknown> = {}): Promise<{ dir: string; pki: TestPki; configFile: string }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const pki = await createTestPki(dir);
  const leaf = await pki.issue(['localhost', '127.0.0.1'], 'server');
  await writeFile(join(dir, 'passwd'), PASSWD);
  const configFile = join(dir, 'config.json');
  await writeFile(
    configFile,
    JSON.stringify({
      listeners: [{ port: 0, host: '127.0.0.1', protocol: 'mqtt', certfile: leaf.certFile, keyfile: leaf.keyFile }],
      passwordFile: join(dir, 'passwd'),
      dataDir: join(dir, 'data'),
      persistence: true,
      logLevel: 'info',
      ops: { port: -1 },
      ...extra,
    }),
  );
  return { dir, pki, configFile };
}
