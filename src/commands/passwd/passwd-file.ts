/**
 * The password file as `passwd` edits it: a list of lines that keep their own line ends, so that every line
 * not edited (comments, blank lines, CRLF ends, other users) is written back byte for byte. The file is
 * checked as a whole before anything is asked or changed, and replaced atomically (temporary file beside it
 * + rename, through a symlink, keeping the mode of an existing file; 0600 for a new one), so a broker
 * reloading it never sees half a file. Error messages are mosquitto_passwd's.
 */
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../../files/atomic.js';
import { strerror } from '../../files/read.js';
import { isSupportedHash, splitPasswdLine } from '../../auth/passwd.js';
import { PasswdFailure } from './failure.js';

function entryLine(user: string, hash: string): string {
  return `${user}:${hash}\n`;
}

/** -c: a new file holding this one entry (an existing file is replaced, keeping its mode). */
export async function createPasswdFile(file: string, user: string, hash: string): Promise<void> {
  try {
    await writeFileAtomic(file, entryLine(user, hash), { mode: 0o600, keepExisting: true });
  } catch (err) {
    throw new PasswdFailure(1, `Error: Unable to open file ${file} for writing. ${strerror(err)}.`);
  }
}

/** Read the file as lines; refuses a file with a line that is neither an entry, a comment nor blank. */
export async function readPasswdLines(file: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new PasswdFailure(1, `Error: Unable to open password file ${file}. ${strerror(err)}.`);
  }
  const lines = text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
  lines.forEach((line, i) => {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const f = splitPasswdLine(line);
    if (!f || f.user === '' || !f.hash) throw new PasswdFailure(1, `Error: Corrupt password file at line ${i + 1}.`);
  });
  return lines;
}

export async function writePasswdLines(file: string, lines: readonly string[]): Promise<void> {
  try {
    await writeFileAtomic(file, lines.join(''), { mode: 0o600, keepExisting: true });
  } catch (err) {
    throw new PasswdFailure(1, `Error: Unable to write password file ${file}. ${strerror(err)}.`);
  }
}

/**
 * Set `user`'s hash: its first line is replaced, its other lines dropped (mosquitto_passwd would rewrite
 * them all); a new user is appended, after a line end if the file had none at its end.
 */
export function withUser(lines: readonly string[], user: string, hash: string): string[] {
  const out: string[] = [];
  let found = false;
  for (const line of lines) {
    if (splitPasswdLine(line)?.user === user) {
      if (!found) out.push(entryLine(user, hash));
      found = true;
    } else out.push(line);
  }
  if (!found) {
    const last = out[out.length - 1];
    if (last !== undefined && !last.endsWith('\n')) out[out.length - 1] = `${last}\n`;
    out.push(entryLine(user, hash));
  }
  return out;
}

/** -D: every line of `user` removed; a user not in the file is an error (exit 1, nothing written). */
export function withoutUser(lines: readonly string[], user: string): string[] {
  const out = lines.filter((line) => splitPasswdLine(line)?.user !== user);
  if (out.length === lines.length) throw new PasswdFailure(1, `Warning: User ${user} not found in password file.`);
  return out;
}

/**
 * -U: every entry whose second field is not a hash we know is taken as a plain-text password (everything
 * after the first ':', trimmed: it may contain ':') and hashed. Entries already hashed are kept as they are
 * (mosquitto_passwd 2.0.11 hashes the hash, which locks the user out).
 */
export async function withPasswordsHashed(lines: readonly string[], hash: (password: string) => Promise<string>): Promise<string[]> {
  const out: string[] = [];
  for (const line of lines) {
    const f = splitPasswdLine(line);
    if (!f || isSupportedHash(f.hash ?? '')) out.push(line);
    else out.push(entryLine(f.user, await hash(line.slice(line.indexOf(':') + 1).trim())));
  }
  return out;
}
