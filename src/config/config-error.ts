/** A configuration error a user can fix; the message starts with the source (file:line, key path, variable). */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    /** Where the offending value came from, e.g. `/etc/m.conf:3: listener`, `config.json: acme.domains`, `env DOMAIN`. */
    readonly source: string,
    /** What is wrong and what to do, without the source. */
    readonly problem: string,
  ) {
    super(`${source}: ${problem}`);
  }
}
