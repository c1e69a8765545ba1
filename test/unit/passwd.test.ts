import { describe, expect, it, vi } from 'vitest';
import { createHash, pbkdf2Sync, randomBytes } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { hashPassword, isSupportedHash, parsePasswd, PasswdError, type Users } from '../../src/auth/passwd.js';

// Written by mosquitto_passwd 2.0.11 (FACTS.md).
const CAM7 = 'cam:$7$101$0eyo1LK2tTCkVyoE$TfD+UAkPpXvqGbA1d0owxs3bAfGUY7jCKfITOwTk3Or6LAiHgKPAC4ABTZO9xtw478xwXp1iy9HLT0J0Nx2pBg==';
const CAM6 = 'cam:$6$0az4QUSzIiX+igO1$hUnvxzkhf2F+C4KVALtMaVZ4l1mQJNKI7hYwvP0H8V8pjhDgJrZL65YMhWo4ZbyHTxNpeLU4xpauw5X0++pDaA==';
const BOB7 = 'bob:$7$101$Xw2crMfuucSq3Pc4$E/FqK+cGWM6sqOPJcWi4gyTtZy5OuhwArdh6wry2Bk0jwTKNiiRDm/b9q2P9wlB78nznpwRWxLJOT3OfrPvL5Q==';

function users(text: string): Users {
  return parsePasswd(text, 'passwd').users;
}

describe('parsePasswd + Users.verify', () => {
  it('verifies the mosquitto_passwd 2.0.11 vectors ($7$ and $6$) and rejects wrong passwords', async () => {
    const u = users(`${CAM7}\n${BOB7}\n`);
    expect(u.size).toBe(2);
    expect(await u.verify('cam', 's3cret')).toBe(true);
    expect(await u.verify('cam', Buffer.from('s3cret'))).toBe(true);
    expect(await u.verify('bob', 'hunter2')).toBe(true);
    expect(await u.verify('cam', 'hunter2')).toBe(false);
    expect(await u.verify('bob', 's3cret')).toBe(false);
    expect(await u.verify('cam', 's3cret ')).toBe(false);
    expect(await u.verify('cam', '')).toBe(false);
    const u6 = users(CAM6);
    expect(u6.kindOf('cam')).toBe('sha512');
    expect(await u6.verify('cam', 's3cret')).toBe(true);
    expect(await u6.verify('cam', 'S3cret')).toBe(false);
  });

  it('an unknown user never verifies, whatever the password', async () => {
    const u = users(CAM7);
    expect(u.has('nobody')).toBe(false);
    expect(await u.verify('nobody', 's3cret')).toBe(false);
    expect(await u.verify('', '')).toBe(false);
    expect(await users('').verify('cam', 's3cret')).toBe(false);
  });

  it('does bcrypt work for an unknown user in a bcrypt file, so timing does not tell who exists', async () => {
    const u = users(`alice:${await hashPassword('pw', 'bcrypt', { cost: 4 })}`);
    const spy = vi.spyOn(bcrypt, 'compare');
    try {
      expect(await u.verify('mallory', 'pw')).toBe(false);
      expect(spy).toHaveBeenCalledTimes(1);
      const dummy = spy.mock.calls[0]?.[1] as string;
      expect(dummy).toMatch(/^\$2b\$04\$[./A-Za-z0-9]{53}$/);
    } finally {
      spy.mockRestore();
    }
  });

  it('verifies bcrypt $2a$, $2b$ and $2y$ hashes; a password that is not valid UTF-8 never matches', async () => {
    const hash = await hashPassword('pässword', 'bcrypt', { cost: 4 });
    expect(hash).toMatch(/^\$2b\$04\$/);
    const body = hash.slice(3);
    const u = users(`a:$2a${body}\nb:$2b${body}\ny:$2y${body}\n`);
    for (const name of ['a', 'b', 'y']) {
      expect(await u.verify(name, 'pässword')).toBe(true);
      expect(await u.verify(name, 'password')).toBe(false);
    }
    const bad = users(`x:${await hashPassword('\ufffd', 'bcrypt', { cost: 4 })}`);
    expect(await bad.verify('x', '\ufffd')).toBe(true);
    expect(await bad.verify('x', Buffer.from([0xff]))).toBe(false);
  });

  it('accepts 64-byte salts and any iteration count >= 1 for $7$ (mosquitto 2.1 files)', async () => {
    const salt = randomBytes(64);
    const hash = pbkdf2Sync('pw', salt, 1000, 64, 'sha512');
    const one = pbkdf2Sync('pw', salt.subarray(0, 12), 1, 64, 'sha512');
    const u = users(
      `big:$7$1000$${salt.toString('base64')}$${hash.toString('base64')}\nlow:$7$1$${salt.subarray(0, 12).toString('base64')}$${one.toString('base64')}\n`,
    );
    expect(await u.verify('big', 'pw')).toBe(true);
    expect(await u.verify('low', 'pw')).toBe(true);
    expect(await u.verify('big', 'pX')).toBe(false);
  });

  it('skips comments, blank lines and CRLF ends; trims blanks around fields like mosquitto', async () => {
    const u = users(`# users\r\n\r\n  # indented comment\r\n ${CAM7.replace(':', ' : ')} \r\n`);
    expect(u.names()).toEqual(['cam']);
    expect(await u.verify('cam', 's3cret')).toBe(true);
  });

  it('drops bad entries with a warning naming file, line and user, never the hash or the password', () => {
    const text = [
      CAM7,
      'plain:hunter2secret',
      'short:$7$101$AAAA$BBBB',
      'iter:$7$0$0eyo1LK2tTCkVyoE$TfD+UAkPpXvqGbA1d0owxs3bAfGUY7jCKfITOwTk3Or6LAiHgKPAC4ABTZO9xtw478xwXp1iy9HLT0J0Nx2pBg==',
      'md5:$1$saltsalt$qjXMvbEw8oaL.CzflDugX/',
      'nohash:',
      'garbage line without colon',
      'bcrypt:$2b$10$tooshort',
    ].join('\n');
    const { users: u, warnings } = parsePasswd(text, '/etc/passwd-file');
    expect(u.names()).toEqual(['cam']);
    expect(warnings).toHaveLength(7);
    expect(warnings[0]).toMatch(/^\/etc\/passwd-file:2: user "plain": the password is not hashed/);
    expect(warnings[1]).toMatch(/^\/etc\/passwd-file:3: user "short": the \$7\$ salt/);
    expect(warnings[2]).toMatch(/^\/etc\/passwd-file:4: user "iter": the \$7\$ iteration count/);
    expect(warnings[3]).toMatch(/^\/etc\/passwd-file:5: user "md5": unsupported hash type/);
    expect(warnings[4]).toMatch(/^\/etc\/passwd-file:6: user "nohash": missing password hash/);
    expect(warnings[5]).toMatch(/^\/etc\/passwd-file:7: not a "user:hash" line/);
    expect(warnings[6]).toMatch(/^\/etc\/passwd-file:8: user "bcrypt": the bcrypt hash is malformed/);
    const all = warnings.join('\n');
    for (const secret of ['hunter2secret', 'qjXMvbEw8oaL', 'TfD+UAkPpXvq', 'AAAA', 'tooshort', 'garbage']) {
      expect(all).not.toContain(secret);
    }
  });

  it('a duplicate user keeps its last entry, with a warning', async () => {
    const { users: u, warnings } = parsePasswd(`${CAM7}\n${BOB7}\n${CAM6.replace('cam', 'cam')}\n`, 'f');
    expect(u.size).toBe(2);
    expect(u.kindOf('cam')).toBe('sha512');
    expect(await u.verify('cam', 's3cret')).toBe(true);
    expect(warnings).toEqual(['f:3: user "cam": duplicate of line 1; the later entry (line 3) is used']);
  });

  it('throws PasswdError when the file has content but no valid entry; empty or comment-only files are fine', () => {
    expect(() => parsePasswd('alice:plain\nbob:$1$x$y\n', 'broken')).toThrow(PasswdError);
    expect(() => parsePasswd('this is not a password file\n', 'broken')).toThrow(/broken: no valid entry/);
    try {
      parsePasswd('alice:plain\n', 'broken');
    } catch (err) {
      expect(err).toBeInstanceOf(PasswdError);
      expect((err as PasswdError).warnings).toHaveLength(1);
      expect((err as PasswdError).message).not.toContain('plain\n');
    }
    expect(parsePasswd('', 'empty').users.size).toBe(0);
    expect(parsePasswd('# nobody yet\n\n', 'empty').users.size).toBe(0);
  });
});

describe('hashPassword', () => {
  it('writes what mosquitto_passwd writes: 12-byte salt, $7$101 by default, $6$ with sha512', async () => {
    const h7 = await hashPassword('pw', 'sha512-pbkdf2');
    expect(h7).toMatch(/^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$/);
    const [, , , salt7, digest7] = h7.split('$');
    expect(pbkdf2Sync('pw', Buffer.from(salt7 ?? '', 'base64'), 101, 64, 'sha512').toString('base64')).toBe(digest7);
    const h6 = await hashPassword(Buffer.from('pw'), 'sha512');
    expect(h6).toMatch(/^\$6\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$/);
    const [, , salt6, digest6] = h6.split('$');
    const expected = createHash('sha512').update('pw').update(Buffer.from(salt6 ?? '', 'base64')).digest('base64');
    expect(digest6).toBe(expected);
    expect(await hashPassword('pw', 'sha512-pbkdf2', { iterations: 1000 })).toMatch(/^\$7\$1000\$/);
    expect(await hashPassword('pw', 'sha512')).not.toBe(h6); // random salt
  });

  it('round-trips every kind through parsePasswd; bcrypt defaults to $2b$ cost 10', async () => {
    for (const kind of ['sha512', 'sha512-pbkdf2', 'bcrypt'] as const) {
      const hash = await hashPassword('correct horse', kind, kind === 'bcrypt' ? { cost: 4 } : {});
      expect(isSupportedHash(hash)).toBe(true);
      const u = users(`u:${hash}\n`);
      expect(u.kindOf('u')).toBe(kind);
      expect(await u.verify('u', 'correct horse')).toBe(true);
      expect(await u.verify('u', 'correct horsE')).toBe(false);
    }
    expect(await hashPassword('x', 'bcrypt')).toMatch(/^\$2b\$10\$/);
    await expect(hashPassword('x', 'sha512-pbkdf2', { iterations: 0 })).rejects.toThrow(RangeError);
    await expect(hashPassword('x', 'bcrypt', { cost: 3 })).rejects.toThrow(RangeError);
  });
});
