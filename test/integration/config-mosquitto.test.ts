/**
 * examples/mosquitto.conf is real mosquitto syntax: Debian's mosquitto 2.0 starts with it (paths pointed at
 * temp files), listens on its TLS port and checks users against its password file; our loader reads the same
 * text into the expected Config without a warning.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { chmod, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/load.js';
import { PERSISTENCE_DB_NAME } from '../../src/config/mosquitto-conf.js';
import { createTestPki } from '../support/tls.js';
import { mosquittoAvailable, startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { connectMqtt } from '../support/clients.js';

const EXAMPLE = resolve(dirname(fileURLToPath(import.meta.url)), '../../examples/mosquitto.conf');
// Written by mosquitto_passwd 2.0.11 (FACTS.md): cam / s3cret.
const CAM7 = 'cam:$7$101$0eyo1LK2tTCkVyoE$TfD+UAkPpXvqGbA1d0owxs3bAfGUY7jCKfITOwTk3Or6LAiHgKPAC4ABTZO9xtw478xwXp1iy9HLT0J0Nx2pBg==';

/** Replace `from` by `to`, failing when the example no longer contains `from` (the test would prove nothing). */
function substitute(text: string, from: string, to: string): string {
  expect(text).toContain(from);
  return text.replaceAll(from, to);
}

let running: RunningMosquitto | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

describe.skipIf(!mosquittoAvailable())('examples/mosquitto.conf', () => {
  it("is accepted by Debian's mosquitto, which serves TLS with its certfile/keyfile and users from its password_file", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mab-example-'));
    await chmod(dir, 0o755);
    const pki = await createTestPki(dir);
    const { certFile, keyFile } = await pki.issue(['localhost', '127.0.0.1'], 'server');
    const passwd = join(dir, 'passwd');
    const acl = join(dir, 'acl');
    const data = join(dir, 'data');
    await writeFile(passwd, `${CAM7}\n`);
    await writeFile(acl, 'user cam\ntopic readwrite cameras/#\n');
    await mkdir(data);

    const example = await readFile(EXAMPLE, 'utf8');
    let text = substitute(example, '/etc/letsencrypt/live/example.com/fullchain.pem', certFile);
    text = substitute(text, '/etc/letsencrypt/live/example.com/privkey.pem', keyFile);
    text = substitute(text, '/mosquitto/conf/passwd', passwd);
    text = substitute(text, '/mosquitto/conf/acl', acl);
    text = substitute(text, '/mosquitto/data/', `${data}/`);
    const withPort = (port: number): string => substitute(text, 'listener 8883\n', `listener ${port}\n`);

    // Our reading of the same file.
    const confFile = join(dir, 'ours.conf');
    await writeFile(confFile, withPort(8883));
    const { config, warnings } = await loadConfig({ mosquittoConf: confFile, env: {}, cwd: dir, defaults: { mosquittoConf: null, passwordFile: null } });
    expect(warnings).toEqual([]);
    expect(config.listeners).toEqual([{ port: 8883, protocol: 'mqtt', certfile: certFile, keyfile: keyFile, requireCertificate: false, selfSigned: false }]);
    expect(config).toMatchObject({ passwordFile: passwd, aclFile: acl, allowAnonymous: false, persistence: true, persistenceLocation: join(data, PERSISTENCE_DB_NAME), logLevel: 'info' });

    // mosquitto's reading: it starts, listens, and its TLS + password file work.
    running = await startMosquitto({ conf: withPort, dir });
    expect(running.logs()).not.toMatch(/Error/);
    const client = await connectMqtt({ port: running.port, ca: pki.ca.cert, username: 'cam', password: 's3cret' });
    await client.endAsync();
    await expect(connectMqtt({ port: running.port, ca: pki.ca.cert, username: 'cam', password: 'wrong' })).rejects.toThrow(/Not authorized|Bad username/i);
    await running.stop();
    expect(running.logs()).toContain(`${data}/`);
  });
});
