/**
 * A changed configuration (mosquitto.conf or config.json edited, then SIGHUP or the file watch) applied to
 * the running server: what can change live changes, in place, for new connections and messages; what cannot
 * (listeners, persistence, ACME, ...) is named once in the log as needing a restart, and keeps its old value.
 */
import type { AccessPolicy } from '../auth/policy.js';
import type { Broker } from '../broker/broker.js';
import { KEYS, type Config } from '../config/schema.js';
import { describeConfigChange } from '../config/changes.js';
import type { Logger } from '../log.js';
import type { AuthFiles } from './auth-files.js';

export interface ConfigChange {
  /** Settings that changed and now apply (their user-facing names: mosquitto.conf directives or config.json keys). */
  applied: string[];
  /** Settings that changed but keep their old value until a restart. */
  restartNeeded: string[];
}

/**
 * The top-level settings the running server takes over from a new configuration: those the schema marks
 * live, except the two files, which are loaded first (and may fail). Everything here is read per connection
 * or per message from the one `Config` object, or is re-read by `Broker.configurationChanged()`.
 */
const LIVE_KEYS = KEYS.filter((k) => k.meta.reload === 'live' && !k.path.includes('.') && !k.path.includes('[') && k.path !== 'passwordFile' && k.path !== 'aclFile').map((k) => k.path as keyof Config);

export async function applyLiveConfig(
  config: Config,
  next: Config,
  deps: { policy: AccessPolicy; auth: AuthFiles; broker: Broker; logger: Logger },
): Promise<ConfigChange> {
  const { live, restart } = describeConfigChange(config, next);
  const restartNeeded = [...restart];
  const applied: string[] = [];
  // The files first: a new password file that cannot be read keeps the old one, and says so.
  for (const [kind, key] of [['passwd', 'passwordFile'], ['acl', 'aclFile']] as const) {
    if (config[key] === next[key]) continue;
    try {
      await deps.auth.point(kind, next[key]);
      config[key] = next[key];
    } catch (err) {
      deps.logger.error({ error: (err as Error).message }, `the new ${kind === 'passwd' ? 'password' : 'ACL'} file cannot be used; keeping the current one`);
    }
  }
  const sysBefore = config.sysInterval;
  for (const key of LIVE_KEYS) (config as unknown as Record<string, unknown>)[key] = next[key];
  deps.policy.setAllowAnonymous(config.allowAnonymous);
  if (config.sysInterval !== sysBefore) deps.broker.configurationChanged();
  applied.push(...live);
  if (applied.length > 0) deps.logger.info({ settings: applied }, 'configuration reloaded: these settings apply from now on (to new connections where they are per connection)');
  if (restartNeeded.length > 0) {
    deps.logger.warn({ settings: restartNeeded }, `configuration changed, but ${restartNeeded.join(', ')} ${restartNeeded.length === 1 ? 'needs' : 'need'} a restart to take effect; the running broker keeps the old value`);
  }
  if (applied.length === 0 && restartNeeded.length === 0) deps.logger.info('configuration reloaded: nothing changed');
  return { applied, restartNeeded };
}
