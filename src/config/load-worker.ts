/**
 * Runs as a short-lived child process (see isolated.ts): loads and validates the configuration with the
 * schema (zod), answers with plain data over IPC, and exits, taking the schema library's memory with it, so
 * that the long-running broker never carries it.
 */
import { loadConfig } from './load.js';
import { maskSecrets } from './mask.js';
import { describeConfigChange } from './changes.js';
import { KEYS, type Config } from './schema.js';
import type { IsolatedRequest, IsolatedAnswer } from './isolated.js';

async function answer(request: IsolatedRequest): Promise<IsolatedAnswer> {
  try {
    const result = await loadConfig(request.options);
    const liveKeys = KEYS.filter((k) => k.meta.reload === 'live' && !k.path.includes('.') && !k.path.includes('[')).map((k) => k.path as keyof Config);
    return {
      ok: true,
      result,
      masked: maskSecrets(result.config),
      liveKeys,
      ...(request.previous === undefined ? {} : { change: describeConfigChange(request.previous, result.config) }),
    };
  } catch (err) {
    return { ok: false, message: (err as Error).message };
  }
}

process.once('message', (request: IsolatedRequest) => {
  void answer(request).then((reply) => process.send?.(reply, () => process.disconnect()));
});
