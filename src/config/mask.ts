/**
 * A configuration that is safe to print or log (the start-up line, check-config): what the table marks as a
 * secret is replaced by `SECRET_MASK`, keeping no part of it; an e-mail address (personal data) keeps only
 * its domain, enough to tell which account is meant.
 */
import { KEYS, type Config } from './schema.js';

export const SECRET_MASK = '****';

/** `name@example.com` -> `****@example.com`; anything without an `@` is masked whole. */
function maskEmail(value: string): string {
  const at = value.lastIndexOf('@');
  return at < 0 ? SECRET_MASK : `${SECRET_MASK}${value.slice(at)}`;
}

/** A deep copy of `config` with every secret and e-mail address masked; `config` itself is left as it is. */
export function maskSecrets(config: Config): Config {
  const copy = structuredClone(config);
  for (const key of KEYS) {
    if (key.meta.mask === undefined || key.path.includes('[]')) continue;
    const parts = key.path.split('.');
    const name = parts.pop() as string;
    let holder: unknown = copy;
    for (const part of parts) holder = (holder as Record<string, unknown> | undefined)?.[part];
    const object = holder as Record<string, unknown> | undefined;
    const value = object?.[name];
    if (object === undefined || typeof value !== 'string') continue;
    object[name] = key.meta.mask === 'email' ? maskEmail(value) : SECRET_MASK;
  }
  return copy;
}
