/**
 * Loading the configuration for the long-running server: the schema library (zod, about 5 MiB of heap and
 * more of resident memory) is needed only while a configuration is loaded, at start and on a reload, so the
 * loading runs in a short-lived child process (load-worker.ts, about 0.1 s) that exits right after and takes
 * that memory with it (a worker thread would not: its freed heap stays in the process's resident set). The answer is plain data: the
 * configuration, its warnings and notes, a masked copy for the start-up line, which top-level settings
 * apply live, and, for a reload, what changed against the running configuration.
 */
import { fork } from 'node:child_process';
import type { LoadOptions, LoadResult } from './load.js';
import type { Config } from './schema.js';

export interface ConfigChange {
  /** Changed settings the running server applies, by their user-facing names. */
  live: string[];
  /** Changed settings that need a restart. */
  restart: string[];
}

export interface IsolatedRequest {
  options: Pick<LoadOptions, 'configJson' | 'mosquittoConf' | 'env' | 'cwd'>;
  /** The running configuration, to describe what a reload changes. */
  previous?: Config;
}

export interface IsolatedLoad extends LoadResult {
  /** The configuration with secrets and e-mail addresses masked, for logs. */
  masked: Config;
  /** The top-level settings marked live in the schema. */
  liveKeys: (keyof Config)[];
  /** With `previous`: what changed. */
  change?: ConfigChange;
}

export type IsolatedAnswer = ({ ok: true } & Omit<IsolatedLoad, 'warnings' | 'notes' | 'config' | 'sources'> & { result: LoadResult }) | { ok: false; message: string };

/** Load (and validate) the configuration in a child process; rejects with the loader's message. */
export function loadConfigIsolated(request: IsolatedRequest): Promise<IsolatedLoad> {
  return new Promise((resolve, reject) => {
    const child = fork(new URL('./load-worker.js', import.meta.url), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [], serialization: 'advanced' });
    let settled = false;
    child.once('message', (answer: IsolatedAnswer) => {
      settled = true;
      if (answer.ok) resolve({ ...answer.result, masked: answer.masked, liveKeys: answer.liveKeys, ...(answer.change === undefined ? {} : { change: answer.change }) });
      else reject(new Error(answer.message));
    });
    child.once('error', (err) => {
      settled = true;
      reject(err);
    });
    child.once('exit', (code, signal) => {
      if (!settled) reject(new Error(`the configuration loader stopped (${signal ?? `exit code ${code}`}) without an answer`));
    });
    child.send(request);
  });
}
