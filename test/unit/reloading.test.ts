import { afterEach, describe, expect, it } from 'vitest';
import { mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/log.js';
import { loadPasswdFile, type Users } from '../../src/auth/passwd.js';
import { FileReadError, readBytes, readIfExists, readText, strerror } from '../../src/files/read.js';
import { watchAndReload, type Reloader } from '../../src/files/watch.js';
import { tempDirs } from '../support/temp-dirs.js';

const CAM = 'cam:$7$101$0eyo1LK2tTCkVyoE$TfD+UAkPpXvqGbA1d0owxs3bAfGUY7jCKfITOwTk3Or6LAiHgKPAC4ABTZO9xtw478xwXp1iy9HLT0J0Nx2pBg==\n';
const BOB = 'bob:$7$101$Xw2crMfuucSq3Pc4$E/FqK+cGWM6sqOPJcWi4gyTtZy5OuhwArdh6wry2Bk0jwTKNiiRDm/b9q2P9wlB78nznpwRWxLJOT3OfrPvL5Q==\n';

interface LogLine {
  level: string;
  msg: string;
  file?: string;
  reason?: string;
}

function capture(): { logger: ReturnType<typeof createLogger>; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = createLogger('debug', {
    write(s: string) {
      lines.push(JSON.parse(s) as LogLine);
    },
  });
  return { logger, lines };
}

/** Wait until `check` holds (the test timeout bounds the wait). */
async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 20));
}

const mkdtemp = tempDirs();

const open: Reloader[] = [];
afterEach(() => {
  for (const r of open.splice(0)) r.close();
});

/** Watch a passwd file the way main.ts does; `current` is what the broker would be using. */
async function setup(initial: string, opts: { useFsWatch?: boolean; pollMs?: number; dirName?: string } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'mab-reload-'));
  const file = join(dir, opts.dirName ?? 'passwd');
  await writeFile(file, initial);
  const { logger, lines } = capture();
  let current: Users = await loadPasswdFile(file, logger);
  const loads: Users[] = [];
  const reloader = watchAndReload<Users>({
    files: [file],
    load: () => loadPasswdFile(file, logger),
    onLoad: (users) => {
      current = users;
      loads.push(users);
    },
    logger,
    debounceMs: 50,
    what: 'password file',
    ...(opts.useFsWatch === undefined ? {} : { useFsWatch: opts.useFsWatch }),
    // Each test exercises one mechanism: fs.watch alone (no poll) unless it asks for the poll.
    pollMs: opts.pollMs ?? 0,
  });
  open.push(reloader);
  return { dir, file, lines, loads, reloader, current: () => current };
}

describe('watchAndReload', () => {
  it('picks up a good change written in place', async () => {
    const t = await setup(CAM);
    expect(t.current().names()).toEqual(['cam']);
    await writeFile(t.file, CAM + BOB);
    await until(() => t.current().has('bob'));
    expect(t.lines.some((l) => l.level === 'info' && /reloaded the password file/.test(l.msg))).toBe(true);
  });

  it('keeps the last good value when the file breaks, says which file and why, and recovers on the next good change', async () => {
    const t = await setup(CAM);
    const good = t.current();
    await writeFile(t.file, 'cam:not-a-hash\n');
    await until(() => t.lines.some((l) => l.level === 'warn' && /could not reload/.test(l.msg)));
    const warning = t.lines.find((l) => l.level === 'warn' && /could not reload/.test(l.msg));
    expect(warning?.file).toBe(t.file);
    expect(warning?.reason).toMatch(/no valid entry/);
    expect(warning?.msg).toContain(t.file);
    expect(warning?.msg).not.toContain('not-a-hash');
    expect(t.loads).toEqual([]);
    expect(t.current()).toBe(good);
    expect(await t.current().verify('cam', 's3cret')).toBe(true);

    await writeFile(t.file, BOB);
    await until(() => t.loads.length === 1);
    expect(t.current().names()).toEqual(['bob']);
  });

  it('picks up a file replaced by rename (editors, passwd, atomic writers)', async () => {
    const t = await setup(CAM);
    const tmp = join(t.dir, '.passwd.tmp');
    await writeFile(tmp, BOB);
    await rename(tmp, t.file);
    await until(() => t.current().has('bob'));
    expect(t.current().has('cam')).toBe(false);
  });

  it('picks up a Kubernetes-style ..data symlink swap', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mab-k8s-'));
    await mkdir(join(dir, '..2024_01'));
    await writeFile(join(dir, '..2024_01', 'passwd'), CAM);
    await symlink('..2024_01', join(dir, '..data'));
    await symlink('..data/passwd', join(dir, 'passwd'));
    const file = join(dir, 'passwd');
    const { logger } = capture();
    let current = await loadPasswdFile(file, logger);
    const reloader = watchAndReload<Users>({
      files: [file],
      load: () => loadPasswdFile(file, logger),
      onLoad: (u) => (current = u),
      logger,
      debounceMs: 50,
      what: 'password file',
      pollMs: 0,
    });
    open.push(reloader);
    expect(current.names()).toEqual(['cam']);
    // What kubelet's atomic writer does: new timestamped dir, new ..data_tmp link, rename it over ..data.
    await mkdir(join(dir, '..2024_02'));
    await writeFile(join(dir, '..2024_02', 'passwd'), BOB);
    await symlink('..2024_02', join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    await until(() => current.has('bob'));
    expect(current.has('cam')).toBe(false);
  });

  it('notices changes by polling when file system events are not available', async () => {
    const t = await setup(CAM, { useFsWatch: false, pollMs: 50 });
    const tmp = join(t.dir, 'next');
    await writeFile(tmp, CAM + BOB);
    await rename(tmp, t.file);
    await until(() => t.current().has('bob'));
  });

  it('reload() answers whether the value was loaded; a throwing onLoad is logged, not thrown', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mab-reload-'));
    const file = join(dir, 'passwd');
    await writeFile(file, CAM);
    const { logger, lines } = capture();
    let fail = true;
    const seen: number[] = [];
    const reloader = watchAndReload<Users>({
      files: [file],
      load: () => loadPasswdFile(file, logger),
      onLoad: (u) => {
        if (fail) throw new Error('apply failed');
        seen.push(u.size);
      },
      logger,
      what: 'password file',
      pollMs: 0,
      useFsWatch: false,
    });
    open.push(reloader);
    expect(await reloader.reload()).toBe(false);
    expect(lines.some((l) => l.level === 'error' && /apply failed/.test(l.msg))).toBe(true);
    fail = false;
    expect(await reloader.reload()).toBe(true);
    await writeFile(file, 'garbage\n');
    expect(await reloader.reload()).toBe(false);
    await writeFile(join(dir, 'passwd'), BOB);
    expect(await reloader.reload()).toBe(true);
    expect(seen).toEqual([1, 1]);
    reloader.close();
    expect(await reloader.reload()).toBe(false); // nothing is handed over after close()
    expect(seen).toEqual([1, 1]);
  });

  it('a missing file is a failed load that names the file, not a crash', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mab-reload-'));
    const file = join(dir, 'absent');
    const { logger, lines } = capture();
    const reloader = watchAndReload<Users>({
      files: [file],
      load: () => loadPasswdFile(file, logger),
      onLoad: () => undefined,
      logger,
      what: 'password file',
      pollMs: 0,
    });
    open.push(reloader);
    expect(await reloader.reload()).toBe(false);
    const warning = lines.find((l) => l.level === 'warn');
    expect(warning?.file).toBe(file);
    expect(warning?.reason).toMatch(/ENOENT/);
  });
});

describe('reading a file a user names', () => {
  it('reads text and bytes as they are', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mab-read-'));
    await writeFile(join(dir, 'passwd'), CAM);
    expect(await readText(join(dir, 'passwd'), 'password file')).toBe(CAM);
    expect(await readBytes(join(dir, 'passwd'), 'password file')).toEqual(Buffer.from(CAM));
  });

  it('says which file could not be read, why (the error code) and what to do', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mab-read-'));
    await writeFile(join(dir, 'plain'), 'x');
    const failure = async (path: string): Promise<FileReadError> => {
      const err = await readText(path, 'password file').then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(FileReadError);
      return err as FileReadError;
    };
    const missing = await failure(join(dir, 'absent'));
    expect(missing.message).toBe(`cannot read the password file ${join(dir, 'absent')} (ENOENT); there is no such file; check the path`);
    expect(missing).toMatchObject({ path: join(dir, 'absent'), what: 'password file', code: 'ENOENT' });
    expect((await failure(dir)).message).toBe(`cannot read the password file ${dir} (EISDIR); it is a directory; name the file in it`);
    expect((await failure(join(dir, 'plain', 'passwd'))).message).toMatch(/\(ENOTDIR\); a part of the path is not a directory; check the path$/);
    await expect(readBytes(join(dir, 'absent.pem'), 'certfile')).rejects.toThrow(`cannot read the certfile ${join(dir, 'absent.pem')} (ENOENT)`);
  });

  it('a reloader given such an error names the file from it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mab-read-'));
    const file = join(dir, 'acl');
    const { logger, lines } = capture();
    const reloader = watchAndReload({ files: [join(dir, 'other')], load: () => readText(file, 'ACL file'), onLoad: () => undefined, logger, what: 'ACL', pollMs: 0 });
    open.push(reloader);
    expect(await reloader.reload()).toBe(false);
    expect(lines.find((l) => l.level === 'warn')).toMatchObject({ file, reason: expect.stringMatching(/^cannot read the ACL file .* \(ENOENT\); there is no such file/) as unknown });
  });

  it('reads a file that may be absent as undefined, and still fails on other errors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mab-read-'));
    await writeFile(join(dir, 'plain'), 'x');
    expect(await readIfExists(join(dir, 'plain'))).toBe('x');
    expect(await readIfExists(join(dir, 'absent'))).toBeUndefined();
    expect(await readIfExists(join(dir, 'plain', 'below'))).toBeUndefined();
    await expect(readIfExists(dir)).rejects.toMatchObject({ code: 'EISDIR' });
  });

  it('words error codes as the C library does (mosquitto_passwd prints them), else the error\u2019s own message', () => {
    expect(strerror(Object.assign(new Error('x'), { code: 'ENOENT' }))).toBe('No such file or directory');
    expect(strerror(Object.assign(new Error('x'), { code: 'EACCES' }))).toBe('Permission denied');
    expect(strerror(Object.assign(new Error('disk on fire'), { code: 'EWHATEVER' }))).toBe('disk on fire');
  });
});
