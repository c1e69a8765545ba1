/**
 * DnsProvider for Cloudflare through the official `cloudflare` SDK.
 *
 * The SDK is heavy (~75 MB RSS once loaded): it is imported dynamically by `createCloudflareProvider()`, which
 * only the issuing child process calls. Nothing in this module imports it at the top level (type imports are
 * erased).
 */
import type { Cloudflare } from 'cloudflare';
import type { CloudflareCredentials } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import { DnsProviderError, zoneCandidates, type DnsProvider, type DnsZone, type TxtRecordHandle } from './provider.js';
import { normalizeDnsName } from '../../x509/dns-name.js';

export interface CloudflareProviderOptions {
  credentials: CloudflareCredentials;
  /** API base URL (tests point it at a fake); default Cloudflare's. */
  baseUrl?: string;
  /** SDK retries per request for 408/409/429/5xx and connection errors; default 2. */
  maxRetries?: number;
  /** Per-request timeout; default 30 s. */
  timeoutMs?: number;
  /** TTL of the TXT records; default 120 (what the old image used; Cloudflare's minimum is 60). */
  ttl?: number;
  logger: Logger;
}

/** Which credential is configured, in words for error messages. Throws when none or half of one is. */
export function credentialKind(c: CloudflareCredentials): 'token' | 'key' {
  if (c.apiToken) return 'token';
  if (c.apiKey && c.email) return 'key';
  if (c.apiKey) throw new DnsProviderError('Cloudflare global API key is set but its e-mail is not: set CLOUDFLARE_EMAIL as well (or use CLOUDFLARE_API_TOKEN).', 'auth');
  if (c.email) throw new DnsProviderError('Cloudflare e-mail is set but no API key: set CLOUDFLARE_KEY (global API key) or CLOUDFLARE_API_TOKEN.', 'auth');
  throw new DnsProviderError('No Cloudflare credentials: set CLOUDFLARE_API_TOKEN (a token with Zone:Read and DNS:Edit) or CLOUDFLARE_EMAIL + CLOUDFLARE_KEY.', 'auth');
}

function credentialWords(kind: 'token' | 'key'): string {
  return kind === 'token' ? 'the API token' : 'the global API key and e-mail';
}

function credentialHint(kind: 'token' | 'key'): string {
  return kind === 'token'
    ? 'Check CLOUDFLARE_API_TOKEN: it must be a valid API token with Zone:Read and DNS:Edit permission for the zone.'
    : 'Check CLOUDFLARE_EMAIL and CLOUDFLARE_KEY: the e-mail of the Cloudflare account and its Global API Key.';
}

interface ApiErrorLike {
  status?: number;
  errors?: { code?: number; message?: string; error_chain?: { code?: number; message?: string }[] }[];
  error?: unknown;
  message: string;
  cause?: unknown;
}

function describeCodes(e: ApiErrorLike): string {
  const errs = Array.isArray(e.errors) ? e.errors : [];
  const parts = errs.flatMap((x) => [
    `code ${x.code ?? '?'}: ${x.message ?? ''}`.trim(),
    ...(x.error_chain ?? []).map((c) => `code ${c.code ?? '?'}: ${c.message ?? ''}`.trim()),
  ]);
  return parts.join('; ');
}

function codes(e: ApiErrorLike): number[] {
  return (Array.isArray(e.errors) ? e.errors : []).flatMap((x) => [x.code ?? 0, ...(x.error_chain ?? []).map((c) => c.code ?? 0)]);
}

/** Replace every occurrence of a secret with [redacted]. */
export function scrub(text: string, secrets: (string | undefined)[]): string {
  let out = text;
  for (const s of secrets) if (s && s.length >= 4) out = out.split(s).join('[redacted]');
  return out;
}

const AUTH_CODES = new Set([6003, 6100, 6101, 6102, 6103, 6111, 9103, 9106, 9107, 9109, 10000, 10001, 1000, 1001]);

/**
 * Turn an SDK error into a DnsProviderError whose message says what failed, names the credential kind when
 * Cloudflare refused it, and never contains a secret.
 */
export function translateCloudflareError(err: unknown, ctx: { action: string; kind: 'token' | 'key'; baseUrl: string; secrets: (string | undefined)[]; retries: number }): DnsProviderError {
  const e = (err ?? {}) as ApiErrorLike;
  const name = (err as { constructor?: { name?: string } } | undefined)?.constructor?.name ?? '';
  const status = typeof e.status === 'number' ? e.status : undefined;
  let message: string;
  let kind: DnsProviderError['kind'];
  const detail = describeCodes(e);
  if (status === 401 || status === 403 || (status === 400 && codes(e).some((c) => c === 6003 || (c >= 6100 && c <= 6111)))) {
    kind = 'auth';
    message = `Cloudflare rejected ${credentialWords(ctx.kind)} while ${ctx.action} (HTTP ${status}${detail ? `, ${detail}` : ''}). ${credentialHint(ctx.kind)}`;
    if (status !== 400 && !codes(e).some((c) => AUTH_CODES.has(c))) {
      message = `Cloudflare refused ${ctx.action} with ${credentialWords(ctx.kind)} (HTTP ${status}${detail ? `, ${detail}` : ''}). ${credentialHint(ctx.kind)}`;
    }
  } else if (status === 429) {
    kind = 'rate-limited';
    message = `Cloudflare rate-limited ${ctx.action} (HTTP 429${detail ? `, ${detail}` : ''}) after ${ctx.retries} retries; will try again later.`;
  } else if (status !== undefined && status >= 500) {
    kind = 'server';
    message = `Cloudflare API failed while ${ctx.action} (HTTP ${status}${detail ? `, ${detail}` : ''}) after ${ctx.retries} retries; will try again later.`;
  } else if (status !== undefined) {
    kind = 'request';
    message = `Cloudflare API refused ${ctx.action} (HTTP ${status}${detail ? `, ${detail}` : ''}).`;
  } else if (name === 'APIConnectionTimeoutError' || /timed? ?out/i.test(e.message)) {
    kind = 'network';
    message = `Cloudflare API at ${ctx.baseUrl} did not answer while ${ctx.action} (timed out, after ${ctx.retries} retries).`;
  } else if (name === 'APIConnectionError' || name === 'APIUserAbortError') {
    const cause = e.cause instanceof Error ? `${e.cause.message}${e.cause.cause instanceof Error ? `: ${e.cause.cause.message}` : ''}` : '';
    kind = 'network';
    message = `Could not reach the Cloudflare API at ${ctx.baseUrl} while ${ctx.action}${cause ? ` (${cause})` : ''}, after ${ctx.retries} retries.`;
  } else if (err instanceof DnsProviderError) {
    return err;
  } else {
    kind = 'request';
    message = `Cloudflare API call failed while ${ctx.action}: ${e.message ?? String(err)}`;
  }
  return new DnsProviderError(scrub(message, ctx.secrets), kind);
}

/** Map the SDK's own log calls onto pino (its 'info' lines are per-request chatter, except retries). */
function sdkLogger(logger: Logger): { error: (...a: unknown[]) => void; warn: (...a: unknown[]) => void; info: (...a: unknown[]) => void; debug: (...a: unknown[]) => void } {
  const text = (args: unknown[]): string => args.filter((a) => typeof a === 'string').join(' ');
  return {
    error: (...a) => logger.error(text(a)),
    warn: (...a) => logger.warn(text(a)),
    info: (...a) => {
      const msg = text(a);
      if (/retrying|no more retries|timed out|connection failed/.test(msg)) logger.info({ sdk: true }, msg);
      else logger.debug({ sdk: true }, msg);
    },
    debug: () => undefined,
  };
}

export class CloudflareDnsProvider implements DnsProvider {
  readonly kind = 'cloudflare';
  private readonly zones = new Map<string, DnsZone>();

  constructor(
    private readonly client: Cloudflare,
    private readonly credKind: 'token' | 'key',
    private readonly opts: CloudflareProviderOptions & { baseUrl: string; maxRetries: number; ttl: number },
  ) {}

  private fail(err: unknown, action: string): DnsProviderError {
    return translateCloudflareError(err, {
      action,
      kind: this.credKind,
      baseUrl: this.opts.baseUrl,
      secrets: [this.opts.credentials.apiToken, this.opts.credentials.apiKey],
      retries: this.opts.maxRetries,
    });
  }

  async findZone(fqdn: string): Promise<DnsZone> {
    const candidates = zoneCandidates(fqdn);
    for (const candidate of candidates) {
      const cached = this.zones.get(candidate);
      if (cached) return cached;
    }
    for (const candidate of candidates) {
      let found: DnsZone | undefined;
      try {
        const page = await this.client.zones.list({ name: candidate });
        const zone = page.result.find((z) => normalizeDnsName(z.name) === candidate);
        if (zone) found = { id: zone.id, name: candidate, nameServers: zone.name_servers ?? [] };
      } catch (err) {
        throw this.fail(err, `looking up the zone of ${fqdn}`);
      }
      if (found) {
        this.zones.set(candidate, found);
        this.opts.logger.debug({ zone: found.name, zoneId: found.id }, 'Cloudflare zone found');
        return found;
      }
    }
    throw new DnsProviderError(
      `No Cloudflare zone holds ${normalizeDnsName(fqdn)} (looked for ${candidates.join(', ')}). Check DOMAIN, and that ${credentialWords(this.credKind)} can read that zone${this.credKind === 'token' ? ' (Zone:Read permission on it)' : ''}.`,
      'zone-not-found',
    );
  }

  async createTxt(fqdn: string, value: string): Promise<TxtRecordHandle> {
    const name = normalizeDnsName(fqdn);
    const zone = await this.findZone(name);
    const handle = (recordId: string): TxtRecordHandle => ({ provider: this.kind, zoneId: zone.id, zoneName: zone.name, recordId, name, value });
    try {
      const rec = await this.client.dns.records.create({ zone_id: zone.id, type: 'TXT', name, content: value, ttl: this.opts.ttl });
      return handle(rec.id);
    } catch (err) {
      const e = err as ApiErrorLike;
      if (e.status === 400 && codes(e).includes(81058)) {
        // Identical record exists: typically our own create that succeeded before a retried timeout.
        const existing = await this.findTxt(zone, name, value);
        if (existing) {
          this.opts.logger.info({ record: name }, 'identical TXT record already existed; adopting it');
          return handle(existing);
        }
      }
      throw this.fail(err, `creating the TXT record ${name}`);
    }
  }

  private async findTxt(zone: DnsZone, name: string, value: string): Promise<string | undefined> {
    try {
      for await (const rec of this.client.dns.records.list({ zone_id: zone.id, type: 'TXT', name: { exact: name }, content: { exact: value } })) {
        if (normalizeDnsName(rec.name) === name && (rec.content === value || rec.content === `"${value}"`)) return rec.id;
      }
    } catch (err) {
      throw this.fail(err, `listing TXT records of ${name}`);
    }
    return undefined;
  }

  async removeTxt(h: TxtRecordHandle): Promise<void> {
    try {
      await this.client.dns.records.delete(h.recordId, { zone_id: h.zoneId });
    } catch (err) {
      const e = err as ApiErrorLike;
      if (e.status === 404 || codes(e).includes(81044)) return;
      throw this.fail(err, `removing the TXT record ${h.name}`);
    }
  }
}

/** Load the SDK (dynamic import: only the process doing DNS work pays for it) and build the provider. */
export async function createCloudflareProvider(opts: CloudflareProviderOptions): Promise<CloudflareDnsProvider> {
  const kind = credentialKind(opts.credentials);
  const { default: CloudflareSdk } = await import('cloudflare');
  const baseUrl = opts.baseUrl ?? 'https://api.cloudflare.com/client/v4';
  const maxRetries = opts.maxRetries ?? 2;
  const client = new CloudflareSdk({
    // Every auth field explicitly: otherwise the SDK also reads CLOUDFLARE_* from the environment.
    apiToken: kind === 'token' ? (opts.credentials.apiToken ?? null) : null,
    apiKey: kind === 'key' ? (opts.credentials.apiKey ?? null) : null,
    apiEmail: kind === 'key' ? (opts.credentials.email ?? null) : null,
    userServiceKey: null,
    baseURL: baseUrl,
    maxRetries,
    timeout: opts.timeoutMs ?? 30_000,
    logger: sdkLogger(opts.logger),
    logLevel: 'info',
  });
  return new CloudflareDnsProvider(client, kind, { ...opts, baseUrl, maxRetries, ttl: opts.ttl ?? 120 });
}
