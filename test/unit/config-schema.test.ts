/**
 * config.schema.json is generated from the one description of the configuration (src/config/schema.ts) and
 * shipped; config.example.json points at it with "$schema", so editors check and document config.json.
 */
import { describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { renderConfigJsonSchema } from '../../src/config/json-schema.js';
import { KEYS } from '../../src/config/schema.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

async function committed(): Promise<string> {
  return readFile(join(REPO, 'config.schema.json'), 'utf8');
}

async function validator() {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  return ajv.compile(JSON.parse(await committed()) as object);
}

describe('config.schema.json', () => {
  it('is the schema src/config/schema.ts describes', async () => {
    const generated = renderConfigJsonSchema();
    const text = await committed();
    if (text !== generated) {
      expect.fail('config.schema.json is not what src/config/schema.ts describes: run `npm run config-schema` and commit config.schema.json');
    }
  });

  it('is shipped in the package, and config.example.json points at it', async () => {
    const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { files: string[] };
    expect(pkg.files).toContain('config.schema.json');
    const example = JSON.parse(await readFile(join(REPO, 'config.example.json'), 'utf8')) as Record<string, unknown>;
    expect(example.$schema).toBe('./config.schema.json');
  });

  it('accepts config.example.json as a JSON Schema validator (an editor) reads it', async () => {
    const validate = await validator();
    const example = JSON.parse(await readFile(join(REPO, 'config.example.json'), 'utf8')) as unknown;
    expect(validate(example), JSON.stringify(validate.errors)).toBe(true);
  });

  it.each([
    [{ listner: [] }, 'additionalProperties'],
    [{ listeners: [{ host: 'x' }] }, 'required'],
    [{ listeners: [{ port: 8883, tlsVersion: 'tlsv1.4' }] }, 'enum'],
    [{ maxKeepalive: 0 }, 'minimum'],
    [{ ops: { port: 'http' } }, 'type'],
    [{ acme: { cloudflare: { token: 'x' } } }, 'additionalProperties'],
  ])('refuses %j as the loader does (%s)', async (data, keyword) => {
    const validate = await validator();
    expect(validate(data)).toBe(false);
    expect(validate.errors?.map((e) => e.keyword)).toContain(keyword);
  });

  it('documents every key, with its default where it has a plain one', () => {
    const schema = JSON.parse(renderConfigJsonSchema()) as { properties: Record<string, Record<string, unknown>> };
    for (const key of KEYS) {
      let node: Record<string, unknown> | undefined = { properties: schema.properties };
      for (const part of key.path.split('.')) {
        const [name, array] = part.endsWith('[]') ? [part.slice(0, -2), true] : [part, false];
        node = (node?.properties as Record<string, Record<string, unknown>> | undefined)?.[name];
        if (array) node = node?.items as Record<string, unknown> | undefined;
      }
      expect(node, key.path).toBeDefined();
      expect(node?.description, key.path).toBe(key.meta.description);
      if (key.default !== undefined && key.kind !== 'listeners') expect(node?.default, key.path).toEqual(key.default);
    }
  });
});
