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
import { join, relative, resolve, isAbsolute } from 'node:path';
import type { Logger } from '../log.js';
import type { Config, ConfigLayer, ListenerConfig } from './schema.js';
import { defaultConfig } from './schema.js';
import { ConfigError } from './config-error.js';
import { LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING, acmeEnabled, isManagedListener, isTlsListener } from './managed.js';
import { checkLayer } from './check.js';
import { parseConfigJson } from './config-json.js';
import { parseMosquittoConf } from './mosquitto-conf.js';
import { readEnv } from './env.js';
import { normalizeDomain } from './formats.js';
import { lineageNameFor } from '../x509/dns-name.js';


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
// one source's values

/**
 * Check the values one source set against the schema (types, ranges, formats; `ConfigError` naming that
 * source), normalize them, and drop duplicate domains with a warning naming the one given twice.
 */
function checkSource(layer: ConfigLayer, warnings: string[]): ConfigLayer {
  const values = checkLayer(layer.values, layer.sources);
  const domains = values.acme?.domains;
  if (values.acme && domains) {
    const seen = new Set<string>();
    values.acme.domains = domains.flatMap((name) => {
      const normal = normalizeDomain(name);
      if (!seen.has(normal)) {
        seen.add(normal);
        return [normal];
      }
      warnings.push(`${layer.sources['acme.domains']}: "${name}" is listed twice; using it once`);
      return [];
    });
  }
  return { values, sources: layer.sources };
}

// ---------------------------------------------------------------------------------------------------------
// merge

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Set every value of `from` in `into`: objects key by key, anything else (arrays too) whole. */
function assignDeep(into: Record<string, unknown>, from: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(from)) {
    if (value === undefined) continue;
    if (isPlainObject(value) && isPlainObject(into[key])) assignDeep(into[key] as Record<string, unknown>, value);
    else into[key] = structuredClone(value);
  }
}

function mergeLayer(config: Config, sources: Record<string, string>, layer: ConfigLayer, warnings: string[]): void {
  if (layer.values.listeners) {
    if (config.listeners.length > 0) {
      warnings.push(
        `${layer.sources.listeners ?? 'listeners'}: defines the listeners, so the ${config.listeners.length} listener(s) ` +
          `of ${sources.listeners ?? 'a lower source'} are not used`,
      );
    }
    for (const key of Object.keys(sources)) if (key.startsWith('listeners')) delete sources[key];
  }
  assignDeep(config as unknown as Record<string, unknown>, layer.values as Record<string, unknown>);
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
    const lineage = join(config.acme.letsencryptDir, 'live', lineageNameFor(config.acme.domains));
    config.listeners.forEach((l, i) => {
      // A second TLS listener whose files are the ACME lineage's (e.g. one for old cameras) serves the managed
      // certificate from the source itself: it works on a fresh volume and swaps at the same moment.
      if (!isManagedListener(config, l) && l.certfile !== undefined && l.keyfile !== undefined && isInside(l.certfile, lineage) && isInside(l.keyfile, lineage)) {
        l.acme = true;
      }
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
            '(a self-signed stand-in is served only until the first certificate arrives; ACME_SELF_SIGNED_WHILE_WAITING=false turns that off)',
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
    if (l.acme === true && !acmeEnabled(config)) fail(key('acme'), 'this listener is to serve the ACME-managed certificate, but ACME is off; set DOMAIN (and Cloudflare credentials) or give the listener a certfile');
    if (l.acme === true && l.selfSigned) fail(key('selfSigned'), 'a listener serves either the ACME-managed certificate or a self-signed one; remove one');
    if (l.requireCertificate && l.cafile === undefined) fail(key('requireCertificate'), 'requiring client certificates needs a cafile to verify them; add cafile');
    if (l.cafile !== undefined && !isTlsListener(config, l)) {
      fail(key('cafile'), `listener ${l.port} has a cafile but no TLS certificate; add certfile/keyfile (or selfSigned), or remove cafile`);
    }
    if (l.tlsVersion !== undefined && !isTlsListener(config, l)) {
      fail(key('tlsVersion'), `listener ${l.port} does not speak TLS (no certificate), so a TLS version means nothing there; add certfile/keyfile (or selfSigned), or remove tls_version`);
    }
    for (const name of ['ciphers', 'ciphersTls13'] as const) {
      if (l[name] !== undefined && !isTlsListener(config, l)) {
        warnings.push(`${src(key(name))}: listener ${l.port} does not speak TLS (no certificate), so its cipher list is not used`);
      }
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

  for (const layer of layers) mergeLayer(config, sources, checkSource(layer, warnings), warnings);
  await derive(config, sources, options, warnings, notes);
  validate(config, sources, warnings);

  if (options.logger) {
    const log = options.logger.child({ component: 'config' });
    for (const message of notes) log.info(message);
    for (const message of warnings) log.warn(message);
  }
  return { config, warnings, notes, sources: result };
}
