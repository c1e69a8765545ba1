/**
 * `passwd`: manage a mosquitto password file, like mosquitto_passwd 2.0.11 (same options, prompts, messages
 * and exit codes), with these differences:
 * - `-H bcrypt` (mosquitto 2.0 cannot read bcrypt entries: use it only for this broker); `-I` is the
 *   PBKDF2 iteration count (default 101, as mosquitto 2.0) or the bcrypt cost (default 10);
 * - the file is replaced atomically (temporary file in the same directory + rename), keeping the mode of
 *   an existing file, 0600 for a new one; comments and blank lines are kept (mosquitto_passwd calls them
 *   corrupt);
 * - `-U` leaves entries that are already hashed alone (mosquitto_passwd 2.0.11 hashes the hash, which
 *   locks that user out), and takes a plain-text password as everything after the first ':';
 * - an empty user name or password is refused, also with `-b`; extra arguments are a usage error.
 */
import { readFile } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import { writeFileAtomic } from '../files/atomic.js';
import {
  DEFAULT_BCRYPT_COST,
  DEFAULT_PBKDF2_ITERATIONS,
  hashPassword,
  isSupportedHash,
  splitPasswdLine,
  type HashKind,
} from '../auth/passwd.js';

export interface PasswdIo {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** stdin is a terminal: read passwords in raw mode, without echo. */
  isTTY: boolean;
  /** How the command is invoked, for the usage text. */
  prog?: string;
}

const MAX_LENGTH = 65535;

function usage(prog: string): string {
  return [
    'mosquitto_passwd is a tool for managing password files for mosquitto.',
    '',
    `Usage: ${prog} [-H sha512 | -H sha512-pbkdf2 | -H bcrypt] [-I iterations] [-c | -D] passwordfile username`,
    `       ${prog} [-H sha512 | -H sha512-pbkdf2 | -H bcrypt] [-I iterations] [-c] -b passwordfile username password`,
    `       ${prog} -U passwordfile`,
    ' -b : run in batch mode to allow passing passwords on the command line.',
    ' -c : create a new password file. This will overwrite existing files.',
    ' -D : delete the username rather than adding/updating its password.',
    ' -H : specify the hashing algorithm. Defaults to sha512-pbkdf2, which is recommended.',
    '      Mosquitto 1.6 and earlier defaulted to sha512. Mosquitto 2.0 cannot read bcrypt.',
    ` -I : PBKDF2 iterations (default ${DEFAULT_PBKDF2_ITERATIONS}), or the bcrypt cost (4-31, default ${DEFAULT_BCRYPT_COST}).`,
    ' -U : update a plain text password file to use hashed passwords.',
    '',
    'See https://mosquitto.org/ for more information.',
    '',
    '',
  ].join('\n');
}

const STRERROR: Record<string, string> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EPERM: 'Operation not permitted',
  EISDIR: 'Is a directory',
  ENOTDIR: 'Not a directory',
  EROFS: 'Read-only file system',
  ENOSPC: 'No space left on device',
  EEXIST: 'File exists',
  EBUSY: 'Device or resource busy',
  ELOOP: 'Too many levels of symbolic links',
};

function strerror(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return (e.code && STRERROR[e.code]) ?? e.message ?? String(err);
}

class UsageError extends Error {}

interface Parsed {
  mode: 'create' | 'update' | 'delete' | 'upgrade';
  batch: boolean;
  kind: HashKind;
  iterations: number | undefined;
  file: string;
  user: string | undefined;
  password: string | undefined;
}

/** Thrown to end the command with a message on stderr and an exit code. */
class Exit extends Error {
  constructor(
    readonly code: number,
    readonly text: string,
  ) {
    super(text);
  }
}

function parseArgs(argv: string[]): Parsed {
  let kind: HashKind = 'sha512-pbkdf2';
  let batch = false;
  let create = false;
  let del = false;
  let upgrade = false;
  let iterations: number | undefined;
  let idx = 0;
  for (; idx < argv.length; idx++) {
    const a = argv[idx] as string;
    if (a === '-H') {
      const v = argv[idx + 1];
      if (v === undefined) throw new Exit(1, 'Error: -H argument given but not enough other arguments.');
      if (v !== 'sha512' && v !== 'sha512-pbkdf2' && v !== 'bcrypt') throw new Exit(1, `Error: Unknown hash type '${v}'`);
      kind = v;
      idx++;
    } else if (a === '-I') {
      const v = argv[idx + 1];
      if (v === undefined) throw new Exit(1, 'Error: -I argument given but not enough other arguments.');
      iterations = /^\d{1,10}$/.test(v) ? Number(v) : 0;
      if (iterations < 1 || iterations > 0x7fffffff) throw new Exit(1, 'Error: Number of iterations must be > 0.');
      idx++;
    } else if (a === '-b') batch = true;
    else if (a === '-c') create = true;
    else if (a === '-D') del = true;
    else if (a === '-U') upgrade = true;
    else if (a === '--') {
      idx++;
      break;
    } else if (a.startsWith('-') && a.length > 1) throw new UsageError(a);
    else break;
  }
  if (create && del) throw new Exit(1, 'Error: -c and -D cannot be used together.');
  if (create && upgrade) throw new Exit(1, 'Error: -c and -U cannot be used together.');
  if (del && upgrade) throw new Exit(1, 'Error: -D and -U cannot be used together.');
  if (del && batch) throw new Exit(1, 'Error: -b and -D cannot be used together.');
  if (kind === 'bcrypt' && iterations !== undefined && (iterations < 4 || iterations > 31)) {
    throw new Exit(1, 'Error: The bcrypt cost (-I) must be between 4 and 31.');
  }
  const rest = argv.slice(idx);
  const base = { batch, kind, iterations };
  if (create) {
    if (batch) {
      if (rest.length < 3) throw new Exit(1, 'Error: -c argument given but password file, username, or password missing.');
      if (rest.length > 3) throw new UsageError('extra arguments');
      return { ...base, mode: 'create', file: rest[0] as string, user: rest[1], password: rest[2] };
    }
    if (rest.length < 2) throw new Exit(1, 'Error: -c argument given but password file or username missing.');
    if (rest.length > 2) throw new UsageError('extra arguments');
    return { ...base, mode: 'create', file: rest[0] as string, user: rest[1], password: undefined };
  }
  if (del) {
    if (rest.length < 2) throw new Exit(1, 'Error: -D argument given but password file or username missing.');
    if (rest.length > 2) throw new UsageError('extra arguments');
    return { ...base, mode: 'delete', file: rest[0] as string, user: rest[1], password: undefined };
  }
  if (upgrade) {
    if (rest.length !== 1) throw new Exit(1, 'Error: -U argument given but password file missing.');
    return { ...base, mode: 'upgrade', file: rest[0] as string, user: undefined, password: undefined };
  }
  if (batch && rest.length === 3) return { ...base, mode: 'update', file: rest[0] as string, user: rest[1], password: rest[2] };
  if (!batch && rest.length === 2) return { ...base, mode: 'update', file: rest[0] as string, user: rest[1], password: undefined };
  throw new UsageError('arguments');
}

function checkUser(user: string): void {
  if (user.length > MAX_LENGTH) throw new Exit(1, 'Error: Username must be less than 65536 characters long.');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(user)) throw new Exit(1, 'Error: Username must not contain control characters.');
  if (user.includes(':')) throw new Exit(1, "Error: Username must not contain the ':' character.");
  if (user.trim() === '') throw new Exit(1, 'Error: Username must not be empty.');
  if (user.trim() !== user) throw new Exit(1, 'Error: Username must not start or end with blanks.');
}

function checkPassword(password: string): void {
  if (password === '') throw new Exit(1, 'Error: Empty password.');
  if (password.length > MAX_LENGTH) throw new Exit(1, 'Error: Password must be less than 65536 characters long.');
}

const INTERRUPTED = Symbol('interrupted');

/** Reads lines from stdin; on a terminal in raw mode (no echo), handling backspace, Ctrl-C and Ctrl-D. */
class LineInput {
  readonly #stream: NodeJS.ReadableStream;
  readonly #tty: boolean;
  readonly #decoder = new StringDecoder('utf8');
  #buf = '';
  #line = '';
  #skipLf = false;
  #ended = false;
  #wake: (() => void) | undefined;
  readonly #onData = (chunk: Buffer | string): void => {
    this.#buf += typeof chunk === 'string' ? chunk : this.#decoder.write(chunk);
    this.#notify();
  };
  readonly #onEnd = (): void => {
    this.#buf += this.#decoder.end();
    this.#ended = true;
    this.#notify();
  };

  constructor(stream: NodeJS.ReadableStream, tty: boolean) {
    this.#stream = stream;
    this.#tty = tty;
    stream.on('data', this.#onData);
    stream.on('end', this.#onEnd);
    stream.on('error', this.#onEnd);
    stream.resume();
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  close(): void {
    this.#stream.off('data', this.#onData);
    this.#stream.off('end', this.#onEnd);
    this.#stream.off('error', this.#onEnd);
    this.#stream.pause();
  }

  /** The next line without its end, null at end of input, INTERRUPTED on Ctrl-C (terminal). */
  async readLine(): Promise<string | null | typeof INTERRUPTED> {
    for (;;) {
      if (this.#tty) {
        const r = this.#scanTty();
        if (r !== undefined) return r;
      } else {
        const nl = this.#buf.indexOf('\n');
        if (nl !== -1) {
          const line = this.#buf.slice(0, nl).replace(/\r$/, '');
          this.#buf = this.#buf.slice(nl + 1);
          return line;
        }
      }
      if (this.#ended) {
        const rest = this.#tty ? this.#line : this.#buf;
        this.#buf = '';
        this.#line = '';
        return rest === '' ? null : rest.replace(/\r$/, '');
      }
      await new Promise<void>((r) => {
        this.#wake = r;
      });
    }
  }

  #scanTty(): string | null | typeof INTERRUPTED | undefined {
    let i = 0;
    const buf = this.#buf;
    try {
      for (const ch of buf) {
        i += ch.length;
        if (this.#skipLf) {
          this.#skipLf = false;
          if (ch === '\n') continue;
        }
        if (ch === '\r' || ch === '\n') {
          this.#skipLf = ch === '\r';
          const line = this.#line;
          this.#line = '';
          return line;
        }
        if (ch === '\u0003') return INTERRUPTED;
        if (ch === '\u0004') {
          if (this.#line === '') return null;
          continue;
        }
        if (ch === '\u007f' || ch === '\b') {
          this.#line = Array.from(this.#line).slice(0, -1).join('');
          continue;
        }
        this.#line += ch;
      }
      return undefined;
    } finally {
      this.#buf = buf.slice(i);
    }
  }
}

function setRawMode(stdin: NodeJS.ReadableStream, on: boolean): boolean {
  const s = stdin as NodeJS.ReadableStream & { setRawMode?: (mode: boolean) => unknown };
  if (typeof s.setRawMode !== 'function') return false;
  s.setRawMode(on);
  return true;
}

/** Ask twice, as mosquitto_passwd does: "Password: ", "Reenter password: ". */
async function promptPassword(io: PasswdIo): Promise<string> {
  const raw = io.isTTY && setRawMode(io.stdin, true);
  const input = new LineInput(io.stdin, raw);
  try {
    io.stdout.write('Password: ');
    const first = await input.readLine();
    if (first === INTERRUPTED) throw new Exit(1, '');
    if (first === null || first === '') throw new Exit(1, 'Error: Empty password.');
    io.stdout.write('\n');
    io.stdout.write('Reenter password: ');
    const second = await input.readLine();
    if (second === INTERRUPTED) throw new Exit(1, '');
    if (second === null || second === '') throw new Exit(1, 'Error: Empty password.');
    io.stdout.write('\n');
    if (first !== second) throw new Exit(2, 'Error: Passwords do not match.');
    return first;
  } finally {
    input.close();
    if (raw) setRawMode(io.stdin, false);
  }
}

/** Split text into lines that keep their line ends, so that untouched lines are written back byte for byte. */
function linesOf(text: string): string[] {
  const lines = text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
  return lines;
}

async function hashFor(p: Parsed, password: string): Promise<string> {
  if (p.kind === 'bcrypt') return hashPassword(password, 'bcrypt', { cost: p.iterations ?? DEFAULT_BCRYPT_COST });
  return hashPassword(password, p.kind, { iterations: p.iterations ?? DEFAULT_PBKDF2_ITERATIONS });
}

function corrupt(lineNo: number): Exit {
  return new Exit(1, `Error: Corrupt password file at line ${lineNo}.`);
}

/** Run `passwd`; returns the exit code. */
export async function passwdCommand(argv: string[], io: PasswdIo): Promise<number> {
  const prog = io.prog ?? 'mqtt-acme-broker passwd';
  const fail = (e: Exit): number => {
    if (e.text !== '') io.stderr.write(`${e.text}\n`);
    return e.code;
  };
  let p: Parsed;
  try {
    p = parseArgs(argv);
    if (p.user !== undefined) checkUser(p.user);
    if (p.password !== undefined) checkPassword(p.password);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stdout.write(usage(prog));
      return 1;
    }
    if (err instanceof Exit) return fail(err);
    throw err;
  }

  try {
    if (p.mode === 'create') {
      const password = p.password ?? (await promptPassword(io));
      checkPassword(password);
      const line = `${p.user}:${await hashFor(p, password)}\n`;
      try {
        await writeFileAtomic(p.file, line, { mode: 0o600, keepExisting: true });
      } catch (err) {
        throw new Exit(1, `Error: Unable to open file ${p.file} for writing. ${strerror(err)}.`);
      }
      return 0;
    }

    let text: string;
    try {
      text = await readFile(p.file, 'utf8');
    } catch (err) {
      throw new Exit(1, `Error: Unable to open password file ${p.file}. ${strerror(err)}.`);
    }
    const lines = linesOf(text);
    // Check the whole file before asking for anything or changing it.
    lines.forEach((line, i) => {
      const trimmed = line.trim();
      if (trimmed === '' || trimmed.startsWith('#')) return;
      const f = splitPasswdLine(line);
      if (!f || f.user === '' || !f.hash) throw corrupt(i + 1);
    });
    const out: string[] = [];

    if (p.mode === 'delete') {
      let found = false;
      for (const line of lines) {
        if (splitPasswdLine(line)?.user === p.user) found = true;
        else out.push(line);
      }
      if (!found) throw new Exit(1, `Warning: User ${p.user} not found in password file.`);
    } else if (p.mode === 'upgrade') {
      for (const line of lines) {
        const f = splitPasswdLine(line);
        if (!f || isSupportedHash(f.hash ?? '')) {
          out.push(line);
          continue;
        }
        const plain = line.slice(line.indexOf(':') + 1).trim();
        out.push(`${f.user}:${await hashFor(p, plain)}\n`);
      }
    } else {
      const password = p.password ?? (await promptPassword(io));
      checkPassword(password);
      const entry = `${p.user}:${await hashFor(p, password)}\n`;
      let found = false;
      for (const line of lines) {
        if (splitPasswdLine(line)?.user === p.user) {
          // mosquitto_passwd rewrites every line of the user; keep one.
          if (!found) out.push(entry);
          found = true;
        } else out.push(line);
      }
      if (!found) {
        const last = out[out.length - 1];
        if (last !== undefined && !last.endsWith('\n')) out[out.length - 1] = `${last}\n`;
        out.push(entry);
      }
    }

    try {
      await writeFileAtomic(p.file, out.join(''), { mode: 0o600, keepExisting: true });
    } catch (err) {
      throw new Exit(1, `Error: Unable to write password file ${p.file}. ${strerror(err)}.`);
    }
    return 0;
  } catch (err) {
    if (err instanceof Exit) return fail(err);
    throw err;
  }
}
