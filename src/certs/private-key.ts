/** New private keys of the types we issue with (certificate keys, and certbot's RSA 2048 account keys), as PKCS#8 PEM. */
import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import type { CertKeyType } from '../config/schema.js';

export async function generatePrivateKey(keyType: CertKeyType): Promise<string> {
  const gen = promisify(generateKeyPair);
  const { privateKey } =
    keyType === 'ecdsa-p256'
      ? await gen('ec', { namedCurve: 'P-256' })
      : await gen('rsa', { modulusLength: keyType === 'rsa-4096' ? 4096 : 2048 });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}
