/**
 * The zero-config certificate source: a self-signed certificate kept in the data directory (made once, reused
 * by later starts so that clients that pinned it keep working). It never changes while the broker runs.
 */
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import type { CertificateSource, CertificateSourceEvents, SourcedCertificate } from '../tls/source.js';
import { describeCertificate } from '../x509/certificate-info.js';
import { loadOrCreateSelfSigned } from './self-signed-file.js';

export class SelfSignedCertificateSource extends EventEmitter<CertificateSourceEvents> implements CertificateSource {
  readonly name = 'self-signed';

  private constructor(
    private readonly certificate: SourcedCertificate,
    /** The PEM file clients can trust (`mosquitto_sub --cafile`). */
    readonly certFile: string,
  ) {
    super();
  }

  /** Load the certificate of `<dataDir>/selfsigned`, or make it for localhost, the loopback addresses and this host. */
  static async open(dataDir: string, logger: Logger): Promise<SelfSignedCertificateSource> {
    const names = [...new Set(['localhost', '127.0.0.1', '::1', hostname()])];
    const made = await loadOrCreateSelfSigned(join(dataDir, 'selfsigned'), names, logger);
    logger.warn(
      { certFile: made.certFile, created: made.created, names },
      'serving a SELF-SIGNED certificate: clients must trust this file (e.g. mosquitto_sub --cafile) or skip verification; configure certfile/keyfile or ACME (DOMAIN + Cloudflare credentials) for a trusted one',
    );
    const { notAfter } = describeCertificate(made.cert);
    return new SelfSignedCertificateSource({ cert: made.cert, key: made.key, origin: 'self_signed', description: made.certFile, notAfter }, made.certFile);
  }

  current(): SourcedCertificate {
    return this.certificate;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
