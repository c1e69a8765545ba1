/**
 * What `mqtt-acme-broker passwd --help` prints, and the usage line shown after a command-line error. Written
 * for this program rather than copied from mosquitto_passwd: it documents the differences (bcrypt, -I, what
 * -U leaves alone, the atomic rewrite) and that a running broker picks the change up by itself.
 * test/unit/passwd-command.test.ts checks that it names every flag in PASSWD_FLAGS.
 */
import { DEFAULT_BCRYPT_COST, DEFAULT_PBKDF2_ITERATIONS } from '../../auth/passwd.js';

const PROG = 'mqtt-acme-broker passwd';

const PASSWD_USAGE = `Usage: ${PROG} [-c | -D] [-b] [-U] [-H sha512 | sha512-pbkdf2 | bcrypt] [-I iterations] FILE USER [PASSWORD]`;

/** After a usage error, below its one-line message. */
export const PASSWD_USAGE_HINT = `${PASSWD_USAGE}\nRun '${PROG} --help' for more.\n`;

export const PASSWD_HELP = `${PASSWD_USAGE}

Add, change or delete a user in a mosquitto password file (the password_file of mosquitto.conf), as
mosquitto_passwd does: same options, prompts and error messages, and either tool reads what the other
writes (bcrypt entries excepted). Without -b, the password is asked for twice (not echoed on a terminal).

  -c              create FILE with USER as its only user (an existing FILE is replaced)
  -D              delete USER from FILE
  -b              batch mode: PASSWORD is the last argument (it shows in ps and in the shell history)
  -U              hash the plain-text passwords of FILE ("user:password" lines; FILE is the only argument).
                  Entries already hashed are left alone (mosquitto_passwd 2.0 would hash them again).
  -H sha512-pbkdf2
                  $7$: PBKDF2-HMAC-SHA512, ${DEFAULT_PBKDF2_ITERATIONS} iterations, 12-byte salt. The default:
                  what mosquitto 2.0 writes
  -H sha512       $6$: one salted SHA-512 pass (mosquitto 1.6 and earlier); weak, for old readers only
  -H bcrypt       $2b$, cost ${DEFAULT_BCRYPT_COST}. Only this broker reads it: mosquitto 2.0 cannot, and drops the user
  -I iterations   PBKDF2 iterations for sha512-pbkdf2 (default ${DEFAULT_PBKDF2_ITERATIONS}; mosquitto 2.1 writes 1000),
                  or the cost for bcrypt (4 to 31, default ${DEFAULT_BCRYPT_COST})
  -h, --help      print this help
  --              end of options (for a FILE, USER or PASSWORD starting with '-')

FILE is replaced atomically: a new file is written beside it and renamed over it (through a symlink to
the file it names), keeping its mode (and owner, when allowed); a new FILE gets mode 0600. Comments, blank
lines and the other users' lines are kept byte for byte. A running broker whose password_file is FILE
reloads it when it changes, and disconnects the clients of a user who was deleted or whose password
changed: no restart is needed.

Exit status: 0 done; 1 error (bad command line, bad user name, unreadable or corrupt FILE, USER not found
for -D); 2 the two passwords typed differ.

Examples:
  ${PROG} -c /mosquitto/conf/passwd camera1          # new file; asks for the password
  ${PROG} -b /mosquitto/conf/passwd homeassistant 's3cret'
  ${PROG} -D /mosquitto/conf/passwd camera1
  ${PROG} -U /mosquitto/conf/passwd                  # hash plain-text passwords
  ${PROG} -H bcrypt -I 12 -b passwd app 's3cret'     # this broker only
`;
