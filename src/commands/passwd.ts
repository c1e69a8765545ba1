/**
 * `mqtt-acme-broker passwd`: manage a mosquitto password file the way mosquitto_passwd 2.0.11 does (same
 * options, prompts, messages and exit codes), so that it can replace it in scripts. Differences: `-H bcrypt`
 * and `-I` as the bcrypt cost; `-U` leaves hashed entries alone; comments and blank lines are kept; the file
 * is replaced atomically; an empty user name or password is refused, also with -b; --help describes this
 * program and exits 0. This file runs the steps; the parts are in ./passwd/: the command line (args.ts,
 * help.ts), the names and passwords accepted (credentials.ts), the prompt (password-prompt.ts) and the file
 * edit (passwd-file.ts).
 */
import { DEFAULT_BCRYPT_COST, DEFAULT_PBKDF2_ITERATIONS, hashPassword } from '../auth/passwd.js';
import { parsePasswdArgs, type HashChoice } from './passwd/args.js';
import { checkPassword, checkUser } from './passwd/credentials.js';
import { PasswdFailure, UsageError } from './passwd/failure.js';
import { PASSWD_HELP, PASSWD_USAGE_HINT } from './passwd/help.js';
import { promptPassword } from './passwd/password-prompt.js';
import { createPasswdFile, readPasswdLines, withPasswordsHashed, withUser, withoutUser, writePasswdLines } from './passwd/passwd-file.js';

export interface PasswdIo {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** stdin is a terminal: read passwords in raw mode, without echo. */
  isTTY: boolean;
}

function hashWith(choice: HashChoice): (password: string) => Promise<string> {
  if (choice.kind === 'bcrypt') return (password) => hashPassword(password, 'bcrypt', { cost: choice.iterations ?? DEFAULT_BCRYPT_COST });
  return (password) => hashPassword(password, choice.kind, { iterations: choice.iterations ?? DEFAULT_PBKDF2_ITERATIONS });
}

async function run(argv: string[], io: PasswdIo): Promise<void> {
  const args = parsePasswdArgs(argv);
  if (args.mode === 'help') {
    io.stdout.write(PASSWD_HELP);
    return;
  }
  if (args.mode !== 'upgrade') checkUser(args.user);
  if ((args.mode === 'create' || args.mode === 'update') && args.password !== undefined) checkPassword(args.password);

  switch (args.mode) {
    case 'create': {
      const password = args.password ?? (await promptPassword(io));
      checkPassword(password);
      await createPasswdFile(args.file, args.user, await hashWith(args.hash)(password));
      return;
    }
    case 'update': {
      // The whole file is read and checked before the password is asked for.
      const lines = await readPasswdLines(args.file);
      const password = args.password ?? (await promptPassword(io));
      checkPassword(password);
      await writePasswdLines(args.file, withUser(lines, args.user, await hashWith(args.hash)(password)));
      return;
    }
    case 'delete':
      await writePasswdLines(args.file, withoutUser(await readPasswdLines(args.file), args.user));
      return;
    case 'upgrade':
      await writePasswdLines(args.file, await withPasswordsHashed(await readPasswdLines(args.file), hashWith(args.hash)));
      return;
  }
}

/** Run `passwd` with its arguments (after `passwd`); returns the exit status. */
export async function passwdCommand(argv: string[], io: PasswdIo): Promise<number> {
  try {
    await run(argv, io);
    return 0;
  } catch (err) {
    if (!(err instanceof PasswdFailure)) throw err;
    if (err.message !== '') io.stderr.write(`${err.message}\n`);
    if (err instanceof UsageError) io.stderr.write(PASSWD_USAGE_HINT);
    return err.code;
  }
}
