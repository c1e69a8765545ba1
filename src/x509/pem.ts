/** PEM texts compared as certificates: by their blocks, ignoring line wrapping and surrounding text. */

function certificateBlocks(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

function withoutWhitespace(pem: string): string {
  return pem.replace(/\s+/g, '');
}

/** Is the first certificate of `chain` the first certificate of `leaf`? (fullchain.pem must start with cert.pem.) */
export function chainStartsWith(chain: string, leaf: string): boolean {
  const first = certificateBlocks(chain)[0];
  if (first === undefined) return false;
  return withoutWhitespace(first) === withoutWhitespace(certificateBlocks(leaf)[0] ?? '');
}
