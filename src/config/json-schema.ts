/**
 * The JSON Schema of config.json, generated from the one description (`z.toJSONSchema`) and shipped as
 * config.schema.json, so that an editor completes, documents and checks the keys of a config.json that
 * starts with `"$schema": "./config.schema.json"`. Regenerate it with `npm run config-schema`.
 */
import { writeFile } from 'node:fs/promises';
import * as z from 'zod';
import { configSchema } from './schema.js';

/** config.json: the keys of `Config`, every one optional (defaults shown), and `$schema`. */
const configFile = configSchema
  .extend({ $schema: z.string().optional().meta({ description: 'This file\'s JSON Schema, for editors: "./config.schema.json". Ignored by the broker.' }) })
  .meta({
    title: 'mqtt-acme-broker config.json',
    description:
      'Settings of mqtt-acme-broker (--config FILE). Every key is optional; an empty string means "not set"; relative paths are relative to this file. ' +
      'mosquitto.conf (-c FILE) and the environment override these keys.',
  });

export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(configFile, { io: 'input' });
}

/** The text of config.schema.json. */
export function renderConfigJsonSchema(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}

export async function writeConfigJsonSchema(file: string): Promise<void> {
  await writeFile(file, renderConfigJsonSchema());
}
