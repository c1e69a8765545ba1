/**
 * DNS that never propagates, a CA that is down or untrusted, record removal failing: the current certificate
 * stays, retries back off, records are removed by id (also on failure, also by the next attempt).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { IssuedEvent } from '../../src/certs/manager.js';
import { CertificateStore } from '../../src/certs/lineage-store.js';
import { failFirstRenewal, nextEvent, startAcmeTestbed, type AcmeTestbed, type FailedRenewal } from '../support/pebble.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('renewal with DNS or the CA failing', () => {
  let bed: AcmeTestbed;
  beforeAll(async () => {
    bed = await startAcmeTestbed();
  });
  afterEach(async () => {
    await bed?.reset();
  });
  afterAll(async () => {
    await bed?.close();
  });

  /** Resolves with the first captured log line from now on that contains msg. */
  function lineSeen(msg: string): Promise<string> {
    return new Promise((resolve) => {
      let done = false;
      bed.logs.onLine((line) => {
        if (!done && line.includes(msg)) {
          done = true;
          resolve(line);
        }
      });
    });
  }

  function alive(pid: number): boolean {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }

  async function expectKeptAndClean(r: FailedRenewal): Promise<void> {
    expect(r.manager.current()?.serial).toBe(r.made.serial);
    expect(r.manager.hasCaCertificate).toBe(true);
    expect((await new CertificateStore(r.dir).read('example.test'))?.serial).toBe(r.made.serial);
    expect(bed.cloudflare.records()).toEqual([]);
    expect(r.retry.inMs).toBeGreaterThanOrEqual(240);
    expect(r.retry.inMs).toBeLessThanOrEqual(360);
  }

  it('DNS never propagates: bounded wait, clear error, both records removed, then the retry renews', async () => {
    const from = bed.cloudflare.requests.length;
    const r = await failFirstRenewal(bed, { inject: () => bed.dns.setServing(false), options: { propagation: { intervalMs: 50, timeoutMs: 600, queryTimeoutMs: 300, progressEveryMs: 200 } } });
    expect(r.failure.error.message).toMatch(
      new RegExp(`^DNS propagation timed out after \\d+ s \\(\\d+ checks\\): _acme-challenge\\.example\\.test on ${bed.dns.address.replace(/\./g, '\\.')}: 2 of 2 value\\(s\\) missing\\. Check that the configured dnsResolvers`),
    );
    expect(bed.logs.text()).toMatch(/still waiting for TXT records to propagate/);
    const writes = bed.cloudflare.requests.slice(from).filter((q) => q.method !== 'GET').map((q) => `${q.method} ${q.status}`);
    expect(writes).toEqual(['POST 200', 'POST 200', 'DELETE 200', 'DELETE 200']);
    await expectKeptAndClean(r);
    bed.dns.setServing(true);
    const renewed = await nextEvent<IssuedEvent>(r.manager, 'issued');
    await r.manager.stop();
    expect(renewed.serial).not.toBe(r.made.serial);
    expect(bed.cloudflare.records()).toEqual([]);
  });

  it('a record that cannot be removed (past the SDK retries) is removed by the next attempt', async () => {
    // The first record's DELETE fails, and so do both SDK retries of it.
    let target: string | undefined;
    bed.cloudflare.onRequest((q) => {
      if (target === undefined && q.method === 'DELETE') {
        target = q.path;
        bed.cloudflare.injectFault({ status: 500 }, 3, (x) => x.method === 'DELETE' && x.path === target);
      }
    });
    const r = await failFirstRenewal(bed, { inject: () => bed.dns.setServing(false), options: { propagation: { intervalMs: 50, timeoutMs: 300, queryTimeoutMs: 300 } } });
    expect(r.failure.error.message).toMatch(/^DNS propagation timed out/);
    expect(bed.logs.text()).toMatch(/could not remove TXT record; will retry on the next attempt/);
    expect(bed.cloudflare.records()).toHaveLength(1);
    bed.dns.setServing(true);
    await nextEvent<IssuedEvent>(r.manager, 'issued');
    await r.manager.stop();
    expect(bed.logs.text()).toMatch(/removing TXT records left by an interrupted attempt/);
    expect(bed.cloudflare.records()).toEqual([]);
  });

  it('the CA is down: fails fast with a clear error and touches no DNS; after it is back the retry renews', async () => {
    await bed.pebble.kill();
    const apiCalls = bed.cloudflare.requests.length;
    let r: FailedRenewal;
    try {
      r = await failFirstRenewal(bed);
    } finally {
      await bed.pebble.restart();
    }
    expect(r.failure.error.message).toMatch(/^Cannot reach the ACME directory at https:\/\/127\.0\.0\.1:\d+\/dir: ECONNREFUSED .*\(after 2 attempts\)\. Check the directory URL and the network; will retry later\.$/);
    expect(bed.cloudflare.requests.length).toBe(apiCalls);
    await expectKeptAndClean(r);
    // pebble restarted with an empty database: our stored account key registers again and the URL is updated.
    const renewed = await nextEvent<IssuedEvent>(r.manager, 'issued');
    await r.manager.stop();
    expect(renewed.serial).not.toBe(r.made.serial);
    expect(bed.logs.text()).toMatch(/ACME account (created and stored|URL updated)/);
  });

  it('stop() during an issuance: the child gets SIGTERM, removes its TXT records and exits', async () => {
    const dir = await bed.newDir();
    bed.dns.setServing(false); // the child waits for propagation
    const m = bed.manager(bed.config(dir), { propagation: { intervalMs: 50, timeoutMs: 120_000 } });
    const waiting = lineSeen('waiting for TXT records to propagate');
    await m.start();
    await waiting;
    expect(bed.cloudflare.records()).toHaveLength(2);
    const pid = m.issuingPid;
    expect(pid).toBeDefined();
    await m.stop();
    expect(alive(pid ?? 0)).toBe(false);
    expect(bed.cloudflare.records()).toEqual([]);
    expect(bed.logs.text()).toMatch(/"reason":"SIGTERM","msg":"issuing process stopping early; removing its TXT records"/);
    expect(m.stats().renewalsFailed).toBe(0); // a stop is not a failure
  });

  it('kill -9 of the broker: its issuing child notices, removes its TXT records and exits', async () => {
    const dir = await bed.newDir();
    bed.dns.setServing(false);
    const manager = pathToFileURL(join(root, 'dist', 'certs', 'manager.js')).href;
    const log = pathToFileURL(join(root, 'dist', 'log.js')).href;
    const script = [
      `import { CertificateManager } from ${JSON.stringify(manager)};`,
      `import { createLogger } from ${JSON.stringify(log)};`,
      'const { config, options } = JSON.parse(process.env.MAB_TEST_INPUT);',
      "const m = new CertificateManager(config, createLogger('debug'), options);",
      'await m.start();',
      'setInterval(() => undefined, 1000);',
    ].join('\n');
    const { childOutput: _out, ...options } = bed.managerOptions({ propagation: { intervalMs: 50, timeoutMs: 120_000 } });
    const broker = spawn(process.execPath, ['--input-type=module', '-e', script], {
      env: { PATH: process.env.PATH ?? '', MAB_TEST_INPUT: JSON.stringify({ config: bed.config(dir), options }) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    broker.stdout.pipe(bed.logs.stream, { end: false });
    broker.stderr.pipe(bed.logs.stream, { end: false });
    try {
      const started = lineSeen('issuing process started');
      await lineSeen('waiting for TXT records to propagate');
      const childPid = Number(/"pid":(\d+)/.exec(await started)?.[1]);
      expect(bed.cloudflare.records()).toHaveLength(2);
      // Listen before the kill: the child may log this before the test sees the broker's exit.
      const noticed = lineSeen('parent process went away');
      broker.kill('SIGKILL');
      await once(broker, 'exit');
      await noticed;
      // The child removes its records and exits on its own.
      while (alive(childPid) || bed.cloudflare.records().length > 0) await new Promise((r) => setTimeout(r, 50));
      expect(bed.cloudflare.records()).toEqual([]);
    } finally {
      if (broker.exitCode === null && broker.signalCode === null) broker.kill('SIGKILL');
    }
  });

  it('the CA presents a certificate we do not trust: the error says so', async () => {
    const r = await failFirstRenewal(bed, { options: { trustedCa: undefined } });
    await r.manager.stop();
    expect(r.failure.error.message).toMatch(/^The ACME server at https:\/\/127\.0\.0\.1:\d+\/dir presented a TLS certificate this process does not trust \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED_CERT_IN_CHAIN): .*\)\. For a private CA set NODE_EXTRA_CA_CERTS\.$/);
    await expectKeptAndClean(r);
  });
});
