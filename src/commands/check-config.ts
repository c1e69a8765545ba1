/**
 * `mqtt-acme-broker check-config [-c mosquitto.conf] [--config config.json]`: load and validate the whole
 * configuration as `serve` would, read every file it references (password file, ACL file, certificates and
 * keys), then print the effective configuration as JSON on stdout with every secret masked and e-mail
 * addresses shown by their domain only. Warnings and notes go to stderr; so do errors (`error: <reason>`, e.g.
 * a bridge in mosquitto.conf, which is not supported yet), with exit status 1.
 */
import { readText } from '../files/read.js';
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { loadConfig, type LoadOptions } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { ConfigError } from '../config/config-error.js';
import { maskSecrets } from '../config/mask.js';
import { parsePasswd } from '../auth/passwd.js';
import { parseAcl } from '../auth/acl.js';
import { parseConfigArgs } from './config-args.js';


export interface CheckConfigIo {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown };
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Where the old image's files are looked for (see `LoadOptions.defaults`); tests point it elsewhere. */
  defaults?: LoadOptions['defaults'];
}

const USAGE = 'usage: mqtt-acme-broker check-config [-c mosquitto.conf] [--config config.json]\n';

/** Read a file the configuration names; the error starts with where it was named. */
async function readNamed(path: string, what: string, source: string): Promise<string> {
  try {
    return await readText(path, what);
  } catch (err) {
    throw new Error(`${source}: ${(err as Error).message}`, { cause: err });
  }
}

/** Read and parse every file the configuration references; returns errors and warnings. */
async function checkFiles(config: Config, sources: Record<string, string>): Promise<{ errors: string[]; warnings: string[] }> {
  const errors: string[] = [];
  const warnings: string[] = [];
  const src = (path: string): string => sources[path] ?? path;
  const attempt = async (fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      errors.push((err as Error).message);
    }
  };

  if (config.passwordFile !== undefined) {
    const file = config.passwordFile;
    await attempt(async () => {
      const parsed = parsePasswd(await readNamed(file, 'password file', src('passwordFile')), file);
      warnings.push(...parsed.warnings);
      if (parsed.users.size === 0) warnings.push(`${file}: the password file has no users: no client can log in with a password`);
    });
  }
  if (config.aclFile !== undefined) {
    const file = config.aclFile;
    await attempt(async () => {
      const acl = parseAcl(await readNamed(file, 'ACL file', src('aclFile')), file);
      warnings.push(...acl.warnings);
    });
  }
  for (const [i, l] of config.listeners.entries()) {
    const key = (k: string): string => src(`listeners[${i}].${k}`);
    let cert: X509Certificate | undefined;
    let privateKey: KeyObject | undefined;
    if (l.certfile !== undefined) {
      const file = l.certfile;
      await attempt(async () => {
        const text = await readNamed(file, 'certificate file', key('certfile'));
        try {
          cert = new X509Certificate(text);
        } catch {
          throw new Error(`${key('certfile')}: ${file} holds no PEM certificate`);
        }
        const now = Date.now();
        if (Date.parse(cert.validTo) < now) warnings.push(`${file}: the certificate expired on ${cert.validTo}; clients will refuse it`);
        else if (Date.parse(cert.validFrom) > now) warnings.push(`${file}: the certificate is not valid before ${cert.validFrom}`);
      });
    }
    if (l.keyfile !== undefined) {
      const file = l.keyfile;
      await attempt(async () => {
        const text = await readNamed(file, 'key file', key('keyfile'));
        try {
          privateKey = createPrivateKey(text);
        } catch {
          throw new Error(`${key('keyfile')}: ${file} holds no usable unencrypted PEM private key`);
        }
      });
    }
    if (cert && privateKey && !cert.checkPrivateKey(privateKey)) {
      errors.push(`${key('keyfile')}: ${l.keyfile} is not the private key of the certificate in ${l.certfile}; use the matching pair`);
    }
    if (l.cafile !== undefined) {
      const file = l.cafile;
      await attempt(async () => {
        const text = await readNamed(file, 'CA file', key('cafile'));
        try {
          new X509Certificate(text);
        } catch {
          throw new Error(`${key('cafile')}: ${file} holds no PEM certificate`);
        }
      });
    }
  }
  return { errors, warnings };
}

/**
 * Run check-config. `argv` are the arguments after `check-config`. Returns the exit status: 0 when the
 * configuration is usable, 1 otherwise.
 */
export async function checkConfigCommand(argv: string[], io: CheckConfigIo): Promise<number> {
  const error = (message: string): number => {
    io.stderr.write(`error: ${message}\n`);
    return 1;
  };
  let args: ReturnType<typeof parseConfigArgs>;
  try {
    args = parseConfigArgs(argv);
  } catch (err) {
    io.stderr.write(USAGE);
    return error((err as Error).message);
  }
  if (args.help) {
    io.stdout.write(USAGE);
    return 0;
  }
  let loaded: Awaited<ReturnType<typeof loadConfig>>;
  try {
    loaded = await loadConfig({
      ...(args.configJson === undefined ? {} : { configJson: args.configJson }),
      ...(args.mosquittoConf === undefined ? {} : { mosquittoConf: args.mosquittoConf }),
      env: io.env,
      cwd: io.cwd,
      ...(io.defaults === undefined ? {} : { defaults: io.defaults }),
    });
  } catch (err) {
    if (err instanceof ConfigError) return error(err.message);
    return error(`could not load the configuration: ${(err as Error).message}`);
  }
  const files = await checkFiles(loaded.config, loaded.sources.values);
  for (const note of loaded.notes) io.stderr.write(`note: ${note}\n`);
  for (const warning of [...loaded.warnings, ...files.warnings]) io.stderr.write(`warning: ${warning}\n`);
  if (files.errors.length > 0) {
    for (const message of files.errors) error(message);
    return 1;
  }
  io.stdout.write(`${JSON.stringify(maskSecrets(loaded.config), null, 2)}\n`);
  const read = [loaded.sources.configJson, loaded.sources.mosquittoConf].filter((f) => f !== undefined);
  io.stderr.write(`configuration OK (${read.length > 0 ? `from ${read.join(' and ')} and the environment` : 'from defaults and the environment'})\n`);
  return 0;
}
