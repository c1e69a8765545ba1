/**
 * One mosquitto.conf (listener, certfile/keyfile, password_file, acl_file, persistence) starts both Debian's
 * mosquitto 2.0.11 and our broker, and the same client checks pass on both: what a user migrating from the
 * old image keeps.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectMqtt, messagesDuring, mosquittoArgs, run, runPaho, startMosquittoSub } from '../support/clients.js';
import { PASSWD, spawnBroker, USERS, type SpawnedBroker } from '../support/broker.js';
import { freePort, startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { createTestPki, type TestPki } from '../support/tls.js';

const ACL = `user cam
topic write cam/#
topic read cmd/#

user bob
topic readwrite #
topic deny secret/#
`;

let dir: string;
let pki: TestPki;
let mosquitto: RunningMosquitto;
let ours: SpawnedBroker;

function conf(port: number, dataDir: string, cert: { certFile: string; keyFile: string }): string {
  return `# the old image's shape: one TLS listener, users, ACL, persistence
per_listener_settings false
allow_anonymous false
password_file ${join(dir, 'passwd')}
acl_file ${join(dir, 'acl')}
persistence true
persistence_location ${dataDir}/

listener ${port} 127.0.0.1
certfile ${cert.certFile}
keyfile ${cert.keyFile}
`;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mab-parity-'));
  pki = await createTestPki(dir);
  const cert = await pki.issue(['localhost', '127.0.0.1'], 'server');
  await writeFile(join(dir, 'passwd'), PASSWD);
  await writeFile(join(dir, 'acl'), ACL);
  await mkdir(join(dir, 'mosquitto-data'));
  mosquitto = await startMosquitto({ conf: (port) => conf(port, join(dir, 'mosquitto-data'), cert)});
  const ourPort = await freePort();
  const ourConf = join(dir, 'ours.conf');
  await writeFile(ourConf, conf(ourPort, join(dir, 'our-data'), cert));
  ours = await spawnBroker(['-c', ourConf], { DATA_DIR: join(dir, 'our-state') });
});

afterAll(async () => {
  await Promise.all([mosquitto?.stop(), ours?.stop()]);
});

const targets = (): { name: string; port: number }[] => [
  { name: 'mosquitto 2.0.11', port: mosquitto.port },
  { name: 'mqtt-acme-broker', port: ours.ports[0] ?? 0 },
];

describe.each(['mosquitto 2.0.11', 'mqtt-acme-broker'])('the same mosquitto.conf on %s', (name) => {
  const port = (): number => targets().find((t) => t.name === name)?.port ?? 0;

  it('mosquitto_pub -> mosquitto_sub at QoS 0, 1, 2 with passwd users', async () => {
    for (const qos of [0, 1, 2]) {
      const topic = `cmd/parity/q${qos}`;
      const sub = await startMosquittoSub([...mosquittoArgs(port(), pki.caFile, 'cam', USERS.cam), '-t', topic, '-q', String(qos), '-v'], 1);
      const pub = await run('mosquitto_pub', [...mosquittoArgs(port(), pki.caFile, 'bob', USERS.bob), '-t', topic, '-q', String(qos), '-m', 'go']);
      expect(pub.code, pub.stderr).toBe(0);
      expect((await sub.done).lines).toEqual([`${topic} go`]);
    }
  });

  it('refuses a wrong password and anonymous clients with "not authorised"', async () => {
    const wrong = await run('mosquitto_pub', [...mosquittoArgs(port(), pki.caFile, 'cam', 'wrong'), '-t', 'cam/x', '-m', 'x']);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/not authori[sz]ed/i);
    const anon = await run('mosquitto_pub', [...mosquittoArgs(port(), pki.caFile), '-t', 'cam/x', '-m', 'x']);
    expect(anon.code).not.toBe(0);
    expect(anon.stderr).toMatch(/not authori[sz]ed/i);
  });

  it('paho-mqtt (Home Assistant) receives what it may read and nothing the ACL denies', async () => {
    const { code, result } = await runPaho({ port: port(), cafile: pki.caFile, username: 'bob', password: USERS.bob, topic: 'ha/state', qos: 1, count: 2, publish: 'on' });
    expect(code).toBe(0);
    expect((result.received as { payload: string }[]).map((m) => m.payload)).toEqual(['on-0', 'on-1']);
  });

  it('ACL: a denied publish is dropped without disconnecting; secret/# never reaches a # subscriber', async () => {
    const watcher = await connectMqtt({ port: port(), ca: pki.ca.cert, username: 'bob', password: USERS.bob });
    await watcher.subscribeAsync('#', { qos: 1 });
    const camera = await connectMqtt({ port: port(), ca: pki.ca.cert, username: 'cam', password: USERS.cam });
    const during = messagesDuring(watcher, 700);
    await camera.publishAsync('elsewhere/x', 'denied', { qos: 1 });
    await watcher.publishAsync('secret/pin', '1234', { qos: 1 });
    await camera.publishAsync('cam/motion', 'yes', { qos: 1 });
    const seen = await during;
    expect(seen).toContain('cam/motion:yes');
    expect(seen.filter((m) => m.startsWith('elsewhere/') || m.startsWith('secret/'))).toEqual([]);
    expect(camera.connected).toBe(true);
    await Promise.all([watcher.endAsync(), camera.endAsync()]);
  });

  it('retained messages are replayed to a new subscriber', async () => {
    const cam = await connectMqtt({ port: port(), ca: pki.ca.cert, username: 'cam', password: USERS.cam });
    await cam.publishAsync('cam/last-seen', 'now', { qos: 1, retain: true });
    await cam.endAsync();
    const sub = await startMosquittoSub([...mosquittoArgs(port(), pki.caFile, 'bob', USERS.bob), '-t', 'cam/last-seen', '-v'], 1);
    expect((await sub.done).lines).toEqual(['cam/last-seen now']);
  });
});
