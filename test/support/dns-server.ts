/**
 * An authoritative DNS server on loopback (UDP and TCP on the same free port) that serves exactly the TXT
 * records a source holds (normally the fake Cloudflare), so that pebble's VA and our propagation check see
 * what the DNS API was told. AA flag set, question echoed, NXDOMAIN for unknown names, NODATA for other
 * types. `setServing(false)` hides every TXT record (a zone that never propagates).
 * Optional static records (NS, A) let a test describe a zone's name servers.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import * as dnsPacket from 'dns-packet';

export interface StaticRecord {
  name: string;
  type: 'A' | 'NS' | 'TXT';
  data: string;
}

export interface DnsServerOptions {
  /** TXT values currently published for a name; default: none. */
  txt?: (name: string) => string[];
  records?: StaticRecord[];
}

export interface DnsServer {
  host: string;
  port: number;
  /** `host:port`, for pebble's -dnsserver and our resolvers list. */
  address: string;
  setServing(on: boolean): void;
  /** Queries received, in order. */
  queries: { name: string; type: string; transport: 'udp' | 'tcp' }[];
  close(): Promise<void>;
}

const NXDOMAIN = 3;

export async function startDnsServer(opts: DnsServerOptions = {}): Promise<DnsServer> {
  let serving = true;
  const queries: DnsServer['queries'] = [];
  const statics = (opts.records ?? []).map((r) => ({ ...r, name: r.name.toLowerCase().replace(/\.$/, '') }));

  const answer = (msg: Buffer, transport: 'udp' | 'tcp'): Buffer | undefined => {
    let query: dnsPacket.Packet;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return undefined;
    }
    const question = query.questions?.[0];
    const rd = (query.flags ?? 0) & dnsPacket.RECURSION_DESIRED;
    const base = { type: 'response' as const, id: query.id ?? 0, questions: query.questions ?? [] };
    if (!question) return dnsPacket.encode({ ...base, flags: dnsPacket.AUTHORITATIVE_ANSWER | rd | 1 /* FORMERR */ });
    const name = question.name.toLowerCase().replace(/\.$/, '');
    queries.push({ name, type: question.type, transport });
    const txt = serving ? (opts.txt?.(name) ?? []) : [];
    const staticForName = statics.filter((r) => r.name === name && (serving || r.type !== 'TXT'));
    const exists = txt.length > 0 || staticForName.length > 0;
    const answers: dnsPacket.Answer[] = [];
    if (question.type === 'TXT') {
      for (const value of [...txt, ...staticForName.filter((r) => r.type === 'TXT').map((r) => r.data)]) {
        answers.push({ type: 'TXT', name: question.name, ttl: 0, class: 'IN', data: value });
      }
    } else if (question.type === 'A' || question.type === 'NS') {
      for (const r of staticForName.filter((s) => s.type === question.type)) {
        answers.push({ type: r.type as 'A', name: question.name, ttl: 0, class: 'IN', data: r.data });
      }
    }
    const flags = dnsPacket.AUTHORITATIVE_ANSWER | rd | (exists ? 0 : NXDOMAIN);
    return dnsPacket.encode({ ...base, flags, answers });
  };

  const bind = async (): Promise<{ udp: UdpSocket; tcp: Server; port: number }> => {
    for (let attempt = 0; ; attempt += 1) {
      const udp = createSocket('udp4');
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(0, '127.0.0.1', () => resolve());
      });
      const port = udp.address().port;
      const tcp = createServer();
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen(port, '127.0.0.1', () => resolve());
        });
        return { udp, tcp, port };
      } catch (err) {
        udp.close();
        if (attempt > 20) throw err;
      }
    }
  };

  const { udp, tcp, port } = await bind();
  udp.on('message', (msg, rinfo) => {
    const reply = answer(msg, 'udp');
    if (reply) udp.send(reply, rinfo.port, rinfo.address);
  });
  const sockets = new Set<Socket>();
  tcp.on('connection', (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        const reply = answer(msg, 'tcp');
        if (reply) {
          const framed = Buffer.alloc(2 + reply.length);
          framed.writeUInt16BE(reply.length, 0);
          reply.copy(framed, 2);
          sock.write(framed);
        }
      }
    });
  });

  return {
    host: '127.0.0.1',
    port,
    address: `127.0.0.1:${port}`,
    setServing(on) {
      serving = on;
    },
    queries,
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.all([
        new Promise<void>((resolve) => udp.close(() => resolve())),
        new Promise<void>((resolve) => tcp.close(() => resolve())),
      ]);
    },
  };
}
