/**
 * mosquitto password files (`password_file`), read the way mosquitto 2.0.11 reads them, plus bcrypt.
 *
 * A line is `user:hash`. Lines starting with `#`, blank lines and lines without `:` are skipped (mosquitto
 * skips them silently; we warn about the last kind when it is not blank). Supported hashes:
 * - `$6$<salt>$<hash>`: SHA-512(password bytes + salt bytes), one pass (mosquitto 1.x, `-H sha512`);
 * - `$7$<iterations>$<salt>$<hash>`: PBKDF2-HMAC-SHA512, 64-byte output (mosquitto 2.x default);
 * - `$2a$` / `$2b$` / `$2y$` bcrypt (not read by mosquitto 2.0; ours only).
 * Salt and hash are standard base64; the salt is 12 bytes (2.0) or 64 bytes (2.1), the hash 64 bytes.
 */
import { createHash, pbkdf2, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { readText } from '../files/read.js';
import { promisify } from 'node:util';
import type { Logger } from '../log.js';

export type HashKind = 'sha512' | 'sha512-pbkdf2' | 'bcrypt';

/** What mosquitto_passwd 2.0 writes; 2.1 writes 1000. */
export const DEFAULT_PBKDF2_ITERATIONS = 101;
export const DEFAULT_BCRYPT_COST = 10;
const SALT_BYTES = 12;
const HASH_BYTES = 64;
/** Below this many iterations PBKDF2 costs well under a millisecond: do it inline rather than on the pool. */
const SYNC_PBKDF2_LIMIT = 2000;
const MAX_FIELD = 65535;

const pbkdf2Async = promisify(pbkdf2);

/**
 * The file cannot be used at all: it has content, but not one valid entry. The reloader keeps the previous
 * users when it sees this, instead of swapping in an empty set that would lock every client out (a file
 * truncated mid-write, a wrong file mounted, an htpasswd file with another hash format...). A file that is
 * empty or holds only comments is NOT an error: that is how an operator says "no users".
 */
export class PasswdError extends Error {
  override readonly name = 'PasswdError';
  constructor(
    message: string,
    readonly source: string,
    readonly warnings: readonly string[],
  ) {
    super(message);
  }
}

type Entry =
  | { kind: 'sha512'; salt: Buffer; hash: Buffer }
  | { kind: 'sha512-pbkdf2'; iterations: number; salt: Buffer; hash: Buffer }
  | { kind: 'bcrypt'; hash: string };

function toBytes(password: Buffer | string): Buffer {
  return typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
}

async function verifyEntry(entry: Entry, password: Buffer): Promise<boolean> {
  switch (entry.kind) {
    case 'sha512': {
      const digest = createHash('sha512').update(password).update(entry.salt).digest();
      return timingSafeEqual(digest, entry.hash);
    }
    case 'sha512-pbkdf2': {
      const digest =
        entry.iterations <= SYNC_PBKDF2_LIMIT
          ? pbkdf2Sync(password, entry.salt, entry.iterations, HASH_BYTES, 'sha512')
          : await pbkdf2Async(password, entry.salt, entry.iterations, HASH_BYTES, 'sha512');
      return timingSafeEqual(digest, entry.hash);
    }
    case 'bcrypt': {
      // bcryptjs takes a string and hashes its UTF-8 bytes. A password that is not valid UTF-8 would be
      // decoded lossily (U+FFFD), so several different byte strings could verify: refuse them, after doing
      // the same work so that the answer takes as long as any other.
      const text = password.toString('utf8');
      const exact = Buffer.from(text, 'utf8').equals(password);
      // Loaded with the first bcrypt entry: most password files are mosquitto's $7$/$6$.
      const { default: bcrypt } = await import('bcryptjs');
      const ok = await bcrypt.compare(text, entry.hash);
      return ok && exact;
    }
  }
}

const BCRYPT_ALPHABET = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function randomBcryptString(length: number): string {
  const bytes = randomBytes(length);
  let out = '';
  for (const b of bytes) out += BCRYPT_ALPHABET[b & 63];
  return out;
}

/**
 * An entry of the same kind and cost as the file's most common one, with a random salt and hash. Unknown
 * users are checked against it, so that a wrong user name costs as much as a wrong password.
 */
function dummyLike(entries: Iterable<Entry>): Entry {
  const counts = new Map<string, { n: number; entry: Entry }>();
  for (const e of entries) {
    const key = e.kind === 'sha512-pbkdf2' ? `7:${e.iterations}` : e.kind === 'bcrypt' ? `2:${e.hash.slice(4, 6)}` : '6';
    const c = counts.get(key);
    if (c) c.n += 1;
    else counts.set(key, { n: 1, entry: e });
  }
  let best: Entry | undefined;
  let bestN = 0;
  for (const { n, entry } of counts.values()) {
    if (n > bestN) {
      best = entry;
      bestN = n;
    }
  }
  const model = best ?? { kind: 'sha512-pbkdf2', iterations: DEFAULT_PBKDF2_ITERATIONS, salt: Buffer.alloc(0), hash: Buffer.alloc(0) };
  switch (model.kind) {
    case 'sha512':
      return { kind: 'sha512', salt: randomBytes(SALT_BYTES), hash: randomBytes(HASH_BYTES) };
    case 'sha512-pbkdf2':
      return { kind: 'sha512-pbkdf2', iterations: model.iterations, salt: randomBytes(SALT_BYTES), hash: randomBytes(HASH_BYTES) };
    case 'bcrypt':
      // A well-formed bcrypt string (same cost) whose checksum nothing hashes to in practice.
      return { kind: 'bcrypt', hash: `${model.hash.slice(0, 7)}${randomBcryptString(53)}` };
  }
}

/** An immutable snapshot of a password file. It holds hashes only, never a plain-text password. */
export class Users {
  readonly #entries: ReadonlyMap<string, Entry>;
  readonly #dummy: Entry;

  /** @internal built by parsePasswd */
  constructor(entries: Map<string, Entry>) {
    this.#entries = entries;
    this.#dummy = dummyLike(entries.values());
    Object.freeze(this);
  }

  get size(): number {
    return this.#entries.size;
  }

  has(user: string): boolean {
    return this.#entries.has(user);
  }

  /**
   * Whether `user` has the same password entry here as in `previous` (a reload that removed the user or
   * changed the password answers false: its connected clients must log in again).
   */
  sameCredentials(user: string, previous: Users): boolean {
    const now = this.#entries.get(user);
    const before = previous.#entries.get(user);
    if (now === undefined || before === undefined || now.kind !== before.kind) return false;
    if (now.kind === 'bcrypt' || before.kind === 'bcrypt') return now.hash === before.hash;
    if (now.kind === 'sha512-pbkdf2' && before.kind === 'sha512-pbkdf2' && now.iterations !== before.iterations) return false;
    return (now.hash as Buffer).equals(before.hash as Buffer) && now.salt.equals((before as { salt: Buffer }).salt);
  }

  /** User names, in file order (for diagnostics; never the hashes). */
  names(): string[] {
    return [...this.#entries.keys()];
  }

  /** The hash kind of a user's entry, or undefined for an unknown user. */
  kindOf(user: string): HashKind | undefined {
    return this.#entries.get(user)?.kind;
  }

  /**
   * True when `user` exists and `password` is its password. The comparison is constant-time, and an unknown
   * user is checked against a dummy entry of the same kind and cost, so timing does not reveal who exists.
   */
  async verify(user: string, password: Buffer | string): Promise<boolean> {
    const entry = this.#entries.get(user);
    const ok = await verifyEntry(entry ?? this.#dummy, toBytes(password));
    return ok && entry !== undefined;
  }
}

/** Strict standard base64 (with or without padding); undefined when `text` is not base64. */
function decodeBase64(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return undefined;
  const buf = Buffer.from(text, 'base64');
  const canonical = buf.toString('base64');
  if (canonical !== text && canonical.replace(/=+$/, '') !== text) return undefined;
  return buf;
}

const RE_SHA512 = /^\$6\$([^$]+)\$([^$]+)$/;
const RE_PBKDF2 = /^\$7\$([^$]+)\$([^$]+)\$([^$]+)$/;
const RE_BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;

/** Decode one hash field; a string is the reason it is unusable (never containing the hash itself). */
function parseHash(hash: string): Entry | string {
  let m = RE_PBKDF2.exec(hash);
  if (m) {
    const [, iter = '', salt64 = '', hash64 = ''] = m;
    if (!/^\d{1,10}$/.test(iter) || Number(iter) < 1 || Number(iter) > 0x7fffffff) {
      return 'the $7$ iteration count is not a whole number >= 1';
    }
    const salt = decodeBase64(salt64);
    if (!salt || (salt.length !== 12 && salt.length !== 64)) return 'the $7$ salt is not 12 or 64 bytes of base64';
    const digest = decodeBase64(hash64);
    if (!digest || digest.length !== HASH_BYTES) return 'the $7$ hash is not 64 bytes of base64';
    return { kind: 'sha512-pbkdf2', iterations: Number(iter), salt, hash: digest };
  }
  m = RE_SHA512.exec(hash);
  if (m) {
    const [, salt64 = '', hash64 = ''] = m;
    const salt = decodeBase64(salt64);
    if (!salt || (salt.length !== 12 && salt.length !== 64)) return 'the $6$ salt is not 12 or 64 bytes of base64';
    const digest = decodeBase64(hash64);
    if (!digest || digest.length !== HASH_BYTES) return 'the $6$ hash is not 64 bytes of base64';
    return { kind: 'sha512', salt, hash: digest };
  }
  if (hash.startsWith('$2')) {
    const b = RE_BCRYPT.exec(hash);
    const cost = Number(b?.[1]);
    if (!b || cost < 4 || cost > 31) return 'the bcrypt hash is malformed';
    return { kind: 'bcrypt', hash };
  }
  if (hash.startsWith('$')) return 'unsupported hash type (expected $6$, $7$ or bcrypt $2a$/$2b$/$2y$)';
  return 'the password is not hashed (hash plain-text passwords with `passwd -U FILE`)';
}

/** True when `value` is a password hash this module understands (used by `passwd -U` to skip hashed lines). */
export function isSupportedHash(value: string): boolean {
  return typeof parseHash(value) !== 'string';
}

/**
 * Split a line as mosquitto does (strtok on ':' skips empty fields; fields are trimmed; fields after the
 * second are ignored). Returns undefined for a line mosquitto skips: comment, blank or without ':'.
 */
export function splitPasswdLine(line: string): { user: string; hash: string | undefined } | undefined {
  const trimmed = line.trim();
  if (trimmed === '' || trimmed.startsWith('#') || !line.includes(':')) return undefined;
  const fields = line.split(':').filter((f) => f.length > 0);
  return { user: (fields[0] ?? '').trim(), hash: fields[1]?.trim() };
}

/**
 * Parse a password file. Bad entries are dropped with a warning naming `source`, the line number and the
 * user (never the hash); a duplicate user keeps its last entry, with a warning. Throws PasswdError when the
 * file has content but no valid entry at all (see PasswdError).
 */
export function parsePasswd(text: string, source: string): { users: Users; warnings: string[] } {
  const entries = new Map<string, Entry>();
  const lineOf = new Map<string, number>();
  const warnings: string[] = [];
  let rejected = 0;
  const lines = text.split(/\r?\n/);
  lines.forEach((line, index) => {
    const lineNo = index + 1;
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const where = `${source}:${lineNo}`;
    const fields = splitPasswdLine(line);
    if (!fields) {
      rejected += 1;
      warnings.push(`${where}: not a "user:hash" line; ignored`);
      return;
    }
    const { user, hash } = fields;
    if (user === '') {
      rejected += 1;
      warnings.push(`${where}: empty user name; entry ignored`);
      return;
    }
    if (user.length > MAX_FIELD) {
      rejected += 1;
      warnings.push(`${where}: user name longer than ${MAX_FIELD} characters; entry ignored`);
      return;
    }
    const label = `${where}: user ${JSON.stringify(user)}`;
    if (hash === undefined || hash === '') {
      rejected += 1;
      warnings.push(`${label}: missing password hash; entry ignored`);
      return;
    }
    const entry = parseHash(hash);
    if (typeof entry === 'string') {
      rejected += 1;
      warnings.push(`${label}: ${entry}; entry ignored`);
      return;
    }
    const previous = lineOf.get(user);
    if (previous !== undefined) {
      warnings.push(`${label}: duplicate of line ${previous}; the later entry (line ${lineNo}) is used`);
      entries.delete(user); // re-insert so that names() follows the line that counts
    }
    entries.set(user, entry);
    lineOf.set(user, lineNo);
  });
  if (entries.size === 0 && rejected > 0) {
    throw new PasswdError(
      `${source}: no valid entry in the password file (${rejected} line${rejected === 1 ? '' : 's'} rejected: ${warnings[0] ?? ''}${rejected > 1 ? ', ...' : ''})`,
      source,
      warnings,
    );
  }
  return { users: new Users(entries), warnings };
}

/** Read and parse a password file, logging the warnings. Throws on I/O errors and on PasswdError. */
export async function loadPasswdFile(path: string, logger: Logger): Promise<Users> {
  const text = await readText(path, 'password file');
  const { users, warnings } = parsePasswd(text, path);
  for (const w of warnings) logger.warn({ file: path }, w);
  return users;
}

/**
 * Hash a password the way mosquitto_passwd does (12-byte random salt, standard base64 with padding):
 * `$6$salt$hash`, `$7$iterations$salt$hash`, or bcrypt `$2b$cost$...` (ours; mosquitto 2.0 cannot read it).
 */
export async function hashPassword(
  password: Buffer | string,
  kind: HashKind,
  opts: { iterations?: number; cost?: number } = {},
): Promise<string> {
  const bytes = toBytes(password);
  switch (kind) {
    case 'sha512': {
      const salt = randomBytes(SALT_BYTES);
      const digest = createHash('sha512').update(bytes).update(salt).digest();
      return `$6$${salt.toString('base64')}$${digest.toString('base64')}`;
    }
    case 'sha512-pbkdf2': {
      const iterations = opts.iterations ?? DEFAULT_PBKDF2_ITERATIONS;
      if (!Number.isInteger(iterations) || iterations < 1 || iterations > 0x7fffffff) {
        throw new RangeError(`iterations must be a whole number >= 1, got ${iterations}`);
      }
      const salt = randomBytes(SALT_BYTES);
      const digest = await pbkdf2Async(bytes, salt, iterations, HASH_BYTES, 'sha512');
      return `$7$${iterations}$${salt.toString('base64')}$${digest.toString('base64')}`;
    }
    case 'bcrypt': {
      const cost = opts.cost ?? DEFAULT_BCRYPT_COST;
      if (!Number.isInteger(cost) || cost < 4 || cost > 31) throw new RangeError(`bcrypt cost must be 4..31, got ${cost}`);
      const text = bytes.toString('utf8');
      if (!Buffer.from(text, 'utf8').equals(bytes)) throw new RangeError('a bcrypt password must be valid UTF-8');
      const { default: bcrypt } = await import('bcryptjs');
      return bcrypt.hash(text, cost);
    }
  }
}
