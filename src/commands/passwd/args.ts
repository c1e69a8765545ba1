/**
 * The command line of `passwd`: mosquitto_passwd's options (-c, -D, -b, -U, -H, -I) plus -h/--help, read
 * from one table (PASSWD_FLAGS) so that the help test can check every accepted flag is documented.
 * Options come first; `--` or the first argument not starting with '-' ends them (so a password may start
 * with '-'). A bad command line throws UsageError with mosquitto_passwd's message where it has one.
 */
import type { HashKind } from '../../auth/passwd.js';
import { UsageError } from './failure.js';

/** The -H values, the default first. */
export const HASH_KINDS = ['sha512-pbkdf2', 'sha512', 'bcrypt'] as const satisfies readonly HashKind[];

/** How new entries are hashed: -H and -I (undefined: the kind's default). */
export interface HashChoice {
  kind: HashKind;
  /** PBKDF2 iterations, or the bcrypt cost. */
  iterations: number | undefined;
}

export type PasswdArgs =
  | { mode: 'help' }
  /** -c (a new file with this one user) or neither -c, -D nor -U (add or change the user). */
  | { mode: 'create' | 'update'; hash: HashChoice; file: string; user: string; password: string | undefined }
  | { mode: 'delete'; file: string; user: string }
  | { mode: 'upgrade'; hash: HashChoice; file: string };

interface Options extends HashChoice {
  help: boolean;
  create: boolean;
  delete: boolean;
  batch: boolean;
  upgrade: boolean;
}

interface Flag {
  /** Its spellings. */
  names: readonly string[];
  /** The flag takes the next argument as its value. */
  takesValue?: true;
  apply(options: Options, value: string): void;
}

export const PASSWD_FLAGS: readonly Flag[] = [
  { names: ['-c'], apply: (o) => void (o.create = true) },
  { names: ['-D'], apply: (o) => void (o.delete = true) },
  { names: ['-b'], apply: (o) => void (o.batch = true) },
  { names: ['-U'], apply: (o) => void (o.upgrade = true) },
  {
    names: ['-H'],
    takesValue: true,
    apply: (o, v) => {
      const kind = HASH_KINDS.find((k) => k === v);
      if (kind === undefined) throw new UsageError(`Error: Unknown hash type '${v}'`);
      o.kind = kind;
    },
  },
  {
    names: ['-I'],
    takesValue: true,
    apply: (o, v) => {
      const n = /^\d{1,10}$/.test(v) ? Number(v) : 0;
      if (n < 1 || n > 0x7fffffff) throw new UsageError('Error: Number of iterations must be > 0.');
      o.iterations = n;
    },
  },
  { names: ['-h', '--help'], apply: (o) => void (o.help = true) },
];

/** Parse `passwd`'s arguments (without the `passwd` itself). Throws UsageError. */
export function parsePasswdArgs(argv: readonly string[]): PasswdArgs {
  const o: Options = { help: false, create: false, delete: false, batch: false, upgrade: false, kind: 'sha512-pbkdf2', iterations: undefined };
  let idx = 0;
  for (; idx < argv.length; idx++) {
    const arg = argv[idx] as string;
    if (arg === '--') {
      idx++;
      break;
    }
    if (!arg.startsWith('-') || arg === '-') break;
    const flag = PASSWD_FLAGS.find((f) => f.names.includes(arg));
    if (flag === undefined) throw new UsageError(`Error: Unknown option '${arg}'.`);
    let value = '';
    if (flag.takesValue === true) {
      const next = argv[idx + 1];
      if (next === undefined) throw new UsageError(`Error: ${arg} argument given but not enough other arguments.`);
      value = next;
      idx++;
    }
    flag.apply(o, value);
    if (o.help) return { mode: 'help' };
  }

  if (o.create && o.delete) throw new UsageError('Error: -c and -D cannot be used together.');
  if (o.create && o.upgrade) throw new UsageError('Error: -c and -U cannot be used together.');
  if (o.delete && o.upgrade) throw new UsageError('Error: -D and -U cannot be used together.');
  if (o.delete && o.batch) throw new UsageError('Error: -b and -D cannot be used together.');
  if (o.kind === 'bcrypt' && o.iterations !== undefined && (o.iterations < 4 || o.iterations > 31)) {
    throw new UsageError('Error: The bcrypt cost (-I) must be between 4 and 31.');
  }

  const rest = argv.slice(idx);
  const hash: HashChoice = { kind: o.kind, iterations: o.iterations };
  const positional = (count: number, missing: string): string[] => {
    if (rest.length < count) throw new UsageError(missing);
    if (rest.length > count) throw new UsageError(`Error: Too many arguments; the first one too many is '${rest[count] as string}'.`);
    return rest;
  };
  if (o.upgrade) {
    if (rest.length !== 1) throw new UsageError('Error: -U argument given but password file missing.');
    return { mode: 'upgrade', hash, file: rest[0] as string };
  }
  if (o.delete) {
    const [file, user] = positional(2, 'Error: -D argument given but password file or username missing.') as [string, string];
    return { mode: 'delete', file, user };
  }
  const mode = o.create ? 'create' : 'update';
  const given = o.create ? '-c argument given but' : o.batch ? '-b argument given but' : '';
  if (o.batch) {
    const [file, user, password] = positional(3, `Error: ${given} password file, username, or password missing.`) as [string, string, string];
    return { mode, hash, file, user, password };
  }
  const [file, user] = positional(2, given === '' ? 'Error: Password file or username missing.' : `Error: ${given} password file or username missing.`) as [string, string];
  return { mode, hash, file, user, password: undefined };
}
