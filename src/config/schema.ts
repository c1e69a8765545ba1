/**
 * The one typed configuration of the broker. Every source (defaults, config.json, mosquitto.conf, env) is
 * merged into a `Config` by `load.ts`; nothing else reads files or the environment for settings.
 */
import type { Level } from 'pino';

export type ListenerProtocol = 'mqtt' | 'websockets';

export interface ListenerConfig {
  /** TCP port; 0 picks a free one (tests). */
  port: number;
  /** Bind address; undefined = all interfaces (mosquitto's default for `listener PORT`). */
  host?: string;
  protocol: ListenerProtocol;
  /**
   * TLS material. A listener is TLS when `certfile` is set, or when `selfSigned` is true (a certificate made
   * once and kept in the data directory), or when it is the managed (ACME) listener.
   */
  certfile?: string;
  keyfile?: string;
  /**
   * CA bundle used to verify client certificates (with `requireCertificate`). Like mosquitto (OpenSSL), a
   * listener whose `certfile` holds only the leaf also completes the chain it sends from here: the old image's
   * recipe was `certfile cert.pem` + `cafile chain.pem`, so pass it to TLS as `ca` whenever it is set.
   */
  cafile?: string;
  /** Ask for and verify a client certificate against `cafile` (the loader guarantees `cafile` then). */
  requireCertificate: boolean;
  /** Serve a self-signed certificate generated once into `dataDir` (the zero-config default). */
  selfSigned: boolean;
  /**
   * mosquitto's `tls_version`: the lowest TLS version this listener accepts. Undefined = TLS 1.2 (Node's and
   * mosquitto 2's default). `tlsv1` and `tlsv1.1` are an explicit opt-in for old clients (RFC 8996).
   */
  tlsVersion?: TlsVersion;
  /** mosquitto's `ciphers`: the OpenSSL cipher list for TLS 1.2 and below. */
  ciphers?: string;
  /** mosquitto's `ciphers_tls1.3`: the TLS 1.3 cipher suites, colon-separated. */
  ciphersTls13?: string;
}

export type TlsVersion = 'tlsv1' | 'tlsv1.1' | 'tlsv1.2' | 'tlsv1.3';
export const TLS_VERSIONS: readonly TlsVersion[] = ['tlsv1', 'tlsv1.1', 'tlsv1.2', 'tlsv1.3'];

/*
 * Invariants of a `Config` returned by `loadConfig()` (validated there, relied upon elsewhere):
 * - every path is absolute; `persistenceLocation` is never '' (it defaults to `<dataDir>/persistence`);
 * - `certfile` and `keyfile` come together; never together with `selfSigned`;
 * - a managed listener (see `isManagedListener`) has no `certfile`/`keyfile` and `selfSigned` false;
 * - `requireCertificate` implies `cafile`; a listener with `cafile` is TLS;
 * - there is at least one listener; no two listeners collide on port (+ host);
 * - `acme.domains` are lower-case, valid, without duplicates; `acme.dnsResolvers` are normalized `IP:port`
 *   (IPv6 as `[addr]:port`); `acme.directoryUrl` is set; with domains there are Cloudflare credentials, and
 *   never a token together with a global key.
 */

export type CertKeyType = 'ecdsa-p256' | 'rsa-2048' | 'rsa-4096';

export interface CloudflareCredentials {
  /** Scoped API token (preferred). */
  apiToken?: string;
  /** Global API key + account e-mail (what the old image used). */
  apiKey?: string;
  email?: string;
}

export interface AcmeConfig {
  /** Names to certify, e.g. ['*.example.com', 'example.com']. Empty = ACME disabled. */
  domains: string[];
  /** Contact e-mail for the ACME account. */
  email?: string;
  /** RFC 8555 directory URL; derived from `staging` when not given. */
  directoryUrl: string;
  staging: boolean;
  cloudflare: CloudflareCredentials;
  /** Passed to the Cloudflare SDK as baseURL (tests point it at a fake API). */
  cloudflareBaseUrl?: string;
  /** `host:port` resolvers for the propagation check; empty = the zone's authoritative name servers. */
  dnsResolvers: string[];
  /** certbot's config dir, default /etc/letsencrypt. */
  letsencryptDir: string;
  /** The TLS listener that serves the managed certificate. */
  mqttsPort: number;
  keyType: CertKeyType;
  reuseKey: boolean;
  /** Serve a self-signed certificate while the first CA certificate is being obtained. */
  selfSignedWhileWaiting: boolean;
}

export interface OpsConfig {
  /** HTTP port for /healthz, /readyz, /metrics; 0 = random, -1 = off. */
  port: number;
  host?: string;
}

export interface Config {
  listeners: ListenerConfig[];
  /** mosquitto `password_file`; undefined = no users. */
  passwordFile?: string;
  /** mosquitto `acl_file`; undefined = every authenticated client may do everything. */
  aclFile?: string;
  allowAnonymous: boolean;
  /** Where the broker keeps its own state (self-signed certificate, persistence by default). */
  dataDir: string;
  persistence: boolean;
  /** Directory of the level database; default `<dataDir>/persistence`. */
  persistenceLocation: string;
  /** Connections per listener, as mosquitto's max_connections; -1 = unlimited. */
  maxConnections: number;
  /** Largest PUBLISH payload in bytes; 0 = unlimited (MQTT's 268435455). */
  messageSizeLimit: number;
  /** Largest keepalive a client may ask for, seconds, 1..65535 (mosquitto default 65535). */
  maxKeepalive: number;
  /** QoS 1/2 messages in flight per client; 0 = unlimited. */
  maxInflightMessages: number;
  /** Messages queued per offline persistent session / slow client; 0 = unlimited. */
  maxQueuedMessages: number;
  retainAvailable: boolean;
  /** Topic aliases a v5 client may use towards the broker (mosquitto's max_topic_alias; 0 = none). */
  maxTopicAlias: number;
  /** Largest packet in bytes a client may send, and the Maximum Packet Size told to v5 clients; 0 = no limit of its own. */
  maxPacketSize: number;
  /** Seconds a new connection has to send its CONNECT (and a TLS handshake to finish) before it is closed. */
  connectTimeout: number;
  /** Seconds between updates of the $SYS/broker/... topics (mosquitto's sys_interval); 0 = none. */
  sysInterval: number;
  logLevel: Level | 'silent';
  acme: AcmeConfig;
  ops: OpsConfig;
}

export const LETSENCRYPT_PRODUCTION = 'https://acme-v02.api.letsencrypt.org/directory';
export const LETSENCRYPT_STAGING = 'https://acme-staging-v02.api.letsencrypt.org/directory';

export function defaultConfig(): Config {
  return {
    listeners: [],
    allowAnonymous: false,
    dataDir: 'data',
    persistence: true,
    persistenceLocation: '',
    maxConnections: -1,
    messageSizeLimit: 0,
    maxKeepalive: 65535,
    maxInflightMessages: 20,
    maxQueuedMessages: 1000,
    retainAvailable: true,
    maxTopicAlias: 10,
    maxPacketSize: 0,
    connectTimeout: 10,
    sysInterval: 10,
    logLevel: 'info',
    acme: {
      domains: [],
      directoryUrl: LETSENCRYPT_PRODUCTION,
      staging: false,
      cloudflare: {},
      dnsResolvers: [],
      letsencryptDir: '/etc/letsencrypt',
      mqttsPort: 8883,
      keyType: 'ecdsa-p256',
      reuseKey: false,
      selfSignedWhileWaiting: false,
    },
    ops: { port: 9090 },
  };
}

/** Log levels accepted for `logLevel` (pino's, plus 'silent'). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const LISTENER_PROTOCOLS: readonly ListenerProtocol[] = ['mqtt', 'websockets'];
export const CERT_KEY_TYPES: readonly CertKeyType[] = ['ecdsa-p256', 'rsa-2048', 'rsa-4096'];

/** ACME is on when there is at least one domain. */
export function acmeEnabled(config: Config): boolean {
  return config.acme.domains.length > 0;
}

/** The listener(s) serving the ACME-managed certificate: ACME enabled and port === `acme.mqttsPort`. */
export function isManagedListener(config: Config, listener: ListenerConfig): boolean {
  return acmeEnabled(config) && listener.port === config.acme.mqttsPort;
}

/** Whether a listener speaks TLS: managed, or `certfile` given, or `selfSigned`. */
export function isTlsListener(config: Config, listener: ListenerConfig): boolean {
  return isManagedListener(config, listener) || listener.certfile !== undefined || listener.selfSigned;
}

export const SECRET_MASK = '****';

/**
 * A deep copy of `config` that is safe to print or log: every secret (the Cloudflare API token and global
 * key) is replaced by `SECRET_MASK`, keeping no part of it. E-mail addresses are not secrets and stay.
 */
export function maskSecrets(config: Config): Config {
  const copy = structuredClone(config);
  const cf = copy.acme.cloudflare;
  if (cf.apiToken !== undefined) cf.apiToken = SECRET_MASK;
  if (cf.apiKey !== undefined) cf.apiKey = SECRET_MASK;
  return copy;
}

/** A configuration error a user can fix; the message starts with the source (file:line, key path, variable). */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    /** Where the offending value came from, e.g. `/etc/m.conf:3: listener`, `config.json: acme.domains`, `env DOMAIN`. */
    readonly source: string,
    /** What is wrong and what to do, without the source. */
    readonly problem: string,
  ) {
    super(`${source}: ${problem}`);
  }
}

/** A part of `Config` set by one source; `loadConfig()` merges them in order of precedence. */
export interface PartialConfig {
  listeners?: ListenerConfig[];
  passwordFile?: string;
  aclFile?: string;
  allowAnonymous?: boolean;
  dataDir?: string;
  persistence?: boolean;
  persistenceLocation?: string;
  maxConnections?: number;
  messageSizeLimit?: number;
  maxKeepalive?: number;
  maxInflightMessages?: number;
  maxQueuedMessages?: number;
  retainAvailable?: boolean;
  maxTopicAlias?: number;
  maxPacketSize?: number;
  connectTimeout?: number;
  sysInterval?: number;
  logLevel?: Config['logLevel'];
  acme?: Partial<Omit<AcmeConfig, 'cloudflare'>> & { cloudflare?: CloudflareCredentials };
  ops?: Partial<OpsConfig>;
}

/** What one source contributes: values, and for each key path it set (`acme.domains`, `listeners[0].port`), where. */
export interface ConfigLayer {
  values: PartialConfig;
  sources: Record<string, string>;
}
