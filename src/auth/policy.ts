/**
 * Who may connect and what they may do: the current users (passwd) and ACL snapshots plus
 * `allow_anonymous`. Reloads swap whole snapshots; the lookups here do no I/O.
 */
import type { Users } from './passwd.js';
import type { Acl, ClientAcl } from './acl.js';

export type AuthResult =
  | { ok: true; username: string | undefined }
  | { ok: false; reason: 'anonymous_refused' | 'bad_credentials' | 'no_password_file' };

export class AccessPolicy {
  #users: Users | undefined;
  #acl: Acl | undefined;
  #aclGeneration = 0;

  constructor(
    private allowAnonymous: boolean,
    users?: Users,
    acl?: Acl,
  ) {
    this.#users = users;
    this.#acl = acl;
  }

  /** `allow_anonymous` changed in the configuration: new connections see it. */
  setAllowAnonymous(allow: boolean): void {
    this.allowAnonymous = allow;
  }

  /** Swap the users (undefined: no password file any more); returns the previous snapshot. */
  setUsers(users: Users | undefined): Users | undefined {
    const previous = this.#users;
    this.#users = users;
    return previous;
  }

  /** Whether a client logged in as `username` under `previous` may stay connected with the current users. */
  stillValid(username: string | undefined, previous: Users | undefined): boolean {
    if (username === undefined || previous === undefined || this.#users === undefined) return true;
    if (!previous.has(username)) return true; // it got in without a passwd entry (allow_anonymous): unchanged
    return this.#users.sameCredentials(username, previous);
  }

  setAcl(acl: Acl | undefined): void {
    this.#acl = acl;
    this.#aclGeneration += 1;
  }

  /** Bumped on every ACL swap, so that per-client compiled rules know when to recompile. */
  get aclGeneration(): number {
    return this.#aclGeneration;
  }

  get userCount(): number {
    return this.#users?.size ?? 0;
  }

  async authenticate(username: string | undefined, password: Buffer | undefined): Promise<AuthResult> {
    if (username === undefined) {
      return this.allowAnonymous ? { ok: true, username: undefined } : { ok: false, reason: 'anonymous_refused' };
    }
    if (this.#users === undefined) {
      // Nothing to check a username against: only an open broker lets such a client in.
      return this.allowAnonymous ? { ok: true, username } : { ok: false, reason: 'no_password_file' };
    }
    const ok = await this.#users.verify(username, password ?? Buffer.alloc(0));
    return ok ? { ok: true, username } : { ok: false, reason: 'bad_credentials' };
  }

  /** The compiled rules for one client; undefined when no ACL file is configured (everything allowed). */
  clientAcl(username: string | undefined, clientId: string): ClientAcl | undefined {
    return this.#acl?.forClient(username, clientId);
  }
}
