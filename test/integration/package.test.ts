/**
 * What the Dockerfile's runtime stage does, from a clean copy: the packed package plus the lock file,
 * production dependencies only (`npm ci --omit=dev`), then start the broker, connect over TLS, stop.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { connectMqtt, collectMessages } from '../support/clients.js';
import { PASSWD, REPO_ROOT, spawnBroker, USERS, type SpawnedBroker } from '../support/broker.js';

const exec = promisify(execFile);
let dir: string | undefined;
let broker: SpawnedBroker | undefined;

afterAll(async () => {
  await broker?.stop('SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the runtime image, rebuilt from a clean copy', () => {
  it('npm pack + npm ci --omit=dev runs the broker over TLS without any dev dependency', { timeout: 300_000 }, async () => {
    dir = await mkdtemp(join(tmpdir(), 'mab-pack-'));
    const { stdout } = await exec('npm', ['pack', '--json', '--pack-destination', dir], { cwd: REPO_ROOT, maxBuffer: 16 << 20 });
    const packed = (JSON.parse(stdout) as { filename: string; files: { path: string }[] }[])[0];
    const files = packed?.files.map((f) => f.path) ?? [];
    expect(files).toContain('dist/cli.js');
    expect(files).toContain('config.example.json');
    expect(files.some((f) => f.startsWith('src/') || f.startsWith('test/'))).toBe(false);

    await exec('tar', ['-xzf', join(dir, packed?.filename ?? ''), '-C', dir]);
    const app = join(dir, 'package');
    await copyFile(join(REPO_ROOT, 'package-lock.json'), join(app, 'package-lock.json'));
    await exec('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: app, timeout: 240_000, maxBuffer: 16 << 20 });
    await expect(stat(join(app, 'node_modules', 'vitest'))).rejects.toThrow();
    await expect(stat(join(app, 'node_modules', 'level'))).resolves.toBeDefined();
    await expect(stat(join(app, 'node_modules', 'mqtt-packet'))).rejects.toThrow();
    await expect(stat(join(app, 'node_modules', 'aedes'))).rejects.toThrow();

    await writeFile(join(app, 'passwd'), PASSWD);
    await writeFile(
      join(app, 'config.json'),
      JSON.stringify({ listeners: [{ port: 0, host: '127.0.0.1', selfSigned: true }], passwordFile: 'passwd', dataDir: 'state', ops: { port: -1 } }),
    );
    broker = await spawnBroker(['serve', '--config', 'config.json'], { NODE_ENV: 'production' }, 1, app);
    const ca = await readFile(join(app, 'state', 'selfsigned', 'cert.pem'), 'utf8');
    const client = await connectMqtt({ port: broker.ports[0] ?? 0, ca, username: 'cam', password: USERS.cam });
    await client.subscribeAsync('image/test', { qos: 1 });
    const got = collectMessages(client, 1);
    await client.publishAsync('image/test', 'from the packed build', { qos: 1 });
    expect((await got)[0]?.payload).toBe('from the packed build');
    await client.endAsync();
    expect(await broker.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });
});
