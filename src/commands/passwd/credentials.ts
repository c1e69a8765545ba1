/**
 * What a user name and a password may be, checked before anything is hashed or written. The limits are
 * mosquitto_passwd's (65535 characters, no ':' or control character in a user name), plus two of ours: an
 * empty or blank-edged user name, which mosquitto would trim into another name or skip, and an empty
 * password, refused also with -b.
 */
import { PasswdFailure } from './failure.js';

const MAX_LENGTH = 65535;

export function checkUser(user: string): void {
  if (user.length > MAX_LENGTH) throw new PasswdFailure(1, 'Error: Username must be less than 65536 characters long.');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(user)) throw new PasswdFailure(1, 'Error: Username must not contain control characters.');
  if (user.includes(':')) throw new PasswdFailure(1, "Error: Username must not contain the ':' character.");
  if (user.trim() === '') throw new PasswdFailure(1, 'Error: Username must not be empty.');
  if (user.trim() !== user) throw new PasswdFailure(1, 'Error: Username must not start or end with blanks.');
}

export function checkPassword(password: string): void {
  if (password === '') throw new PasswdFailure(1, 'Error: Empty password.');
  if (password.length > MAX_LENGTH) throw new PasswdFailure(1, 'Error: Password must be less than 65536 characters long.');
}
