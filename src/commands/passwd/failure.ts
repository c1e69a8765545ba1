/**
 * How `passwd` stops on an error: the parser, the prompt and the file editor throw a PasswdFailure, and the
 * command turns it into one stderr line and the exit status. The messages and codes are mosquitto_passwd's,
 * so that scripts written for it keep working.
 */
export class PasswdFailure extends Error {
  override readonly name: string = 'PasswdFailure';
  constructor(
    /** The exit status: 1, or 2 when the two passwords typed differ (as mosquitto_passwd). */
    readonly code: number,
    /** The line for stderr; '' prints nothing (Ctrl-C at the prompt). */
    message: string,
  ) {
    super(message);
  }
}

/** A bad command line: the message is followed by the usage line. Exit status 1, like mosquitto_passwd. */
export class UsageError extends PasswdFailure {
  override readonly name = 'UsageError';
  constructor(message: string) {
    super(1, message);
  }
}
