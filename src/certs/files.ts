/**
 * TLS material from user-given PEM files (mosquitto's certfile/keyfile/cafile), watched: a changed pair is
 * validated and swapped in; a bad or half-written pair keeps the current one and says why.
 */
import { readFile } from 'node:fs/promises';
import { watchAndReload } from '../files/watch.js';
import type { Logger } from '../log.js';
import type { TlsContext, TlsMaterial } from '../tls/context.js';

export interface CertificateFiles {
  certfile: string;
  keyfile: string;
  cafile?: string;
}

export async function readCertificateFiles(files: CertificateFiles): Promise<TlsMaterial> {
  const read = async (path: string, what: string): Promise<Buffer> => {
    try {
      return await readFile(path);
    } catch (err) {
      throw new Error(`cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err });
    }
  };
  const [cert, key, ca] = await Promise.all([
    read(files.certfile, 'certfile'),
    read(files.keyfile, 'keyfile'),
    files.cafile === undefined ? undefined : read(files.cafile, 'cafile'),
  ]);
  return ca === undefined ? { cert, key } : { cert, key, ca };
}

/** Load the files into `context` now (throws if unusable) and keep them watched. Returns the closer. */
export async function serveCertificateFiles(
  context: TlsContext,
  files: CertificateFiles,
  logger: Logger,
  events: { reloaded?(): void; failed?(): void } = {},
): Promise<{ close(): void }> {
  const apply = async (): Promise<TlsMaterial> => {
    const material = await readCertificateFiles(files);
    // Validate here so that a bad pair is reported as a failed load and the last good one stays.
    context.update(material, files.certfile);
    return material;
  };
  await apply();
  const watcher = watchAndReload({
    files: [files.certfile, files.keyfile, ...(files.cafile === undefined ? [] : [files.cafile])],
    load: () =>
      apply().catch((err: unknown) => {
        events.failed?.();
        throw err;
      }),
    onLoad: () => events.reloaded?.(),
    logger,
    what: `TLS certificate for listener ${context.name}`,
  });
  return watcher;
}
