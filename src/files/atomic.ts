/**
 * Crash-safe file replacement, for everything the broker writes (certificates, accounts, passwd files):
 * write a temp file beside the target, fsync it, rename it over the target, fsync the directory. A crash at
 * any point leaves either the old file or the new one, plus at most a temp file that TEMP_FILE matches and
 * removeTemporaries deletes. Symlinks are replaced the same way (a temp link renamed over the old one).
 */
import { randomBytes } from 'node:crypto';
import { chown, open, readdir, realpath, rename, stat, symlink, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Names of the temp files made here (`.NAME.tmp-PID-HEX`), for clean-up of ones a crash left behind. */
const TEMP_FILE = /^\..+\.tmp-\d+-[0-9a-f]+$/;

/** Remove the temp files a crash left behind in `dir` (best effort: a missing directory has none). */
export async function removeTemporaries(dir: string): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return;
  }
  await Promise.all(entries.filter((e) => TEMP_FILE.test(e)).map((e) => unlink(join(dir, e)).catch(() => undefined)));
}

function tempName(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** fsync a directory so that a rename in it is durable; a no-op where the file system refuses. */
export async function syncDirectory(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // not every file system lets a directory be fsynced; the rename is still atomic
  }
}

export interface AtomicWriteOptions {
  /** Mode of the new file, exactly (the umask does not narrow it); default 0644. */
  mode?: number;
  /**
   * Replace an existing file the way mosquitto_passwd does: follow a symlink to the file it names, and keep
   * that file's mode (and owner, when allowed); `mode` then applies to a new file only.
   */
  keepExisting?: boolean;
  /** Called between the write and the rename (tests simulate crashes there). */
  beforeRename?: () => void | Promise<void>;
}

export async function writeFileAtomic(path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  let target = path;
  let mode = options.mode ?? 0o644;
  let owner: { uid: number; gid: number } | undefined;
  if (options.keepExisting === true) {
    try {
      target = await realpath(path);
      const s = await stat(target);
      mode = s.mode & 0o7777;
      owner = { uid: s.uid, gid: s.gid };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  const tmp = tempName(target);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    try {
      await fh.writeFile(data);
      await fh.chmod(mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (owner && (owner.uid !== process.getuid?.() || owner.gid !== process.getgid?.())) {
      await chown(tmp, owner.uid, owner.gid).catch(() => undefined);
    }
    await options.beforeRename?.();
    await rename(tmp, target);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await syncDirectory(dirname(target));
}

/** Point the symlink `path` at `target` atomically (a temp link renamed over the old link or file). */
export async function replaceSymlink(path: string, target: string, beforeRename?: () => void | Promise<void>): Promise<void> {
  const tmp = tempName(path);
  await symlink(target, tmp);
  try {
    await beforeRename?.();
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await syncDirectory(dirname(path));
}

