/**
 * The password and ACL files of a running server: loaded at start (a broken file stops the start, as in
 * mosquitto), then watched; a changed file is swapped in, a broken one keeps the last good snapshot and logs
 * why. `reload()` reads both again at once (SIGHUP); `point()` follows a configuration that names another
 * file, or none.
 */
import { loadAclFile } from '../auth/acl.js';
import { loadPasswdFile, type Users } from '../auth/passwd.js';
import type { AccessPolicy } from '../auth/policy.js';
import { watchAndReload, type Reloader } from '../files/watch.js';
import type { Logger } from '../log.js';
import type { ReloadEvents } from '../ops/observer.js';

type Kind = 'passwd' | 'acl';

const WHAT: Record<Kind, string> = { passwd: 'password file', acl: 'ACL file' };

export class AuthFiles {
  readonly #watchers = new Map<Kind, { file: string; reloader: Reloader }>();

  constructor(
    private readonly policy: AccessPolicy,
    private readonly logger: Logger,
    private readonly events: ReloadEvents,
    /** Told when the users changed, with the previous snapshot (to disconnect clients whose password changed). */
    private readonly usersChanged: (previous: Users | undefined) => void,
  ) {}

  /** Load `file` for `kind` (or drop it: undefined) and watch it. Throws, changing nothing, when it cannot be loaded. */
  async point(kind: Kind, file: string | undefined): Promise<void> {
    const current = this.#watchers.get(kind);
    if (current?.file === file) return;
    if (file === undefined) {
      current?.reloader.close();
      this.#watchers.delete(kind);
      this.#apply(kind, undefined);
      this.logger.info({ kind }, `no ${WHAT[kind]} any more`);
      return;
    }
    const load = (): Promise<unknown> => (kind === 'passwd' ? loadPasswdFile(file, this.logger) : loadAclFile(file, this.logger));
    const value = await load().catch((err: Error) => {
      throw new Error(`${WHAT[kind]} ${file}: ${err.message}`, { cause: err });
    });
    current?.reloader.close();
    this.#apply(kind, value, file);
    const reloader = watchAndReload({
      files: [file],
      load: () =>
        load().catch((err: unknown) => {
          this.events.reloadFailed?.(kind);
          throw err;
        }),
      onLoad: (next) => {
        this.#apply(kind, next, file);
        this.events.reloaded?.(kind);
      },
      logger: this.logger,
      what: WHAT[kind],
    });
    this.#watchers.set(kind, { file, reloader });
  }

  /** Read every file again now (SIGHUP). Resolves with the kinds that were reloaded. */
  async reload(): Promise<Kind[]> {
    const done: Kind[] = [];
    for (const [kind, { reloader }] of this.#watchers) if (await reloader.reload()) done.push(kind);
    return done;
  }

  close(): void {
    for (const { reloader } of this.#watchers.values()) reloader.close();
    this.#watchers.clear();
  }

  #apply(kind: Kind, value: unknown, file?: string): void {
    if (kind === 'passwd') {
      const users = value as Users | undefined;
      const previous = this.policy.setUsers(users);
      if (users !== undefined) this.logger.info({ file, users: users.size }, 'password file loaded');
      if (previous !== undefined) this.usersChanged(previous);
    } else {
      this.policy.setAcl(value as Parameters<AccessPolicy['setAcl']>[0]);
      if (value !== undefined) this.logger.info({ file }, 'ACL file loaded');
    }
  }
}
