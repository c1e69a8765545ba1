/**
 * Runs one issuance in a child process (issue-process.ts, compiled), so that acme-client and the ~75 MB
 * Cloudflare SDK are never loaded into the broker. The child reports each TXT record it creates or removes;
 * records a killed child left behind are handed to the next child to remove first.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../log.js';
import type { TxtRecordHandle } from './dns/provider.js';
import type { ChildMessage, DoneMessage, IssueRequest } from './issue-process.js';

export interface IssueRunnerOptions {
  /** The compiled issue-process.js; default: the one next to this module (dist/certs/). */
  script?: string;
  /** Where the child's stdout/stderr go; default: inherited (the same stdout as the broker). */
  output?: NodeJS.WritableStream;
  /** Environment of the child; default process.env without CLOUDFLARE_* (the SDK would read those itself). */
  env?: NodeJS.ProcessEnv;
  /** Kill a child that runs longer than this; default 30 min. */
  timeoutMs?: number;
  /** stop(): wait this long after SIGTERM (the child removes its TXT records) before SIGKILL; default 5 s. */
  stopTimeoutMs?: number;
}

/** The compiled issue-process.js next to the running module (both live in dist/certs/). */
export function defaultIssueScriptPath(moduleUrl: string = import.meta.url): string {
  return join(dirname(fileURLToPath(moduleUrl)), 'issue-process.js');
}

function childEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^CLOUDFLARE_/i.test(k)) env[k] = v;
  return env;
}

export class IssueRunner {
  #child: ChildProcess | undefined;
  /** TXT records created by a child and not reported removed (the child was killed). */
  readonly #stale = new Map<string, TxtRecordHandle>();

  constructor(
    private readonly options: IssueRunnerOptions,
    private readonly log: Logger,
  ) {}

  /** pid of a running child (tests, diagnostics). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Run one issuance; resolves when the child reported success, rejects with its error otherwise. */
  run(request: Omit<IssueRequest, 'staleRecords'>, started: (pid: number | undefined) => void): Promise<void> {
    const script = this.options.script ?? defaultIssueScriptPath();
    return new Promise<void>((resolve, reject) => {
      if (!existsSync(script)) {
        reject(new Error(`The certificate issuing script ${script} does not exist: run \`npm run build\` (or set the issueScript option).`));
        return;
      }
      let child: ChildProcess;
      try {
        const out = this.options.output;
        child = fork(script, [], {
          env: this.options.env ?? childEnvironment(),
          execArgv: [],
          stdio: out ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'inherit', 'inherit', 'ipc'],
          serialization: 'json',
        });
        if (out) {
          child.stdout?.pipe(out, { end: false });
          child.stderr?.pipe(out, { end: false });
        }
      } catch (err) {
        reject(err as Error);
        return;
      }
      this.#child = child;
      started(child.pid);
      let result: DoneMessage | undefined;
      const timeout = setTimeout(() => {
        this.log.error({ pid: child.pid }, 'issuing process took too long; killing it');
        child.kill('SIGKILL');
      }, this.options.timeoutMs ?? 30 * 60_000);
      timeout.unref();
      child.on('message', (msg: ChildMessage) => {
        if (msg.type === 'record') {
          if (msg.event === 'created') this.#stale.set(msg.handle.recordId, msg.handle);
          else this.#stale.delete(msg.handle.recordId);
        } else if (msg.type === 'done') {
          result = msg;
        }
      });
      child.once('error', (err) => {
        clearTimeout(timeout);
        this.#child = undefined;
        reject(err);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timeout);
        this.#child = undefined;
        if (result?.ok) resolve();
        else if (result && !result.ok) reject(new Error(result.error.message));
        else reject(new Error(`The issuing process ${child.pid} exited before finishing (${signal ? `signal ${signal}` : `exit code ${code}`}).`));
      });
      child.send({ type: 'issue', request: { ...request, staleRecords: [...this.#stale.values()] } });
    });
  }

  /** Stop a running child: SIGTERM so that it removes its records, SIGKILL after stopTimeoutMs. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const killTimer = setTimeout(() => child.kill('SIGKILL'), this.options.stopTimeoutMs ?? 5000);
    await exited;
    clearTimeout(killTimer);
  }
}
