/**
 * The environment as a config source (the highest precedence). The variables are those the schema's table
 * names (`env`), each read by the kind of its key. Every variable is optional; an empty value counts as unset
 * (as a Kubernetes `value: ""` usually means). Messages name the variable, never its value.
 *
 * Secrets (the keys marked `envFile`: CLOUDFLARE_KEY, CLOUDFLARE_API_TOKEN, CLOUDFLARE_EMAIL, EMAIL) may
 * instead come from the file named by `NAME_FILE`. Trailing (or leading) blanks and newlines -- the `echo`
 * without `-n` trap of hand-made Secrets -- are removed with a warning; any other control character is an error.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { ConfigLayer, KeyInfo, PartialConfig } from './schema.js';
import { KEYS } from './schema.js';
import { ConfigError } from './config-error.js';
import { LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING } from './managed.js';

/** Every variable we read, for documentation and for check-config. */
export const ENV_VARIABLES: readonly string[] = KEYS.flatMap((k) => (k.meta.env === undefined ? [] : [k.meta.env]));

/** Variables that may be given as `NAME_FILE` instead. */
export const SECRET_VARIABLES: readonly string[] = KEYS.flatMap((k) => (k.meta.env !== undefined && k.meta.envFile ? [k.meta.env] : []));

export interface EnvResult {
  layer: ConfigLayer;
  warnings: string[];
}

const TRUE = ['true', '1', 'yes'];
const FALSE = ['false', '0', 'no', ''];

/**
 * Clean one value: strip surrounding blanks/newlines (with a warning naming `name`), refuse other control
 * characters. Returns undefined for an empty result.
 */
function clean(raw: string, name: string, warnings: string[]): string | undefined {
  const trimmed = raw.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '');
  if (trimmed !== raw && trimmed !== '') {
    warnings.push(`${name}: surrounding whitespace/newline removed from the value (was it written with "echo" instead of "echo -n"?)`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(trimmed)) {
    throw new ConfigError(`env ${name}`, 'the value contains a control character (a line break or tab inside it?); set it to a single-line value');
  }
  return trimmed === '' ? undefined : trimmed;
}

function setPath(values: PartialConfig, path: string, value: unknown): void {
  const parts = path.split('.');
  const name = parts.pop() as string;
  let holder = values as Record<string, unknown>;
  for (const part of parts) holder = (holder[part] ??= {}) as Record<string, unknown>;
  holder[name] = value;
}

/**
 * Read the environment into a config layer. `cwd` resolves relative paths (LETSENCRYPT_DIR, DATA_DIR, NAME_FILE).
 * Throws `ConfigError` whose source is `env NAME`. Ranges and formats are checked with the other sources'.
 */
export async function readEnv(env: NodeJS.ProcessEnv, cwd: string): Promise<EnvResult> {
  const warnings: string[] = [];
  const values: PartialConfig = {};
  const sources: Record<string, string> = {};

  const get = (name: string): string | undefined => {
    const raw = env[name];
    return raw === undefined ? undefined : clean(raw, name, warnings);
  };
  const fail = (name: string, problem: string): never => {
    throw new ConfigError(`env ${name}`, problem);
  };
  /** A value from NAME or, for secrets, from the file named by NAME_FILE; with the variable it came from. */
  const text = async (name: string, fromFile: boolean): Promise<{ value: string; from: string } | undefined> => {
    const direct = get(name);
    if (!fromFile) return direct === undefined ? undefined : { value: direct, from: name };
    const fileVar = `${name}_FILE`;
    const file = get(fileVar);
    if (direct !== undefined && file !== undefined) fail(name, `both ${name} and ${fileVar} are set; keep one of them`);
    if (direct !== undefined) return { value: direct, from: name };
    if (file === undefined) return undefined;
    const path = resolve(cwd, file);
    let content: string;
    try {
      content = await readFile(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      return fail(fileVar, `cannot read ${path} (${code}); mount the secret file there or fix the path`);
    }
    const value = clean(content, `${fileVar} (file ${path})`, warnings);
    if (value === undefined) fail(fileVar, `the file ${path} is empty; put the value in it`);
    return { value: value as string, from: fileVar };
  };
  /** The value of `key`'s variable, parsed by the key's kind. */
  const read = async (key: KeyInfo, name: string): Promise<{ value: unknown; from: string } | undefined> => {
    if (key.kind === 'bool') {
      const raw = env[name];
      if (raw === undefined) return undefined;
      const value = (clean(raw, name, warnings) ?? '').toLowerCase();
      if (TRUE.includes(value)) return { value: true, from: name };
      if (FALSE.includes(value)) return raw.trim() === '' ? undefined : { value: false, from: name };
      return fail(name, 'expected true/1/yes or false/0/no');
    }
    const got = await text(name, key.meta.envFile === true);
    if (got === undefined) return undefined;
    const { value, from } = got;
    switch (key.kind) {
      case 'int':
        if (!/^-?\d+$/.test(value)) fail(from, `expected ${key.text}`);
        return { value: Number(value), from };
      case 'path':
        return { value: resolve(cwd, value), from };
      case 'enum': {
        const lower = value.toLowerCase();
        if (!key.values?.includes(lower)) fail(from, `expected one of ${key.values?.join(', ')}`);
        return { value: lower, from };
      }
      case 'list':
        return { value: value.split(',').map((item) => item.trim()).filter((item) => item !== ''), from };
      default:
        return got;
    }
  };

  for (const name of ENV_VARIABLES) {
    if (!SECRET_VARIABLES.includes(name) && env[`${name}_FILE`]) {
      warnings.push(`${name}_FILE is not read: only ${SECRET_VARIABLES.join(', ')} may come from files; set ${name} itself`);
    }
  }

  for (const key of KEYS) {
    if (key.meta.env === undefined) continue;
    const got = await read(key, key.meta.env);
    if (got === undefined) continue;
    setPath(values, key.path, got.value);
    sources[key.path] = `env ${got.from}`;
  }

  // TESTCERT decides the directory over any URL set in a file (it is the more specific source), but not over
  // ACME_DIRECTORY_URL.
  const staging = values.acme?.staging;
  if (staging !== undefined && values.acme?.directoryUrl === undefined) {
    setPath(values, 'acme.directoryUrl', staging ? LETSENCRYPT_STAGING : LETSENCRYPT_PRODUCTION);
    sources['acme.directoryUrl'] = sources['acme.staging'] as string;
  }
  return { layer: { values, sources }, warnings };
}
