/**
 * The environment as a config source (the highest precedence). Every variable is optional; an empty value
 * counts as unset (as a Kubernetes `value: ""` usually means). Messages name the variable, never its value.
 *
 * Secrets (CLOUDFLARE_KEY, CLOUDFLARE_API_TOKEN, CLOUDFLARE_EMAIL, EMAIL) may instead come from the file named
 * by `NAME_FILE`. Trailing (or leading) blanks and newlines -- the `echo` without `-n` trap of hand-made
 * Secrets -- are removed with a warning; any other control character is an error.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { CertKeyType, ConfigLayer, PartialConfig } from './schema.js';
import { CERT_KEY_TYPES, ConfigError, LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING, LOG_LEVELS } from './schema.js';

/** Variables that may be given as `NAME_FILE` instead. */
export const SECRET_VARIABLES = ['CLOUDFLARE_KEY', 'CLOUDFLARE_API_TOKEN', 'CLOUDFLARE_EMAIL', 'EMAIL'] as const;

/** Every variable we read, for documentation and for check-config. */
export const ENV_VARIABLES = [
  'DOMAIN', 'EMAIL', 'CLOUDFLARE_EMAIL', 'CLOUDFLARE_KEY', 'CLOUDFLARE_API_TOKEN', 'TESTCERT', 'ACME_DIRECTORY_URL',
  'CLOUDFLARE_BASE_URL', 'ACME_DNS_RESOLVERS', 'LETSENCRYPT_DIR', 'MQTTS_PORT', 'CERT_KEY_TYPE', 'CERT_REUSE_KEY',
  'ACME_SELF_SIGNED_WHILE_WAITING', 'DATA_DIR', 'LOG_LEVEL', 'OPS_PORT', 'OPS_HOST',
] as const;

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

/**
 * Read the environment into a config layer. `cwd` resolves relative paths (LETSENCRYPT_DIR, DATA_DIR, NAME_FILE).
 * Throws `ConfigError` whose source is `env NAME`.
 */
export async function readEnv(env: NodeJS.ProcessEnv, cwd: string): Promise<EnvResult> {
  const warnings: string[] = [];
  const values: PartialConfig = {};
  const acme: NonNullable<PartialConfig['acme']> = {};
  const cloudflare: NonNullable<NonNullable<PartialConfig['acme']>['cloudflare']> = {};
  const ops: NonNullable<PartialConfig['ops']> = {};
  const sources: Record<string, string> = {};

  const get = (name: string): string | undefined => {
    const raw = env[name];
    return raw === undefined ? undefined : clean(raw, name, warnings);
  };
  const fail = (name: string, problem: string): never => {
    throw new ConfigError(`env ${name}`, problem);
  };
  /** A secret from NAME or from the file named by NAME_FILE; returns the variable it came from. */
  const secret = async (name: string): Promise<{ value: string; from: string } | undefined> => {
    const direct = get(name);
    const fileVar = `${name}_FILE`;
    const file = get(fileVar);
    if (direct !== undefined && file !== undefined) fail(name, `both ${name} and ${fileVar} are set; keep one of them`);
    if (direct !== undefined) return { value: direct, from: name };
    if (file === undefined) return undefined;
    const path = resolve(cwd, file);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      return fail(fileVar, `cannot read ${path} (${code}); mount the secret file there or fix the path`);
    }
    const value = clean(text, `${fileVar} (file ${path})`, warnings);
    if (value === undefined) fail(fileVar, `the file ${path} is empty; put the value in it`);
    return { value: value as string, from: fileVar };
  };
  const bool = (name: string): boolean | undefined => {
    const raw = env[name];
    if (raw === undefined) return undefined;
    const value = (clean(raw, name, warnings) ?? '').toLowerCase();
    if (TRUE.includes(value)) return true;
    if (FALSE.includes(value)) return raw.trim() === '' ? undefined : false;
    return fail(name, 'expected true/1/yes or false/0/no');
  };
  const int = (name: string, what: string): number | undefined => {
    const value = get(name);
    if (value === undefined) return undefined;
    if (!/^-?\d+$/.test(value)) fail(name, `expected ${what}`);
    return Number(value);
  };

  for (const name of ENV_VARIABLES) {
    if (!(SECRET_VARIABLES as readonly string[]).includes(name) && env[`${name}_FILE`]) {
      warnings.push(`${name}_FILE is not read: only ${SECRET_VARIABLES.join(', ')} may come from files; set ${name} itself`);
    }
  }

  const domain = get('DOMAIN');
  if (domain !== undefined) {
    acme.domains = domain.split(',').map((d) => d.trim()).filter((d) => d !== '');
    sources['acme.domains'] = 'env DOMAIN';
  }
  const email = await secret('EMAIL');
  if (email) {
    acme.email = email.value;
    sources['acme.email'] = `env ${email.from}`;
  }
  const cfEmail = await secret('CLOUDFLARE_EMAIL');
  if (cfEmail) {
    cloudflare.email = cfEmail.value;
    sources['acme.cloudflare.email'] = `env ${cfEmail.from}`;
  }
  const cfKey = await secret('CLOUDFLARE_KEY');
  if (cfKey) {
    cloudflare.apiKey = cfKey.value;
    sources['acme.cloudflare.apiKey'] = `env ${cfKey.from}`;
  }
  const cfToken = await secret('CLOUDFLARE_API_TOKEN');
  if (cfToken) {
    cloudflare.apiToken = cfToken.value;
    sources['acme.cloudflare.apiToken'] = `env ${cfToken.from}`;
  }
  if (cfKey && cfToken) {
    fail(cfToken.from, `a scoped API token and a global API key (${cfKey.from}) are both set; keep only one (the token is preferred)`);
  }

  const staging = bool('TESTCERT');
  if (staging !== undefined) {
    acme.staging = staging;
    sources['acme.staging'] = 'env TESTCERT';
  }
  const directoryUrl = get('ACME_DIRECTORY_URL');
  if (directoryUrl !== undefined) {
    acme.directoryUrl = directoryUrl;
    sources['acme.directoryUrl'] = 'env ACME_DIRECTORY_URL';
  } else if (staging !== undefined) {
    // TESTCERT decides the directory over any URL set in a file: it is the more specific source.
    acme.directoryUrl = staging ? LETSENCRYPT_STAGING : LETSENCRYPT_PRODUCTION;
    sources['acme.directoryUrl'] = 'env TESTCERT';
  }
  const baseUrl = get('CLOUDFLARE_BASE_URL');
  if (baseUrl !== undefined) {
    acme.cloudflareBaseUrl = baseUrl;
    sources['acme.cloudflareBaseUrl'] = 'env CLOUDFLARE_BASE_URL';
  }
  const resolvers = get('ACME_DNS_RESOLVERS');
  if (resolvers !== undefined) {
    acme.dnsResolvers = resolvers.split(',').map((r) => r.trim()).filter((r) => r !== '');
    sources['acme.dnsResolvers'] = 'env ACME_DNS_RESOLVERS';
  }
  const letsencryptDir = get('LETSENCRYPT_DIR');
  if (letsencryptDir !== undefined) {
    acme.letsencryptDir = resolve(cwd, letsencryptDir);
    sources['acme.letsencryptDir'] = 'env LETSENCRYPT_DIR';
  }
  const mqttsPort = int('MQTTS_PORT', 'a port number 0..65535');
  if (mqttsPort !== undefined) {
    acme.mqttsPort = mqttsPort;
    sources['acme.mqttsPort'] = 'env MQTTS_PORT';
  }
  const keyType = get('CERT_KEY_TYPE');
  if (keyType !== undefined) {
    if (!(CERT_KEY_TYPES as readonly string[]).includes(keyType)) fail('CERT_KEY_TYPE', `expected one of ${CERT_KEY_TYPES.join(', ')}`);
    acme.keyType = keyType as CertKeyType;
    sources['acme.keyType'] = 'env CERT_KEY_TYPE';
  }
  const reuseKey = bool('CERT_REUSE_KEY');
  if (reuseKey !== undefined) {
    acme.reuseKey = reuseKey;
    sources['acme.reuseKey'] = 'env CERT_REUSE_KEY';
  }
  const selfSignedWhileWaiting = bool('ACME_SELF_SIGNED_WHILE_WAITING');
  if (selfSignedWhileWaiting !== undefined) {
    acme.selfSignedWhileWaiting = selfSignedWhileWaiting;
    sources['acme.selfSignedWhileWaiting'] = 'env ACME_SELF_SIGNED_WHILE_WAITING';
  }

  const dataDir = get('DATA_DIR');
  if (dataDir !== undefined) {
    values.dataDir = resolve(cwd, dataDir);
    sources.dataDir = 'env DATA_DIR';
  }
  const logLevel = get('LOG_LEVEL');
  if (logLevel !== undefined) {
    const level = logLevel.toLowerCase();
    if (!(LOG_LEVELS as readonly string[]).includes(level)) fail('LOG_LEVEL', `expected one of ${LOG_LEVELS.join(', ')}`);
    values.logLevel = level as (typeof LOG_LEVELS)[number];
    sources.logLevel = 'env LOG_LEVEL';
  }
  const opsPort = int('OPS_PORT', 'a port number 0..65535, or -1 to turn the ops HTTP server off');
  if (opsPort !== undefined) {
    ops.port = opsPort;
    sources['ops.port'] = 'env OPS_PORT';
  }
  const opsHost = get('OPS_HOST');
  if (opsHost !== undefined) {
    ops.host = opsHost;
    sources['ops.host'] = 'env OPS_HOST';
  }

  if (Object.keys(cloudflare).length > 0) acme.cloudflare = cloudflare;
  if (Object.keys(acme).length > 0) values.acme = acme;
  if (Object.keys(ops).length > 0) values.ops = ops;
  return { layer: { values, sources }, warnings };
}
