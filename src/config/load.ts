/**
 * Loads the one `Config` from its sources, in order of precedence:
 *   defaults < config.json (`--config FILE`) < mosquitto.conf (`-c FILE`) < environment.
 * A value set by a later source replaces the earlier one; `listeners` is one value (a source that defines
 * listeners replaces all earlier ones). Then come the derived parts (default password file, persistence
 * location, the ACME listener, the zero-config listener) and the checks across keys. Every error is a
 * `ConfigError` that names where the value came from.
 */
import { access, readFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, join, relative, resolve, isAbsolute } from 'node:path';
import type { Logger } from '../log.js';
import type { Config, ConfigLayer, ListenerConfig, PartialConfig } from './schema.js';
import {
  CERT_KEY_TYPES,
  ConfigError,
  LETSENCRYPT_PRODUCTION,
  LETSENCRYPT_STAGING,
  LISTENER_PROTOCOLS,
  LOG_LEVELS,
  acmeEnabled,
  defaultConfig,
  isManagedListener,
  isTlsListener,
} from './schema.js';
import { closest, parseMosquittoConf } from './mosquitto-conf.js';
import { readEnv } from './env.js';

export { ConfigError } from './schema.js';

/** The old image's paths, used when nothing else is configured. */
export const DEFAULT_PATHS = {
  mosquittoConf: '/mosquitto/conf/mosquitto.conf',
  passwordFile: '/mosquitto/conf/passwd',
};

export interface LoadOptions {
  /** config.json path (`--config`), relative to `cwd`. */
  configJson?: string;
  /** mosquitto.conf path (`-c`), relative to `cwd`. */
  mosquittoConf?: string;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** When given, warnings and info messages are also logged (component "config"). */
  logger?: Logger;
  /** Where to look for the old image's files; null turns a lookup off (tests). */
  defaults?: { mosquittoConf?: string | null; passwordFile?: string | null };
}

export interface ConfigSources {
  /** Absolute paths of the files read. */
  configJson?: string;
  mosquittoConf?: string;
  /** Key path (`acme.domains`, `listeners[0].certfile`) -> where its value came from; absent = default. */
  values: Record<string, string>;
}

export interface LoadResult {
  config: Config;
  /** Things the user should fix or know is ignored. */
  warnings: string[];
  /** Decisions taken for the user (default listener, default files), worth one info log line each. */
  notes: string[];
  sources: ConfigSources;
}

// ---------------------------------------------------------------------------------------------------------
// config.json

type Spec =
  | { t: 'int' }
  | { t: 'bool' }
  | { t: 'str'; secret?: boolean }
  | { t: 'path' }
  | { t: 'enum'; values: readonly string[] }
  | { t: 'strs' }
  | { t: 'obj'; fields: Record<string, Spec>; required?: string[] }
  | { t: 'arr'; items: Spec };

const LISTENER_SPEC: Spec = {
  t: 'obj',
  required: ['port'],
  fields: {
    port: { t: 'int' },
    host: { t: 'str' },
    protocol: { t: 'enum', values: LISTENER_PROTOCOLS },
    certfile: { t: 'path' },
    keyfile: { t: 'path' },
    cafile: { t: 'path' },
    requireCertificate: { t: 'bool' },
    selfSigned: { t: 'bool' },
  },
};

const CONFIG_SPEC: Spec = {
  t: 'obj',
  fields: {
    listeners: { t: 'arr', items: LISTENER_SPEC },
    passwordFile: { t: 'path' },
    aclFile: { t: 'path' },
    allowAnonymous: { t: 'bool' },
    dataDir: { t: 'path' },
    persistence: { t: 'bool' },
    persistenceLocation: { t: 'path' },
    maxConnections: { t: 'int' },
    messageSizeLimit: { t: 'int' },
    maxKeepalive: { t: 'int' },
    maxInflightMessages: { t: 'int' },
    maxQueuedMessages: { t: 'int' },
    retainAvailable: { t: 'bool' },
    maxTopicAlias: { t: 'int' },
    maxPacketSize: { t: 'int' },
    connectTimeout: { t: 'int' },
    sysInterval: { t: 'int' },
    logLevel: { t: 'enum', values: LOG_LEVELS },
    acme: {
      t: 'obj',
      fields: {
        domains: { t: 'strs' },
        email: { t: 'str' },
        directoryUrl: { t: 'str' },
        staging: { t: 'bool' },
        cloudflare: {
          t: 'obj',
          fields: { apiToken: { t: 'str', secret: true }, apiKey: { t: 'str', secret: true }, email: { t: 'str' } },
        },
        cloudflareBaseUrl: { t: 'str' },
        dnsResolvers: { t: 'strs' },
        letsencryptDir: { t: 'path' },
        mqttsPort: { t: 'int' },
        keyType: { t: 'enum', values: CERT_KEY_TYPES },
        reuseKey: { t: 'bool' },
        selfSignedWhileWaiting: { t: 'bool' },
      },
    },
    ops: { t: 'obj', fields: { port: { t: 'int' }, host: { t: 'str' } } },
  },
};

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'number') return Number.isInteger(value) ? 'an integer' : 'a number';
  return `a ${typeof value}`;
}

const EXPECTED: Record<Spec['t'], string> = {
  int: 'an integer',
  bool: 'true or false',
  str: 'a string',
  path: 'a file path (string)',
  enum: 'a string',
  strs: 'an array of strings',
  obj: 'an object',
  arr: 'an array',
};

/**
 * Parse config.json text into a layer. Keys are `Config`'s; unknown keys and wrong types are errors naming the
 * key path. An empty string means "not set". Relative paths resolve against the file's directory.
 */
export function parseConfigJson(text: string, file: string): ConfigLayer {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message;
    const pos = /position (\d+)/.exec(message);
    let where = '';
    if (pos) {
      const before = text.slice(0, Number(pos[1]));
      const line = before.split('\n').length;
      where = ` at line ${line}, column ${before.length - before.lastIndexOf('\n')}`;
    }
    throw new ConfigError(file, `not valid JSON${where} (${message.replace(/ in JSON.*$/, '').replace(/, ".*$/, '')}); fix the syntax (JSON has no comments or trailing commas)`);
  }
  const base = dirname(file);
  const sources: Record<string, string> = {};
  const convert = (value: unknown, spec: Spec, path: string): unknown => {
    const src = `${file}: ${path}`;
    const fail = (problem: string): never => {
      throw new ConfigError(src, problem);
    };
    const expect = (ok: boolean): void => {
      if (!ok) fail(`expected ${EXPECTED[spec.t]}, got ${typeName(value)}`);
    };
    sources[path] = src;
    switch (spec.t) {
      case 'int':
        expect(typeof value === 'number' && Number.isSafeInteger(value));
        return value;
      case 'bool':
        expect(typeof value === 'boolean');
        return value;
      case 'str':
        expect(typeof value === 'string');
        return value === '' ? undefined : value;
      case 'path':
        expect(typeof value === 'string');
        return value === '' ? undefined : resolve(base, value as string);
      case 'enum':
        expect(typeof value === 'string');
        if (!spec.values.includes(value as string)) fail(`expected one of ${spec.values.join(', ')}, got "${String(value)}"`);
        return value;
      case 'strs':
        expect(Array.isArray(value));
        (value as unknown[]).forEach((item, i) => {
          if (typeof item !== 'string') {
            throw new ConfigError(`${file}: ${path}[${i}]`, `expected a string, got ${typeName(item)}`);
          }
        });
        return value;
      case 'arr':
        expect(Array.isArray(value));
        return (value as unknown[]).map((item, i) => convert(item, spec.items, `${path}[${i}]`));
      case 'obj': {
        expect(typeof value === 'object' && value !== null && !Array.isArray(value));
        const out: Record<string, unknown> = {};
        for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
          const keyPath = path === '' ? key : `${path}.${key}`;
          const fieldSpec = spec.fields[key];
          if (!fieldSpec) {
            const suggestion = closest(key, Object.keys(spec.fields));
            throw new ConfigError(
              `${file}: ${keyPath}`,
              `unknown key${suggestion ? `; did you mean "${suggestion}"?` : ''} (known keys${path === '' ? '' : ` of ${path}`}: ${Object.keys(spec.fields).join(', ')})`,
            );
          }
          const converted = convert(item, fieldSpec, keyPath);
          if (converted !== undefined) out[key] = converted;
          else delete sources[keyPath];
        }
        for (const key of spec.required ?? []) {
          if (!(key in out)) fail(`"${key}" is required`);
        }
        return out;
      }
    }
  };
  const values = convert(data, CONFIG_SPEC, '') as PartialConfig;
  delete sources[''];
  for (const listener of values.listeners ?? []) {
    listener.protocol ??= 'mqtt';
    listener.requireCertificate ??= false;
    listener.selfSigned ??= false;
  }
  return { values, sources };
}

// ---------------------------------------------------------------------------------------------------------
// checks of one source's values (ranges, formats), normalizing some

const HOSTNAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** A listen/bind address: an IP address or a host name. */
function validHost(host: string): boolean {
  return isIP(host) !== 0 || HOSTNAME.test(host);
}

/** Normalize a certificate name; throws a message (without source) when it is not a valid one. */
export function normalizeDomain(name: string): string {
  const lower = name.toLowerCase();
  const bare = lower.startsWith('*.') ? lower.slice(2) : lower;
  const labels = bare.split('.');
  if (
    bare.length > 253 - (lower.length - bare.length) ||
    labels.length < 2 ||
    !labels.every((l) => LABEL.test(l)) ||
    isIP(bare) !== 0 ||
    /^\d+$/.test(labels[labels.length - 1] ?? '')
  ) {
    throw new Error(
      `"${name}" is not a valid domain name; use names like example.com or *.example.com (a wildcard only as the whole first label; ` +
        'international names in their xn-- form)',
    );
  }
  return lower;
}

/** Normalize a DNS resolver to `IP:port` (`[IPv6]:port`); the port defaults to 53. */
export function normalizeResolver(text: string): string {
  let host: string | undefined;
  let port = '53';
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1];
    if (bracketed[2] !== undefined) port = bracketed[2];
  } else if (isIP(text) !== 0) {
    host = text;
  } else {
    const m = /^([^:]+):(\d+)$/.exec(text);
    if (m) {
      host = m[1];
      port = m[2] ?? port;
    }
  }
  const p = Number(port);
  if (host === undefined || isIP(host) === 0 || !Number.isInteger(p) || p < 1 || p > 65535) {
    throw new Error(`"${text}" is not a resolver address; use IP:port, e.g. 1.1.1.1:53 or [2606:4700:4700::1111]:53`);
  }
  return isIP(host) === 6 ? `[${host}]:${p}` : `${host}:${p}`;
}

function checkUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:';
  } catch {
    return false;
  }
}

/** Check the ranges and formats of the values one source set; normalizes domains and resolvers in place. */
function checkLayer(layer: ConfigLayer, warnings: string[]): void {
  const { values: v, sources } = layer;
  const fail = (path: string, problem: string): never => {
    throw new ConfigError(sources[path] ?? path, problem);
  };
  const range = (path: string, value: number | undefined, min: number, max: number, hint = ''): void => {
    if (value !== undefined && (!Number.isInteger(value) || value < min || value > max)) {
      fail(path, `${value} is out of range: use ${min}..${max}${hint}`);
    }
  };
  v.listeners?.forEach((l, i) => {
    range(`listeners[${i}].port`, l.port, 0, 65535);
    if (l.host !== undefined && !validHost(l.host)) fail(`listeners[${i}].host`, `"${l.host}" is not an IP address or host name`);
  });
  if (v.maxConnections !== undefined && v.maxConnections !== -1 && v.maxConnections < 1) {
    fail('maxConnections', `${v.maxConnections} is not a limit: use -1 for unlimited or a positive number`);
  }
  range('messageSizeLimit', v.messageSizeLimit, 0, 268435455, ' (bytes, 0 = unlimited)');
  range('maxKeepalive', v.maxKeepalive, 1, 65535, ' (seconds)');
  range('maxInflightMessages', v.maxInflightMessages, 0, 65535, ' (0 = unlimited)');
  range('maxQueuedMessages', v.maxQueuedMessages, 0, Number.MAX_SAFE_INTEGER, ' (0 = unlimited)');
  range('maxTopicAlias', v.maxTopicAlias, 0, 65535, ' (0 = no topic aliases)');
  if (v.maxPacketSize !== undefined && v.maxPacketSize !== 0) range('maxPacketSize', v.maxPacketSize, 20, 268435460, ' (bytes, 0 = no limit of its own)');
  range('connectTimeout', v.connectTimeout, 0, 3600, ' (seconds, 0 = no deadline)');
  range('sysInterval', v.sysInterval, 0, 86400, ' (seconds, 0 = no $SYS topics)');
  const acme = v.acme;
  if (acme?.domains) {
    const seen = new Set<string>();
    acme.domains = acme.domains.flatMap((name) => {
      let normal: string;
      try {
        normal = normalizeDomain(name);
      } catch (err) {
        return fail('acme.domains', (err as Error).message);
      }
      if (seen.has(normal)) {
        warnings.push(`${sources['acme.domains']}: "${name}" is listed twice; using it once`);
        return [];
      }
      seen.add(normal);
      return [normal];
    });
  }
  if (acme?.email !== undefined && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(acme.email)) {
    fail('acme.email', 'not an e-mail address; give the ACME account contact as name@example.com');
  }
  if (acme?.cloudflare?.email !== undefined && !/^[^@\s]+@[^@\s]+$/.test(acme.cloudflare.email)) {
    fail('acme.cloudflare.email', "not an e-mail address; give the Cloudflare account's e-mail");
  }
  if (acme?.directoryUrl !== undefined && !checkUrl(acme.directoryUrl)) {
    fail('acme.directoryUrl', 'not an http(s) URL; give the ACME directory URL, e.g. https://acme-staging-v02.api.letsencrypt.org/directory');
  }
  if (acme?.cloudflareBaseUrl !== undefined && !checkUrl(acme.cloudflareBaseUrl)) {
    fail('acme.cloudflareBaseUrl', 'not an http(s) URL; give the Cloudflare API base URL, e.g. https://api.cloudflare.com/client/v4');
  }
  if (acme?.dnsResolvers) {
    acme.dnsResolvers = acme.dnsResolvers.map((r) => {
      try {
        return normalizeResolver(r);
      } catch (err) {
        return fail('acme.dnsResolvers', (err as Error).message);
      }
    });
  }
  range('acme.mqttsPort', acme?.mqttsPort, 0, 65535);
  range('ops.port', v.ops?.port, -1, 65535, ' (-1 = off)');
  if (v.ops?.host !== undefined && !validHost(v.ops.host)) fail('ops.host', `"${v.ops.host}" is not an IP address or host name`);
}

// ---------------------------------------------------------------------------------------------------------
// merge

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, value]) => value !== undefined)) as Partial<T>;
}

function mergeLayer(config: Config, sources: Record<string, string>, layer: ConfigLayer, warnings: string[]): void {
  const { listeners, acme, ops, ...rest } = layer.values;
  if (listeners) {
    if (config.listeners.length > 0) {
      warnings.push(
        `${layer.sources.listeners ?? 'listeners'}: defines the listeners, so the ${config.listeners.length} listener(s) ` +
          `of ${sources.listeners ?? 'a lower source'} are not used`,
      );
    }
    for (const key of Object.keys(sources)) if (key.startsWith('listeners')) delete sources[key];
    config.listeners = structuredClone(listeners);
  }
  Object.assign(config, defined(rest));
  if (acme) {
    const { cloudflare, ...acmeRest } = acme;
    Object.assign(config.acme, structuredClone(defined(acmeRest)));
    if (cloudflare) Object.assign(config.acme.cloudflare, defined(cloudflare));
  }
  if (ops) Object.assign(config.ops, defined(ops));
  Object.assign(sources, layer.sources);
}

// ---------------------------------------------------------------------------------------------------------
// loading

async function exists(path: string): Promise<boolean> {
  try {
    await access(path, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

async function readSource(path: string, what: string, hint: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new ConfigError(path, `cannot read the ${what} (${code}); ${hint}`);
  }
}

function isInside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

/** Derived values: default password file, persistence location, the ACME listener, the zero-config listener. */
async function derive(
  config: Config,
  sources: Record<string, string>,
  options: LoadOptions,
  warnings: string[],
  notes: string[],
): Promise<void> {
  const defaultPasswd = options.defaults?.passwordFile === undefined ? DEFAULT_PATHS.passwordFile : options.defaults.passwordFile;
  if (config.passwordFile === undefined && defaultPasswd !== null && (await exists(defaultPasswd))) {
    config.passwordFile = defaultPasswd;
    sources.passwordFile = `default ${defaultPasswd}`;
    notes.push(`no password file configured: using ${defaultPasswd}, which exists (the old image's path)`);
  }
  if (config.persistenceLocation === '') {
    config.persistenceLocation = join(config.dataDir, 'persistence');
    sources.persistenceLocation = `derived: dataDir/persistence (dataDir: ${sources.dataDir ?? 'default'})`;
  }
  if (!config.acme.directoryUrl) {
    config.acme.directoryUrl = config.acme.staging ? LETSENCRYPT_STAGING : LETSENCRYPT_PRODUCTION;
    sources['acme.directoryUrl'] = `derived from acme.staging (${sources['acme.staging'] ?? 'default'})`;
  }

  if (acmeEnabled(config)) {
    const port = config.acme.mqttsPort;
    if (!config.listeners.some((l) => l.port === port)) {
      const i = config.listeners.length;
      config.listeners.push({ port, protocol: 'mqtt', requireCertificate: false, selfSigned: false });
      sources[`listeners[${i}].port`] = `acme.mqttsPort (${sources['acme.mqttsPort'] ?? 'default'})`;
      notes.push(`ACME is on for ${config.acme.domains.join(', ')}: serving its certificate on a new MQTTS listener, port ${port}`);
    }
    config.listeners.forEach((l, i) => {
      if (!isManagedListener(config, l)) return;
      const at = (key: string): string => sources[`listeners[${i}].${key}`] ?? `listeners[${i}].${key}`;
      if (l.certfile !== undefined || l.keyfile !== undefined) {
        const files = [l.certfile, l.keyfile].filter((f): f is string => f !== undefined);
        const certbots = files.every((f) => isInside(f, join(config.acme.letsencryptDir, 'live')));
        const message =
          `${at(l.certfile !== undefined ? 'certfile' : 'keyfile')}: port ${l.port} serves the ACME-managed certificate, ` +
          `so ${files.join(' and ')} ${certbots ? "(the certbot lineage, which is now kept up to date here) are read from the store" : 'are not used'}`;
        (certbots ? notes : warnings).push(message);
        delete l.certfile;
        delete l.keyfile;
        if (!l.requireCertificate) delete l.cafile;
      }
      if (l.selfSigned) {
        notes.push(
          `${at('selfSigned')}: port ${l.port} serves the ACME-managed certificate instead of a self-signed one ` +
            '(set ACME_SELF_SIGNED_WHILE_WAITING=true to serve one until the first certificate arrives)',
        );
        l.selfSigned = false;
      }
    });
  }

  if (config.listeners.length === 0) {
    config.listeners.push({ port: 8883, protocol: 'mqtt', requireCertificate: false, selfSigned: true });
    sources['listeners[0].port'] = 'default (no listener configured)';
    notes.push(`no listener configured: serving MQTTS on 8883 with a self-signed certificate kept in ${config.dataDir} (DATA_DIR)`);
  }
}

/** Checks across keys of the merged config. */
function validate(config: Config, sources: Record<string, string>, warnings: string[]): void {
  const src = (path: string): string => sources[path] ?? `${path} (default)`;
  const fail = (path: string, problem: string): never => {
    throw new ConfigError(src(path), problem);
  };
  config.listeners.forEach((l, i) => {
    const key = (k: string): string => `listeners[${i}].${k}`;
    if (l.certfile !== undefined && l.keyfile === undefined) fail(key('certfile'), 'a certfile needs its keyfile; add the private key file for this listener');
    if (l.keyfile !== undefined && l.certfile === undefined) fail(key('keyfile'), 'a keyfile needs its certfile; add the certificate file for this listener');
    if (l.certfile !== undefined && l.selfSigned) fail(key('selfSigned'), 'a listener has either its own certfile/keyfile or a self-signed certificate; remove one');
    if (l.requireCertificate && l.cafile === undefined) fail(key('requireCertificate'), 'requiring client certificates needs a cafile to verify them; add cafile');
    if (l.cafile !== undefined && !isTlsListener(config, l)) {
      fail(key('cafile'), `listener ${l.port} has a cafile but no TLS certificate; add certfile/keyfile (or selfSigned), or remove cafile`);
    }
    for (let j = 0; j < i; j++) {
      const other = config.listeners[j] as ListenerConfig;
      if (l.port === 0 || other.port !== l.port) continue;
      if (l.host === undefined || other.host === undefined || l.host === other.host) {
        fail(key('port'), `port ${l.port} is already used by another listener (${src(`listeners[${j}].port`)}); give each listener its own port`);
      }
    }
  });
  const clash = config.ops.port > 0 ? config.listeners.findIndex((l) => l.port === config.ops.port) : -1;
  if (clash >= 0) {
    fail(
      `listeners[${clash}].port`,
      `port ${config.ops.port} is also the ops HTTP server's (${src('ops.port')}); give the listener another port, or move the ops server (OPS_PORT, -1 = off)`,
    );
  }

  const cf = config.acme.cloudflare;
  if (cf.apiToken !== undefined && cf.apiKey !== undefined) {
    fail('acme.cloudflare.apiToken', `a scoped API token and a global API key (${src('acme.cloudflare.apiKey')}) are both set; keep only one (the token is preferred)`);
  }
  if (cf.apiKey !== undefined && cf.email === undefined) {
    fail('acme.cloudflare.apiKey', "a Cloudflare global API key needs the account's e-mail: set CLOUDFLARE_EMAIL (or use a scoped CLOUDFLARE_API_TOKEN instead)");
  }
  if (acmeEnabled(config) && cf.apiToken === undefined && cf.apiKey === undefined) {
    fail(
      'acme.domains',
      'ACME needs Cloudflare credentials for the DNS-01 challenge: set CLOUDFLARE_API_TOKEN (a token with Zone:DNS:Edit, preferred) ' +
        'or CLOUDFLARE_KEY and CLOUDFLARE_EMAIL (the global API key); each may come from a file via NAME_FILE',
    );
  }
  if (!acmeEnabled(config) && (cf.apiToken !== undefined || cf.apiKey !== undefined)) {
    warnings.push(`${src(cf.apiToken !== undefined ? 'acme.cloudflare.apiToken' : 'acme.cloudflare.apiKey')}: Cloudflare credentials are set but no domain (DOMAIN), so ACME is off`);
  }
  if (config.passwordFile === undefined && !config.allowAnonymous) {
    warnings.push('no password_file and allow_anonymous is false: every client will be refused; configure a password file or allow anonymous clients');
  }
}

/**
 * Load, merge and validate the configuration. See the file comment for the precedence. Throws `ConfigError`.
 */
export async function loadConfig(options: LoadOptions): Promise<LoadResult> {
  const { env, cwd } = options;
  const warnings: string[] = [];
  const notes: string[] = [];
  const config = defaultConfig();
  config.dataDir = resolve(cwd, config.dataDir);
  config.acme.directoryUrl = '';
  const sources: Record<string, string> = {};
  const result: ConfigSources = { values: sources };

  const layers: ConfigLayer[] = [];
  if (options.configJson !== undefined) {
    const file = resolve(cwd, options.configJson);
    result.configJson = file;
    layers.push(parseConfigJson(await readSource(file, 'config file', 'check the --config path'), file));
  }
  let mosquittoConf = options.mosquittoConf;
  const defaultConf = options.defaults?.mosquittoConf === undefined ? DEFAULT_PATHS.mosquittoConf : options.defaults.mosquittoConf;
  if (mosquittoConf === undefined && options.configJson === undefined && defaultConf !== null && (await exists(defaultConf))) {
    mosquittoConf = defaultConf;
    notes.push(`no configuration file given: using ${defaultConf} (the old image's path)`);
  }
  if (mosquittoConf !== undefined) {
    const file = resolve(cwd, mosquittoConf);
    result.mosquittoConf = file;
    const parsed = parseMosquittoConf(await readSource(file, 'mosquitto.conf', 'check the -c path'), { file, cwd });
    warnings.push(...parsed.warnings);
    layers.push(parsed.layer);
  }
  const fromEnv = await readEnv(env, cwd);
  warnings.push(...fromEnv.warnings);
  layers.push(fromEnv.layer);

  for (const layer of layers) {
    checkLayer(layer, warnings);
    mergeLayer(config, sources, layer, warnings);
  }
  await derive(config, sources, options, warnings, notes);
  validate(config, sources, warnings);

  if (options.logger) {
    const log = options.logger.child({ component: 'config' });
    for (const message of notes) log.info(message);
    for (const message of warnings) log.warn(message);
  }
  return { config, warnings, notes, sources: result };
}
