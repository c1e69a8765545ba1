/**
 * The store's promise under kill -9: everything a resolved flush() covered is on disk after the process
 * dies at any moment, and batches are applied whole and in order (the disk holds a prefix of the writes).
 * A child process (test/support/store-crash-child.mjs, running the built dist/) writes queue entries and
 * reports what it has flushed; it is killed with SIGKILL at a random moment and the database is reopened.
 */
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { LevelStore } from '../../src/broker/store/level.js';
import { tempDirs } from '../support/temp-dirs.js';

const tempDir = tempDirs();
const root = fileURLToPath(new URL('../../', import.meta.url));
const child = join(root, 'test/support/store-crash-child.mjs');
const PRODUCERS = 4;
const WINDOW = 5;

/** Runs the child until a random moment after its first report, kills it, and returns the last seq each producer reported. */
async function runAndKill(dir: string, killAfterMs: number): Promise<{ reported: number[]; reports: number }> {
  const proc = spawn(process.execPath, [child, dir, String(PRODUCERS), String(WINDOW)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const reported = new Array<number>(PRODUCERS).fill(0);
  let reports = 0;
  let stderr = '';
  let rest = '';
  let timer: NodeJS.Timeout | undefined;
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  proc.stdout.on('data', (d: Buffer) => {
    const lines = (rest + d.toString()).split('\n');
    rest = lines.pop()!;
    for (const line of lines) {
      const [p, seq] = line.split(' ').map(Number) as [number, number];
      reported[p] = Math.max(reported[p]!, seq);
      reports += 1;
    }
    timer ??= setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
  });
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => proc.on('close', (c, s) => resolve([c, s])));
  clearTimeout(timer);
  expect({ signal, stderr }).toEqual({ signal: 'SIGKILL', stderr: '' }); // killed mid-stream, not finished or crashed
  expect(code).toBeNull();
  return { reported, reports };
}

describe('LevelStore under kill -9', () => {
  it('keeps every entry whose flush() had resolved, and a whole prefix of the writes', async () => {
    for (const name of ['level', 'codec', 'legacy-aedes']) {
      const [source, output] = [join(root, `src/broker/store/${name}.ts`), join(root, `dist/broker/store/${name}.js`)];
      expect(existsSync(output), `${output} is missing: run "npm run build" (npm test does) before this test`).toBe(true);
      expect(statSync(output).mtimeMs, `${output} is older than its source: run "npm run build"`).toBeGreaterThanOrEqual(statSync(source).mtimeMs);
    }
    for (const killAfterMs of [0, 37, 150, 400].map((ms) => ms + Math.floor(Math.random() * 50))) {
      const dir = await tempDir(join(tmpdir(), 'mab-crash-'));
      const { reported, reports } = await runAndKill(dir, killAfterMs);
      const store = await LevelStore.open(dir, createLogger('silent'));
      const { sessions } = await store.load();
      await store.close();
      expect(reports).toBeGreaterThan(0);
      for (let p = 0; p < PRODUCERS; p++) {
        const queue = sessions.find((s) => s.session.clientId === `p:${p}`)?.queue ?? [];
        const seqs = queue.map((e) => e.seq);
        const end = seqs.length > 0 ? seqs.at(-1)! + 1 : 0;
        // At least what was reported, and exactly the window that a prefix of the writes leaves.
        expect(end, `producer ${p} reported ${reported[p]} flushed, the disk has up to ${end}`).toBeGreaterThanOrEqual(reported[p]!);
        expect(seqs).toEqual(Array.from({ length: Math.min(WINDOW, end) }, (_, i) => end - Math.min(WINDOW, end) + i));
        for (const e of queue) expect(e.message.payload.toString('latin1', 0, 12)).toMatch(new RegExp(`^${p}:${e.seq}:`));
      }
    }
  });
});
