/** Temp directories for a test file, removed after all its tests (call at the top level of the file). */
import { afterAll } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';

export function tempDirs(): (prefix: string) => Promise<string> {
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });
  return async (prefix) => {
    const dir = await mkdtemp(prefix);
    dirs.push(dir);
    return dir;
  };
}
