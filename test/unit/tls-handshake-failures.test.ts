/**
 * Failed TLS handshakes: the metrics label of each OpenSSL/Node error, and the log that says one line per
 * remote address per window, counts what it held back, and stays bounded. Real handshakes are in
 * test/integration/tls-failures.test.ts; here the clock is ours.
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { classifyTlsFailure, HandshakeFailureLog } from '../../src/tls/handshake-failures.js';
import { LogCapture } from '../support/broker.js';

/** An error shaped as Node reports it on 'tlsClientError'. */
function tlsError(code: string, reason?: string, message = reason ?? code): Error {
  return Object.assign(new Error(message), { code, ...(reason === undefined ? {} : { reason }) });
}

describe('classifyTlsFailure', () => {
  it.each([
    ['ERR_SSL_UNSUPPORTED_PROTOCOL', 'unsupported protocol', 'unsupported_protocol'],
    ['ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'tlsv1 alert protocol version', 'unsupported_protocol'],
    ['ERR_SSL_NO_SHARED_CIPHER', 'no shared cipher', 'no_shared_cipher'],
    ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'tlsv1 alert unknown ca', 'unknown_ca'],
    ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN', 'sslv3 alert certificate unknown', 'bad_certificate'],
    ['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'sslv3 alert bad certificate', 'bad_certificate'],
    ['ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE', 'peer did not return a certificate', 'bad_certificate'],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', undefined, 'bad_certificate'],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'wrong version number', 'not_tls'],
    ['ERR_SSL_HTTP_REQUEST', 'http request', 'not_tls'],
    ['ERR_TLS_HANDSHAKE_TIMEOUT', undefined, 'timeout'],
    ['ECONNRESET', undefined, 'other'],
    ['ERR_SSL_SOMETHING_NEW', 'something new', 'other'],
  ])('%s (%s) -> %s', (code, reason, label) => {
    expect(classifyTlsFailure(tlsError(code, reason)).reason).toBe(label);
  });

  it('reports OpenSSL\'s reason text, or the first line of the message when there is none', () => {
    const openssl = tlsError('ERR_SSL_WRONG_VERSION_NUMBER', 'wrong version number', '80ACE1:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../ssl3_record.c:350:\n');
    expect(classifyTlsFailure(openssl)).toEqual({ reason: 'not_tls', code: 'ERR_SSL_WRONG_VERSION_NUMBER', error: 'wrong version number' });
    expect(classifyTlsFailure(tlsError('ECONNRESET', undefined, 'socket hang up\nmore'))).toEqual({ reason: 'other', code: 'ECONNRESET', error: 'socket hang up' });
    expect(classifyTlsFailure(new Error('no code at all'))).toEqual({ reason: 'other', code: undefined, error: 'no code at all' });
  });
});

describe('HandshakeFailureLog', () => {
  const setup = (options: { maxAddresses?: number } = {}) => {
    const out = new LogCapture();
    const clock = { now: 1_000_000 };
    const log = new HandshakeFailureLog(createLogger('debug', out), { windowMs: 60_000, now: () => clock.now, ...options });
    const lines = (): Record<string, unknown>[] => out.lines.filter((l) => l.msg === 'TLS handshake failed');
    return { out, clock, log, lines };
  };
  const old = tlsError('ERR_SSL_UNSUPPORTED_PROTOCOL', 'unsupported protocol');

  it('logs one info line per address per window, then one with the count it held back', () => {
    const { clock, log, lines } = setup();
    expect(log.report('mqtts:8883', '198.51.100.7', old, 200)).toBe('unsupported_protocol');
    expect(lines()).toEqual([
      expect.objectContaining({ level: 'info', listener: 'mqtts:8883', remoteAddress: '198.51.100.7', reason: 'unsupported_protocol', code: 'ERR_SSL_UNSUPPORTED_PROTOCOL', error: 'unsupported protocol', hint: expect.stringContaining('tls_version tlsv1') }),
    ]);
    expect(lines()[0]).not.toHaveProperty('suppressed');
    for (let i = 0; i < 4; i += 1) {
      clock.now += 10_000;
      expect(log.report('mqtts:8883', '198.51.100.7', old, 200)).toBe('unsupported_protocol');
    }
    // Another address is not held back by the first one.
    log.report('mqtts:8883', '203.0.113.9', tlsError('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'tlsv1 alert unknown ca'), 300);
    expect(lines().map((l) => l.remoteAddress)).toEqual(['198.51.100.7', '203.0.113.9']);
    clock.now += 20_001; // 60.001 s after the first line
    log.report('mqtts:8883', '198.51.100.7', tlsError('ERR_TLS_HANDSHAKE_TIMEOUT', undefined, 'TLS handshake timeout'));
    expect(lines()[2]).toMatchObject({ remoteAddress: '198.51.100.7', reason: 'timeout', error: 'TLS handshake timeout', suppressed: 4 });
    // The count starts again after it was reported.
    clock.now += 60_000;
    log.report('mqtts:8883', '198.51.100.7', old, 200);
    expect(lines()[3]).not.toHaveProperty('suppressed');
  });

  it('a TCP connect-and-close without any TLS data is only a debug line, and takes no place in the map', () => {
    const { out, log, lines } = setup();
    expect(log.report('mqtts:8883', '10.1.2.3', tlsError('ECONNRESET', undefined, 'socket hang up'), 0)).toBe('other');
    expect(lines()).toEqual([]);
    expect(out.find('connection closed before any TLS data')).toMatchObject({ level: 'debug', remoteAddress: '10.1.2.3' });
    expect(log.size).toBe(0);
    // With bytes received, the same error is a handshake given up by the client: logged, with a hint.
    log.report('mqtts:8883', '10.1.2.3', tlsError('ECONNRESET', undefined, 'socket hang up'), 517);
    expect(lines()).toEqual([expect.objectContaining({ level: 'info', reason: 'other', code: 'ECONNRESET', hint: expect.stringContaining('closed the connection during the handshake') })]);
  });

  it('remembers at most maxAddresses, forgetting the oldest, and forgets expired ones as it goes', () => {
    const { clock, log, lines } = setup({ maxAddresses: 3 });
    for (const a of ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']) log.report('mqtts:8883', a, old, 100);
    expect(log.size).toBe(3);
    // 10.0.0.1 was forgotten, so it is logged again inside its window; 10.0.0.4 is still remembered.
    log.report('mqtts:8883', '10.0.0.1', old, 100);
    log.report('mqtts:8883', '10.0.0.4', old, 100);
    expect(lines().map((l) => l.remoteAddress)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.1']);
    expect(log.size).toBe(3);
    clock.now += 120_000;
    log.report('mqtts:8883', '10.0.0.9', old, 100);
    // 10.0.0.3 (expired, nothing held back) is forgotten; the scan stops at 10.0.0.4, which still has a
    // held-back failure to report: 10.0.0.4, 10.0.0.1, 10.0.0.9.
    expect(log.size).toBe(3);
    log.report('mqtts:8883', '10.0.0.4', old, 100);
    expect(lines().at(-1)).toMatchObject({ remoteAddress: '10.0.0.4', suppressed: 1 });
  });
});
