// The subset of the generated mosquitto.conf that the bench's stand-in server (node-tls-floor.js) needs:
// listeners with certfile/keyfile, password_file ($7$ PBKDF2-SHA512 entries), acl_file.
import { pbkdf2Sync, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

export function readBenchConf(confPath) {
  const listeners = [];
  const settings = {};
  for (const raw of readFileSync(confPath, 'utf8').split('\n')) {
    const [key, ...rest] = raw.trim().split(/\s+/);
    if (key === 'listener') listeners.push({ port: Number(rest[0]), host: rest[1] ?? '0.0.0.0' });
    else if (key === 'certfile' || key === 'keyfile') listeners[listeners.length - 1][key] = rest[0];
    else if (key !== undefined && key !== '' && !key.startsWith('#')) settings[key] = rest.join(' ');
  }
  const users = new Map();
  for (const line of readFileSync(settings.password_file, 'utf8').split('\n')) {
    const m = /^([^:]+):\$7\$(\d+)\$([^$]+)\$(.+)$/.exec(line.trim());
    if (m !== null) users.set(m[1], { iterations: Number(m[2]), salt: Buffer.from(m[3], 'base64'), hash: Buffer.from(m[4], 'base64') });
  }
  /** The password check mosquitto does for a $7$ entry (PBKDF2-SHA512), in constant time. */
  const checkPassword = (username, password) => {
    const u = users.get(username ?? '');
    if (u === undefined || password === undefined) return false;
    const hash = pbkdf2Sync(password, u.salt, u.iterations, u.hash.length, 'sha512');
    return hash.length === u.hash.length && timingSafeEqual(hash, u.hash);
  };
  return { listeners, settings, checkPassword };
}
