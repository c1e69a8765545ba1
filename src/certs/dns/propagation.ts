/**
 * Wait until freshly created TXT records are visible where the CA will look: on every configured resolver
 * (`dnsResolvers`, host:port), or, when none is configured, on every authoritative name server of the zone.
 * Polls with a bounded total wait and logs progress; gives up with an error naming what is missing where.
 */
import { Resolver } from 'node:dns/promises';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../log.js';
import { normalizeDnsName } from '../../x509/dns-name.js';

export interface ExpectedTxt {
  name: string;
  values: string[];
}

export interface PropagationOptions {
  /** `host:port` (or `host`, port 53; `[v6]:port`). Empty = the zone's authoritative name servers. */
  resolvers: string[];
  /** The zone holding the records (for the authoritative mode): apex and the provider's idea of its NS. */
  zone?: { name: string; nameServers: string[] };
  /** Total bound; default 5 minutes. */
  timeoutMs?: number;
  /** Pause between polls; default 5 s. */
  intervalMs?: number;
  /** Per-query timeout; default 3 s. */
  queryTimeoutMs?: number;
  /** Log a progress line at info level at most this often; default 30 s. */
  progressEveryMs?: number;
  /** Port of the authoritative servers; default 53 (tests use another). */
  authoritativePort?: number;
  /** Resolvers used to find the zone's name servers and their addresses; default the system's. */
  bootstrapResolvers?: string[];
  logger: Logger;
  signal?: AbortSignal;
}

export class PropagationError extends Error {
  override readonly name = 'PropagationError';
}

/** Parse `host:port`, `[v6]:port`, `v6`, `host` into host and port. */
export function parseServer(spec: string, defaultPort = 53): { host: string; port: number } {
  const s = spec.trim();
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (v6) return { host: v6[1] ?? '', port: v6[2] ? Number(v6[2]) : defaultPort };
  if (isIP(s) === 6) return { host: s, port: defaultPort };
  const m = /^([^:]+):(\d+)$/.exec(s);
  if (m) return { host: m[1] ?? '', port: Number(m[2]) };
  return { host: s, port: defaultPort };
}

function serverString(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Resolve `host:port` specs to IP:port strings that node's Resolver accepts. */
async function toAddresses(specs: string[], defaultPort = 53): Promise<string[]> {
  const out: string[] = [];
  for (const spec of specs) {
    const { host, port } = parseServer(spec, defaultPort);
    if (isIP(host)) out.push(serverString(host, port));
    else {
      const addrs = await lookup(host, { all: true });
      const v4 = addrs.filter((a) => a.family === 4);
      for (const a of v4.length > 0 ? v4 : addrs) out.push(serverString(a.address, port));
    }
  }
  return out;
}

function makeResolver(server: string, timeoutMs: number): Resolver {
  const r = new Resolver({ timeout: timeoutMs, tries: 1 });
  r.setServers([server]);
  return r;
}

/** The zone's authoritative name servers as `ip:port`, from DNS (NS lookup) or else from the provider. */
export async function authoritativeServers(
  zone: { name: string; nameServers: string[] },
  opts: Pick<PropagationOptions, 'authoritativePort' | 'bootstrapResolvers' | 'queryTimeoutMs' | 'logger'>,
): Promise<string[]> {
  const port = opts.authoritativePort ?? 53;
  const boot = new Resolver({ timeout: opts.queryTimeoutMs ?? 3000, tries: 2 });
  if (opts.bootstrapResolvers && opts.bootstrapResolvers.length > 0) boot.setServers(await toAddresses(opts.bootstrapResolvers));
  let names: string[] = [];
  try {
    names = await boot.resolveNs(zone.name);
  } catch (err) {
    opts.logger.debug({ zone: zone.name, err: (err as Error).message }, 'NS lookup failed; using the DNS provider name servers');
  }
  if (names.length === 0) names = zone.nameServers;
  if (names.length === 0) throw new PropagationError(`Cannot find the authoritative name servers of ${zone.name}: no NS records and the DNS provider reported none. Configure dnsResolvers.`);
  const out: string[] = [];
  for (const ns of names) {
    if (isIP(ns)) {
      out.push(serverString(ns, port));
      continue;
    }
    let addrs: string[] = [];
    try {
      addrs = await boot.resolve4(ns);
    } catch {
      try {
        addrs = await boot.resolve6(ns);
      } catch (err) {
        opts.logger.warn({ nameServer: ns, err: (err as Error).message }, 'cannot resolve a name server address; skipping it');
      }
    }
    for (const a of addrs) out.push(serverString(a, port));
  }
  if (out.length === 0) throw new PropagationError(`Cannot resolve any name server of ${zone.name} (${names.join(', ')}). Configure dnsResolvers.`);
  return [...new Set(out)];
}

async function txtOn(resolver: Resolver, name: string): Promise<{ values: Set<string>; error?: string }> {
  try {
    const recs = await resolver.resolveTxt(name);
    return { values: new Set(recs.map((chunks) => chunks.join(''))) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code === 'ENOTFOUND' || code === 'ENODATA') return { values: new Set() };
    return { values: new Set(), error: code || (err as Error).message };
  }
}

/**
 * Resolve when every expected value of every name is visible on every server; throw PropagationError when
 * the bound is reached.
 */
export async function waitForTxt(expected: ExpectedTxt[], opts: PropagationOptions): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 300_000;
  const intervalMs = opts.intervalMs ?? 5_000;
  const queryTimeoutMs = opts.queryTimeoutMs ?? 3_000;
  const progressEveryMs = opts.progressEveryMs ?? 30_000;
  const log = opts.logger;
  let servers: string[];
  let mode: 'resolvers' | 'authoritative';
  if (opts.resolvers.length > 0) {
    servers = await toAddresses(opts.resolvers);
    mode = 'resolvers';
  } else {
    if (!opts.zone) throw new PropagationError('No DNS resolvers configured and no zone known to find authoritative name servers.');
    servers = await authoritativeServers(opts.zone, { ...opts, queryTimeoutMs });
    mode = 'authoritative';
  }
  const resolvers = servers.map((s) => ({ server: s, resolver: makeResolver(s, queryTimeoutMs) }));
  const want = expected.map((e) => ({ name: normalizeDnsName(e.name), values: [...new Set(e.values)] }));
  const started = Date.now();
  let lastProgress = started;
  let polls = 0;
  log.info({ records: want.map((w) => `${w.name} (${w.values.length} value${w.values.length === 1 ? '' : 's'})`), servers, mode }, 'waiting for TXT records to propagate');
  for (;;) {
    polls += 1;
    const missing: string[] = [];
    await Promise.all(
      resolvers.flatMap(({ server, resolver }) =>
        want.map(async (w) => {
          const got = await txtOn(resolver, w.name);
          const absent = w.values.filter((v) => !got.values.has(v)).length;
          if (absent > 0) missing.push(`${w.name} on ${server}: ${absent} of ${w.values.length} value(s) missing${got.error ? ` (${got.error})` : ''}`);
        }),
      ),
    );
    const elapsed = Date.now() - started;
    if (missing.length === 0) {
      log.info({ elapsedMs: elapsed, polls, servers }, 'TXT records visible on every server');
      return;
    }
    if (elapsed + intervalMs > timeoutMs) {
      for (const r of resolvers) r.resolver.cancel();
      throw new PropagationError(
        `DNS propagation timed out after ${Math.round(elapsed / 1000)} s (${polls} checks): ${missing.sort().join('; ')}. ` +
          (mode === 'resolvers'
            ? 'Check that the configured dnsResolvers see the zone that the DNS provider serves.'
            : 'Check that the domain is delegated to the DNS provider (its NS records).'),
      );
    }
    if (Date.now() - lastProgress >= progressEveryMs) {
      lastProgress = Date.now();
      log.info({ elapsedS: Math.round(elapsed / 1000), limitS: Math.round(timeoutMs / 1000), missing }, 'still waiting for TXT records to propagate');
    } else {
      log.debug({ missing }, 'TXT records not visible yet');
    }
    await sleep(intervalMs, undefined, opts.signal ? { signal: opts.signal } : undefined);
  }
}
