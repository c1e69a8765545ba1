/**
 * A changed configuration (mosquitto.conf or config.json edited, then SIGHUP or the file watch) applied to
 * the running server: what can change live changes, in place, for new connections and messages; what cannot
 * (listeners, persistence, ACME, ...) is named once in the log as needing a restart, and keeps its old value.
 * Which settings are live is the schema's word (`reload: 'live'`), handed over by the loader with the change.
 */
import type { AccessPolicy } from '../auth/policy.js';
import type { Broker } from '../broker/broker.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { AuthFiles } from './auth-files.js';

export interface ConfigChange {
  /** Settings that changed and now apply (their user-facing names: mosquitto.conf directives or config.json keys). */
  applied: string[];
  /** Settings that changed but keep their old value until a restart. */
  restartNeeded: string[];
}

/** The files are loaded first (and may fail, keeping the current ones); the other live settings are copied. */
const FILES = ['passwordFile', 'aclFile'] as const;

export async function applyLiveConfig(
  config: Config,
  next: Config,
  change: { live: string[]; restart: string[] },
  liveKeys: readonly (keyof Config)[],
  deps: { policy: AccessPolicy; auth: AuthFiles; broker: Broker; logger: Logger },
): Promise<ConfigChange> {
  const restartNeeded = [...change.restart];
  const applied = [...change.live];
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
  for (const key of liveKeys) {
    if (!(FILES as readonly string[]).includes(key)) (config as unknown as Record<string, unknown>)[key] = next[key];
  }
  deps.policy.setAllowAnonymous(config.allowAnonymous);
  if (config.sysInterval !== sysBefore) deps.broker.configurationChanged();
  if (applied.length > 0) deps.logger.info({ settings: applied }, 'configuration reloaded: these settings apply from now on (to new connections where they are per connection)');
  if (restartNeeded.length > 0) {
    deps.logger.warn({ settings: restartNeeded }, `configuration changed, but ${restartNeeded.join(', ')} ${restartNeeded.length === 1 ? 'needs' : 'need'} a restart to take effect; the running broker keeps the old value`);
  }
  if (applied.length === 0 && restartNeeded.length === 0) deps.logger.info('configuration reloaded: nothing changed');
  return { applied, restartNeeded };
}
