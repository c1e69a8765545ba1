/** Private directories: made as certbot makes its own, mode 0700, whatever the umask. */
import { chmod, lstat, mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/** mkdir -p; directories this creates get mode 0700 (certbot's). Existing ones are left as they are. */
export async function ensureDir(path: string): Promise<void> {
  const missing: string[] = [];
  let p = resolve(path);
  for (;;) {
    try {
      await lstat(p);
      break;
    } catch {
      missing.unshift(p);
      const parent = dirname(p);
      if (parent === p) break;
      p = parent;
    }
  }
  for (const dir of missing) {
    try {
      await mkdir(dir, { mode: 0o700 });
      await chmod(dir, 0o700);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}
