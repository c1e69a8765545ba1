/**
 * The configuration of the broker, described once (zod 4). Each key is written here and nowhere else: its
 * type and checks, its default, its documentation, the mosquitto.conf directive and the environment variable
 * that set it, whether a running broker can apply a change of it, and how it is masked when printed. From
 * this description come the `Config` type, `defaultConfig()`, the validation of every source (`check.ts`),
 * the readers of mosquitto.conf and the environment, config.schema.json, `maskSecrets` and
 * `describeConfigChange`.
 *
 * Every source (defaults, config.json, mosquitto.conf, env) is merged into a `Config` by `load.ts`; nothing
 * else reads files or the environment for settings.
 */
import * as z from 'zod';
import { LETSENCRYPT_PRODUCTION } from './managed.js';
import {
  ACCOUNT_EMAIL,
  CONTACT_EMAIL,
  cipherListProblem,
  isHttpUrl,
  normalizeDomain,
  normalizeResolver,
  tls13SuitesProblem,
  validHost,
} from './formats.js';

/** Whether a running broker applies a changed value when it reloads (SIGHUP), or only after a restart. */
export type Reload = 'live' | 'restart';

/** What the table says about one key, beside its zod type. */
export interface KeyMeta {
  /** What the key does (config.schema.json shows it in editors). */
  description: string;
  reload: Reload;
  /** The mosquitto.conf directive(s) that set it; the first names the key in messages. */
  conf?: string | readonly string[];
  /** The environment variable that sets it. */
  env?: string;
  /** The variable may instead name a file holding the value (`NAME_FILE`, the container convention). */
  envFile?: boolean;
  /** How a printed configuration shows it: not at all (a secret), or an e-mail address by its domain only. */
  mask?: 'secret' | 'email';
  /** The default in words, where it is not a plain value (derived at load time, or "unset" meaning something). */
  defaultText?: string;
}

/** The metadata of every key, registered on the schema that sits in its object's shape. */
export const keyMeta = z.registry<KeyMeta>();

/** The kinds of value a key holds; text sources (mosquitto.conf, env) parse by it. */
export type ValueKind = 'int' | 'bool' | 'string' | 'path' | 'enum' | 'list';

interface LeafInfo {
  kind: ValueKind;
  /** What a text source must give, for "expected ..." messages: "a port number 0..65535", "seconds 1..65535". */
  text?: string;
}

/** The kind of every leaf type; `KEYS` reads it. */
const leafInfo = z.registry<LeafInfo>();

function leaf<T extends z.ZodType>(schema: T, info: LeafInfo): T {
  leafInfo.add(schema, info);
  return schema;
}

function key<T extends z.ZodType>(schema: T, meta: KeyMeta): T {
  const described = schema.meta({ description: meta.description });
  keyMeta.add(described, meta);
  return described;
}

/** In config.json an empty string means "not set" (config.example.json lists optional keys with ""). */
function unsetIfEmpty<T extends z.ZodType>(schema: T) {
  return z.preprocess((value) => (value === '' ? undefined : value), schema);
}

interface IntRange {
  min: number;
  max: number;
  /** The unit, in both messages: "seconds", "bytes". */
  unit?: string;
  /** What the number is, for "expected ..." (default: the unit, or "an integer"): "a port number". */
  noun?: string;
  /** What special values mean, e.g. "0 = unlimited". */
  hint?: string;
}

function span({ min, max }: IntRange): string {
  return max >= Number.MAX_SAFE_INTEGER ? `${min} or more` : `${min}..${max}`;
}

/** "70000 is out of range: use 0..65535 (seconds, 0 = none)". */
function outOfRange(range: IntRange) {
  const notes = [range.unit, range.hint].filter(Boolean).join(', ');
  return (issue: { input?: unknown }): string => `${String(issue.input)} is out of range: use ${span(range)}${notes ? ` (${notes})` : ''}`;
}

function int(range: IntRange) {
  const error = outOfRange(range);
  const text = `${range.noun ?? range.unit ?? 'an integer'} ${span(range)}${range.hint ? ` (${range.hint})` : ''}`;
  return leaf(z.int().min(range.min, { error }).max(range.max, { error }), { kind: 'int', text });
}

const bool = () => leaf(z.boolean(), { kind: 'bool' });
const text = () => leaf(z.string(), { kind: 'string' });
const filePath = () => leaf(z.string(), { kind: 'path' });
const oneOf = <const T extends readonly [string, ...string[]]>(values: T) => leaf(z.enum(values), { kind: 'enum' });

/** A string that `test` finds no problem with; `text` says what it is, for "expected ...". */
function checked(test: (value: string) => string | undefined, text: string) {
  return leaf(
    z.string().check((ctx) => {
      const problem = test(ctx.value);
      if (problem !== undefined) ctx.issues.push({ code: 'custom', message: problem, input: ctx.value });
    }),
    { kind: 'string', text },
  );
}

const hostName = () => checked((v) => (validHost(v) ? undefined : `"${v}" is not an IP address or host name`), 'an IP address or host name');
const httpUrl = (example: string) => checked((v) => (isHttpUrl(v) ? undefined : `not an http(s) URL; give ${example}`), 'an http(s) URL');
const email = (pattern: RegExp, problem: string) => checked((v) => (pattern.test(v) ? undefined : problem), 'an e-mail address');

/** A list of names; each must pass `normalize` (which throws the problem), reported on the list itself. */
function names(normalize: (name: string) => string) {
  return leaf(
    z.array(z.string()).check((ctx) => {
      for (const name of ctx.value) {
        try {
          normalize(name);
        } catch (err) {
          ctx.issues.push({ code: 'custom', message: (err as Error).message, input: ctx.value });
          return;
        }
      }
    }),
    { kind: 'list' },
  );
}

/** Log levels accepted for `logLevel` (pino's, plus 'silent'). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const LISTENER_PROTOCOLS = ['mqtt', 'websockets'] as const;
export const CERT_KEY_TYPES = ['ecdsa-p256', 'rsa-2048', 'rsa-4096'] as const;
/** mosquitto's `tls_version` values: the lowest TLS version a listener accepts. */
export const TLS_VERSIONS = ['tlsv1', 'tlsv1.1', 'tlsv1.2', 'tlsv1.3'] as const;

const PORT: IntRange = { min: 0, max: 65535, noun: 'a port number' };

export const listenerSchema = z
  .strictObject({
    port: key(int(PORT), { description: 'TCP port; 0 picks a free one.', reload: 'restart', conf: ['listener', 'port'] }),
    host: key(unsetIfEmpty(hostName().optional()), {
      description: 'Bind address (an IP address or a host name); unset: all interfaces.',
      reload: 'restart',
      conf: ['listener', 'bind_address'],
      defaultText: 'all interfaces',
    }),
    protocol: key(oneOf(LISTENER_PROTOCOLS).default('mqtt'), {
      description: 'mqtt: MQTT over TCP; websockets: MQTT over WebSocket. Either over TLS when the listener has a certificate.',
      reload: 'restart',
      conf: 'protocol',
    }),
    certfile: key(unsetIfEmpty(filePath().optional()), {
      description: 'PEM certificate (chain): the listener speaks TLS. Watched: a changed certfile/keyfile pair is used for new handshakes.',
      reload: 'restart',
      conf: 'certfile',
    }),
    keyfile: key(unsetIfEmpty(filePath().optional()), { description: 'PEM private key of certfile.', reload: 'restart', conf: 'keyfile' }),
    cafile: key(unsetIfEmpty(filePath().optional()), {
      description: 'CA bundle that verifies client certificates (requireCertificate); also completes the chain sent when certfile holds only the leaf.',
      reload: 'restart',
      conf: 'cafile',
    }),
    requireCertificate: key(bool().default(false), {
      description: 'Clients must present a certificate signed by cafile.',
      reload: 'restart',
      conf: 'require_certificate',
    }),
    selfSigned: key(bool().default(false), {
      description: 'Serve a self-signed certificate, made once and kept in dataDir.',
      reload: 'restart',
    }),
    acme: key(bool().optional(), {
      defaultText: '`false`',
      description:
        "Serve the ACME-managed certificate (as the listener on acme.mqttsPort does), e.g. on a second listener for old clients. In mosquitto.conf: a certfile inside the ACME lineage's live directory.",
      reload: 'restart',
    }),
    tlsVersion: key(oneOf(TLS_VERSIONS).optional(), {
      description: "The lowest TLS version this listener accepts; unset: TLS 1.2. tlsv1 and tlsv1.1 are an opt-in for old clients (RFC 8996): that listener's OpenSSL security level is lowered by itself.",
      reload: 'restart',
      conf: 'tls_version',
      defaultText: 'TLS 1.2',
    }),
    ciphers: key(unsetIfEmpty(checked(cipherListProblem, 'an OpenSSL cipher list').optional()), {
      description: "OpenSSL cipher list for TLS 1.2 and below, e.g. DEFAULT:@SECLEVEL=0; unset: Node's default.",
      reload: 'restart',
      conf: 'ciphers',
      defaultText: "Node's",
    }),
    ciphersTls13: key(unsetIfEmpty(checked(tls13SuitesProblem, 'TLS 1.3 cipher suites separated by colons').optional()), {
      description: "TLS 1.3 cipher suites, colon separated, e.g. TLS_AES_256_GCM_SHA384; unset: Node's default.",
      reload: 'restart',
      conf: 'ciphers_tls1.3',
      defaultText: "Node's",
    }),
  })
  .meta({ description: 'One MQTT listener.' });

const cloudflareSchema = z
  .strictObject({
    apiToken: key(unsetIfEmpty(text().optional()), {
      description: 'Scoped API token with Zone:DNS:Edit (preferred).',
      reload: 'restart',
      env: 'CLOUDFLARE_API_TOKEN',
      envFile: true,
      mask: 'secret',
    }),
    apiKey: key(unsetIfEmpty(text().optional()), {
      description: 'Global API key (what the old image used); needs email.',
      reload: 'restart',
      env: 'CLOUDFLARE_KEY',
      envFile: true,
      mask: 'secret',
    }),
    email: key(unsetIfEmpty(email(ACCOUNT_EMAIL, "not an e-mail address; give the Cloudflare account's e-mail").optional()), {
      description: 'The e-mail of the Cloudflare account, with apiKey.',
      reload: 'restart',
      env: 'CLOUDFLARE_EMAIL',
      envFile: true,
      mask: 'email',
    }),
  })
  .prefault({})
  .meta({ description: 'Cloudflare credentials for the DNS-01 challenge: apiToken, or apiKey with email.' });

const acmeSchema = z
  .strictObject({
    domains: key(names(normalizeDomain).default([]), {
      description: 'Names to certify, e.g. *.example.com and example.com; none: ACME is off.',
      reload: 'restart',
      env: 'DOMAIN',
    }),
    email: key(unsetIfEmpty(email(CONTACT_EMAIL, 'not an e-mail address; give the ACME account contact as name@example.com').optional()), {
      description: 'Contact e-mail of the ACME account.',
      reload: 'restart',
      env: 'EMAIL',
      envFile: true,
      mask: 'email',
    }),
    directoryUrl: key(unsetIfEmpty(httpUrl('the ACME directory URL, e.g. https://acme-staging-v02.api.letsencrypt.org/directory').default(LETSENCRYPT_PRODUCTION)), {
      description: "RFC 8555 directory URL of any ACME CA; unset: Let's Encrypt (its staging CA with staging).",
      reload: 'restart',
      env: 'ACME_DIRECTORY_URL',
      defaultText: "Let's Encrypt",
    }),
    staging: key(bool().default(false), {
      description: "Use Let's Encrypt's staging CA (TESTCERT of the old image).",
      reload: 'restart',
      env: 'TESTCERT',
    }),
    cloudflare: cloudflareSchema,
    cloudflareBaseUrl: key(unsetIfEmpty(httpUrl('the Cloudflare API base URL, e.g. https://api.cloudflare.com/client/v4').optional()), {
      description: "Cloudflare API base URL; unset: the SDK's.",
      reload: 'restart',
      env: 'CLOUDFLARE_BASE_URL',
      defaultText: "the SDK's",
    }),
    dnsResolvers: key(
      names(normalizeResolver)
        .default([])
        .transform((list) => list.map(normalizeResolver)),
      {
        description: "IP[:port] resolvers for the DNS propagation check; none: the zone's authoritative name servers.",
        reload: 'restart',
        env: 'ACME_DNS_RESOLVERS',
      },
    ),
    letsencryptDir: key(unsetIfEmpty(filePath().default('/etc/letsencrypt')), {
      description: "certbot's directory: live/, archive/, renewal/, accounts/.",
      reload: 'restart',
      env: 'LETSENCRYPT_DIR',
    }),
    mqttsPort: key(int(PORT).default(8883), {
      description: 'The TLS listener that serves the managed certificate (added when no listener has this port).',
      reload: 'restart',
      env: 'MQTTS_PORT',
    }),
    keyType: key(oneOf(CERT_KEY_TYPES).default('ecdsa-p256'), {
      description: 'Key type of the certificate.',
      reload: 'restart',
      env: 'CERT_KEY_TYPE',
    }),
    reuseKey: key(bool().default(false), {
      description: 'Keep the private key across renewals.',
      reload: 'restart',
      env: 'CERT_REUSE_KEY',
    }),
    selfSignedWhileWaiting: key(bool().default(true), {
      description:
        "Until the CA's first certificate arrives, serve the best there is on the managed listener (a stored staging or expired lineage for the names, else a self-signed certificate); false: keep that listener closed until then.",
      reload: 'restart',
      env: 'ACME_SELF_SIGNED_WHILE_WAITING',
    }),
  })
  .prefault({})
  .meta({ description: "The certificate from an ACME CA (Let's Encrypt) through Cloudflare DNS-01." });

const opsSchema = z
  .strictObject({
    port: key(int({ ...PORT, min: -1, hint: '-1 = off' }).default(9883), {
      description: 'HTTP port of /healthz, /readyz and /metrics; 0 picks a free one, -1 turns the server off.',
      reload: 'restart',
      env: 'OPS_PORT',
    }),
    host: key(unsetIfEmpty(hostName().optional()), {
      description: 'Bind address of the ops HTTP server; unset: all interfaces.',
      reload: 'restart',
      env: 'OPS_HOST',
      defaultText: 'all interfaces',
    }),
  })
  .prefault({})
  .meta({ description: 'The health and metrics HTTP server.' });

export const configSchema = z.strictObject({
  listeners: key(z.array(listenerSchema).default([]), {
    description: 'The MQTT listeners; a source that sets listeners replaces those of the sources below it. None anywhere: MQTTS on 8883 with a self-signed certificate.',
    reload: 'restart',
    conf: 'listener',
    defaultText: 'MQTTS on 8883, self-signed',
  }),
  passwordFile: key(unsetIfEmpty(filePath().optional()), {
    description: 'mosquitto password file ($6$, $7$ or bcrypt entries); unset: /mosquitto/conf/passwd if it exists, else no users.',
    reload: 'live',
    conf: 'password_file',
    defaultText: '`/mosquitto/conf/passwd` if it exists',
  }),
  aclFile: key(unsetIfEmpty(filePath().optional()), {
    description: 'mosquitto ACL file; unset: every authenticated client may do everything.',
    reload: 'live',
    conf: 'acl_file',
  }),
  allowAnonymous: key(bool().default(false), {
    description: 'Clients without a user name may connect.',
    reload: 'live',
    conf: 'allow_anonymous',
  }),
  dataDir: key(unsetIfEmpty(filePath().default('data')), {
    description: "The broker's own state: the self-signed certificate, persistence by default.",
    reload: 'restart',
    env: 'DATA_DIR',
  }),
  persistence: key(bool().default(true), {
    description: 'Keep sessions and retained messages on disk.',
    reload: 'restart',
    conf: 'persistence',
  }),
  persistenceLocation: key(unsetIfEmpty(filePath().default('')), {
    description: "The database (a directory); unset: <dataDir>/persistence. mosquitto.conf's persistence_location DIR puts it at DIR/mqtt-acme-broker.db.",
    reload: 'restart',
    conf: 'persistence_location',
    defaultText: '`<dataDir>/persistence`',
  }),
  maxConnections: key(
    leaf(
      z
        .int()
        .min(-1, { error: (issue) => `${String(issue.input)} is not a limit: use -1 for unlimited or a positive number` })
        .refine((n) => n !== 0, { error: (issue) => `${String(issue.input)} is not a limit: use -1 for unlimited or a positive number` }),
      { kind: 'int', text: 'a number of connections (-1 = unlimited)' },
    ).default(-1),
    { description: 'Connections per listener beyond this are closed at accept; -1: unlimited.', reload: 'restart', conf: 'max_connections' },
  ),
  messageSizeLimit: key(int({ min: 0, max: 268435455, unit: 'bytes', hint: '0 = unlimited' }).default(0), {
    description: 'Largest PUBLISH payload in bytes; larger ones are dropped; 0: unlimited.',
    reload: 'restart',
    conf: 'message_size_limit',
  }),
  maxKeepalive: key(int({ min: 1, max: 65535, unit: 'seconds' }).default(65535), {
    description: 'Largest keepalive a client may ask for, in seconds.',
    reload: 'live',
    conf: 'max_keepalive',
  }),
  maxInflightMessages: key(int({ min: 0, max: 65535, hint: '0 = unlimited' }).default(20), {
    description: 'QoS 1/2 messages in flight per client, both ways (the Receive Maximum told to v5 clients); 0: unlimited.',
    reload: 'live',
    conf: 'max_inflight_messages',
  }),
  maxQueuedMessages: key(int({ min: 0, max: Number.MAX_SAFE_INTEGER, hint: '0 = unlimited' }).default(1000), {
    description: 'QoS 1/2 messages queued per session beyond those in flight; 0: unlimited.',
    reload: 'live',
    conf: 'max_queued_messages',
  }),
  retainAvailable: key(bool().default(true), {
    description: 'Retained messages are allowed (false: a client sending one is disconnected).',
    reload: 'live',
    conf: 'retain_available',
  }),
  maxTopicAlias: key(int({ min: 0, max: 65535, hint: '0 = no topic aliases' }).default(10), {
    description: 'Topic aliases a v5 client may use towards the broker; 0: none.',
    reload: 'live',
    conf: 'max_topic_alias',
  }),
  maxPacketSize: key(
    (() => {
      const range: IntRange = { min: 20, max: 268435460, unit: 'bytes', hint: '0 = no limit of its own' };
      const error = outOfRange(range);
      const schema = z
        .int()
        .min(0, { error })
        .max(range.max, { error })
        .refine((n) => n === 0 || n >= range.min, { error });
      return leaf(schema, { kind: 'int', text: 'bytes 20..268435460 (0 = no limit of its own)' });
    })().default(0),
    {
      description: 'Largest packet in bytes a client may send, told to v5 clients as Maximum Packet Size; 0: no limit of its own.',
      reload: 'restart',
      conf: 'max_packet_size',
    },
  ),
  connectTimeout: key(int({ min: 0, max: 3600, unit: 'seconds', hint: '0 = no deadline' }).default(10), {
    description: 'Seconds a new connection has to send its CONNECT (and finish its TLS handshake); 0: no deadline.',
    reload: 'live',
  }),
  sysInterval: key(int({ min: 0, max: 86400, unit: 'seconds', hint: '0 = no $SYS topics' }).default(10), {
    description: 'Seconds between updates of the $SYS/broker/... topics; 0: none.',
    reload: 'live',
    conf: 'sys_interval',
  }),
  logLevel: key(oneOf(LOG_LEVELS).default('info'), {
    description: 'The least severe level logged (mosquitto.conf: the most verbose log_type).',
    reload: 'restart',
    conf: 'log_type',
    env: 'LOG_LEVEL',
  }),
  acme: acmeSchema,
  ops: opsSchema,
});

export type Config = z.output<typeof configSchema>;
export type ListenerConfig = z.output<typeof listenerSchema>;
export type ListenerProtocol = ListenerConfig['protocol'];
export type TlsVersion = (typeof TLS_VERSIONS)[number];
export type CertKeyType = (typeof CERT_KEY_TYPES)[number];
export type AcmeConfig = Config['acme'];
export type CloudflareCredentials = AcmeConfig['cloudflare'];
export type OpsConfig = Config['ops'];

/*
 * Invariants of a `Config` returned by `loadConfig()` (validated there, relied upon elsewhere):
 * - every path is absolute; `persistenceLocation` is never '' (it defaults to `<dataDir>/persistence`);
 * - `certfile` and `keyfile` come together; never together with `selfSigned`;
 * - a managed listener (see `isManagedListener`) has no `certfile`/`keyfile` and `selfSigned` false;
 * - `requireCertificate` implies `cafile`; a listener with `cafile` or `tlsVersion` is TLS;
 * - there is at least one listener; no two listeners collide on port (+ host);
 * - `acme.domains` are lower-case, valid, without duplicates; `acme.dnsResolvers` are normalized `IP:port`
 *   (IPv6 as `[addr]:port`); `acme.directoryUrl` is set; with domains there are Cloudflare credentials, and
 *   never a token together with a global key.
 */

/** Every default, as a new object. */
export function defaultConfig(): Config {
  return configSchema.parse({});
}



type Layer<T> = { [K in keyof T]?: T[K] extends readonly unknown[] ? T[K] : T[K] extends object ? Layer<T[K]> : T[K] };

/** A part of `Config` set by one source (`listeners` whole, other objects key by key); `loadConfig()` merges them. */
export type PartialConfig = Layer<Config>;

/** What one source contributes: values, and for each key path it set (`acme.domains`, `listeners[0].port`), where. */
export interface ConfigLayer {
  values: PartialConfig;
  sources: Record<string, string>;
}

// ---------------------------------------------------------------------------------------------------------
// The table: every key of the description, flattened.

export interface KeyInfo {
  /** `maxKeepalive`, `acme.cloudflare.apiToken`, `listeners[].certfile`; `listeners` itself has kind 'listeners'. */
  path: string;
  kind: ValueKind | 'listeners';
  meta: KeyMeta;
  /** The default value; undefined when the key has none (optional, or required like `listeners[].port`). */
  default: unknown;
  /** Enum values. */
  values?: readonly string[];
  /** What a text source must give, for "expected ..." messages. */
  text: string;
}

function unwrap(schema: z.ZodType): z.ZodType {
  if (schema instanceof z.ZodOptional || schema instanceof z.ZodDefault || schema instanceof z.ZodPrefault) return unwrap(schema.unwrap() as z.ZodType);
  if (schema instanceof z.ZodPipe) return unwrap((schema.in instanceof z.ZodTransform ? schema.out : schema.in) as z.ZodType);
  return schema;
}

function enumText(values: readonly string[]): string {
  return values.length < 2 ? values.join('') : `${values.slice(0, -1).join(', ')} or ${values[values.length - 1]}`;
}

function valueAt(data: unknown, path: string): unknown {
  let value = data;
  for (const part of path.split('.')) value = (value as Record<string, unknown> | undefined)?.[part];
  return value;
}

/** Object paths ('' = the top level, `listeners[]` = a listener) -> their keys, in order. */
export const OBJECT_KEYS = new Map<string, readonly string[]>();

function flatten(): KeyInfo[] {
  const keys: KeyInfo[] = [];
  const defaults = { ...defaultConfig(), 'listeners[]': listenerSchema.parse({ port: 0 }) };
  const walk = (object: z.ZodObject, prefix: string): void => {
    OBJECT_KEYS.set(prefix, Object.keys(object.shape));
    for (const [name, field] of Object.entries(object.shape as Record<string, z.ZodType>)) {
      const path = prefix === '' ? name : `${prefix}.${name}`;
      const inner = unwrap(field);
      if (inner instanceof z.ZodObject) {
        walk(inner, path);
        continue;
      }
      const meta = keyMeta.get(field);
      if (!meta) throw new Error(`config schema: ${path} has no key metadata`);
      const info = leafInfo.get(inner);
      const element = inner instanceof z.ZodArray ? unwrap(inner.element as z.ZodType) : undefined;
      if (!info && !(element instanceof z.ZodObject)) throw new Error(`config schema: ${path} has no value kind`);
      const values = inner instanceof z.ZodEnum ? (inner.options as string[]) : undefined;
      const kind = info?.kind ?? 'listeners';
      const fallback: Record<ValueKind | 'listeners', string> = {
        int: 'an integer',
        bool: 'true or false',
        string: 'a value',
        path: 'a file path',
        enum: values ? enumText(values) : '',
        list: 'names separated by commas',
        listeners: 'listeners',
      };
      const dflt = path === 'listeners[].port' ? undefined : valueAt(defaults, path);
      keys.push({ path, kind, meta, default: dflt, ...(values ? { values } : {}), text: info?.text ?? fallback[kind] });
      if (element instanceof z.ZodObject) walk(element, `${path}[]`);
    }
  };
  walk(configSchema, '');
  return keys;
}

/** Every key of the configuration, in the order of the description. */
export const KEYS: readonly KeyInfo[] = flatten();

const BY_PATH = new Map(KEYS.map((k) => [k.path, k]));

/** The key at a path (`listeners[2].port` and `listeners[].port` both find `listeners[].port`). */
export function keyAt(path: string): KeyInfo | undefined {
  return BY_PATH.get(path.replace(/\[\d+\]/g, '[]'));
}

/** The mosquitto.conf directives of a key, the first being its name in messages. */
export function directivesOf(info: KeyInfo): readonly string[] {
  const conf = info.meta.conf;
  return conf === undefined ? [] : typeof conf === 'string' ? [conf] : conf;
}
