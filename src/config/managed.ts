/**
 * What a loaded configuration means for the running server, without the schema (and so without zod: the
 * server reads these, and the schema is loaded only where a configuration is loaded): whether ACME is on,
 * which listeners serve its certificate, which speak TLS, and Let's Encrypt's directories.
 */
import type { Config, ListenerConfig } from './schema.js';

export const LETSENCRYPT_PRODUCTION = 'https://acme-v02.api.letsencrypt.org/directory';
export const LETSENCRYPT_STAGING = 'https://acme-staging-v02.api.letsencrypt.org/directory';

/** ACME is on when there is at least one domain. */
export function acmeEnabled(config: Config): boolean {
  return config.acme.domains.length > 0;
}

/** The listeners serving the ACME-managed certificate: ACME on, and port === `acme.mqttsPort` or `acme: true`. */
export function isManagedListener(config: Config, listener: ListenerConfig): boolean {
  return acmeEnabled(config) && (listener.port === config.acme.mqttsPort || listener.acme === true);
}

/** Whether a listener speaks TLS: managed, or `certfile` given, or `selfSigned`. */
export function isTlsListener(config: Config, listener: ListenerConfig): boolean {
  return isManagedListener(config, listener) || listener.certfile !== undefined || listener.selfSigned;
}
