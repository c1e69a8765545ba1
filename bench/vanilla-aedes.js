// A bare Aedes 1.2 broker for the bench (BENCH_BROKERS=aedes,...): what our broker would cost without our code.
// Reads the subset of the generated mosquitto.conf it needs (listeners, certfile, keyfile, password_file with
// $7$ PBKDF2-SHA512 entries, acl_file `topic` lines of the one user); in-memory persistence; noDelay sockets.
import { Aedes } from 'aedes';
import { pbkdf2Sync, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';

const confPath = process.argv[2];
if (confPath === undefined) {
  console.error('usage: node bench/vanilla-aedes.js mosquitto.conf');
  process.exit(2);
}
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
const prefixes = readFileSync(settings.acl_file, 'utf8').split('\n')
  .map((l) => /^topic\s+(?:readwrite\s+)?(\S+)/.exec(l.trim())?.[1])
  .filter((t) => t !== undefined)
  .map((t) => t.replace(/#$/, ''));
const allowed = (topic) => prefixes.some((p) => topic.startsWith(p));

const broker = await Aedes.createBroker({
  authenticate(_client, username, password, done) {
    const u = users.get(username ?? '');
    if (u === undefined || password === undefined) return done(null, false);
    const hash = pbkdf2Sync(password, u.salt, u.iterations, u.hash.length, 'sha512');
    done(null, hash.length === u.hash.length && timingSafeEqual(hash, u.hash));
  },
  authorizePublish(_client, packet, done) {
    done(allowed(packet.topic) ? null : new Error('denied'));
  },
  authorizeSubscribe(_client, sub, done) {
    done(null, allowed(sub.topic) ? sub : null);
  },
});

const servers = listeners.map((l) => {
  const server = l.certfile !== undefined
    ? tls.createServer({ cert: readFileSync(l.certfile), key: readFileSync(l.keyfile), noDelay: true }, broker.handle)
    : net.createServer({ noDelay: true }, broker.handle);
  server.listen(l.port, l.host);
  return server;
});

const stop = () => {
  for (const s of servers) s.close();
  broker.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
