/**
 * Reading the files a user names (password file, ACL, certificates, secrets) with errors that say what was
 * wrong, where, and what to do; and reading files that may legitimately be absent.
 */
import { readFile } from 'node:fs/promises';

/** The C library's words for the error codes a read or write of a user's file meets (mosquitto prints them). */
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

/** strerror(3) for an fs error: `No such file or directory` for ENOENT; the error's own message otherwise. */
export function strerror(err: unknown): string {
  const e = err as NodeJS.ErrnoException | undefined;
  return (e?.code !== undefined ? STRERROR[e.code] : undefined) ?? e?.message ?? String(err);
}

/** What to do about a failed read, by error code. */
function advice(code: string | undefined, err: unknown): string {
  switch (code) {
    case 'ENOENT':
      return 'there is no such file; check the path';
    case 'ENOTDIR':
      return 'a part of the path is not a directory; check the path';
    case 'EACCES':
    case 'EPERM': {
      const uid = process.getuid?.();
      return `permission denied; make it readable by the user the broker runs as${uid === undefined ? '' : ` (uid ${uid})`}`;
    }
    case 'EISDIR':
      return 'it is a directory; name the file in it';
    case 'ELOOP':
      return 'its symbolic links form a loop; check where they point';
    default:
      return strerror(err);
  }
}

/**
 * A file that could not be read: `cannot read the password file /x/passwd (ENOENT); there is no such file;
 * check the path`. `path` and `code` are those of the fs error (the reloader names the file from `path`).
 */
export class FileReadError extends Error {
  override readonly name = 'FileReadError';
  readonly code: string | undefined;
  constructor(
    readonly path: string,
    /** What the file is, for the message: 'password file', 'certfile'. */
    readonly what: string,
    cause: unknown,
  ) {
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    super(`cannot read the ${what} ${path}${code === undefined ? '' : ` (${code})`}; ${advice(code, cause)}`, { cause });
    this.code = code;
  }
}

/** Read a text file (UTF-8); a failure throws a FileReadError naming `what` and `path`. */
export async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new FileReadError(path, what, err);
  }
}

/** Read a file as bytes (PEM handed on to TLS as it is); a failure throws a FileReadError. */
export async function readBytes(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new FileReadError(path, what, err);
  }
}

/** Read a text file that may be absent: undefined when it (or a directory on its path) does not exist. */
export async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}
