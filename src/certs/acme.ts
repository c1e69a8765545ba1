/**
 * Obtain a certificate from an RFC 8555 CA with DNS-01 (acme-client), store it in the certbot layout.
 *
 * Steps (each logged): account (reused from the volume, created once), order for every name, one TXT record per
 * authorization (a wildcard plus its apex puts two values on one `_acme-challenge` name at once), our own
 * propagation check (acme-client's uses the process-wide resolver), challenges completed and polled until
 * valid, records removed by id (always, also on failure), order finalized, certificate stored.
 *
 * Runs in the issuing child process (issue-process.ts), which is the only place the Cloudflare SDK is loaded.
 */
import { createPrivateKey } from 'node:crypto';
import { Agent, request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { createSecureContext, rootCertificates } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import * as acme from 'acme-client';
import type { AcmeConfig, CertKeyType } from '../config/schema.js';
import type { Logger } from '../log.js';
import { AccountStore, generateAccountKey, type AcmeAccount } from './account.js';
import { challengeRecordName, DnsProviderError, type DnsProvider, type TxtRecordHandle } from './dns/provider.js';
import { PropagationError, waitForTxt, type PropagationOptions } from './dns/propagation.js';
import { CertificateStore, type StoredLineage } from './lineage-store.js';
import { lineageNameFor } from '../x509/dns-name.js';
import { generatePrivateKey } from './private-key.js';

export interface AcmeTuning {
  /** acme-client's HTTP retries on 5xx/429/network errors; default 3. */
  httpRetries?: number;
  /** Linear retry delay step in seconds (acme-client waits step * attempt unless Retry-After); default 2. */
  httpRetryDelaySeconds?: number;
  /** Per HTTP request; default 30 s. */
  requestTimeoutMs?: number;
  /** Polling of challenge/order status: first delay, cap, attempts; default 1 s, 10 s, 12. */
  pollMinMs?: number;
  pollMaxMs?: number;
  pollAttempts?: number;
  /** Reaching the directory first: attempts, timeout of each, pause step between them; default 3, 10 s, 1 s. */
  directoryAttempts?: number;
  directoryTimeoutMs?: number;
  directoryRetryDelayMs?: number;
}

export type PropagationTuning = Pick<PropagationOptions, 'timeoutMs' | 'intervalMs' | 'queryTimeoutMs' | 'progressEveryMs' | 'authoritativePort' | 'bootstrapResolvers'>;

export interface ObtainOptions {
  config: AcmeConfig;
  provider: DnsProvider;
  logger: Logger;
  store?: CertificateStore;
  accounts?: AccountStore;
  propagation?: PropagationTuning;
  acme?: AcmeTuning;
  /** Extra CA certificates (PEM) to trust for the ACME server's HTTPS (a private CA, pebble in tests). */
  trustedCa?: string;
  /** Told about every TXT record created and removed (the issuing child reports them to the parent). */
  onRecord?: (event: 'created' | 'removed', handle: TxtRecordHandle) => void;
  signal?: AbortSignal;
}

export interface ObtainResult {
  lineage: StoredLineage;
  orderUrl: string;
}

export type IssueStage = 'config' | 'directory' | 'account' | 'order' | 'dns' | 'propagation' | 'validation' | 'finalize' | 'store';

export class IssueError extends Error {
  override readonly name = 'IssueError';
  constructor(
    message: string,
    readonly stage: IssueStage,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

interface AcmeSettings {
  retryMaxAttempts: number;
  retryDefaultDelay: number;
}

function configureHttp(tuning: AcmeTuning, trustedCa: string | undefined, logger: Logger): Agent | undefined {
  const ax = acme.axios as unknown as { defaults: { acmeSettings: AcmeSettings; timeout: number; httpsAgent?: Agent } };
  ax.defaults.acmeSettings.retryMaxAttempts = tuning.httpRetries ?? 3;
  ax.defaults.acmeSettings.retryDefaultDelay = tuning.httpRetryDelaySeconds ?? 2;
  ax.defaults.timeout = tuning.requestTimeoutMs ?? 30_000;
  let agent: Agent | undefined;
  if (trustedCa) {
    // One secure context for every connection (building one per connection from ~140 roots is slow).
    agent = new Agent({ secureContext: createSecureContext({ ca: [...rootCertificates, trustedCa] }), keepAlive: true });
    ax.defaults.httpsAgent = agent;
  }
  acme.setLogger((msg) => {
    if (/^Caught |invalid nonce/i.test(msg)) logger.warn({ acmeClient: true }, msg);
    else logger.trace({ acmeClient: true }, msg);
  });
  return agent;
}

/** GET the directory with plain node https, to fail fast with a clear reason (acme-client's own retries end in
 * a misleading TypeError when the server cannot be reached). */
async function checkDirectory(url: string, agent: Agent | undefined, timeoutMs: number, attempts: number, delayMs: number, logger: Logger, signal?: AbortSignal): Promise<void> {
  let last = '';
  for (let i = 1; i <= attempts; i += 1) {
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const u = new URL(url);
        const req = (u.protocol === 'http:' ? httpRequest : httpsRequest)(u, { method: 'GET', timeout: timeoutMs, ...(agent && u.protocol === 'https:' ? { agent } : {}) }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
        req.on('error', reject);
        req.end();
      });
      if (status >= 200 && status < 300) return;
      last = `HTTP ${status}`;
      if (status < 500 && status !== 429) break;
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      last = e.code ? `${e.code}${e.message && !e.message.includes(e.code) ? `: ${e.message}` : ''}` : e.message;
      if (e.code && /CERT|SELF_SIGNED|UNABLE_TO|ERR_TLS/.test(e.code)) {
        throw new IssueError(`The ACME server at ${url} presented a TLS certificate this process does not trust (${last}). For a private CA set NODE_EXTRA_CA_CERTS.`, 'directory', { cause: err });
      }
    }
    if (i < attempts) {
      logger.warn({ directoryUrl: url, attempt: i, of: attempts, problem: last }, 'ACME directory not reachable; retrying');
      await sleep(delayMs * i, undefined, signal ? { signal } : undefined);
    }
  }
  throw new IssueError(`Cannot reach the ACME directory at ${url}: ${last} (after ${attempts} attempts). Check the directory URL and the network; will retry later.`, 'directory');
}

/** Make acme-client's errors say what failed and where. */
function translateAcmeError(err: unknown, stage: IssueStage, directoryUrl: string): IssueError {
  if (err instanceof IssueError) return err;
  if (err instanceof DnsProviderError) return new IssueError(err.message, 'dns', { cause: err });
  if (err instanceof PropagationError) return new IssueError(err.message, 'propagation', { cause: err });
  const e = err as Error & { code?: string; response?: { status?: number } };
  const what: Record<IssueStage, string> = {
    config: 'checking the configuration',
    directory: 'reading the directory',
    account: 'registering the ACME account',
    order: 'creating the order',
    dns: 'publishing the DNS records',
    propagation: 'waiting for DNS propagation',
    validation: 'validating the challenges',
    finalize: 'finalizing the order',
    store: 'storing the certificate',
  };
  let detail = e?.message ?? String(err);
  // acme-client ends its retries on a network error with "Cannot read properties of undefined (reading 'config')".
  if (e instanceof TypeError && /reading '(config|status|headers|data)'/.test(detail)) detail = 'the connection to the ACME server failed repeatedly';
  else if (e?.code && !detail.includes(e.code)) detail = `${e.code}: ${detail}`;
  if (stage === 'store') return new IssueError(`Storing the certificate failed: ${detail}`, stage, { cause: err });
  return new IssueError(`ACME ${what[stage]} failed at ${directoryUrl}: ${detail}`, stage, { cause: err });
}

/** The name an authorization is for, as configured: ACME reports a wildcard's base name and a flag. */
function authorizationName(authz: acme.Authorization): string {
  return `${authz.wildcard ? '*.' : ''}${authz.identifier.value}`;
}

function splitChain(fullchain: string): { cert: string; chain: string; fullchain: string } {
  const blocks = acme.crypto.splitPemChain(fullchain).map((b) => `${b.trim()}\n`);
  if (blocks.length === 0) throw new IssueError('The CA returned no certificate.', 'finalize');
  const [leaf, ...rest] = blocks;
  return { cert: leaf ?? '', chain: rest.join(''), fullchain: blocks.join('') };
}

export async function obtainCertificate(opts: ObtainOptions): Promise<ObtainResult> {
  const { config, provider, logger: log, signal } = opts;
  const directoryUrl = config.directoryUrl;
  if (config.domains.length === 0) throw new IssueError('No domains configured.', 'config');
  const name = lineageNameFor(config.domains);
  const store = opts.store ?? new CertificateStore(config.letsencryptDir, { logger: log });
  const accounts = opts.accounts ?? new AccountStore(config.letsencryptDir, log);
  const tuning = opts.acme ?? {};
  const agent = configureHttp(tuning, opts.trustedCa, log);
  let stage: IssueStage = 'directory';
  const created: TxtRecordHandle[] = [];
  const aborted = (): void => {
    if (signal?.aborted) throw new IssueError('Issuance cancelled.', stage);
  };
  try {
    log.info({ directoryUrl, domains: config.domains, lineage: name }, 'obtaining a certificate');
    await checkDirectory(directoryUrl, agent, tuning.directoryTimeoutMs ?? 10_000, tuning.directoryAttempts ?? 3, tuning.directoryRetryDelayMs ?? 1000, log, signal);

    // Account: reuse the one on the volume (the renewal conf names it), else create and persist one.
    stage = 'account';
    const previous = await store.read(name);
    let account: AcmeAccount | undefined = await accounts.find(directoryUrl, previous?.renewalParams.account);
    const accountKey = account?.keyPem ?? (await generateAccountKey());
    const client = new acme.Client({
      directoryUrl,
      accountKey,
      backoffAttempts: tuning.pollAttempts ?? 12,
      backoffMin: tuning.pollMinMs ?? 1000,
      backoffMax: tuning.pollMaxMs ?? 10_000,
    });
    // newAccount with a known key returns the existing account (RFC 8555 7.3.1), or makes a new one when the
    // CA has forgotten it: the persisted URL is refreshed either way.
    await client.createAccount({ termsOfServiceAgreed: true, ...(config.email ? { contact: [`mailto:${config.email}`] } : {}) });
    const accountUrl = client.getAccountUrl();
    if (!account) {
      account = await accounts.save(directoryUrl, accountKey, accountUrl);
      log.info({ account: account.id, accountUrl }, 'ACME account created and stored');
    } else if (account.url !== accountUrl) {
      await accounts.updateUrl(account, accountUrl);
      log.info({ account: account.id, accountUrl }, 'ACME account URL updated');
    } else {
      log.info({ account: account.id, accountUrl }, 'using the stored ACME account');
    }
    aborted();

    // Certificate key and CSR.
    const reuse = config.reuseKey && previous !== undefined && previous.keyMatches;
    const keyPem = reuse ? previous.privkey : await generatePrivateKey(config.keyType);
    const commonName = config.domains[0] && config.domains[0].length <= 64 ? config.domains[0] : undefined;
    const [, csr] = await acme.crypto.createCsr({ altNames: [...config.domains], ...(commonName ? { commonName } : {}) }, keyPem);

    stage = 'order';
    const order = await client.createOrder({ identifiers: config.domains.map((d) => ({ type: 'dns', value: d })) });
    log.info({ orderUrl: order.url, names: config.domains }, 'order created');
    const authorizations = await client.getAuthorizations(order);

    const pending: { authz: acme.Authorization; challenge: acme.Authorization['challenges'][number]; record: string; value: string }[] = [];
    for (const authz of authorizations) {
      const identifier = authorizationName(authz);
      if (authz.status === 'valid') {
        log.info({ identifier }, 'authorization already valid');
        continue;
      }
      const challenge = authz.challenges.find((c) => c.type === 'dns-01');
      if (!challenge) throw new IssueError(`The CA offered no dns-01 challenge for ${identifier} (offered: ${authz.challenges.map((c) => c.type).join(', ')}).`, 'order');
      const value = await client.getChallengeKeyAuthorization(challenge);
      pending.push({ authz, challenge, record: challengeRecordName(authz.identifier.value), value });
    }

    const completed = new Set<string>();
    try {
      stage = 'dns';
      for (const p of pending) {
        aborted();
        const handle = await provider.createTxt(p.record, p.value);
        created.push(handle);
        opts.onRecord?.('created', handle);
        log.info({ record: p.record, identifier: authorizationName(p.authz) }, 'TXT record created');
      }
      if (pending.length > 0) {
        stage = 'propagation';
        // Per zone (names may span zones, each with its own name servers): every value of every record name.
        const zones = new Map<string, Map<string, string[]>>();
        for (const h of created) {
          const names = zones.get(h.zoneName) ?? new Map<string, string[]>();
          names.set(h.name, [...(names.get(h.name) ?? []), h.value]);
          zones.set(h.zoneName, names);
        }
        await Promise.all(
          [...zones.entries()].map(async ([zoneName, names]) => {
            const zone = await provider.findZone(zoneName);
            await waitForTxt(
              [...names.entries()].map(([n, values]) => ({ name: n, values })),
              { ...opts.propagation, resolvers: config.dnsResolvers, zone, logger: log, ...(signal ? { signal } : {}) },
            );
          }),
        );
        aborted();

        stage = 'validation';
        await Promise.all(
          pending.map(async (p) => {
            const identifier = authorizationName(p.authz);
            await client.completeChallenge(p.challenge);
            completed.add(p.challenge.url);
            try {
              await client.waitForValidStatus(p.challenge);
            } catch (err) {
              throw new IssueError(`The CA could not validate the DNS-01 challenge for ${identifier}: ${(err as Error).message}`, 'validation', { cause: err });
            }
            log.info({ identifier }, 'challenge completed');
          }),
        );
      }
    } catch (err) {
      // Give back authorizations we never asked the CA to validate (as acme-client's auto() does).
      await Promise.allSettled(pending.filter((p) => !completed.has(p.challenge.url)).map((p) => client.deactivateAuthorization(p.authz)));
      throw err;
    } finally {
      await removeRecords(provider, created, log, opts.onRecord);
    }

    stage = 'finalize';
    const finalized = await client.finalizeOrder(order, csr);
    const pem = await client.getCertificate(finalized);
    const files = { ...splitChain(pem), privkey: keyPem };
    log.info({ orderUrl: order.url }, 'certificate issued');

    stage = 'store';
    const lineage = await store.write(name, files, {
      server: directoryUrl,
      account: account.id,
      keyType: reuse ? keyTypeOf(keyPem, config.keyType) : config.keyType,
      reuseKey: config.reuseKey,
    });
    log.info({ lineage: lineage.name, version: lineage.version, notAfter: lineage.notAfter.toISOString(), serial: lineage.serial, names: lineage.names }, 'certificate stored');
    return { lineage, orderUrl: order.url };
  } catch (err) {
    throw translateAcmeError(err, stage, directoryUrl);
  }
}

/** The key type of an existing key (kept with reuseKey), for the renewal conf. */
function keyTypeOf(keyPem: string, fallback: CertKeyType): CertKeyType {
  const key = createPrivateKey(keyPem);
  if (key.asymmetricKeyType === 'ec') return 'ecdsa-p256';
  if (key.asymmetricKeyType === 'rsa') return (key.asymmetricKeyDetails?.modulusLength ?? 2048) >= 4096 ? 'rsa-4096' : 'rsa-2048';
  return fallback;
}

/** Remove every record in `handles` (by id), each independently; failures are logged, not thrown. */
export async function removeRecords(provider: DnsProvider, handles: TxtRecordHandle[], log: Logger, onRecord?: ObtainOptions['onRecord']): Promise<number> {
  let failed = 0;
  await Promise.all(
    handles.splice(0).map(async (h) => {
      try {
        await provider.removeTxt(h);
        onRecord?.('removed', h);
        log.info({ record: h.name }, 'TXT record removed');
      } catch (err) {
        failed += 1;
        log.warn({ record: h.name, recordId: h.recordId, err: (err as Error).message }, 'could not remove TXT record; will retry on the next attempt');
      }
    }),
  );
  return failed;
}
