/**
 * Failed TLS handshakes: a short, stable label for metrics (never an address), and one `info` log line per
 * remote address per window, with OpenSSL's own reason, so that a camera that cannot connect says why
 * without a scanner filling the log.
 */
import type { Logger } from '../log.js';

/** Why a handshake failed. The metrics use these as label values: keep them few and stable. */
export const TLS_FAILURE_REASONS = ['unsupported_protocol', 'no_shared_cipher', 'unknown_ca', 'bad_certificate', 'not_tls', 'timeout', 'other'] as const;
export type TlsFailureReason = (typeof TLS_FAILURE_REASONS)[number];

export interface TlsFailure {
  reason: TlsFailureReason;
  /** Node's or OpenSSL's code, e.g. `ERR_SSL_UNSUPPORTED_PROTOCOL`, `ECONNRESET`. */
  code: string | undefined;
  /** OpenSSL's reason text (`unsupported protocol`, `tlsv1 alert unknown ca`) or Node's message. */
  error: string;
}

const BY_CODE: Record<string, TlsFailureReason> = {
  ERR_SSL_UNSUPPORTED_PROTOCOL: 'unsupported_protocol',
  ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION: 'unsupported_protocol',
  ERR_SSL_UNSUPPORTED_SSL_VERSION: 'unsupported_protocol',
  ERR_SSL_NO_PROTOCOLS_AVAILABLE: 'unsupported_protocol',
  ERR_SSL_VERSION_TOO_LOW: 'unsupported_protocol',
  ERR_SSL_NO_SHARED_CIPHER: 'no_shared_cipher',
  ERR_SSL_NO_CIPHERS_AVAILABLE: 'no_shared_cipher',
  ERR_SSL_NO_SHARED_SIGNATURE_ALGORITHMS: 'no_shared_cipher',
  ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM: 'no_shared_cipher',
  ERR_SSL_NO_SUITABLE_KEY_SHARE: 'no_shared_cipher',
  ERR_SSL_NO_SHARED_GROUPS: 'no_shared_cipher',
  ERR_SSL_TLSV1_ALERT_INSUFFICIENT_SECURITY: 'no_shared_cipher',
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: 'unknown_ca',
  // The client's alerts about our certificate...
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: 'bad_certificate',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN: 'bad_certificate',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED: 'bad_certificate',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED: 'bad_certificate',
  ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE: 'bad_certificate',
  // ...and ours about its certificate (require_certificate).
  ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE: 'bad_certificate',
  ERR_SSL_CERTIFICATE_VERIFY_FAILED: 'bad_certificate',
  ERR_SSL_WRONG_VERSION_NUMBER: 'not_tls',
  ERR_SSL_HTTP_REQUEST: 'not_tls',
  ERR_SSL_HTTPS_PROXY_REQUEST: 'not_tls',
  ERR_SSL_PACKET_LENGTH_TOO_LONG: 'not_tls',
  ERR_SSL_UNKNOWN_PROTOCOL: 'not_tls',
  ERR_TLS_HANDSHAKE_TIMEOUT: 'timeout',
};
/** X.509 verification results Node reports when a client certificate is refused (require_certificate). */
const CLIENT_CERTIFICATE = /^(UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|CERT_|INVALID_CA$|INVALID_PURPOSE$|PATH_LENGTH_EXCEEDED$)/;

const HINTS: Partial<Record<TlsFailureReason, string>> = {
  unsupported_protocol: "the client offers no TLS version this listener accepts: an old client needs a listener of its own with tls_version tlsv1 or tlsv1.1 (see README, Troubleshooting, Cameras)",
  no_shared_cipher: 'no cipher in common: check the listener\'s ciphers/ciphers_tls1.3; a client that cannot do ECDSA needs an RSA certificate (CERT_KEY_TYPE=rsa-2048)',
  unknown_ca: "the client does not trust the CA of this certificate: give it the right CA file (for Let's Encrypt: ISRG Root X1, not DST Root CA X3)",
  bad_certificate: 'a certificate was refused: the client refused ours (expired, wrong name) or ours refused the client\'s (require_certificate)',
  not_tls: 'the client does not speak TLS: plain MQTT or HTTP sent to a TLS port?',
  timeout: 'the client did not finish the handshake within connect_timeout',
};
const HANG_UP = 'the client closed the connection during the handshake (clients built on Node do so, without an alert, when they do not trust the certificate)';

export function classifyTlsFailure(err: Error): TlsFailure {
  const e = err as Error & { code?: unknown; reason?: unknown };
  const code = typeof e.code === 'string' ? e.code : undefined;
  const reason = code === undefined ? 'other' : (BY_CODE[code] ?? (CLIENT_CERTIFICATE.test(code) ? 'bad_certificate' : 'other'));
  const error = typeof e.reason === 'string' && e.reason !== '' ? e.reason : (e.message.split('\n')[0] ?? '');
  return { reason, code, error };
}

export interface HandshakeFailureLogOptions {
  /** One line per remote address per this many milliseconds; default one minute. */
  windowMs?: number;
  /** Addresses remembered at most (the oldest are forgotten first); default 4096. */
  maxAddresses?: number;
  now?: () => number;
}

interface Seen {
  since: number;
  suppressed: number;
}

/**
 * Logs failed handshakes at `info`, at most one line per remote address per window; the next line of an
 * address carries `suppressed`, the number of its failures not logged since its last line. Memory is bounded
 * by `maxAddresses` (under a flood from more addresses than that, the suppressed counts of the forgotten ones
 * are lost; the metrics still count every failure).
 */
export class HandshakeFailureLog {
  readonly #seen = new Map<string, Seen>();
  readonly #windowMs: number;
  readonly #maxAddresses: number;
  readonly #now: () => number;

  constructor(
    private readonly logger: Logger,
    options: HandshakeFailureLogOptions = {},
  ) {
    this.#windowMs = options.windowMs ?? 60_000;
    this.#maxAddresses = Math.max(1, options.maxAddresses ?? 4096);
    this.#now = options.now ?? Date.now;
  }

  /** Addresses currently remembered (for tests). */
  get size(): number {
    return this.#seen.size;
  }

  /**
   * Record one failure on `listener` from `remoteAddress`; `bytesReceived` (from the TCP socket, when known)
   * tells a handshake attempt from a bare TCP connect-and-close (port probes, scanners), which is only
   * logged at debug. Returns the failure's label for the metrics.
   */
  report(listener: string, remoteAddress: string | undefined, err: Error, bytesReceived?: number): TlsFailureReason {
    const failure = classifyTlsFailure(err);
    if (failure.reason === 'other' && bytesReceived === 0) {
      this.logger.debug({ listener, remoteAddress, code: failure.code }, 'connection closed before any TLS data');
      return failure.reason;
    }
    const key = remoteAddress ?? 'unknown';
    const now = this.#now();
    const seen = this.#seen.get(key);
    if (seen !== undefined && now - seen.since < this.#windowMs) {
      seen.suppressed += 1;
      return failure.reason;
    }
    const suppressed = seen?.suppressed ?? 0;
    // Re-inserted, so the map stays in the order of each address's last line: the oldest come first.
    this.#seen.delete(key);
    this.#forget(now);
    this.#seen.set(key, { since: now, suppressed: 0 });
    const hint = failure.reason === 'other' && failure.code === 'ECONNRESET' ? HANG_UP : HINTS[failure.reason];
    this.logger.info(
      { listener, remoteAddress, reason: failure.reason, code: failure.code, error: failure.error, ...(hint === undefined ? {} : { hint }), ...(suppressed > 0 ? { suppressed } : {}) },
      'TLS handshake failed',
    );
    return failure.reason;
  }

  #forget(now: number): void {
    for (const [key, seen] of this.#seen) {
      // Expired and nothing left to report: forget. Stop at the first that is not (the rest are newer).
      if (now - seen.since < this.#windowMs || seen.suppressed > 0) break;
      this.#seen.delete(key);
    }
    while (this.#seen.size >= this.#maxAddresses) {
      const oldest = this.#seen.keys().next();
      if (oldest.done === true) break;
      this.#seen.delete(oldest.value);
    }
  }
}
