/**
 * passwd, ACL and certificate files change under a running broker: the change takes effect for new
 * connections and messages, a broken file keeps the last good one, and connected clients stay connected.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFile, rename } from 'node:fs/promises';
import { connect as tlsConnect } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { hashPassword } from '../../src/auth/passwd.js';
import { connectMqtt, collectMessages, messagesDuring } from '../support/clients.js';
import { PASSWD, startTestBroker, USERS, type TestBroker } from '../support/broker.js';
import { waitFor } from '../support/wait.js';

const ACL = `user cam
topic readwrite cam/#

user bob
topic readwrite #
`;

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ acl: ACL, config: { logLevel: 'info' } });
});
afterAll(async () => {
  await broker?.close();
});

const ca = (): string => broker.pki.ca.cert;

/** Replace a file the way editors and `mosquitto_passwd` do: write a temp file, rename it over. */
async function replaceFile(path: string, text: string): Promise<void> {
  await writeFile(`${path}.new`, text);
  await rename(`${path}.new`, path);
}

function serialSeenBy(port: number): Promise<string> {
  return handshake(port).then((h) => h.serial);
}

/**
 * One TLS handshake (resuming `session` if given): the serial of the certificate the server sent (none when
 * the session was resumed), whether it was resumed, and the ticket the server sent.
 */
function handshake(port: number, session?: Buffer): Promise<{ serial: string; reused: boolean; ticket: Buffer | undefined }> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: ca(), servername: 'localhost', session });
    s.once('secureConnect', () => {
      const reused = s.isSessionReused();
      // A resumed TLS 1.3 session carries no certificate: it is authenticated by the one of its first handshake.
      const raw = s.getPeerX509Certificate()?.raw;
      const serial = raw === undefined ? '(resumed)' : new X509Certificate(raw).serialNumber;
      if (reused) {
        s.end();
        resolve({ serial, reused, ticket: undefined });
        return;
      }
      // After a full handshake the server's NewSessionTicket follows the client's Finished.
      s.once('session', (ticket: Buffer) => {
        s.end();
        resolve({ serial, reused, ticket });
      });
    });
    s.once('error', reject);
  });
}

describe('password file reload', () => {
  it('adds and removes users without a restart; a removed user is disconnected, others stay; a broken file keeps the last good one', async () => {
    const connected = await connectMqtt({ port: broker.port, ca: ca(), username: 'cam', password: USERS.cam });
    const bobClient = await connectMqtt({ port: broker.port, ca: ca(), username: 'bob', password: USERS.bob });
    const camClosed = new Promise<void>((resolve) => connected.once('close', () => resolve()));
    const eve = `eve:${await hashPassword('eve-pass', 'sha512-pbkdf2')}\n`;
    // Remove cam, add eve.
    await replaceFile(broker.passwdFile, PASSWD.replace(/^cam:.*\n/m, '') + eve);
    const client = await waitFor('eve to be accepted', () =>
      connectMqtt({ port: broker.port, ca: ca(), username: 'eve', password: 'eve-pass' }).catch(() => undefined),
    );
    await client.endAsync();
    await expect(connectMqtt({ port: broker.port, ca: ca(), username: 'cam', password: USERS.cam })).rejects.toThrow(/Not authorized/i);
    // As mosquitto 2.0: a client whose user is gone must log in again; bob's entry did not change.
    await camClosed;
    expect(broker.logs.find(/its user was removed from the password file or its password changed/)).toMatchObject({ username: 'cam' });
    expect(bobClient.connected).toBe(true);
    connected.end(true);

    // A broken file (a line without a usable hash only): the last good users stay.
    await replaceFile(broker.passwdFile, 'eve:not-a-hash\n');
    await waitFor('the reload failure to be logged', () => broker.logs.lines.find((l) => l.level === 'warn' && /password file/i.test(JSON.stringify(l))));
    const still = await connectMqtt({ port: broker.port, ca: ca(), username: 'eve', password: 'eve-pass' });
    await still.endAsync();
    expect(broker.logs.text()).not.toContain('eve-pass');

    await replaceFile(broker.passwdFile, PASSWD);
    await waitFor('cam to be accepted again', () =>
      connectMqtt({ port: broker.port, ca: ca(), username: 'cam', password: USERS.cam }).then((c) => c.endAsync().then(() => true), () => false),
    );
    expect(bobClient.connected).toBe(true);
    await bobClient.endAsync();
  });
});

describe('ACL reload', () => {
  it('applies new rules to connected clients without disconnecting them; a broken ACL keeps the last good one', async () => {
    const cam = await connectMqtt({ port: broker.port, ca: ca(), username: 'cam', password: USERS.cam });
    const bob = await connectMqtt({ port: broker.port, ca: ca(), username: 'bob', password: USERS.bob });
    await cam.subscribeAsync('cam/#', { qos: 1 });
    let got = collectMessages(cam, 1);
    await bob.publishAsync('cam/snap', 'before', { qos: 1 });
    expect((await got)[0]?.payload).toBe('before');

    // cam may now only write; reading cam/# is gone.
    await replaceFile(broker.aclFile ?? '', ACL.replace('topic readwrite cam/#', 'topic write cam/#'));
    await waitFor('the new ACL to drop deliveries to cam', async () => {
      const during = messagesDuring(cam, 300);
      await bob.publishAsync('cam/snap', 'probe', { qos: 1 });
      return (await during).length === 0;
    });
    expect(cam.connected).toBe(true);

    // A broken ACL (unknown directive): the last good rules stay.
    await replaceFile(broker.aclFile ?? '', 'user cam\ntopik read cam/#\n');
    await waitFor('the ACL reload failure to be logged', () => broker.logs.lines.find((l) => l.level === 'warn' && /topik/.test(JSON.stringify(l))));
    const during = messagesDuring(cam, 300);
    await bob.publishAsync('cam/snap', 'still-denied', { qos: 1 });
    expect(await during).toEqual([]);

    await replaceFile(broker.aclFile ?? '', ACL);
    await waitFor('reads on cam/# to come back', async () => {
      got = collectMessages(cam, 1, 500);
      await bob.publishAsync('cam/snap', 'after', { qos: 1 });
      return (await got.catch(() => []))[0]?.payload === 'after';
    });
    expect(cam.connected).toBe(true);
    await Promise.all([cam.endAsync(), bob.endAsync()]);
  });
});

describe('certificate reload', () => {
  it('serves a replaced certfile/keyfile to new handshakes while connected clients stay; a mismatched pair is refused', async () => {
    const connected = await connectMqtt({ port: broker.port, ca: ca(), username: 'cam', password: USERS.cam });
    const first = await handshake(broker.port);
    const before = first.serial;
    expect(first.ticket).toBeInstanceOf(Buffer);
    expect((await handshake(broker.port, first.ticket)).reused).toBe(true);
    const listener = broker.config.listeners[0];
    const certfile = listener?.certfile ?? '';
    const keyfile = listener?.keyfile ?? '';

    // A half-written pair: a new certificate with the old key. It must not be served.
    const other = await broker.pki.issue(['localhost', '127.0.0.1'], 'other');
    await replaceFile(certfile, other.cert);
    await waitFor('the mismatch to be logged', () => broker.logs.lines.find((l) => l.level === 'warn' && /TLS certificate/i.test(JSON.stringify(l))));
    expect(await serialSeenBy(broker.port)).toBe(before);

    // Now the matching key arrives: the new certificate is served.
    await replaceFile(keyfile, other.key);
    const after = await waitFor('the new certificate to be served', async () => {
      const serial = await serialSeenBy(broker.port);
      return serial !== before ? serial : undefined;
    });
    expect(after).toBe(new X509Certificate(other.cert).serialNumber);
    // A ticket from before the swap is not honoured: the client does a full handshake and gets the new
    // certificate, so a replaced (say, compromised) key stops authenticating anyone at once.
    const retry = await handshake(broker.port, first.ticket);
    expect({ reused: retry.reused, serial: retry.serial }).toEqual({ reused: false, serial: after });
    expect(connected.connected).toBe(true);
    const got = collectMessages(connected, 1);
    await connected.subscribeAsync('cam/after-reload', { qos: 1 });
    await connected.publishAsync('cam/after-reload', 'still here', { qos: 1 });
    expect((await got)[0]?.payload).toBe('still here');
    await connected.endAsync();
  });
});
