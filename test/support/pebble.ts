/**
 * Debian's pebble (a small RFC 8555 test CA) on free loopback ports, with a throwaway TLS certificate for its
 * API made at test time. Validation is real: DNS-01 lookups go to the `dnsServer` given (our loopback DNS
 * server, which serves what the fake Cloudflare holds).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { DestinationStream } from 'pino';
import type { AcmeConfig } from '../../src/config/schema.js';
import { createLogger, type Logger } from '../../src/log.js';
import { CertificateManager, type CertificateManagerOptions, type FailedEvent, type ScheduledEvent } from '../../src/certs/manager.js';
import { lineageNameFor } from '../../src/x509/dns-name.js';
import { startDnsServer, type DnsServer } from './dns-server.js';
import { startFakeCloudflare, type FakeCloudflare } from './fake-cloudflare.js';
import { createCertificate } from '../../src/certs/self-signed.js';
import { createTestPki } from './tls.js';
import { ISSUE_SCRIPT } from './broker.js';

export interface PebbleOptions {
  /** `host:port` of the DNS server pebble's VA asks for TXT records. */
  dnsServer: string;
  /** certificateValidityPeriod in seconds (pebble's default is 5 years). */
  validitySeconds?: number;
  /** Extra environment, e.g. { PEBBLE_AUTHZREUSE: '100' }. */
  env?: Record<string, string>;
}

export interface Pebble {
  directoryUrl: string;
  /** PEM of the CA that signed pebble's own HTTPS certificate (trust it for the ACME API). */
  apiCa: string;
  /** PEM of the root that issues certificates (changes on every pebble start). */
  issuingRoot(): Promise<string>;
  /** Number of new-order requests pebble has received since this harness started it (all runs). */
  orderCount(): number;
  /** Everything pebble logged. */
  output(): string;
  /** Graceful stop. */
  stop(): Promise<void>;
  /** SIGKILL (simulates "CA down"; the directory URL stays the same for restart()). */
  kill(): Promise<void>;
  /** Start again on the same ports (pebble forgets accounts, orders and its root). */
  restart(): Promise<void>;
}

import { freePort } from './ports.js';

export { freePort };

function httpsGet(url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, method: 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        if ((res.statusCode ?? 0) >= 400) reject(new Error(`GET ${url}: HTTP ${res.statusCode}: ${body}`));
        else resolve(body);
      });
    });
    req.on('error', reject);
    req.end();
  });
}

export async function startPebble(opts: PebbleOptions): Promise<Pebble> {
  const dir = await mkdtemp(join(tmpdir(), 'mab-pebble-'));
  const pki = await createTestPki(dir);
  const leaf = await pki.issue(['localhost', '127.0.0.1'], 'pebble');
  const [port, mgmtPort, httpPort, tlsPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const configFile = join(dir, 'pebble-config.json');
  await writeFile(
    configFile,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${port}`,
        managementListenAddress: `127.0.0.1:${mgmtPort}`,
        certificate: leaf.certFile,
        privateKey: leaf.keyFile,
        httpPort,
        tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
        ...(opts.validitySeconds !== undefined ? { certificateValidityPeriod: opts.validitySeconds } : {}),
      },
    }),
  );
  let output = '';
  let orders = 0;
  let child: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    const proc = spawn('/usr/bin/pebble', ['-config', configFile, '-dnsserver', opts.dnsServer, '-strict=false'], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        PEBBLE_VA_NOSLEEP: '1',
        PEBBLE_WFE_NONCEREJECT: '0',
        PEBBLE_AUTHZREUSE: '0',
        ...opts.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    let pending = '';
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        const text = chunk.toString();
        output += text;
        pending += text;
        const lines = pending.split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) {
          // pebble's WFE logs every request as "POST /order-plz" (new-order endpoint).
          if (/POST \/order-plz\b/.test(line)) orders += 1;
          if (line.includes('ACME directory available')) resolve();
        }
      };
      proc.stdout?.on('data', onData);
      proc.stderr?.on('data', onData);
      proc.once('exit', (code, signal) => reject(new Error(`pebble exited early (${code ?? signal}):\n${output}`)));
      proc.once('error', reject);
    });
  };

  await launch();
  const stopChild = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill(signal);
    });
  };

  return {
    directoryUrl: `https://127.0.0.1:${port}/dir`,
    apiCa: pki.ca.cert,
    issuingRoot: () => httpsGet(`https://127.0.0.1:${mgmtPort}/roots/0`, pki.ca.cert),
    orderCount: () => orders,
    output: () => output,
    async stop() {
      await stopChild('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
    kill: () => stopChild('SIGKILL'),
    async restart() {
      await stopChild('SIGTERM');
      await launch();
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// A whole DNS-01 test bed: fake Cloudflare + loopback DNS serving its TXT records + pebble validating through it.

export interface LogCapture {
  stream: Writable;
  text(): string;
  /** Call `listener` for every complete line written from now on. */
  onLine(listener: (line: string) => void): void;
  /** Parsed pino lines (non-JSON lines are skipped). */
  entries(): Record<string, unknown>[];
}

export function captureLogs(): LogCapture {
  let buf = '';
  let partial = '';
  const listeners: ((line: string) => void)[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      const text = chunk.toString();
      buf += text;
      partial += text;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) for (const l of listeners) l(line);
      cb();
    },
  });
  return {
    stream,
    text: () => buf,
    onLine: (listener) => void listeners.push(listener),
    entries: () =>
      buf
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as Record<string, unknown>];
          } catch {
            return [];
          }
        }),
  };
}

export interface AcmeTestbed {
  cloudflare: FakeCloudflare;
  dns: DnsServer;
  pebble: Pebble;
  /** A fresh letsencrypt directory per call. */
  newDir(): Promise<string>;
  config(dir: string, overrides?: Partial<AcmeConfig>): AcmeConfig;
  /** Manager options tuned for fast tests (short polls, short backoff), output captured in `logs`. */
  managerOptions(overrides?: Partial<CertificateManagerOptions>): CertificateManagerOptions;
  logs: LogCapture;
  logger: Logger;
  /** A CertificateManager with managerOptions(), stopped by reset() and close(). */
  manager(config: AcmeConfig, overrides?: Partial<CertificateManagerOptions>): CertificateManager;
  /** Between tests: stop every manager, serve DNS again, drop pending Cloudflare faults and listeners. */
  reset(): Promise<void>;
  close(): Promise<void>;
}

export async function startAcmeTestbed(opts: { validitySeconds?: number; pebbleEnv?: Record<string, string> } = {}): Promise<AcmeTestbed> {
  const cloudflare = await startFakeCloudflare();
  const dns = await startDnsServer({ txt: (name) => cloudflare.txtValues(name) });
  const pebble = await startPebble({
    dnsServer: dns.address,
    ...(opts.validitySeconds !== undefined ? { validitySeconds: opts.validitySeconds } : {}),
    ...(opts.pebbleEnv ? { env: opts.pebbleEnv } : {}),
  });
  const logs = captureLogs();
  const logger = createLogger('trace', logs.stream as unknown as DestinationStream);
  const dirs: string[] = [];
  const managers = new Set<CertificateManager>();
  const managerOptions = (overrides: Partial<CertificateManagerOptions> = {}): CertificateManagerOptions => ({
    // The compiled child (npm test builds first): vitest runs the manager from src/, the child runs from dist/.
    issueScript: ISSUE_SCRIPT,
    trustedCa: pebble.apiCa,
    childOutput: logs.stream,
    childLogLevel: 'trace',
    propagation: { intervalMs: 50, timeoutMs: 5000, queryTimeoutMs: 500, progressEveryMs: 1000 },
    acme: { pollMinMs: 50, pollMaxMs: 500, httpRetries: 1, httpRetryDelaySeconds: 0, requestTimeoutMs: 5000, directoryAttempts: 2, directoryRetryDelayMs: 100 },
    cloudflare: { maxRetries: 2, timeoutMs: 2000 },
    policy: { backoffBaseMs: 300, backoffMaxMs: 3000, minDelayMs: 50 },
    stopTimeoutMs: 3000,
    ...overrides,
  });
  const reset = async (): Promise<void> => {
    await Promise.all([...managers].map((m) => m.stop()));
    managers.clear();
    dns.setServing(true);
    cloudflare.reset();
  };
  return {
    cloudflare,
    dns,
    pebble,
    logs,
    logger,
    async newDir() {
      const d = await mkdtemp(join(tmpdir(), 'mab-le-'));
      dirs.push(d);
      return d;
    },
    config(dir, overrides = {}) {
      return {
        domains: ['*.example.test', 'example.test'],
        email: 'admin@example.test',
        directoryUrl: pebble.directoryUrl,
        staging: false,
        cloudflare: { apiToken: cloudflare.apiToken },
        cloudflareBaseUrl: cloudflare.baseUrl,
        dnsResolvers: [dns.address],
        letsencryptDir: dir,
        mqttsPort: 0,
        keyType: 'ecdsa-p256',
        reuseKey: false,
        selfSignedWhileWaiting: false,
        ...overrides,
      };
    },
    managerOptions,
    manager(config, overrides) {
      const m = new CertificateManager(config, logger, managerOptions(overrides));
      managers.add(m);
      return m;
    },
    reset,
    async close() {
      await reset();
      await Promise.allSettled([pebble.stop(), dns.close(), cloudflare.close()]);
      await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
    },
  };
}

/**
 * Write a lineage by hand in certbot's layout (archive N, relative links, renewal conf with `server`), the way
 * certbot (or the old image) leaves it, without our store. The certificate is signed by a throwaway CA.
 */
export async function writeCertbotStyleLineage(
  dir: string,
  opts: { name: string; names: string[]; server?: string; validDays?: number; notBeforeOffsetDays?: number; version?: number; issuerName?: string },
): Promise<{ cert: string; key: string; serial: string }> {
  const ca = await createCertificate({ commonName: opts.issuerName ?? 'Handmade Test CA', isCA: true, validDays: 3650, notBeforeOffsetDays: -400 });
  const leaf = await createCertificate({
    commonName: opts.names[0] ?? opts.name,
    altNames: opts.names,
    issuer: ca,
    validDays: opts.validDays ?? 90,
    notBeforeOffsetDays: opts.notBeforeOffsetDays ?? -1,
  });
  const v = opts.version ?? 1;
  const files = { cert: leaf.cert, chain: ca.cert, fullchain: leaf.cert + ca.cert, privkey: leaf.key };
  await mkdir(join(dir, 'archive', opts.name), { recursive: true, mode: 0o700 });
  await mkdir(join(dir, 'live', opts.name), { recursive: true, mode: 0o700 });
  for (const kind of ['cert', 'chain', 'fullchain', 'privkey'] as const) {
    await writeFile(join(dir, 'archive', opts.name, `${kind}${v}.pem`), files[kind], { mode: kind === 'privkey' ? 0o600 : 0o644 });
    await symlink(`../../archive/${opts.name}/${kind}${v}.pem`, join(dir, 'live', opts.name, `${kind}.pem`));
  }
  if (opts.server) {
    await mkdir(join(dir, 'renewal'), { recursive: true, mode: 0o755 });
    await writeFile(
      join(dir, 'renewal', `${opts.name}.conf`),
      [
        '# renew_before_expiry = 30 days',
        'version = 0.31.0',
        `archive_dir = /etc/letsencrypt/archive/${opts.name}`,
        `cert = /etc/letsencrypt/live/${opts.name}/cert.pem`,
        `privkey = /etc/letsencrypt/live/${opts.name}/privkey.pem`,
        `chain = /etc/letsencrypt/live/${opts.name}/chain.pem`,
        `fullchain = /etc/letsencrypt/live/${opts.name}/fullchain.pem`,
        '',
        '# Options used in the renewal process',
        '[renewalparams]',
        'account = 00000000000000000000000000000000',
        'pref_challs = dns-01,',
        'manual_auth_hook = /scripts/auth.sh',
        'manual_cleanup_hook = /scripts/cleanup.sh',
        'authenticator = manual',
        'manual_public_ip_logging_ok = True',
        `server = ${opts.server}`,
        '',
      ].join('\n'),
    );
  }
  return { cert: leaf.cert, key: leaf.key, serial: new X509Certificate(leaf.cert).serialNumber };
}

/** The next `event` the emitter emits (its first argument) that satisfies `predicate`. */
export function nextEvent<T = unknown>(emitter: EventEmitter, event: string, predicate: (arg: T) => boolean = () => true): Promise<T> {
  return new Promise((resolve) => {
    const listener = (arg: T): void => {
      if (!predicate(arg)) return;
      emitter.off(event, listener);
      resolve(arg);
    };
    emitter.on(event, listener);
  });
}

export interface FailedRenewal {
  dir: string;
  manager: CertificateManager;
  /** The stored (due) certificate the manager started with. */
  made: { cert: string; key: string; serial: string };
  failure: FailedEvent;
  retry: ScheduledEvent;
}

/**
 * A stored certificate from this CA that is due for renewal (61 of 90 days used), a manager started on it, and the
 * first failed renewal attempt (call `inject` to make it fail). The manager keeps running: stop it.
 */
export async function failFirstRenewal(
  bed: AcmeTestbed,
  opts: { inject?: () => void | Promise<void>; config?: Partial<AcmeConfig>; options?: Partial<CertificateManagerOptions> } = {},
): Promise<FailedRenewal> {
  const dir = await bed.newDir();
  const config = bed.config(dir, opts.config);
  const name = lineageNameFor(config.domains);
  const made = await writeCertbotStyleLineage(dir, { name, names: config.domains, server: bed.pebble.directoryUrl, notBeforeOffsetDays: -61, validDays: 90 });
  const manager = bed.manager(config, opts.options);
  const failed = nextEvent<FailedEvent>(manager, 'issue-failed');
  const retry = nextEvent<ScheduledEvent>(manager, 'scheduled', (s) => s.reason === 'retry');
  await opts.inject?.();
  await manager.start();
  return { dir, manager, made, failure: await failed, retry: await retry };
}
