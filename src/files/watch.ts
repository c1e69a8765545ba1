/**
 * Reload a value (users, ACL, TLS material) when its files change, keeping the last good value when the
 * new content is broken.
 *
 * Files are replaced by rename (editors, `passwd`, certbot's symlinks) and Kubernetes ConfigMap/Secret
 * mounts swap a `..data` symlink, so watching a file's inode stops working after the first change. We watch
 * the containing directories instead, filtered to the names we care about (plus `..data`), and also poll
 * every few seconds (device + inode + size + mtime + ctime of each file, symlinks resolved), because
 * fs.watch misses events on some filesystems (NFS, some overlay and FUSE mounts).
 */
import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { Logger } from '../log.js';

export interface WatchAndReloadOptions<T> {
  /** The files the value is made from. */
  files: string[];
  /** Read and parse the files; throw when they are unusable. */
  load: () => Promise<T>;
  /** Receives each successfully loaded value (not called after close()). */
  onLoad: (value: T) => void;
  logger: Logger;
  /** Quiet time after the last change before reloading (bursts of events become one reload). */
  debounceMs?: number;
  /** What is reloaded, for the logs: 'password file', 'ACL', 'TLS certificate'. */
  what: string;
  /** Interval of the fallback poll; 0 disables it. Default 5000. */
  pollMs?: number;
  /** Use fs.watch on the directories (default true); the poll alone still notices changes. */
  useFsWatch?: boolean;
}

export interface Reloader {
  /** Stop watching and polling; onLoad is not called afterwards. */
  close(): void;
  /** Load now (after any load in progress). Resolves true when the value was loaded and handed to onLoad. */
  reload(): Promise<boolean>;
}

/** Names the Kubernetes atomic writer renames in a mounted ConfigMap/Secret directory. */
const K8S_NAMES = ['..data', '..data_tmp'];

/**
 * A cheap identity of a file's current content: device, inode, size, mtime and ctime of the file a path
 * resolves to (symlinks followed), or the error code when it cannot be stat'ed.
 */
export async function fileFingerprint(path: string): Promise<string> {
  try {
    const s = await stat(path, { bigint: true });
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
  } catch (err) {
    return `error:${(err as NodeJS.ErrnoException).code ?? 'unknown'}`;
  }
}

function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The file an error is about, when it says (fs errors: `path`; PasswdError/AclError: `source`). */
function fileOfError(err: unknown, files: string[]): string {
  if (err && typeof err === 'object') {
    const e = err as { path?: unknown; source?: unknown };
    if (typeof e.path === 'string') return e.path;
    if (typeof e.source === 'string') return e.source;
  }
  return files.join(', ');
}

export function watchAndReload<T>(options: WatchAndReloadOptions<T>): Reloader {
  const { load, onLoad, logger, what } = options;
  const files = options.files.map((f) => resolve(f));
  const debounceMs = options.debounceMs ?? 200;
  const pollMs = options.pollMs ?? 5000;
  const useFsWatch = options.useFsWatch ?? true;
  const log = logger.child({ what });

  let closed = false;
  let debounceTimer: NodeJS.Timeout | undefined;
  let firstPendingAt = 0;
  let pollTimer: NodeJS.Timeout | undefined;
  let running: Promise<boolean> | undefined;
  let rerun: Promise<boolean> | undefined;
  let fingerprints = new Map<string, string>();
  const watchers = new Map<string, FSWatcher>();

  // Directory -> names in it that matter.
  const dirs = new Map<string, Set<string>>();
  for (const f of files) {
    const dir = dirname(f);
    const names = dirs.get(dir) ?? new Set<string>(K8S_NAMES);
    names.add(basename(f));
    dirs.set(dir, names);
  }

  async function takeFingerprints(): Promise<Map<string, string>> {
    const entries = await Promise.all(files.map(async (f) => [f, await fileFingerprint(f)] as const));
    return new Map(entries);
  }

  async function loadOnce(): Promise<boolean> {
    // Fingerprint before reading: a change made while we read is seen by the next poll.
    const before = await takeFingerprints();
    let value: T;
    try {
      value = await load();
    } catch (err) {
      fingerprints = before;
      if (!closed) {
        log.warn(
          { file: fileOfError(err, files), reason: describeError(err) },
          `could not reload the ${what} from ${fileOfError(err, files)}: ${describeError(err)}; keeping the last good one`,
        );
      }
      return false;
    }
    fingerprints = before;
    if (closed) return false;
    try {
      onLoad(value);
    } catch (err) {
      log.error({ reason: describeError(err) }, `applying the reloaded ${what} failed: ${describeError(err)}`);
      return false;
    }
    log.info({ files }, `reloaded the ${what}`);
    return true;
  }

  function reload(): Promise<boolean> {
    if (!running) {
      running = loadOnce().finally(() => {
        running = undefined;
      });
      return running;
    }
    // A load is in progress and may have read the old content: run one more after it, shared by all callers.
    if (!rerun) {
      rerun = running.then(() => {
        rerun = undefined;
        return reload();
      });
    }
    return rerun;
  }

  function schedule(reason: string): void {
    if (closed) return;
    const now = Date.now();
    if (debounceTimer === undefined) firstPendingAt = now;
    else clearTimeout(debounceTimer);
    // A steady stream of events must not postpone the reload for ever.
    const wait = now - firstPendingAt >= debounceMs * 5 ? 0 : debounceMs;
    log.debug({ reason }, `change noticed in the ${what}`);
    debounceTimer = setTimeout(() => {
      debounceTimer = undefined;
      reload().catch((err: unknown) => log.error({ reason: describeError(err) }, `reloading the ${what} failed`));
    }, wait);
    debounceTimer.unref();
  }

  function ensureWatchers(): void {
    if (!useFsWatch || closed) return;
    for (const [dir, names] of dirs) {
      if (watchers.has(dir)) continue;
      try {
        const w = watch(dir, { persistent: false }, (_event, filename) => {
          try {
            const name = filename === null ? null : filename.toString();
            if (name === null || names.has(name)) schedule(`${dir}/${name ?? '?'}`);
          } catch (err) {
            log.error({ reason: describeError(err) }, 'file watch callback failed');
          }
        });
        w.on('error', (err: Error) => {
          log.warn({ dir, reason: err.message }, `watching ${dir} failed; relying on polling`);
          w.close();
          watchers.delete(dir);
        });
        watchers.set(dir, w);
      } catch (err) {
        // Missing directory, no inotify watches left...: the poll still notices changes, and retries this.
        log.debug({ dir, reason: describeError(err) }, `cannot watch ${dir}; relying on polling`);
      }
    }
  }

  async function poll(): Promise<void> {
    ensureWatchers();
    if (running || debounceTimer !== undefined) return;
    const now = await takeFingerprints();
    for (const [f, fp] of now) {
      if (fingerprints.get(f) !== fp) {
        schedule(`poll: ${f}`);
        return;
      }
    }
  }

  function startPolling(): void {
    if (pollMs <= 0 || closed) return;
    pollTimer = setTimeout(() => {
      poll()
        .catch((err: unknown) => log.error({ reason: describeError(err) }, 'polling failed'))
        .finally(startPolling);
    }, pollMs);
    pollTimer.unref();
  }

  ensureWatchers();
  // The baseline for the poll: the files as they are now (the caller loaded them, or will call reload()).
  takeFingerprints()
    .then((fp) => {
      if (fingerprints.size === 0) fingerprints = fp;
    })
    .catch(() => undefined)
    .finally(startPolling);

  return {
    reload,
    close(): void {
      closed = true;
      if (debounceTimer !== undefined) clearTimeout(debounceTimer);
      if (pollTimer !== undefined) clearTimeout(pollTimer);
      debounceTimer = undefined;
      pollTimer = undefined;
      for (const w of watchers.values()) w.close();
      watchers.clear();
    },
  };
}
