/**
 * One TLS identity (certificate chain + key, optional client CA) and one protocol policy (lowest TLS version,
 * ciphers: see policy.ts), shared by every server that serves them. `update()` validates the new pair first
 * and only then swaps it into each server with `setSecureContext`: new handshakes see the new certificate,
 * open connections keep theirs.
 *
 * Every swap re-applies the policy: `setSecureContext` builds a whole new context from the options it is
 * given, so a swap without it would quietly put a `tls_version tlsv1` listener back to TLS 1.2.
 */
import { createSecureContext, type SecureContextOptions, type Server as TlsServer } from 'node:tls';
import { tlsPolicy, type TlsPolicy, type TlsPolicyConfig } from './policy.js';
import { describeCertificate, type CertificateInfo } from '../x509/certificate-info.js';
import type { Logger } from '../log.js';

export interface TlsMaterial {
  /** PEM certificate chain, leaf first. */
  cert: string | Buffer;
  key: string | Buffer;
  /** CA bundle for client certificates. */
  ca?: string | Buffer;
}

export interface TlsContextOptions extends TlsPolicyConfig {
  /** Ask for and verify a client certificate (mosquitto's require_certificate). */
  requireCertificate?: boolean;
}

export class TlsContext {
  #options: SecureContextOptions | undefined;
  readonly #servers = new Set<TlsServer>();
  readonly #requestCert: boolean;
  /** The listener's protocol policy; applied to every server and kept across certificate swaps. */
  readonly policy: TlsPolicy;

  /**
   * Throws a `TlsPolicyError` naming the listener when OpenSSL would refuse its `ciphers`/`ciphers_tls1.3`,
   * so that a bad cipher string stops the start instead of failing handshakes later.
   */
  constructor(
    readonly name: string,
    private readonly logger: Logger,
    options: TlsContextOptions = {},
  ) {
    this.#requestCert = options.requireCertificate === true;
    this.policy = tlsPolicy(name, options);
  }

  /** Options for `tls.createServer`/`https.createServer`; throws until a certificate is loaded. */
  serverOptions(): SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean } {
    if (!this.#options) throw new Error(`TLS listener ${this.name}: no certificate loaded yet`);
    return { ...this.#options, ...this.policy.options, requestCert: this.#requestCert, rejectUnauthorized: this.#requestCert };
  }

  get loaded(): boolean {
    return this.#options !== undefined;
  }

  attach(server: TlsServer): void {
    this.#servers.add(server);
    server.once('close', () => this.#servers.delete(server));
  }

  /**
   * Validate and apply new material. Throws (and changes nothing) when the pair is unusable: a key that
   * does not match the certificate, a truncated PEM, a missing client CA when client certificates are
   * required.
   */
  update(material: TlsMaterial, origin: string): CertificateInfo {
    const options: SecureContextOptions = { cert: material.cert, key: material.key };
    if (material.ca !== undefined) options.ca = material.ca;
    if (this.#requestCert && material.ca === undefined) {
      throw new Error('require_certificate needs a cafile to verify client certificates against');
    }
    createSecureContext({ ...options, ...this.policy.options }); // throws on a bad or mismatched pair
    const info = describeCertificate(material.cert);
    const first = this.#options === undefined;
    this.#options = options;
    for (const server of this.#servers) server.setSecureContext(this.serverOptions());
    this.logger.info(
      { listener: this.name, origin, subject: info.subject, issuer: info.issuer, serial: info.serial, notAfter: info.notAfter.toISOString(), names: info.subjectAltNames },
      first ? 'TLS certificate loaded' : 'TLS certificate replaced; new handshakes use it, connected clients stay connected',
    );
    return info;
  }
}
