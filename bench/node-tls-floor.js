// The floor under any MQTT broker written for Node (BENCH_BROKERS=floor,...): not a broker, the least a
// Node process must do per connection. A bare `tls.createServer` with the same certificate and noDelay that
// reads CONNECT, checks the password as mosquitto does ($7$ PBKDF2-SHA512), answers CONNACK and closes on
// DISCONNECT (PINGREQ gets PINGRESP). No broker library, no persistence, no logging. For the connection
// and memory scenarios: what it costs per TLS connection and per idle TLS client is what Node's TLS sockets
// cost, whatever a broker adds on top. For the latency scenarios it is a bare relay: SUBSCRIBE gets its
// SUBACK and makes the connection a receiver of every PUBLISH, a PUBLISH is written as it came to each
// receiver at once (one write per packet, as mosquitto does) and a QoS 1 PUBLISH gets its PUBACK; no topic
// matching, no queue, no retry. What its latency tail shows is what a Node process on this machine shows.
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { readBenchConf } from './lib/conf-reader.js';

const confPath = process.argv[2];
if (confPath === undefined) {
  console.error('usage: node bench/node-tls-floor.js mosquitto.conf');
  process.exit(2);
}
const { listeners, checkPassword } = readBenchConf(confPath);

const CONNACK_OK = Buffer.from([0x20, 2, 0, 0]);
const CONNACK_REFUSED = Buffer.from([0x20, 2, 0, 5]);
const PINGRESP = Buffer.from([0xd0, 0]);
/** Connections that subscribed: every PUBLISH goes to each of them. */
const receivers = new Set();

/** CONNECT (MQTT 3.1.1): the user name and password, or undefined when absent. */
function credentials(body) {
  let at = 2 + body.readUInt16BE(0); // protocol name
  at += 1; // level
  const flags = body[at];
  at += 3; // flags, keepalive
  const str = () => {
    const n = body.readUInt16BE(at);
    const s = body.subarray(at + 2, at + 2 + n);
    at += 2 + n;
    return s;
  };
  str(); // client id
  if (flags & 0x04) {
    str();
    str();
  }
  const username = flags & 0x80 ? str().toString() : undefined;
  const password = flags & 0x40 ? str() : undefined;
  return { username, password };
}

function serve(socket) {
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    for (;;) {
      if (pending.length < 2) return;
      let length = 0;
      let multiplier = 1;
      let at = 1;
      let byte;
      do {
        if (at >= pending.length) return;
        byte = pending[at++];
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
      } while (byte & 0x80);
      if (pending.length < at + length) return;
      const type = pending[0] >> 4;
      const body = pending.subarray(at, at + length);
      const packet = pending.subarray(0, at + length);
      pending = pending.subarray(at + length);
      if (type === 1) {
        const { username, password } = credentials(body);
        socket.write(checkPassword(username, password) ? CONNACK_OK : CONNACK_REFUSED);
      } else if (type === 3) {
        for (const r of receivers) r.write(packet);
        if (((packet[0] >> 1) & 3) === 1) {
          const topicLength = body.readUInt16BE(0);
          socket.write(Buffer.from([0x40, 2, body[2 + topicLength], body[3 + topicLength]]));
        }
      } else if (type === 8) {
        // SUBACK: the packet id, then the requested QoS of each filter (each filter is followed by it).
        const granted = [];
        for (let i = 2; i < body.length;) {
          const n = body.readUInt16BE(i);
          granted.push(Math.min(body[i + 2 + n] & 3, 1));
          i += 3 + n;
        }
        receivers.add(socket);
        socket.once('close', () => receivers.delete(socket));
        socket.write(Buffer.from([0x90, 2 + granted.length, body[0], body[1], ...granted]));
      } else if (type === 12) {
        socket.write(PINGRESP);
      } else if (type === 14) {
        socket.end();
        return;
      }
    }
  });
  socket.on('error', () => socket.destroy());
}

const servers = listeners.map((l) => {
  const server = l.certfile !== undefined
    ? tls.createServer({ cert: readFileSync(l.certfile), key: readFileSync(l.keyfile), noDelay: true }, serve)
    : net.createServer({ noDelay: true }, serve);
  server.listen(l.port, l.host);
  return server;
});

const stop = () => {
  for (const s of servers) s.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
