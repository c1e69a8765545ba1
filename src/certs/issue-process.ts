/**
 * The issuing child process: forked by CertificateManager (compiled to dist/certs/issue-process.js), it receives
 * one IssueRequest over IPC (configuration with secrets: never argv or env), loads acme-client and the Cloudflare
 * SDK, obtains and stores a certificate, reports the outcome and exits, so the ~75 MB SDK never stays resident in
 * the broker. Its pino lines go to stdout like the broker's.
 *
 * If the parent disappears (IPC disconnect, e.g. the broker was killed) or sends SIGTERM, it removes the TXT
 * records it created and exits. A SIGKILL leaves the store consistent (every write is atomic, see lineage-store.ts); the
 * records it reported are removed by the next child (`staleRecords`).
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import type { AcmeConfig } from '../config/schema.js';
import { createLogger, type Logger } from '../log.js';
import type { AcmeTuning, PropagationTuning } from './acme.js';
import type { DnsProvider, TxtRecordHandle } from './dns/provider.js';

export interface IssueRequest {
  config: AcmeConfig;
  logLevel: string;
  propagation?: PropagationTuning;
  acme?: AcmeTuning;
  cloudflare?: { maxRetries?: number; timeoutMs?: number };
  trustedCa?: string;
  /** Records a previous (killed) child created and did not remove. */
  staleRecords?: TxtRecordHandle[];
}

export type ParentMessage = { type: 'issue'; request: IssueRequest };

export type DoneMessage =
  | { type: 'done'; ok: true; lineage: string; version: number | undefined; notAfter: string; serial: string }
  | { type: 'done'; ok: false; error: { message: string; stage?: string } };

export type ChildMessage = { type: 'record'; event: 'created' | 'removed'; handle: TxtRecordHandle } | DoneMessage;

function send(msg: ChildMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) {
      resolve();
      return;
    }
    process.send(msg, undefined, {}, () => resolve());
  });
}

export async function runIssue(request: IssueRequest, log: Logger, signal: AbortSignal, live: Map<string, TxtRecordHandle>, setProvider: (p: DnsProvider) => void): Promise<DoneMessage> {
  const { createCloudflareProvider } = await import('./dns/cloudflare.js');
  const { obtainCertificate, removeRecords } = await import('./acme.js');
  try {
    const provider = await createCloudflareProvider({
      credentials: request.config.cloudflare,
      ...(request.config.cloudflareBaseUrl ? { baseUrl: request.config.cloudflareBaseUrl } : {}),
      ...request.cloudflare,
      logger: log.child({ component: 'cloudflare' }),
    });
    setProvider(provider);
    if (request.staleRecords && request.staleRecords.length > 0) {
      log.info({ records: request.staleRecords.map((r) => r.name) }, 'removing TXT records left by an interrupted attempt');
      const stale = [...request.staleRecords];
      await removeRecords(provider, stale, log, (event, handle) => void send({ type: 'record', event, handle }));
    }
    const { lineage } = await obtainCertificate({
      config: request.config,
      provider,
      logger: log,
      ...(request.propagation ? { propagation: request.propagation } : {}),
      ...(request.acme ? { acme: request.acme } : {}),
      ...(request.trustedCa ? { trustedCa: request.trustedCa } : {}),
      signal,
      onRecord: (event, handle) => {
        if (event === 'created') live.set(handle.recordId, handle);
        else live.delete(handle.recordId);
        void send({ type: 'record', event, handle });
      },
    });
    return { type: 'done', ok: true, lineage: lineage.name, version: lineage.version, notAfter: lineage.notAfter.toISOString(), serial: lineage.serial };
  } catch (err) {
    const e = err as Error & { stage?: string };
    log.warn({ stage: e.stage, err: e.message }, 'certificate issuance failed');
    return { type: 'done', ok: false, error: { message: e.message, ...(e.stage ? { stage: e.stage } : {}) } };
  }
}

function main(): void {
  const controller = new AbortController();
  const live = new Map<string, TxtRecordHandle>();
  let provider: DnsProvider | undefined;
  let log: Logger = createLogger('info', pino.destination({ fd: 1, sync: true })).child({ component: 'acme-issue', pid: process.pid });
  let finishing = false;

  const shutdown = async (why: string, code: number): Promise<void> => {
    if (finishing) return;
    finishing = true;
    controller.abort();
    log.warn({ reason: why }, 'issuing process stopping early; removing its TXT records');
    if (provider && live.size > 0) {
      const { removeRecords } = await import('./acme.js');
      const timer = setTimeout(() => process.exit(code), 10_000);
      await removeRecords(provider, [...live.values()], log);
      clearTimeout(timer);
    }
    process.exit(code);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM', 143));
  process.on('SIGINT', () => void shutdown('SIGINT', 130));
  process.on('disconnect', () => void shutdown('parent process went away', 1));

  process.once('message', (msg: ParentMessage) => {
    if (msg?.type !== 'issue') {
      log.error('unexpected IPC message; exiting');
      process.exit(2);
    }
    const request = msg.request;
    log = createLogger(request.logLevel, pino.destination({ fd: 1, sync: true })).child({ component: 'acme-issue', pid: process.pid });
    runIssue(request, log, controller.signal, live, (p) => (provider = p))
      .then(async (result) => {
        if (finishing) return;
        finishing = true;
        await send(result);
        process.exit(result.ok ? 0 : 1);
      })
      .catch(async (err: unknown) => {
        if (finishing) return;
        finishing = true;
        await send({ type: 'done', ok: false, error: { message: (err as Error).message } });
        process.exit(1);
      });
  });
}

// Run only as the forked entry point (never when imported, e.g. for its types).
const entry = process.argv[1];
if (process.send && entry !== undefined && import.meta.url === pathToFileURL(realpathSync(entry)).href) main();
