/**
 * A fake of the part of Cloudflare's v4 API that DNS-01 needs, speaking the real envelope
 * (`{success, errors, messages, result, result_info}`), on a loopback node:http server:
 *   GET    /client/v4/zones?name=&page=&per_page=
 *   GET    /client/v4/zones/:zone/dns_records?type=&name[.exact]=&content[.exact]=&page=&per_page=
 *   POST   /client/v4/zones/:zone/dns_records           (400 code 81058 for an identical record)
 *   DELETE /client/v4/zones/:zone/dns_records/:id
 * Both auth schemes are checked (Bearer token; X-Auth-Email + X-Auth-Key) with the error shapes Cloudflare
 * answers. Faults can be injected for the next N requests: an HTTP status (5xx, 429) or a hang (no answer
 * until the client gives up). Every request is logged.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface FakeZone {
  id: string;
  name: string;
  nameServers: string[];
}

export interface FakeRecord {
  id: string;
  zoneId: string;
  zoneName: string;
  type: string;
  name: string;
  content: string;
  ttl: number;
}

export interface FakeRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  /** Which credential the request carried: 'token', 'key', 'none'. */
  auth: 'token' | 'key' | 'none';
  /** Raw auth header values, so a test can check what the client sent. */
  headers: { authorization?: string; 'x-auth-key'?: string; 'x-auth-email'?: string };
  status: number;
}

export type Fault = { status: number; retryAfter?: string } | 'hang';

export interface FakeCloudflareOptions {
  /** Zones the account holds; default ['example.test']. */
  zones?: string[];
  /** Accepted scoped token; default 'test-token-0123456789abcdef0123456789ab'. */
  apiToken?: string;
  /** Accepted global key (37 hex chars in real life) + e-mail. */
  apiKey?: string;
  email?: string;
}

export interface FakeCloudflare {
  /** Pass as the SDK's baseURL. */
  baseUrl: string;
  apiToken: string;
  apiKey: string;
  email: string;
  zones: FakeZone[];
  records(): FakeRecord[];
  /** TXT values currently held for a name (case-insensitive). */
  txtValues(name: string): string[];
  /** Put a record in directly (e.g. to fill pages or simulate a leftover). */
  addRecord(zoneName: string, type: string, name: string, content: string): FakeRecord;
  /**
   * The next `count` API requests (that `match`, when given) get `fault` instead of being served. Faults are
   * taken in the order injected.
   */
  injectFault(fault: Fault, count?: number, match?: (req: FakeRequest) => boolean): void;
  requests: FakeRequest[];
  /** Called for every request before it is served (before fault injection decisions). */
  onRequest(listener: (req: FakeRequest) => void): void;
  /** Forget pending faults and request listeners (records and the request log stay). */
  reset(): void;
  close(): Promise<void>;
}

interface ApiError {
  code: number;
  message: string;
  error_chain?: { code: number; message: string }[];
}

function envelope(result: unknown, errors: ApiError[] = [], resultInfo?: Record<string, number>): string {
  return JSON.stringify({
    success: errors.length === 0,
    errors,
    messages: [],
    result: errors.length === 0 ? result : null,
    ...(resultInfo ? { result_info: resultInfo } : {}),
  });
}

function id(): string {
  return randomBytes(16).toString('hex');
}

function paginate<T>(items: T[], query: Record<string, string>, defaultPerPage: number): { page: T[]; info: Record<string, number> } {
  const perPage = Math.max(1, Math.min(Number(query.per_page ?? defaultPerPage) || defaultPerPage, 5000));
  const page = Math.max(1, Number(query.page ?? 1) || 1);
  const slice = items.slice((page - 1) * perPage, page * perPage);
  return {
    page: slice,
    info: { page, per_page: perPage, count: slice.length, total_count: items.length, total_pages: Math.ceil(items.length / perPage) },
  };
}

export async function startFakeCloudflare(opts: FakeCloudflareOptions = {}): Promise<FakeCloudflare> {
  const apiToken = opts.apiToken ?? 'test-token-0123456789abcdef0123456789ab';
  const apiKey = opts.apiKey ?? 'c2547eb745079dac9320b638f5e225cf483cc';
  const email = opts.email ?? 'admin@example.test';
  const zones: FakeZone[] = (opts.zones ?? ['example.test']).map((name) => ({
    id: id(),
    name,
    nameServers: [`ns1.${name}`, `ns2.${name}`],
  }));
  const records: FakeRecord[] = [];
  const requests: FakeRequest[] = [];
  const listeners: ((req: FakeRequest) => void)[] = [];
  const faults: { fault: Fault; match?: (req: FakeRequest) => boolean }[] = [];
  const hanging = new Set<ServerResponse>();
  const sockets = new Set<Socket>();

  const checkAuth = (req: IncomingMessage): { auth: FakeRequest['auth']; status: number; errors: ApiError[] } => {
    const authorization = req.headers.authorization;
    const key = req.headers['x-auth-key'];
    const mail = req.headers['x-auth-email'];
    if (typeof authorization === 'string' && authorization.length > 0) {
      const m = /^Bearer ([A-Za-z0-9_-]+)$/.exec(authorization);
      if (!m) {
        return { auth: 'token', status: 400, errors: [{ code: 6003, message: 'Invalid request headers', error_chain: [{ code: 6111, message: 'Invalid format for Authorization header' }] }] };
      }
      if (m[1] !== apiToken) return { auth: 'token', status: 403, errors: [{ code: 10000, message: 'Authentication error' }] };
      return { auth: 'token', status: 200, errors: [] };
    }
    if (typeof key === 'string' || typeof mail === 'string') {
      const chain: { code: number; message: string }[] = [];
      if (typeof mail !== 'string' || !/^[^@\s]+@[^@\s]+$/.test(mail)) chain.push({ code: 6102, message: 'Invalid format for X-Auth-Email header' });
      if (typeof key !== 'string' || !/^[0-9a-f]{37}$/.test(key)) chain.push({ code: 6103, message: 'Invalid format for X-Auth-Key header' });
      if (chain.length > 0) return { auth: 'key', status: 400, errors: [{ code: 6003, message: 'Invalid request headers', error_chain: chain }] };
      if (key !== apiKey || mail !== email) return { auth: 'key', status: 403, errors: [{ code: 9103, message: 'Unknown X-Auth-Key or X-Auth-Email' }] };
      return { auth: 'key', status: 200, errors: [] };
    }
    return {
      auth: 'none',
      status: 400,
      errors: [{ code: 6003, message: 'Invalid request headers', error_chain: [{ code: 6103, message: 'Invalid format for X-Auth-Key header' }] }],
    };
  };

  const readBody = (req: IncomingMessage): Promise<string> =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks).toString()));
      req.on('error', reject);
    });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://fake');
    const query = Object.fromEntries(url.searchParams.entries());
    const body = await readBody(req);
    const entry: FakeRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query,
      auth: 'none',
      headers: {
        ...(typeof req.headers.authorization === 'string' ? { authorization: req.headers.authorization } : {}),
        ...(typeof req.headers['x-auth-key'] === 'string' ? { 'x-auth-key': req.headers['x-auth-key'] } : {}),
        ...(typeof req.headers['x-auth-email'] === 'string' ? { 'x-auth-email': req.headers['x-auth-email'] } : {}),
      },
      status: 0,
    };
    requests.push(entry);
    const send = (status: number, payload: string, headers: Record<string, string> = {}): void => {
      entry.status = status;
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(payload);
    };
    for (const l of listeners) l(entry);

    const idx = faults.findIndex((f) => !f.match || f.match(entry));
    const fault = idx >= 0 ? faults.splice(idx, 1)[0]?.fault : undefined;
    if (fault === 'hang') {
      entry.status = -1;
      hanging.add(res);
      res.on('close', () => hanging.delete(res));
      return;
    }
    if (fault) {
      const headers: Record<string, string> = fault.retryAfter !== undefined ? { 'retry-after': fault.retryAfter } : {};
      const err: ApiError =
        fault.status === 429 ? { code: 10000, message: 'Rate limited. Please wait and consider throttling your request speed' } : { code: 10001, message: 'Internal server error' };
      send(fault.status, envelope(null, [err]), headers);
      return;
    }

    const auth = checkAuth(req);
    entry.auth = auth.auth;
    if (auth.status !== 200) {
      send(auth.status, envelope(null, auth.errors));
      return;
    }

    const parts = url.pathname.replace(/^\/client\/v4/, '').split('/').filter(Boolean);
    if (parts[0] !== 'zones') {
      send(404, envelope(null, [{ code: 7003, message: 'Could not route to ' + url.pathname + ', perhaps your object identifier is invalid?' }]));
      return;
    }
    if (parts.length === 1 && req.method === 'GET') {
      const name = query.name?.toLowerCase();
      const matching = zones.filter((z) => name === undefined || z.name === name);
      const { page, info } = paginate(matching, query, 20);
      send(
        200,
        envelope(
          page.map((z) => ({ id: z.id, name: z.name, status: 'active', paused: false, type: 'full', name_servers: z.nameServers })),
          [],
          info,
        ),
      );
      return;
    }
    const zone = zones.find((z) => z.id === parts[1]);
    if (!zone) {
      send(404, envelope(null, [{ code: 7003, message: 'Could not route to ' + url.pathname + ', perhaps your object identifier is invalid?' }]));
      return;
    }
    if (parts[2] !== 'dns_records') {
      send(404, envelope(null, [{ code: 7000, message: 'No route for that URI' }]));
      return;
    }
    const toApi = (r: FakeRecord): Record<string, unknown> => ({
      id: r.id,
      zone_id: r.zoneId,
      zone_name: r.zoneName,
      type: r.type,
      name: r.name,
      content: r.content,
      ttl: r.ttl,
      proxiable: false,
      proxied: false,
      created_on: new Date().toISOString(),
      modified_on: new Date().toISOString(),
    });
    if (parts.length === 3 && req.method === 'GET') {
      const name = (query['name.exact'] ?? query.name)?.toLowerCase();
      const content = query['content.exact'] ?? query.content;
      const matching = records.filter(
        (r) =>
          r.zoneId === zone.id &&
          (query.type === undefined || r.type === query.type) &&
          (name === undefined || r.name === name) &&
          (content === undefined || r.content === content),
      );
      const { page, info } = paginate(matching, query, 100);
      send(200, envelope(page.map(toApi), [], info));
      return;
    }
    if (parts.length === 3 && req.method === 'POST') {
      let input: { type?: string; name?: string; content?: string; ttl?: number };
      try {
        input = JSON.parse(body) as typeof input;
      } catch {
        send(400, envelope(null, [{ code: 9207, message: 'Request body is invalid.' }]));
        return;
      }
      const name = (input.name ?? '').toLowerCase().replace(/\.$/, '');
      if (!input.type || !name || typeof input.content !== 'string') {
        send(400, envelope(null, [{ code: 9000, message: 'DNS name is invalid.' }]));
        return;
      }
      if (name !== zone.name && !name.endsWith('.' + zone.name)) {
        send(400, envelope(null, [{ code: 1004, message: 'DNS Validation Error', error_chain: [{ code: 9005, message: 'Content for record is invalid. Must be a subdomain of the zone.' }] }]));
        return;
      }
      const ttl = input.ttl ?? 1;
      if (ttl !== 1 && (ttl < 60 || ttl > 86400)) {
        send(400, envelope(null, [{ code: 9021, message: 'Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.' }]));
        return;
      }
      if (records.some((r) => r.zoneId === zone.id && r.type === input.type && r.name === name && r.content === input.content)) {
        send(400, envelope(null, [{ code: 81058, message: 'An identical record already exists.' }]));
        return;
      }
      const rec: FakeRecord = { id: id(), zoneId: zone.id, zoneName: zone.name, type: input.type, name, content: input.content, ttl };
      records.push(rec);
      send(200, envelope(toApi(rec)));
      return;
    }
    if (parts.length === 4 && req.method === 'DELETE') {
      const idx = records.findIndex((r) => r.zoneId === zone.id && r.id === parts[3]);
      if (idx < 0) {
        send(404, envelope(null, [{ code: 81044, message: 'Record does not exist.' }]));
        return;
      }
      records.splice(idx, 1);
      send(200, envelope({ id: parts[3] }));
      return;
    }
    send(405, envelope(null, [{ code: 10405, message: 'Method not allowed' }]));
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(envelope(null, [{ code: 10001, message: String(err) }]));
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  const unquote = (v: string): string => (v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v);

  return {
    baseUrl: `http://127.0.0.1:${port}/client/v4`,
    apiToken,
    apiKey,
    email,
    zones,
    records: () => records.map((r) => ({ ...r })),
    txtValues: (name) => {
      const n = name.toLowerCase().replace(/\.$/, '');
      return records.filter((r) => r.type === 'TXT' && r.name === n).map((r) => unquote(r.content));
    },
    addRecord(zoneName, type, name, content) {
      const zone = zones.find((z) => z.name === zoneName);
      if (!zone) throw new Error(`no zone ${zoneName}`);
      const rec: FakeRecord = { id: id(), zoneId: zone.id, zoneName, type, name: name.toLowerCase(), content, ttl: 120 };
      records.push(rec);
      return rec;
    },
    injectFault(fault, count = 1, match) {
      for (let i = 0; i < count; i += 1) faults.push(match ? { fault, match } : { fault });
    },
    requests,
    onRequest(listener) {
      listeners.push(listener);
    },
    reset() {
      faults.length = 0;
      listeners.length = 0;
    },
    async close() {
      for (const res of hanging) res.destroy();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
