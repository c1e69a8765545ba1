/**
 * `mqtt-acme-broker passwd` (src/commands/passwd.ts and src/commands/passwd/): its command line and help,
 * the prompt, and the edits it makes to a password file. The hash formats themselves are tested in
 * passwd.test.ts; interop with the real mosquitto_passwd in test/integration/passwd-mosquitto.test.ts.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { chmod, lstat, mkdtemp, readFile, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { DEFAULT_PBKDF2_ITERATIONS, parsePasswd, type Users } from '../../src/auth/passwd.js';
import { passwdCommand, type PasswdIo } from '../../src/commands/passwd.js';
import { HASH_KINDS, PASSWD_FLAGS, parsePasswdArgs } from '../../src/commands/passwd/args.js';
import { UsageError } from '../../src/commands/passwd/failure.js';
import { PASSWD_USAGE_HINT } from '../../src/commands/passwd/help.js';

// Written by mosquitto_passwd 2.0.11 (FACTS.md).
const CAM7 = 'cam:$7$101$0eyo1LK2tTCkVyoE$TfD+UAkPpXvqGbA1d0owxs3bAfGUY7jCKfITOwTk3Or6LAiHgKPAC4ABTZO9xtw478xwXp1iy9HLT0J0Nx2pBg==';
const BOB7 = 'bob:$7$101$Xw2crMfuucSq3Pc4$E/FqK+cGWM6sqOPJcWi4gyTtZy5OuhwArdh6wry2Bk0jwTKNiiRDm/b9q2P9wlB78nznpwRWxLJOT3OfrPvL5Q==';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mab-passwd-cmd-'));
  dirs.push(dir);
  return dir;
}

class Sink extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function runPasswd(argv: string[], input?: string, extra: Partial<PasswdIo> = {}): Promise<Run> {
  const stdin = new PassThrough();
  if (input !== undefined) stdin.end(input);
  const stdout = new Sink();
  const stderr = new Sink();
  const code = await passwdCommand(argv, { stdin, stdout, stderr, isTTY: false, ...extra });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

async function fileUsers(path: string): Promise<Users> {
  return parsePasswd(await readFile(path, 'utf8'), path).users;
}

describe('passwdCommand (like mosquitto_passwd)', () => {
  it('-c -b creates a 0600 file with one $7$101 entry; -c overwrites an existing file', async () => {
    const dir = await tempDir();
    const file = join(dir, 'passwd');
    expect(await runPasswd(['-c', '-b', file, 'alice', 'pw1'])).toEqual({ code: 0, stdout: '', stderr: '' });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readFile(file, 'utf8')).toMatch(/^alice:\$7\$101\$[^\n]+\n$/);
    expect(await (await fileUsers(file)).verify('alice', 'pw1')).toBe(true);
    await runPasswd(['-b', file, 'bob', 'pw2']);
    expect((await runPasswd(['-c', '-b', file, 'carol', 'pw3'])).code).toBe(0);
    expect((await fileUsers(file)).names()).toEqual(['carol']);
  });

  it('-b adds or replaces one user and keeps every other line byte for byte (comments too)', async () => {
    const dir = await tempDir();
    const file = join(dir, 'passwd');
    const original = `# managed by hand\r\n${CAM7}\r\n\r\n${BOB7}`;
    await writeFile(file, original);
    expect((await runPasswd(['-b', file, 'dave', 'pw'])).code).toBe(0);
    const added = await readFile(file, 'utf8');
    expect(added.startsWith(`${original}\n`)).toBe(true);
    expect(added).toMatch(/\ndave:\$7\$101\$[^\n]+\n$/);
    expect((await runPasswd(['-b', file, 'cam', 'new-pass'])).code).toBe(0);
    const replaced = await readFile(file, 'utf8');
    expect(replaced.split(/\r?\n/)[1]).toMatch(/^cam:\$7\$101\$/);
    expect(replaced).toContain(`# managed by hand\r\n`);
    expect(replaced).toContain(BOB7);
    const u = await fileUsers(file);
    expect(u.names()).toEqual(['cam', 'bob', 'dave']);
    expect(await u.verify('cam', 'new-pass')).toBe(true);
    expect(await u.verify('cam', 's3cret')).toBe(false);
    expect(await u.verify('bob', 'hunter2')).toBe(true);
    expect(await u.verify('dave', 'pw')).toBe(true);
  });

  it('-H sha512 writes $6$, -H bcrypt writes $2b$, -I sets the PBKDF2 iterations or the bcrypt cost', async () => {
    const dir = await tempDir();
    const file = join(dir, 'passwd');
    await runPasswd(['-c', '-H', 'sha512', '-b', file, 'six', 'p6']);
    await runPasswd(['-H', 'bcrypt', '-I', '5', '-b', file, 'bc', 'pb']);
    await runPasswd(['-I', '1000', '-b', file, 'seven', 'p7']);
    const text = await readFile(file, 'utf8');
    expect(text).toMatch(/^six:\$6\$/m);
    expect(text).toMatch(/^bc:\$2b\$05\$/m);
    expect(text).toMatch(/^seven:\$7\$1000\$/m);
    const u = await fileUsers(file);
    expect(await u.verify('six', 'p6')).toBe(true);
    expect(await u.verify('bc', 'pb')).toBe(true);
    expect(await u.verify('seven', 'p7')).toBe(true);
  });

  it('-D deletes a user; deleting an unknown user warns, exits 1 and leaves the file alone', async () => {
    const dir = await tempDir();
    const file = join(dir, 'passwd');
    await writeFile(file, `${CAM7}\n${BOB7}\n`);
    expect(await runPasswd(['-D', file, 'cam'])).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(await readFile(file, 'utf8')).toBe(`${BOB7}\n`);
    expect(await runPasswd(['-D', file, 'zz'])).toEqual({ code: 1, stdout: '', stderr: 'Warning: User zz not found in password file.\n' });
    expect(await readFile(file, 'utf8')).toBe(`${BOB7}\n`);
  });

  it('-U hashes plain-text passwords and leaves hashed entries alone (mosquitto_passwd 2.0.11 re-hashes them)', async () => {
    const dir = await tempDir();
    const file = join(dir, 'passwd');
    await writeFile(file, `# plain\nalice:open sesame\n${BOB7}\ncolon:a:b\n`);
    expect((await runPasswd(['-U', file])).code).toBe(0);
    const text = await readFile(file, 'utf8');
    expect(text).toContain(`${BOB7}\n`);
    expect(text).not.toContain('open sesame');
    const u = await fileUsers(file);
    expect(await u.verify('alice', 'open sesame')).toBe(true);
    expect(await u.verify('bob', 'hunter2')).toBe(true);
    expect(await u.verify('colon', 'a:b')).toBe(true);
  });

  it('asks twice on stdin with mosquitto_passwd prompts; a mismatch exits 2, an empty password 1, file unchanged', async () => {
    const dir = await tempDir();
    const file = join(dir, 'passwd');
    await writeFile(file, `${BOB7}\n`);
    expect(await runPasswd([file, 'eve'], 'pw\npw\n')).toEqual({ code: 0, stdout: 'Password: \nReenter password: \n', stderr: '' });
    expect(await (await fileUsers(file)).verify('eve', 'pw')).toBe(true);
    const before = await readFile(file, 'utf8');
    expect(await runPasswd([file, 'eve'], 'one\ntwo\n')).toEqual({
      code: 2,
      stdout: 'Password: \nReenter password: \n',
      stderr: 'Error: Passwords do not match.\n',
    });
    expect(await runPasswd([file, 'eve'], '\n')).toEqual({ code: 1, stdout: 'Password: ', stderr: 'Error: Empty password.\n' });
    expect(await runPasswd([file, 'eve'], 'only-once\n')).toEqual({
      code: 1,
      stdout: 'Password: \nReenter password: ',
      stderr: 'Error: Empty password.\n',
    });
    expect(await readFile(file, 'utf8')).toBe(before);
    const created = join(dir, 'new');
    expect((await runPasswd(['-c', created, 'x'], 'a\r\na\r\n')).code).toBe(0);
    expect(await (await fileUsers(created)).verify('x', 'a')).toBe(true);
  });

  it('on a terminal reads in raw mode (no echo), handles backspace, and restores the mode', async () => {
    const dir = await tempDir();
    const file = join(dir, 'passwd');
    const modes: boolean[] = [];
    const stdin = Object.assign(new PassThrough(), { setRawMode: (on: boolean) => modes.push(on) });
    const stdout = new Sink();
    const stderr = new Sink();
    const done = passwdCommand(['-c', file, 'tty'], { stdin, stdout, stderr, isTTY: true });
    stdin.write('ab\u007fc\r');
    stdin.write('ac\r\n');
    expect(await done).toBe(0);
    expect(modes).toEqual([true, false]);
    expect(stdout.text).toBe('Password: \nReenter password: \n');
    expect(await (await fileUsers(file)).verify('tty', 'ac')).toBe(true);
  });

  it('a bad command line exits 1 (as mosquitto_passwd) with one error line and the usage on stderr, touching nothing', async () => {
    const dir = await tempDir();
    const file = join(dir, 'passwd');
    const cases: [string[], string][] = [
      [[], 'Error: Password file or username missing.'],
      [[file], 'Error: Password file or username missing.'],
      [['-x', file, 'u'], "Error: Unknown option '-x'."],
      [['--hash', 'bcrypt', file, 'u'], "Error: Unknown option '--hash'."],
      [['-b', file, 'u'], 'Error: -b argument given but password file, username, or password missing.'],
      [['-b', file, 'u', 'p', 'extra'], "Error: Too many arguments; the first one too many is 'extra'."],
      [[file, 'u', 'p'], "Error: Too many arguments; the first one too many is 'p'."],
      [['-c', file], 'Error: -c argument given but password file or username missing.'],
      [['-c', '-b', file, 'u'], 'Error: -c argument given but password file, username, or password missing.'],
      [['-D', file], 'Error: -D argument given but password file or username missing.'],
      [['-U', file, 'u'], 'Error: -U argument given but password file missing.'],
      [['-c', '-D', file, 'u'], 'Error: -c and -D cannot be used together.'],
      [['-c', '-U', file], 'Error: -c and -U cannot be used together.'],
      [['-D', '-U', file], 'Error: -D and -U cannot be used together.'],
      [['-b', '-D', file, 'u'], 'Error: -b and -D cannot be used together.'],
      [['-H'], 'Error: -H argument given but not enough other arguments.'],
      [['-c', '-b', file, 'u', 'p', '-I'], "Error: Too many arguments; the first one too many is '-I'."],
      [['-I'], 'Error: -I argument given but not enough other arguments.'],
      [['-H', 'md5', '-c', '-b', file, 'u', 'p'], "Error: Unknown hash type 'md5'"],
      [['-I', '0', '-c', '-b', file, 'u', 'p'], 'Error: Number of iterations must be > 0.'],
      [['-I', '1e3', '-c', '-b', file, 'u', 'p'], 'Error: Number of iterations must be > 0.'],
      [['-H', 'bcrypt', '-I', '32', '-c', '-b', file, 'u', 'p'], 'Error: The bcrypt cost (-I) must be between 4 and 31.'],
    ];
    for (const [argv, error] of cases) {
      expect(await runPasswd(argv), argv.join(' ')).toEqual({ code: 1, stdout: '', stderr: `${error}\n${PASSWD_USAGE_HINT}` });
    }
    expect(PASSWD_USAGE_HINT).toMatch(/^Usage: mqtt-acme-broker passwd .*\nRun 'mqtt-acme-broker passwd --help' for more\.\n$/);
    // Bad values (not a bad command line) get mosquitto_passwd's message alone.
    expect(await runPasswd(['-c', '-b', file, 'a:b', 'p'])).toEqual({ code: 1, stdout: '', stderr: "Error: Username must not contain the ':' character.\n" });
    expect(await runPasswd(['-c', '-b', file, 'a\tb', 'p'])).toMatchObject({ code: 1, stderr: 'Error: Username must not contain control characters.\n' });
    expect(await runPasswd(['-c', '-b', file, ' a', 'p'])).toMatchObject({ code: 1, stderr: 'Error: Username must not start or end with blanks.\n' });
    expect(await runPasswd(['-c', '-b', file, 'u', ''])).toEqual({ code: 1, stdout: '', stderr: 'Error: Empty password.\n' });
    expect(await runPasswd(['-c', '-b', file, 'u', 'x'.repeat(65536)])).toMatchObject({
      code: 1,
      stderr: 'Error: Password must be less than 65536 characters long.\n',
    });
    expect(await runPasswd(['-b', file, 'u', 'p'])).toEqual({
      code: 1,
      stdout: '',
      stderr: `Error: Unable to open password file ${file}. No such file or directory.\n`,
    });
    expect(await readdir(dir)).toEqual([]);
  });

  it('-- ends the options, so a file, user or password may start with "-"; so does the first non-option', () => {
    expect(parsePasswdArgs(['-b', '--', '-f', '-u', '-p'])).toEqual({
      mode: 'update',
      hash: { kind: 'sha512-pbkdf2', iterations: undefined },
      file: '-f',
      user: '-u',
      password: '-p',
    });
    expect(parsePasswdArgs(['-b', 'f', 'u', '-c'])).toMatchObject({ mode: 'update', password: '-c' });
    expect(parsePasswdArgs(['-H', 'bcrypt', '-I', '4', '-U', 'f'])).toEqual({ mode: 'upgrade', hash: { kind: 'bcrypt', iterations: 4 }, file: 'f' });
    expect(parsePasswdArgs(['-D', 'f', 'u'])).toEqual({ mode: 'delete', file: 'f', user: 'u' });
  });

  it('keeps one line for a user listed twice, and -D removes both', async () => {
    const dir = await tempDir();
    const file = join(dir, 'passwd');
    await writeFile(file, `${CAM7}\n${BOB7}\n${CAM7}\n`);
    expect((await runPasswd(['-b', file, 'cam', 'again'])).code).toBe(0);
    const text = await readFile(file, 'utf8');
    expect(text.match(/^cam:/gm)).toHaveLength(1);
    expect(text.startsWith('cam:$7$101$')).toBe(true);
    expect(await (await fileUsers(file)).verify('cam', 'again')).toBe(true);
    await writeFile(file, `${CAM7}\n${BOB7}\n${CAM7}\n`);
    expect((await runPasswd(['-D', file, 'cam'])).code).toBe(0);
    expect(await readFile(file, 'utf8')).toBe(`${BOB7}\n`);
  });

  it('on a terminal, Ctrl-C aborts silently (exit 1) and Ctrl-D on an empty line is an empty password; the mode is restored', async () => {
    const dir = await tempDir();
    const file = join(dir, 'passwd');
    await writeFile(file, `${BOB7}\n`);
    for (const [typed, stderr] of [
      ['pw\u0003', ''],
      ['pw\rp\u0003', ''],
      ['\u0004', 'Error: Empty password.\n'],
    ] as const) {
      const modes: boolean[] = [];
      const stdin = Object.assign(new PassThrough(), { setRawMode: (on: boolean) => modes.push(on) });
      const stdout = new Sink();
      const err = new Sink();
      const done = passwdCommand([file, 'eve'], { stdin, stdout, stderr: err, isTTY: true });
      stdin.write(typed);
      expect(await done).toBe(1);
      expect(err.text).toBe(stderr);
      expect(modes).toEqual([true, false]);
    }
    expect(await readFile(file, 'utf8')).toBe(`${BOB7}\n`);
  });

  it('refuses to edit a corrupt file and leaves it as it was', async () => {
    const dir = await tempDir();
    const file = join(dir, 'passwd');
    await writeFile(file, `${CAM7}\nnot a valid line\n`);
    expect(await runPasswd(['-b', file, 'u', 'p'])).toMatchObject({ code: 1, stderr: 'Error: Corrupt password file at line 2.\n' });
    expect(await readFile(file, 'utf8')).toBe(`${CAM7}\nnot a valid line\n`);
  });

  it('replaces the file atomically: keeps its mode, writes through a symlink, leaves no temporary file', async () => {
    const dir = await tempDir();
    const real = join(dir, 'passwd.real');
    const link = join(dir, 'passwd');
    await writeFile(real, `${CAM7}\n`);
    await chmod(real, 0o640);
    await symlink('passwd.real', link);
    const inodeBefore = (await stat(real)).ino;
    expect((await runPasswd(['-b', link, 'bob', 'hunter2'])).code).toBe(0);
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(await readlink(link)).toBe('passwd.real');
    const after = await stat(real);
    expect(after.mode & 0o777).toBe(0o640);
    expect(after.ino).not.toBe(inodeBefore); // a new file renamed into place, not rewritten in place
    expect((await readdir(dir)).sort()).toEqual(['passwd', 'passwd.real']);
    const u = await fileUsers(real);
    expect(await u.verify('cam', 's3cret')).toBe(true);
    expect(await u.verify('bob', 'hunter2')).toBe(true);
  });
});

describe('passwd --help', () => {
  /** A line of the option list describing `name` (`  -I iterations ...`, `  -h, --help ...`). */
  const describes = (text: string, name: string): boolean => new RegExp(`^ {2}(?:-\\S+, )*${name}(?![\\w-])`, 'm').test(text);

  it('-h and --help print help for this program on stdout and exit 0, wherever they are among the options', async () => {
    const help = await runPasswd(['--help']);
    expect(help.code).toBe(0);
    expect(help.stderr).toBe('');
    expect(help.stdout.split('\n')[0]).toBe(
      'Usage: mqtt-acme-broker passwd [-c | -D] [-b] [-U] [-H sha512 | sha512-pbkdf2 | bcrypt] [-I iterations] FILE USER [PASSWORD]',
    );
    expect(help.stdout).not.toMatch(/mosquitto_passwd is a tool|See https:\/\/mosquitto\.org/);
    expect(await runPasswd(['-h'])).toEqual(help);
    expect(await runPasswd(['-c', '-H', 'bcrypt', '--help'])).toEqual(help);
    // After the first non-option argument, -h is an argument like any other.
    expect(await runPasswd(['file', '-h'])).toMatchObject({ code: 1, stdout: '' });
  });

  it('names every flag the parser accepts and every -H value, and no flag the parser would refuse', async () => {
    const { stdout } = await runPasswd(['--help']);
    const names = PASSWD_FLAGS.flatMap((f) => f.names);
    expect(names.length).toBeGreaterThanOrEqual(8);
    for (const name of names) {
      expect(describes(stdout, name), `help describes ${name}`).toBe(true);
      // The table is the parser's: each of its flags is accepted (whatever else is then missing).
      const takes = PASSWD_FLAGS.find((f) => f.names.includes(name))?.takesValue === true;
      const argv = takes ? [name, name === '-H' ? 'bcrypt' : '12'] : [name];
      try {
        parsePasswdArgs(argv);
      } catch (err) {
        expect(err).toBeInstanceOf(UsageError);
        expect((err as Error).message).not.toMatch(/Unknown option/);
      }
    }
    for (const kind of HASH_KINDS) expect(describes(stdout, `-H ${kind}`), `help describes -H ${kind}`).toBe(true);
    const mentioned = new Set(stdout.match(/(?<![\w-])--?[A-Za-z][\w-]*/g));
    for (const flag of mentioned) expect([...names, '--'], `help mentions ${flag}`).toContain(flag);
    expect(() => parsePasswdArgs(['-q', 'f', 'u'])).toThrow("Error: Unknown option '-q'.");
  });

  it('tells the default hash and its iterations, that mosquitto 2.0 cannot read bcrypt, and that the broker reloads the file', async () => {
    const { stdout } = await runPasswd(['--help']);
    expect(stdout).toMatch(new RegExp(`\\$7\\$: PBKDF2-HMAC-SHA512, ${DEFAULT_PBKDF2_ITERATIONS} iterations.*The default:\\s+what mosquitto 2\\.0 writes`));
    expect(stdout).toMatch(/-H bcrypt .*mosquitto 2\.0 cannot/);
    expect(stdout).toMatch(/broker whose password_file is FILE\s+reloads it when it\s+changes/);
    expect(stdout).toMatch(/Examples:\n( {2}mqtt-acme-broker passwd .*\n)+/);
  });
});
