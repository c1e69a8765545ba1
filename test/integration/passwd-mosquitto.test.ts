/**
 * Our password and ACL handling against the real thing: Debian's mosquitto 2.0.11 and mosquitto_passwd.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { parseAcl, type Acl } from '../../src/auth/acl.js';
import { parsePasswd } from '../../src/auth/passwd.js';
import { passwdCommand } from '../../src/commands/passwd.js';
import { run, startMosquittoSub } from '../support/clients.js';
import { mosquittoAvailable, startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { tempDirs } from '../support/temp-dirs.js';

const mkdtemp = tempDirs();

const available = mosquittoAvailable();
const why = available ? '' : ' (skipped: /usr/sbin/mosquitto is not installed)';

class Sink extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

async function ourPasswd(argv: string[]): Promise<number> {
  const stderr = new Sink();
  const code = await passwdCommand(argv, { stdin: new PassThrough(), stdout: new Sink(), stderr, isTTY: false });
  if (code !== 0) throw new Error(`passwd ${argv.join(' ')} failed: ${stderr.text}`);
  return code;
}

function base(port: number, user?: string, password?: string, id?: string): string[] {
  const args = ['-h', '127.0.0.1', '-p', String(port), '-V', 'mqttv311'];
  if (user !== undefined) args.push('-u', user);
  if (password !== undefined) args.push('-P', password);
  if (id !== undefined) args.push('-i', id);
  return args;
}

describe.skipIf(!available)(`interop with mosquitto 2.0.11${why}`, () => {
  describe('password files', () => {
    it('entries written by mosquitto_passwd ($7$ default, -H sha512, -I) verify with our Users', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'mab-interop-'));
      const file = join(dir, 'passwd');
      expect((await run('mosquitto_passwd', ['-c', '-b', file, 'seven', 'pw-7'])).code).toBe(0);
      expect((await run('mosquitto_passwd', ['-H', 'sha512', '-b', file, 'six', 'pw 6'])).code).toBe(0);
      expect((await run('mosquitto_passwd', ['-I', '1000', '-b', file, 'many', 'pw-many'])).code).toBe(0);
      const text = await readFile(file, 'utf8');
      expect(text).toMatch(/^seven:\$7\$101\$/m);
      expect(text).toMatch(/^six:\$6\$/m);
      expect(text).toMatch(/^many:\$7\$1000\$/m);
      const { users, warnings } = parsePasswd(text, file);
      expect(warnings).toEqual([]);
      expect(await users.verify('seven', 'pw-7')).toBe(true);
      expect(await users.verify('six', 'pw 6')).toBe(true);
      expect(await users.verify('many', 'pw-many')).toBe(true);
      expect(await users.verify('seven', 'pw-6')).toBe(false);
      expect(await users.verify('six', 'pw-7')).toBe(false);
      expect(await users.verify('many', 'pw-7')).toBe(false);
    });

    it('mosquitto_passwd and our passwd edit the same file in turn, each keeping and changing the other\'s entries', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'mab-interop-'));
      const file = join(dir, 'passwd');
      const theirs = async (argv: string[]): Promise<void> => {
        const r = await run('mosquitto_passwd', argv);
        expect(r, `mosquitto_passwd ${argv.join(' ')}`).toMatchObject({ code: 0, stderr: '' });
      };
      await writeFile(file, 'plain:pw-plain\n');
      await ourPasswd(['-U', file]);
      await theirs(['-b', file, 'm1', 'pw-m1']);
      await ourPasswd(['-b', file, 'o1', 'pw-o1']);
      await theirs(['-H', 'sha512', '-b', file, 'm2', 'pw m2']);
      await ourPasswd(['-H', 'sha512', '-I', '1000', '-b', file, 'o2', 'pw-o2']);
      await ourPasswd(['-b', file, 'm1', 'pw-m1-new']);
      await theirs(['-b', file, 'o1', 'pw-o1-new']);
      await theirs(['-D', file, 'o2']);
      await ourPasswd(['-D', file, 'm2']);
      const text = await readFile(file, 'utf8');
      expect(text.split('\n').map((l) => l.split(':')[0])).toEqual(['plain', 'm1', 'o1', '']);
      const { users, warnings } = parsePasswd(text, file);
      expect(warnings).toEqual([]);
      expect(await users.verify('plain', 'pw-plain')).toBe(true);
      expect(await users.verify('m1', 'pw-m1-new')).toBe(true);
      expect(await users.verify('o1', 'pw-o1-new')).toBe(true);
      expect(await users.verify('m1', 'pw-m1')).toBe(false);
      expect(await users.verify('o1', 'pw-o1')).toBe(false);
      expect(users.has('m2') || users.has('o2')).toBe(false);
    });

    describe('a file written by our passwd command, served by mosquitto', () => {
      let mosq: RunningMosquitto;
      beforeAll(async () => {
        const dir = await mkdtemp(join(tmpdir(), 'mab-interop-'));
        const file = join(dir, 'passwd');
        await ourPasswd(['-c', '-H', 'sha512', '-b', file, 'six', 'secret-6']);
        await ourPasswd(['-b', file, 'seven', 'secret-7']);
        await ourPasswd(['-I', '1000', '-b', file, 'many', 'secret-1000']);
        await ourPasswd(['-H', 'bcrypt', '-I', '4', '-b', file, 'bc', 'secret-bc']);
        mosq = await startMosquitto({ conf: `allow_anonymous false\npassword_file ${file}\n`, dir });
      });
      afterAll(async () => {
        await mosq?.stop();
      });

      const pub = (user: string, password: string) =>
        run('mosquitto_pub', [...base(mosq.port, user, password), '-t', 't', '-m', 'm']);

      it.each([
        ['six', 'secret-6'],
        ['seven', 'secret-7'],
        ['many', 'secret-1000'],
      ])('%s ($6$/$7$) connects with the right password and is refused with a wrong one', async (user, password) => {
        expect(await pub(user, password)).toMatchObject({ code: 0 });
        const wrong = await pub(user, `${password}x`);
        expect(wrong.code).not.toBe(0);
        expect(wrong.stderr).toMatch(/not authorised/);
      });

      it('mosquitto 2.0 cannot read a bcrypt entry (why `-H bcrypt` is for this broker only)', async () => {
        const r = await pub('bc', 'secret-bc');
        expect(r.code).not.toBe(0);
        expect(mosq.logs()).toContain('Invalid password hash type for user bc, removing entry');
      });
    });
  });

  describe('ACL semantics agree with mosquitto', () => {
    const ACL = [
      'topic read anon/#',
      'user alice',
      'topic readwrite a/#',
      'topic deny a/secret/#',
      'user reader',
      'topic read #',
      'user sysreader',
      'topic read $SYS/#',
      'topic read marker',
      'user writer',
      'topic write #',
      'pattern readwrite dev-%c/#',
    ].join('\n');
    let mosq: RunningMosquitto;
    let acl: Acl;

    beforeAll(async () => {
      const dir = await mkdtemp(join(tmpdir(), 'mab-acl-'));
      const passwd = join(dir, 'passwd');
      await ourPasswd(['-c', '-b', passwd, 'alice', 'alice-pw']);
      for (const user of ['reader', 'sysreader', 'writer']) await ourPasswd(['-b', passwd, user, `${user}-pw`]);
      await writeFile(join(dir, 'acl'), `${ACL}\n`);
      acl = parseAcl(ACL, 'acl');
      mosq = await startMosquitto({ conf: `allow_anonymous true\npassword_file ${passwd}\nacl_file ${join(dir, 'acl')}\n`, dir });
    });
    afterAll(async () => {
      await mosq?.stop();
    });

    const as = (user: string | undefined, id: string) => base(mosq.port, user, user === undefined ? undefined : `${user}-pw`, id);

    /**
     * Subscribe `who` to `filters` plus a marker topic it may read, publish `topic` (as `publisher`, QoS 1,
     * so mosquitto has handled it before the next publish), then the marker. Messages to one subscriber
     * keep their order, so the first message received tells whether `topic` was delivered.
     */
    async function delivered(
      who: { user: string | undefined; id: string; marker: string },
      filters: string[],
      topic: string,
      publisher: { user: string | undefined; id: string } = { user: 'writer', id: 'writer-1' },
    ): Promise<boolean> {
      const sub = await startMosquittoSub([...as(who.user, who.id), '-v', ...[...filters, who.marker].flatMap((f) => ['-t', f])], 1);
      const first = await run('mosquitto_pub', [...as(publisher.user, publisher.id), '-q', '1', '-t', topic, '-m', 'probe']);
      expect(first.code).toBe(0); // a denied PUBLISH is dropped silently: the publisher sees success
      expect((await run('mosquitto_pub', [...as('writer', 'writer-2'), '-q', '1', '-t', who.marker, '-m', 'marker'])).code).toBe(0);
      const { lines } = await sub.done;
      expect(lines).toHaveLength(1);
      return lines[0] === `${topic} probe`;
    }

    it('a deny line wins over a broader grant: the denied message is not delivered', async () => {
      const alice = { user: 'alice', id: 'alice-1', marker: 'a/marker' };
      expect(await delivered(alice, ['a/#'], 'a/open')).toBe(true);
      expect(await delivered(alice, ['a/#'], 'a/secret/x')).toBe(false);
      const ours = acl.forClient('alice', 'alice-1');
      expect([ours.canReceive('a/open'), ours.canReceive('a/secret/x')]).toEqual([true, false]);
      // mosquitto grants the SUBSCRIBE and filters at delivery; so do we for a filter the deny only overlaps.
      expect(ours.canSubscribe('a/#')).toBe(true);
    });

    it('a filter without read access gets no messages (mosquitto grants it; we refuse it at SUBSCRIBE)', async () => {
      const alice = { user: 'alice', id: 'alice-2', marker: 'a/marker' };
      expect(await delivered(alice, ['other/#'], 'other/x')).toBe(false);
      const ours = acl.forClient('alice', 'alice-2');
      expect(ours.canReceive('other/x')).toBe(false);
      expect(ours.canSubscribe('other/#')).toBe(false);
    });

    it('a PUBLISH without write access is dropped silently', async () => {
      const reader = { user: 'reader', id: 'reader-1', marker: 'marker' };
      expect(await delivered(reader, ['#'], 'b/x', { user: 'alice', id: 'alice-3' })).toBe(false);
      expect(await delivered(reader, ['#'], 'a/x', { user: 'alice', id: 'alice-3' })).toBe(true);
      const ours = acl.forClient('alice', 'alice-3');
      expect([ours.canPublish('b/x'), ours.canPublish('a/x')]).toEqual([false, true]);
    });

    it('%c is substituted inside a level (dev-%c) and only for that client', async () => {
      const cam1 = { user: 'alice', id: 'cam1', marker: 'a/marker' };
      expect(await delivered(cam1, ['dev-cam1/#'], 'dev-cam1/status')).toBe(true);
      const cam2 = { user: 'alice', id: 'cam2', marker: 'a/marker' };
      expect(await delivered(cam2, ['dev-cam1/#'], 'dev-cam1/status')).toBe(false);
      expect(acl.forClient('alice', 'cam1').canReceive('dev-cam1/status')).toBe(true);
      expect(acl.forClient('alice', 'cam2').canReceive('dev-cam1/status')).toBe(false);
    });

    it('topic lines before the first user line are for anonymous clients only', async () => {
      const anon = { user: undefined, id: 'anon-1', marker: 'anon/marker' };
      expect(await delivered(anon, ['anon/#'], 'anon/x')).toBe(true);
      const alice = { user: 'alice', id: 'alice-4', marker: 'a/marker' };
      expect(await delivered(alice, ['anon/#'], 'anon/x')).toBe(false);
      expect(acl.forClient(undefined, 'anon-1').canReceive('anon/x')).toBe(true);
      expect(acl.forClient('alice', 'alice-4').canReceive('anon/x')).toBe(false);
    });

    it('`#` does not give read access to $SYS topics; `$SYS/#` does', async () => {
      // $SYS/broker/version is retained: it arrives right after SUBACK when readable.
      const reader = { user: 'reader', id: 'reader-2', marker: 'marker' };
      const sub = await startMosquittoSub([...as(reader.user, reader.id), '-v', '-t', '$SYS/broker/version', '-t', 'marker'], 1);
      await run('mosquitto_pub', [...as('writer', 'writer-3'), '-q', '1', '-t', 'marker', '-m', 'marker']);
      expect((await sub.done).lines).toEqual(['marker marker']);
      const sys = await startMosquittoSub([...as('sysreader', 'sys-1'), '-v', '-t', '$SYS/broker/version'], 1);
      expect((await sys.done).lines[0]).toMatch(/^\$SYS\/broker\/version mosquitto version 2\./);
      expect(acl.forClient('reader', 'reader-2').canReceive('$SYS/broker/version')).toBe(false);
      expect(acl.forClient('sysreader', 'sys-1').canReceive('$SYS/broker/version')).toBe(true);
    });
  });
});
