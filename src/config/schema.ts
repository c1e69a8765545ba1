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
  /** CA bundle used to verify client certificates (with `requireCertificate`). */
  cafile?: string;
  requireCertificate: boolean;
  /** Serve a self-signed certificate generated once into `dataDir` (the zero-config default). */
  selfSigned: boolean;
}

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
  /** -1 = unlimited. */
  maxConnections: number;
  /** Largest PUBLISH payload in bytes; 0 = unlimited (MQTT's 268435455). */
  messageSizeLimit: number;
  /** Largest keepalive a client may ask for, seconds (mosquitto default 65535). */
  maxKeepalive: number;
  /** QoS 1/2 messages in flight per client; 0 = unlimited. */
  maxInflightMessages: number;
  /** Messages queued per offline persistent session / slow client; 0 = unlimited. */
  maxQueuedMessages: number;
  retainAvailable: boolean;
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
