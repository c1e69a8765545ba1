/**
 * The README files certbot puts in live/ and live/NAME/, word for word, so that a volume we wrote looks like
 * one certbot wrote to the people and tools that open it.
 */

/** The text; `prefix` is '' for live/NAME/README and '[cert name]/' for live/README. */
export function certbotReadme(prefix: string): string {
  return (
    'This directory contains your keys and certificates.\n\n' +
    `\`${prefix}privkey.pem\`  : the private key for your certificate.\n` +
    `\`${prefix}fullchain.pem\`: the certificate file used in most server software.\n` +
    `\`${prefix}chain.pem\`    : used for OCSP stapling in Nginx >=1.3.7.\n` +
    `\`${prefix}cert.pem\`     : will break many server configurations, and should not be used\n` +
    '                 without reading further documentation (see link below).\n\n' +
    'WARNING: DO NOT MOVE OR RENAME THESE FILES!\n' +
    '         Certbot expects these files to remain in this location in order\n' +
    '         to function properly!\n\n' +
    'We recommend not moving these files. For more information, see the Certbot\n' +
    'User Guide at https://certbot.eff.org/docs/using.html#where-are-my-certificates.\n'
  );
}
