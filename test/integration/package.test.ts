/**
 * The package from a clean copy, without Docker:
 * - what a fresh clone gives a user who follows the README: `npm ci`, then `npx mqtt-acme-broker passwd ...`
 *   (dist/ is not in git; package.json's `prepare` builds it during `npm ci`);
 * - what the Dockerfile's runtime stage does: the packed package plus the lock file, production dependencies
 *   only (`npm ci --omit=dev --ignore-scripts`), then start the broker, connect over TLS, stop.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { pbkdf2Sync, timingSafeEqual } from 'node:crypto';
import { copyFile, cp, lstat, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { connectMqtt, collectMessages } from '../support/clients.js';

const exec = promisify(execFile);
const REPO_ROOT = resolve(import.meta.dirname, '../..');
const dirs: string[] = [];
const children: ChildProcess[] = [];

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

interface Packed {
  port: number;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * `node APP/dist/cli.js serve ...` with APP as cwd: the packed code with the packed dependencies only (not
 * this checkout's dist/ or node_modules). Resolves with the port of its one listener.
 */
async function startPacked(app: string, args: string[]): Promise<Packed> {
  const child = spawn(process.execPath, [join(app, 'dist/cli.js'), ...args], {
    cwd: app,
    env: { PATH: process.env.PATH, NODE_ENV: 'production', OPS_PORT: '-1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.on('exit', (code, signal) => res({ code, signal })),
  );
  const port = await new Promise<number>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`the packed broker did not listen within 20 s:\n${output}`)), 20_000);
    const scan = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      for (const line of output.split('\n')) {
        const m = /"msg":"listening"/.test(line) ? /"port":(\d+)/.exec(line) : null;
        if (m) {
          clearTimeout(timer);
          res(Number(m[1]));
        }
      }
    };
    child.stdout.on('data', scan);
    child.stderr.on('data', (d: Buffer) => (output += d.toString('utf8')));
    void exit.then(({ code }) => {
      clearTimeout(timer);
      rej(new Error(`the packed broker exited with ${code} before listening:\n${output}`));
    });
  });
  return {
    port,
    exit,
    stop: () => {
      child.kill('SIGTERM');
      return exit;
    },
  };
}

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/**
 * A clean copy of the checkout, as a clone would give it: the files git tracks (as they are in the working
 * tree), nothing else: no node_modules, no dist, no untracked file.
 */
async function cleanCopy(): Promise<string> {
  const dir = await tempDir('mab-clone-');
  const { stdout } = await exec('git', ['ls-files', '-z'], { cwd: REPO_ROOT, maxBuffer: 16 << 20 });
  for (const file of stdout.split('\0').filter((f) => f !== '')) {
    const from = join(REPO_ROOT, file);
    const exists = await lstat(from).then(() => true, () => false);
    if (!exists) continue; // deleted in the working tree, not yet in the index
    await mkdir(dirname(join(dir, file)), { recursive: true });
    await cp(from, join(dir, file), { verbatimSymlinks: true });
  }
  return dir;
}

/** The code block of a README section (`## Title` up to the next `## `). */
function sectionOf(readme: string, title: string): string {
  const start = readme.indexOf(`\n## ${title}\n`);
  if (start < 0) throw new Error(`README has no section "## ${title}"`);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

/** Checks a mosquitto `$7$` line against the password with PBKDF2-HMAC-SHA512 itself (not the broker's code). */
function pbkdf2Matches(line: string, user: string, password: string): boolean {
  const m = /^([^:]+):\$7\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(line);
  if (m === null || m[1] !== user) return false;
  const expected = Buffer.from(m[4]!, 'base64');
  const actual = pbkdf2Sync(password, Buffer.from(m[3]!, 'base64'), Number(m[2]), 64, 'sha512');
  return expected.length === 64 && timingSafeEqual(actual, expected);
}

describe('a fresh clone, following the README', () => {
  it(
    'npm ci builds dist (prepare), so that the Kubernetes section\'s npx mqtt-acme-broker passwd writes a $7$ line',
    { timeout: 240_000 },
    async () => {
      const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8');
      const k8s = sectionOf(readme, 'Kubernetes');
      // The README's own command, run as written (its trailing comment dropped), after the npm ci it names first.
      const command = /^npx mqtt-acme-broker passwd .*$/m.exec(k8s)?.[0].replace(/\s+#.*$/, '');
      expect(command, 'the Kubernetes section shows how to add a user with npx').toBeDefined();
      expect(k8s.indexOf('npm ci')).toBeGreaterThanOrEqual(0);
      expect(k8s.indexOf('npm ci')).toBeLessThan(k8s.indexOf(command!));
      const [, file, user, quotedPassword] = /^npx mqtt-acme-broker passwd -b (\S+) (\S+) '([^']+)'$/.exec(command!) ?? [];
      expect(file, command).toBe('k8s/passwd');

      const clone = await cleanCopy();
      await expect(stat(join(clone, 'dist'))).rejects.toThrow();
      await expect(stat(join(clone, 'k8s/passwd'))).resolves.toBeDefined();

      const started = Date.now();
      // --prefer-offline: the npm cache that installed this checkout has every tarball; the registry is asked
      // only for what it lacks.
      await exec('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: clone, timeout: 200_000, maxBuffer: 16 << 20 });
      const npmCiMs = Date.now() - started;
      await expect(stat(join(clone, 'dist/cli.js'))).resolves.toBeDefined();

      const { stderr } = await exec('sh', ['-c', command!], { cwd: clone, timeout: 60_000 });
      const lines = (await readFile(join(clone, file!), 'utf8')).split('\n');
      const added = lines.filter((l) => l.startsWith(`${user!}:`));
      expect(added, stderr).toHaveLength(1);
      expect(added[0]).toMatch(/^[^:]+:\$7\$101\$/);
      expect(pbkdf2Matches(added[0]!, user!, quotedPassword!)).toBe(true);
      expect(pbkdf2Matches(added[0]!, user!, `${quotedPassword!}x`)).toBe(false);
      console.info(`clean clone: npm ci (with prepare's build) took ${(npmCiMs / 1000).toFixed(1)} s`);
    },
  );
});

describe('the runtime image, rebuilt from a clean copy', () => {
  it('npm pack + npm ci --omit=dev --ignore-scripts runs the broker over TLS without any dev dependency', { timeout: 300_000 }, async () => {
    const dir = await tempDir('mab-pack-');
    // --ignore-scripts: `prepare` would rebuild dist/ of this checkout while other tests run node dist/...;
    // `npm test` builds it before the tests (pretest).
    const { stdout } = await exec('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], {
      cwd: REPO_ROOT,
      maxBuffer: 16 << 20,
    });
    const packed = (JSON.parse(stdout) as { filename: string; files: { path: string }[] }[])[0];
    const files = packed?.files.map((f) => f.path) ?? [];
    expect(files).toContain('dist/cli.js');
    expect(files).toContain('config.example.json');
    expect(files.some((f) => f.startsWith('src/') || f.startsWith('test/'))).toBe(false);

    await exec('tar', ['-xzf', join(dir, packed?.filename ?? ''), '-C', dir]);
    const app = join(dir, 'package');
    // The packed package.json keeps `prepare` (a build with tsc): an install without dev dependencies must
    // not run it, as the Dockerfile's runtime stage does not.
    const manifest = JSON.parse(await readFile(join(app, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
    expect(manifest.scripts?.prepare).toBe('npm run build');
    await copyFile(join(REPO_ROOT, 'package-lock.json'), join(app, 'package-lock.json'));
    await exec('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], {
      cwd: app,
      timeout: 240_000,
      maxBuffer: 16 << 20,
    });
    await expect(stat(join(app, 'node_modules', 'vitest'))).rejects.toThrow();
    await expect(stat(join(app, 'node_modules', 'typescript'))).rejects.toThrow();
    await expect(stat(join(app, 'node_modules', 'level'))).resolves.toBeDefined();
    await expect(stat(join(app, 'node_modules', 'mqtt-packet'))).rejects.toThrow();
    await expect(stat(join(app, 'node_modules', 'aedes'))).rejects.toThrow();

    // level's native module (classic-level) loads its prebuilt binary although no install script ran.
    const probe =
      "import { Level } from 'level'; const db = new Level('probe-db'); await db.open(); " +
      "await db.put('k', 'v'); process.stdout.write(await db.get('k')); await db.close();";
    const loaded = await exec(process.execPath, ['--input-type=module', '-e', probe], { cwd: app, timeout: 30_000 });
    expect(loaded.stdout).toBe('v');

    // The packed CLI makes the user, the packed broker serves it.
    const cli = join(app, 'dist/cli.js');
    await exec(process.execPath, [cli, 'passwd', '-c', '-b', 'passwd', 'cam', 's3cret'], { cwd: app, timeout: 30_000 });
    await writeFile(
      join(app, 'config.json'),
      JSON.stringify({ listeners: [{ port: 0, host: '127.0.0.1', selfSigned: true }], passwordFile: 'passwd', dataDir: 'state', ops: { port: -1 } }),
    );
    const broker = await startPacked(app, ['serve', '--config', 'config.json']);
    const ca = await readFile(join(app, 'state', 'selfsigned', 'cert.pem'), 'utf8');
    const client = await connectMqtt({ port: broker.port, ca, username: 'cam', password: 's3cret' });
    await client.subscribeAsync('image/test', { qos: 1 });
    const got = collectMessages(client, 1);
    await client.publishAsync('image/test', 'from the packed build', { qos: 1 });
    expect((await got)[0]?.payload).toBe('from the packed build');
    await client.endAsync();
    expect(await broker.stop()).toEqual({ code: 0, signal: null });
    // Persistence (on by default) went through level, on disk.
    await expect(stat(join(app, 'state', 'persistence', 'CURRENT'))).resolves.toBeDefined();
  });
});
