/**
 * Issue 11 (the TLS part): a failed TLS handshake leaves one `info` line with the remote address, the
 * listener and OpenSSL's reason, at most one per address per minute, and a short label for the metrics.
 * Real failing clients, each from its own loopback address (Linux routes all of 127/8 to lo), so that the
 * per-address limit does not hide one case behind another.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { mosquittoArgs } from '../support/clients.js';
import { startTestBroker, USERS, type TestBroker } from '../support/broker.js';
import { createTestPki, onlyTls, tlsHandshake, type TestPki } from '../support/tls.js';
import { waitFor } from '../support/wait.js';

let broker: TestBroker;
/** A CA the broker's certificate does not come from: the camera's DST Root CA X3, as it were. */
let otherPki: TestPki;
const failures: [string, string][] = [];

beforeAll(async () => {
  otherPki = await createTestPki();
  const pki = await createTestPki();
  const second = await pki.issue(['localhost', '127.0.0.1'], 'second');
  broker = await startTestBroker({
    dir: pki.dir,
    pki,
    // connect_timeout bounds the handshake too: 1 s keeps the timeout case short.
    config: { connectTimeout: 1 },
    // A second TLS listener, for the one client that cannot choose its source address (mosquitto_pub).
    extraListeners: [{ certfile: second.certFile, keyfile: second.keyFile }],
    start: { observer: { tlsError: (listener, reason) => failures.push([listener, reason]) } },
  });
});
afterAll(async () => {
  await broker?.close();
});

const ca = (): string => broker.pki.ca.cert;
const mqtts = (): { port: number; name: string } => {
  const l = broker.running.listeners[0];
  if (l === undefined) throw new Error('no listener');
  return { port: l.port, name: l.name };
};
const failureLines = (address: string): Record<string, unknown>[] =>
  broker.logs.lines.filter((l) => l.msg === 'TLS handshake failed' && l.remoteAddress === address);
const oneLine = (address: string): Promise<Record<string, unknown>> =>
  waitFor(`the failure line for ${address}`, () => (failureLines(address).length > 0 ? failureLines(address)[0] : undefined), 10_000);

/** A TCP client from `localAddress` that sends `bytes` (or nothing) and resolves when the server closes. */
function rawClient(localAddress: string, bytes: Buffer | undefined, closeAfterMs?: number): Promise<{ closedBy: 'server' | 'client'; received: number }> {
  return new Promise((resolve) => {
    let received = 0;
    let closedBy: 'server' | 'client' = 'server';
    const socket = netConnect({ host: '127.0.0.1', port: mqtts().port, localAddress }, () => {
      if (bytes !== undefined) socket.write(bytes);
      if (closeAfterMs !== undefined) {
        setTimeout(() => {
          closedBy = 'client';
          socket.destroy();
        }, closeAfterMs);
      }
    });
    socket.on('data', (d: Buffer) => (received += d.length));
    socket.on('error', () => {});
    socket.on('close', () => resolve({ closedBy, received }));
  });
}

describe('a failed TLS handshake', () => {
  it('an old protocol: one info line with address, listener, label, OpenSSL code and reason', async () => {
    const before = failures.length;
    await expect(tlsHandshake(mqtts().port, ca(), { ...onlyTls('TLSv1'), localAddress: '127.0.0.2' })).rejects.toMatchObject({ code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
    expect(await oneLine('127.0.0.2')).toMatchObject({
      level: 'info',
      component: 'listener',
      listener: mqtts().name,
      remoteAddress: '127.0.0.2',
      reason: 'unsupported_protocol',
      code: 'ERR_SSL_UNSUPPORTED_PROTOCOL',
      error: 'unsupported protocol',
      hint: expect.stringContaining('tls_version tlsv1'),
    });
    expect(failures.slice(before)).toEqual([[mqtts().name, 'unsupported_protocol']]);
  });

  it('plain MQTT sent to the TLS port: not_tls, "wrong version number"', async () => {
    // An MQTT 3.1.1 CONNECT, as a client configured without TLS sends it.
    const connect = Buffer.from('101000044d5154540402003c0004706c61696e', 'hex');
    const result = await rawClient('127.0.0.3', connect);
    expect(result).toEqual({ closedBy: 'server', received: 0 });
    expect(await oneLine('127.0.0.3')).toMatchObject({ listener: mqtts().name, reason: 'not_tls', code: 'ERR_SSL_WRONG_VERSION_NUMBER', error: 'wrong version number' });
    expect(failures).toContainEqual([mqtts().name, 'not_tls']);
  });

  it('a client that does not trust the certificate and says so (OpenSSL: alert unknown ca)', async () => {
    const child = spawn('openssl', ['s_client', '-bind', '127.0.0.4:0', '-connect', `127.0.0.1:${mqtts().port}`, '-CAfile', otherPki.caFile, '-verify_return_error', '-quiet'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/verify error|certificate verify failed/i);
    expect(await oneLine('127.0.0.4')).toMatchObject({ listener: mqtts().name, reason: 'unknown_ca', code: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', error: 'tlsv1 alert unknown ca', hint: expect.stringContaining('ISRG Root X1') });
  });

  it('mosquitto_pub with the wrong --cafile (the Dafang camera with DST Root CA X3): unknown_ca on that listener', async () => {
    const second = broker.running.listeners[1];
    if (second === undefined) throw new Error('no second listener');
    const before = failures.length;
    const code = await new Promise<number>((resolve) =>
      execFile('mosquitto_pub', [...mosquittoArgs(second.port, otherPki.caFile, 'cam', USERS.cam), '-t', 'cam/x', '-m', 'x'], { timeout: 15_000 }, (err) => resolve(err ? 1 : 0)),
    );
    expect(code).toBe(1);
    const line = await waitFor('the mosquitto_pub failure line', () => broker.logs.lines.find((l) => l.msg === 'TLS handshake failed' && l.listener === second.name));
    expect(line).toMatchObject({ remoteAddress: '127.0.0.1', reason: 'unknown_ca', error: 'tlsv1 alert unknown ca' });
    expect(failures.slice(before)).toEqual([[second.name, 'unknown_ca']]);
  });

  it('a client that cannot do ECDSA (the default certificate key): no_shared_cipher, with the CERT_KEY_TYPE hint', async () => {
    await expect(tlsHandshake(mqtts().port, ca(), { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256', localAddress: '127.0.0.10' })).rejects.toThrow();
    expect(await oneLine('127.0.0.10')).toMatchObject({ reason: 'no_shared_cipher', code: 'ERR_SSL_NO_SHARED_CIPHER', error: 'no shared cipher', hint: expect.stringContaining('CERT_KEY_TYPE=rsa-2048') });
  });

  it('a client that sends nothing: closed after connect_timeout, one timeout line', async () => {
    const started = Date.now();
    const result = await rawClient('127.0.0.5', undefined);
    expect(result.closedBy).toBe('server');
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(await oneLine('127.0.0.5')).toMatchObject({ listener: mqtts().name, reason: 'timeout', code: 'ERR_TLS_HANDSHAKE_TIMEOUT' });
  });

  it('a Node client that rejects the certificate hangs up without an alert: still logged with its address', async () => {
    // Node's client checks the chain after the handshake and closes without an alert: by the time the
    // server hears of it the socket is gone, and with it the address it would ask the socket for.
    await expect(tlsHandshake(mqtts().port, otherPki.ca.cert, { localAddress: '127.0.0.6' })).rejects.toMatchObject({ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
    expect(await oneLine('127.0.0.6')).toMatchObject({ listener: mqtts().name, reason: 'other', code: 'ECONNRESET', hint: expect.stringContaining('do not trust the certificate') });
  });

  it('a TCP connect-and-close without any TLS data (a port probe) is no info line', async () => {
    await rawClient('127.0.0.7', undefined, 20);
    const debug = await waitFor('the debug line', () => broker.logs.lines.find((l) => l.msg === 'connection closed before any TLS data' && l.remoteAddress === '127.0.0.7'));
    expect(debug).toMatchObject({ level: 'debug', listener: mqtts().name });
    expect(failureLines('127.0.0.7')).toEqual([]);
  });

  it('repeated failures from one address within a minute: one line, every failure counted for the metrics', async () => {
    const before = failures.length;
    for (let i = 0; i < 5; i += 1) {
      await expect(tlsHandshake(mqtts().port, ca(), { ...onlyTls('TLSv1.1'), localAddress: '127.0.0.8' })).rejects.toThrow();
    }
    await waitFor('five failures counted', () => failures.length - before >= 5);
    expect(failures.slice(before)).toEqual(Array.from({ length: 5 }, () => [mqtts().name, 'unsupported_protocol']));
    expect(failureLines('127.0.0.8')).toHaveLength(1);
    // A different kind of failure from the same address inside the window is held back as well.
    await rawClient('127.0.0.8', Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    await waitFor('the sixth failure counted', () => failures.length - before >= 6);
    expect(failureLines('127.0.0.8')).toHaveLength(1);
    // And the other addresses above each left exactly one line.
    for (const a of ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6']) expect(failureLines(a)).toHaveLength(1);
  });
});

describe('a successful handshake', () => {
  it('leaves no failure line', async () => {
    await tlsHandshake(mqtts().port, ca(), { localAddress: '127.0.0.9' });
    await new Promise((r) => setTimeout(r, 100));
    expect(broker.logs.lines.filter((l) => l.remoteAddress === '127.0.0.9' && /TLS|closed before/.test(String(l.msg)))).toEqual([]);
  });
});
