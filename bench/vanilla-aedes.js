// A bare Aedes 1.2 broker for the bench (BENCH_BROKERS=aedes,...): what our broker would cost without our code.
// Reads the subset of the generated mosquitto.conf it needs (listeners, certfile, keyfile, password_file with
// $7$ PBKDF2-SHA512 entries, acl_file `topic` lines of the one user); in-memory persistence; noDelay sockets.
import { Aedes } from 'aedes';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { readBenchConf } from './lib/conf-reader.js';

const confPath = process.argv[2];
if (confPath === undefined) {
  console.error('usage: node bench/vanilla-aedes.js mosquitto.conf');
  process.exit(2);
}
const { listeners, settings, checkPassword } = readBenchConf(confPath);
const prefixes = readFileSync(settings.acl_file, 'utf8').split('\n')
  .map((l) => /^topic\s+(?:readwrite\s+)?(\S+)/.exec(l.trim())?.[1])
  .filter((t) => t !== undefined)
  .map((t) => t.replace(/#$/, ''));
const allowed = (topic) => prefixes.some((p) => topic.startsWith(p));

const broker = await Aedes.createBroker({
  authenticate(_client, username, password, done) {
    done(null, checkPassword(username, password));
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
