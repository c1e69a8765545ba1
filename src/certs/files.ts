/**
 * A certificate source of user-given PEM files (mosquitto's certfile/keyfile/cafile), watched. A changed
 * pair is validated and then offered as the new certificate; a bad pair keeps the current one and says why.
 *
 * Replacing a certificate means writing two files (certbot, cert-manager and people do it one after the
 * other), so a reload may see the new certificate with the old key. That is normal, not a failure: the pair
 * is read again after a short settle time, and only a pair still inconsistent then is reported ('error').
 */
import { EventEmitter } from 'node:events';
import { createSecureContext } from 'node:tls';
import { watchAndReload, type Reloader } from '../files/watch.js';
import type { Logger } from '../log.js';
import type { TlsMaterial } from '../tls/context.js';
import type { CertificateSource, CertificateSourceEvents, SourcedCertificate } from '../tls/source.js';
import { describeCertificate } from '../x509/certificate-info.js';
import { checkKeyPair } from '../x509/key-pair.js';
import { readBytes } from '../files/read.js';

export interface CertificateFiles {
  certfile: string;
  keyfile: string;
  cafile?: string;
}

export async function readCertificateFiles(files: CertificateFiles): Promise<TlsMaterial> {
  const [cert, key, ca] = await Promise.all([
    readBytes(files.certfile, 'certfile'),
    readBytes(files.keyfile, 'keyfile'),
    files.cafile === undefined ? undefined : readBytes(files.cafile, 'cafile'),
  ]);
  return ca === undefined ? { cert, key } : { cert, key, ca };
}

const PAIR_PROBLEMS = {
  mismatch: 'the key does not belong to the certificate',
  'no-certificate': 'the certfile holds no PEM certificate',
  'no-key': 'the keyfile holds no PEM private key',
} as const;

export interface FileSourceOptions {
  /** Wait this long before reading a pair again that did not match; default 2000 ms. */
  settleMs?: number;
  /** Passed to the watcher (tests: quick polls). */
  debounceMs?: number;
  pollMs?: number;
}

export class FileCertificateSource extends EventEmitter<CertificateSourceEvents> implements CertificateSource {
  readonly name: string;
  #current: SourcedCertificate | undefined;
  #watcher: Reloader | undefined;

  private constructor(
    private readonly files: CertificateFiles,
    private readonly logger: Logger,
    private readonly options: FileSourceOptions,
  ) {
    super();
    this.name = `files ${files.certfile}`;
  }

  /** Read and validate the files now (throws with the reason when they are unusable), then watch them. */
  static async open(files: CertificateFiles, logger: Logger, options: FileSourceOptions = {}): Promise<FileCertificateSource> {
    const source = new FileCertificateSource(files, logger, options);
    source.#current = await source.#load();
    source.#watcher = watchAndReload({
      files: [files.certfile, files.keyfile, ...(files.cafile === undefined ? [] : [files.cafile])],
      load: () => source.#loadSettled(),
      onLoad: (certificate) => {
        // Two writes (certificate, then key) may give two reloads of the same final pair: offer it once.
        if (source.#current !== undefined && same(source.#current, certificate)) return;
        source.#current = certificate;
        source.emit('certificate', certificate);
      },
      logger,
      what: `TLS certificate ${files.certfile}`,
      ...(options.debounceMs === undefined ? {} : { debounceMs: options.debounceMs }),
      ...(options.pollMs === undefined ? {} : { pollMs: options.pollMs }),
    });
    return source;
  }

  current(): SourcedCertificate | undefined {
    return this.#current;
  }

  /** Read the files again now (SIGHUP). Resolves true when a usable pair was read and offered. */
  reload(): Promise<boolean> {
    return this.#watcher?.reload() ?? Promise.resolve(false);
  }

  close(): Promise<void> {
    this.#watcher?.close();
    return Promise.resolve();
  }

  async #load(): Promise<SourcedCertificate> {
    const material = await readCertificateFiles(this.files);
    const pair = checkKeyPair(material.cert, material.key);
    if (pair !== 'matches') throw new Error(`${this.files.certfile} and ${this.files.keyfile}: ${PAIR_PROBLEMS[pair]}`);
    createSecureContext(material); // anything else OpenSSL refuses (a truncated chain, a bad CA bundle)
    const info = describeCertificate(material.cert);
    return { ...material, origin: 'files', description: this.files.certfile, notAfter: info.notAfter };
  }

  async #loadSettled(): Promise<SourcedCertificate> {
    try {
      return await this.#load();
    } catch (first) {
      const settleMs = this.options.settleMs ?? 2000;
      this.logger.debug({ certfile: this.files.certfile, reason: (first as Error).message, settleMs }, 'certificate files not consistent yet; reading them again shortly');
      await new Promise((resolve) => setTimeout(resolve, settleMs).unref());
      try {
        return await this.#load();
      } catch (err) {
        if (this.listenerCount('error') > 0) this.emit('error', err as Error);
        throw err;
      }
    }
  }
}

function same(a: TlsMaterial, b: TlsMaterial): boolean {
  const bytes = (v: string | Buffer | undefined): Buffer => (v === undefined ? Buffer.alloc(0) : Buffer.isBuffer(v) ? v : Buffer.from(v));
  return bytes(a.cert).equals(bytes(b.cert)) && bytes(a.key).equals(bytes(b.key)) && bytes(a.ca).equals(bytes(b.ca));
}
