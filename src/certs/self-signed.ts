/**
 * X.509 certificates made locally: the broker's zero-config self-signed certificate, and (in tests) throwaway
 * CAs and leaf certificates. Uses WebCrypto through @peculiar/x509; keys are ECDSA P-256 by default.
 */
import { webcrypto, createPrivateKey } from 'node:crypto';
import { isIP } from 'node:net';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { CertKeyType } from '../config/schema.js';

type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export interface IssuedCertificate {
  /** PEM of the certificate alone. */
  cert: string;
  /** PKCS#8 PEM private key. */
  key: string;
  /** For chaining: the WebCrypto key pair behind `key`. */
  keys: CryptoKeyPair;
}

export interface CertificateRequest {
  commonName: string;
  /** DNS names and IP addresses for the subjectAltName. */
  altNames?: string[];
  /** Make a CA certificate (basicConstraints cA, keyCertSign). */
  isCA?: boolean;
  /** Signer; self-signed when absent. */
  issuer?: { cert: string; keys: CryptoKeyPair };
  keyType?: CertKeyType;
  /** Validity from now; default 825 days. Negative offsets make expired certificates for tests. */
  validDays?: number;
  notBeforeOffsetDays?: number;
}

function algorithmFor(keyType: CertKeyType): webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams {
  switch (keyType) {
    case 'ecdsa-p256':
      return { name: 'ECDSA', namedCurve: 'P-256' };
    case 'rsa-2048':
    case 'rsa-4096':
      return {
        name: 'RSASSA-PKCS1-v1_5',
        hash: 'SHA-256',
        publicExponent: new Uint8Array([1, 0, 1]),
        modulusLength: keyType === 'rsa-2048' ? 2048 : 4096,
      };
  }
}

function signingAlgorithm(keys: CryptoKeyPair): webcrypto.Algorithm | webcrypto.EcdsaParams {
  return keys.privateKey.algorithm.name === 'ECDSA'
    ? { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams
    : { name: 'RSASSA-PKCS1-v1_5' };
}

function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] ?? 0) & 0x7f; // positive
  return Buffer.from(bytes).toString('hex');
}

export async function createCertificate(req: CertificateRequest): Promise<IssuedCertificate> {
  const keyType = req.keyType ?? 'ecdsa-p256';
  const algorithm = algorithmFor(keyType);
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as CryptoKeyPair;
  const day = 86_400_000;
  const notBefore = new Date(Date.now() + (req.notBeforeOffsetDays ?? -1) * day);
  const notAfter = new Date(notBefore.getTime() + (req.validDays ?? 825) * day);
  const altNames = (req.altNames ?? []).map((name) =>
    isIP(name) ? { type: 'ip' as const, value: name } : { type: 'dns' as const, value: name },
  );
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(req.isCA === true, undefined, true),
    new x509.KeyUsagesExtension(
      req.isCA === true
        ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature
        : x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
      true,
    ),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  if (req.isCA !== true) {
    extensions.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]));
  }
  if (altNames.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(altNames));
  const name = `CN=${req.commonName}`;
  let cert: x509.X509Certificate;
  if (req.issuer) {
    const issuerCert = new x509.X509Certificate(req.issuer.cert);
    extensions.push(await x509.AuthorityKeyIdentifierExtension.create(issuerCert));
    cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: name,
      issuer: issuerCert.subject,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: req.issuer.keys.privateKey,
      signingAlgorithm: signingAlgorithm(req.issuer.keys),
      extensions,
    });
  } else {
    cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name,
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: signingAlgorithm(keys),
      extensions,
    });
  }
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const key = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }).toString();
  return { cert: cert.toString('pem') + '\n', key, keys };
}
