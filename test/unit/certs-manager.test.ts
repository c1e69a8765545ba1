import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import { CertificateManager } from '../../src/certs/manager.js';
import type { Clock } from '../../src/certs/clock.js';
import { defaultIssueScriptPath } from '../../src/certs/issue-runner.js';
import { createCertificate } from '../../src/certs/self-signed.js';
import type { CertificateFiles } from '../../src/certs/lineage-files.js';
import { CertificateStore } from '../../src/certs/lineage-store.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Modules a file loads when it is imported: static imports that survive compilation (not `import type`). */
async function runtimeImports(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*(import|export)\s+(type\s+)?([^'";]*?\s+from\s+)?['"]([^'"]+)['"]/gm)) {
    if (m[2]) continue; // import type / export type: erased
    out.push(m[4] ?? '');
  }
  return out;
}

async function staticClosure(entry: string): Promise<{ files: Set<string>; packages: Set<string> }> {
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop() ?? '';
    if (files.has(file)) continue;
    files.add(file);
    for (const spec of await runtimeImports(file)) {
      if (spec.startsWith('.')) queue.push(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      else packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] ?? spec));
    }
  }
  return { files, packages };
}

describe('CertificateManager wiring', () => {
  it('runs the compiled issue-process.js next to the compiled manager (tests name dist/ explicitly)', () => {
    expect(defaultIssueScriptPath(pathToFileURL('/app/dist/certs/issue-runner.js').href)).toBe('/app/dist/certs/issue-process.js');
    expect(existsSync(join(root, 'dist', 'certs', 'issue-process.js')), 'run `npm run build` first').toBe(true);
    expect(existsSync(join(root, 'dist', 'certs', 'manager.js'))).toBe(true);
  });

  it('the broker side never loads acme-client or the Cloudflare SDK: they are only imported by the issuing child', async () => {
    const broker = await staticClosure(join(root, 'src', 'certs', 'manager.ts'));
    expect([...broker.files].map((f) => f.slice(root.length + 1)).sort()).not.toContain('src/certs/acme.ts');
    expect(broker.packages.has('cloudflare')).toBe(false);
    expect(broker.packages.has('acme-client')).toBe(false);
    // ... while the child does reach both (through dynamic imports at run time).
    const child = await readFile(join(root, 'src', 'certs', 'issue-process.ts'), 'utf8');
    expect(child).toMatch(/await import\('\.\/acme\.js'\)/);
    const cloudflare = await readFile(join(root, 'src', 'certs', 'dns', 'cloudflare.ts'), 'utf8');
    expect(cloudflare).toMatch(/await import\('cloudflare'\)/);
    expect((await runtimeImports(join(root, 'src', 'certs', 'dns', 'cloudflare.ts'))).filter((s) => !s.startsWith('.'))).toEqual([]);
  });
});

describe('CertificateManager with an injected clock (no issuance needed)', () => {
  function fakeClock(start: number): Clock & { advanceToNext(): Promise<number>; pending(): number[] } {
    let now = start;
    let seq = 0;
    const timers = new Map<number, { at: number; fn: () => void }>();
    return {
      now: () => now,
      setTimeout(fn, ms) {
        seq += 1;
        timers.set(seq, { at: now + ms, fn });
        return seq;
      },
      clearTimeout(h) {
        timers.delete(h as number);
      },
      pending: () => [...timers.values()].map((t) => t.at - now),
      async advanceToNext() {
        const [id, next] = [...timers.entries()].sort((a, b) => a[1].at - b[1].at)[0] ?? [];
        if (id === undefined || !next) throw new Error('no timer pending');
        timers.delete(id);
        now = next.at;
        next.fn();
        await new Promise((r) => setTimeout(r, 50)); // let the check's file reads finish
        return now;
      },
    };
  }

  it('serves a valid stored certificate without issuing, checks on the clock, and picks up a newer one found in the store', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mab-mgr-'));
    try {
      const ca = await createCertificate({ commonName: 'Manager Test CA', isCA: true, validDays: 3650 });
      const leaf = async (): Promise<CertificateFiles> => {
        const l = await createCertificate({ commonName: 'example.test', altNames: ['*.example.test', 'example.test'], issuer: ca, validDays: 90, notBeforeOffsetDays: 0 });
        return { cert: l.cert, chain: ca.cert, fullchain: l.cert + ca.cert, privkey: l.key };
      };
      const server = 'https://acme.example/dir';
      const store = new CertificateStore(dir);
      const first = await store.write('example.test', await leaf(), { server, keyType: 'ecdsa-p256', reuseKey: false });
      const clock = fakeClock(Date.now());
      const config = { ...defaultConfig().acme, domains: ['*.example.test', 'example.test'], directoryUrl: server, letsencryptDir: dir };
      const m = new CertificateManager(config, createLogger('silent'), { clock, random: () => 0, issueScript: '/nonexistent/never-forked.js' });
      const served: string[] = [];
      let issuing = 0;
      m.on('certificate', (c: { serial: string }) => served.push(c.serial));
      m.on('issuing', () => (issuing += 1));
      await m.start();
      expect(served).toEqual([first.serial]);
      expect(m.stats()).toMatchObject({ hasCaCertificate: true, serial: first.serial, notAfter: first.notAfter });
      // Far from due: the next check is the 12 h cap (random() = 0: no jitter).
      expect(clock.pending()).toEqual([12 * 3600_000]);

      const second = await store.write('example.test', await leaf(), { server, keyType: 'ecdsa-p256', reuseKey: false });
      await clock.advanceToNext();
      expect(served).toEqual([first.serial, second.serial]);
      expect(issuing).toBe(0);
      expect(clock.pending()).toHaveLength(1);
      await m.stop();
      expect(clock.pending()).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('an issuance that cannot start (no compiled script) is a failure with a clear message, quick first retries and then the backoff, on the clock', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mab-mgr-'));
    try {
      const clock = fakeClock(Date.now());
      const config = { ...defaultConfig().acme, domains: ['example.test'], directoryUrl: 'https://acme.example/dir', letsencryptDir: dir };
      const m = new CertificateManager(config, createLogger('silent'), { clock, random: () => 0.5, issueScript: join(dir, 'missing.js') });
      const failed = new Promise<{ error: Error; retryInMs: number }>((r) => m.once('issue-failed', r));
      await m.start();
      const f = await failed;
      expect(f.error.message).toMatch(/issuing script .*missing\.js does not exist: run `npm run build`/);
      // No CA certificate yet: the first retries come quickly (a tenth of the 5 min base, doubling), then
      // the backoff from its base, so that a DNS API hiccup does not leave a stand-in in place for long.
      expect(f.retryInMs).toBe(30_000);
      expect(clock.pending()).toEqual([30_000]);
      const delays = [f.retryInMs];
      for (let i = 0; i < 5; i++) {
        const next = new Promise<{ retryInMs: number }>((r) => m.once('issue-failed', r));
        await new Promise((r) => setTimeout(r, 0)); // the failed attempt finishes after its event
        await clock.advanceToNext();
        delays.push((await next).retryInMs);
      }
      expect(delays).toEqual([30_000, 60_000, 120_000, 5 * 60_000, 10 * 60_000, 20 * 60_000]);
      expect(m.hasCaCertificate).toBe(false);
      await m.stop();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
