/**
 * Offline validation of k8s/ with outside tools: yamllint (strict, default rules), the Kubernetes OpenAPI
 * schema (kubernetes-models), the Kubernetes API types (kubernetes-types + tsc, which also catches unknown
 * and misspelled fields), and `kubectl kustomize`. Each check is also shown to reject a broken input, so
 * that a check which silently stopped checking fails here.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service } from 'kubernetes-models/v1';
import {
  K8S_DIR,
  REPO_DIR,
  SECRET_EXAMPLE,
  findKubectl,
  kubectlKustomize,
  loadManifestFile,
  loadSecretExample,
  parseYamlDocuments,
  renderKustomization,
  withLegacyBlock,
  yamlFiles,
  type K8sObject,
} from '../support/k8s-manifests.js';

const tmp = mkdtempSync(join(tmpdir(), 'k8s-validate-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Everything that gets applied, plus the Secret the user creates. */
function allObjects(): K8sObject[] {
  return [...renderKustomization(), loadSecretExample()];
}

function yamllint(dir: string): { status: number | null; output: string } {
  // `-d default`: yamllint's own default rules, whatever .yamllint lies around; `-s`: warnings fail too.
  const run = spawnSync('yamllint', ['-s', '-f', 'parsable', '-d', 'default', dir], {
    encoding: 'utf8',
  });
  if (run.error) throw new Error(`yamllint could not run (apt-get install yamllint): ${run.error.message}`);
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

describe('k8s/ with yamllint', () => {
  it('passes yamllint with its default rules (80 columns included) in strict mode', () => {
    const { status, output } = yamllint(K8S_DIR);
    expect(output).toBe('');
    expect(status).toBe(0);
  });

  it('passes it with the commented LEGACY port of the Service switched on as well', () => {
    const dir = mkdtempSync(join(tmp, 'yamllint-legacy-'));
    const text = readFileSync(join(K8S_DIR, 'service-nodeport.yaml'), 'utf8');
    const switched = withLegacyBlock(text, (l) => /^(- |\s+)[a-zA-Z]+: \S+$/.test(l));
    expect(switched).not.toBe(text);
    writeFileSync(join(dir, 'service-nodeport.yaml'), switched);
    const { status, output } = yamllint(dir);
    expect(output).toBe('');
    expect(status).toBe(0);
  });

  it('fails strict yamllint on a manifest with a warning-level fault (control)', () => {
    const dir = mkdtempSync(join(tmp, 'yamllint-'));
    copyFileSync(join(K8S_DIR, 'namespace.yaml'), join(dir, 'ok.yaml'));
    // No document start marker: only a warning in yamllint's default rules, an error under -s.
    writeFileSync(join(dir, 'bad.yaml'), 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: mqtt\n');
    const { status, output } = yamllint(dir);
    expect(status).not.toBe(0);
    expect(output).toMatch(/bad\.yaml:1:1: \[warning\] missing document start/);
    expect(output).not.toContain('ok.yaml');
  });
});

describe('k8s/ against the Kubernetes schema (kubernetes-models)', () => {
  const models: Record<string, new (data: never) => { validate(): void }> = {
    'apps/v1 Deployment': Deployment,
    'v1 ConfigMap': ConfigMap,
    'v1 Namespace': Namespace,
    'v1 PersistentVolumeClaim': PersistentVolumeClaim,
    'v1 Secret': Secret,
    'v1 Service': Service,
  };
  const validate = (o: K8sObject): void => {
    const Model = models[`${o.apiVersion} ${o.kind}`];
    if (Model === undefined) throw new Error(`no schema here for ${o.apiVersion} ${o.kind}: add it to the test`);
    new Model(structuredClone(o) as never).validate();
  };

  it('validates every object that is applied, and the example Secret', () => {
    const objects = allObjects();
    expect(objects.map((o) => o.kind).sort()).toEqual(
      ['ConfigMap', 'ConfigMap', 'Deployment', 'Namespace', 'PersistentVolumeClaim', 'Secret', 'Service'],
    );
    for (const o of objects) expect(() => validate(o), `${o.kind} ${o.metadata.name}`).not.toThrow();
  });

  it('validates the Service with its LEGACY port switched on', () => {
    const text = readFileSync(join(K8S_DIR, 'service-nodeport.yaml'), 'utf8');
    const [service] = parseYamlDocuments(withLegacyBlock(text, (l) => /^(- |\s+)[a-zA-Z]+: \S+$/.test(l)), 'service');
    const object = service as K8sObject & { spec: { ports: unknown[] } };
    expect(object.spec.ports).toHaveLength(2);
    expect(() => validate(object)).not.toThrow();
  });

  it('rejects a Deployment with a wrongly typed field or a missing required one (control)', () => {
    const deployment = renderKustomization().find((o) => o.kind === 'Deployment')!;
    const wrongType = structuredClone(deployment) as unknown as {
      spec: { template: { spec: { containers: Array<{ ports: Array<{ containerPort: unknown }> }> } } };
    };
    wrongType.spec.template.spec.containers[0]!.ports[0]!.containerPort = 'mqtts';
    expect(() => validate(wrongType as unknown as K8sObject)).toThrow(/containerPort/);

    const missing = structuredClone(deployment) as unknown as { spec: { selector?: unknown } };
    delete missing.spec.selector;
    expect(() => validate(missing as unknown as K8sObject)).toThrow(/selector/);
  });
});

describe('k8s/ against the Kubernetes API types (kubernetes-types + tsc)', () => {
  const TYPES: Record<string, [module: string, type: string]> = {
    'apps/v1 Deployment': ['kubernetes-types/apps/v1', 'Deployment'],
    'v1 ConfigMap': ['kubernetes-types/core/v1', 'ConfigMap'],
    'v1 Namespace': ['kubernetes-types/core/v1', 'Namespace'],
    'v1 PersistentVolumeClaim': ['kubernetes-types/core/v1', 'PersistentVolumeClaim'],
    'v1 Secret': ['kubernetes-types/core/v1', 'Secret'],
    'v1 Service': ['kubernetes-types/core/v1', 'Service'],
  };

  /** kubernetes-types types quantities as strings; YAML allows numbers (`cpu: 0.1`). */
  function stringifyQuantities(value: unknown, key = ''): unknown {
    if (Array.isArray(value)) return value.map((v) => stringifyQuantities(v));
    if (value !== null && typeof value === 'object') {
      return Object.fromEntries(
        Object.entries(value).map(([k, v]) => {
          const isQuantities = (k === 'requests' || k === 'limits') && key === 'resources';
          if (isQuantities && v !== null && typeof v === 'object') {
            return [k, Object.fromEntries(Object.entries(v).map(([q, n]) => [q, String(n)]))];
          }
          if (k === 'sizeLimit') return [k, String(v)];
          return [k, stringifyQuantities(v, k)];
        }),
      );
    }
    return value;
  }

  function source(objects: readonly K8sObject[]): string {
    const lines = objects.map((o, i) => {
      const t = TYPES[`${o.apiVersion} ${o.kind}`];
      if (t === undefined) throw new Error(`no type here for ${o.apiVersion} ${o.kind}: add it to the test`);
      const literal = JSON.stringify(stringifyQuantities(o), null, 2);
      const type = `import('${t[0]}').${t[1]}`;
      return `// ${o.kind} ${o.metadata.name}\nexport const object${i} = ${literal} satisfies ${type};\n`;
    });
    return lines.join('\n');
  }

  it('type-checks every object with tsc --strict, and tsc rejects misspelled fields (control)', () => {
    const dir = mkdtempSync(join(tmp, 'tsc-'));
    const objects = allObjects();
    writeFileSync(join(dir, 'manifests.ts'), source(objects));

    const broken = structuredClone(objects);
    const deployment = broken.find((o) => o.kind === 'Deployment') as unknown as {
      spec: { template: { spec: { containers: Array<Record<string, unknown>> } } };
    };
    const container = deployment.spec.template.spec.containers[0]!;
    container.livenessprobe = container.livenessProbe; // misspelled: Kubernetes would silently drop it
    const service = broken.find((o) => o.kind === 'Service') as unknown as {
      spec: { ports: Array<Record<string, unknown>> };
    };
    service.spec.ports[0]!.targetport = 8883;
    writeFileSync(join(dir, 'broken.ts'), source(broken));

    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          target: 'ES2022',
          module: 'ESNext',
          moduleResolution: 'Bundler',
          types: [],
          skipLibCheck: true,
          paths: { 'kubernetes-types/*': [join(REPO_DIR, 'node_modules/kubernetes-types/*')] },
        },
        files: ['manifests.ts', 'broken.ts'],
      }),
    );
    const tsc = join(REPO_DIR, 'node_modules/typescript/bin/tsc');
    const run = spawnSync(process.execPath, [tsc, '-p', dir, '--pretty', 'false'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 120_000,
    });
    const output = `${run.stdout}${run.stderr}`;
    const errorLines = output.split('\n').filter((l) => /error TS\d+/.test(l));
    // The real manifests: no error at all.
    expect(errorLines.filter((l) => !l.startsWith('broken.ts'))).toEqual([]);
    // The control: both misspellings caught, nothing else.
    expect(errorLines.some((l) => /livenessprobe.* does not exist in type 'Container'/.test(l))).toBe(true);
    expect(errorLines.some((l) => /targetport.* does not exist in type 'ServicePort'/.test(l))).toBe(true);
    expect(errorLines).toHaveLength(2);
  });
});

describe('k8s/ with kubectl kustomize', () => {
  const kubectl = findKubectl();

  it.skipIf(kubectl === undefined)(
    'renders, to exactly the objects the offline checks look at (skipped only when no kubectl is on PATH)',
    () => {
      const key = (o: K8sObject): string => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
      const sort = (list: K8sObject[]): K8sObject[] => [...list].sort((a, b) => key(a).localeCompare(key(b)));
      const rendered = kubectlKustomize(kubectl!);
      expect(sort(rendered)).toEqual(sort(renderKustomization()));
    },
  );

  it.skipIf(kubectl === undefined)(
    'puts the image set in kustomization.yaml (as `kustomize edit set image` does) into the Deployment, and nothing else changes',
    () => {
      const copy = mkdtempSync(join(tmp, 'kustomize-image-'));
      cpSync(K8S_DIR, copy, { recursive: true });
      const file = join(copy, 'kustomization.yaml');
      const doc = parseDocument(readFileSync(file, 'utf8'));
      // `kustomize edit set image mqtt-acme-broker=registry.local:5000/team/mqtt-acme-broker:1.2.3`
      const entry = (doc.get('images') as { items: Array<{ get(k: string): unknown; set(k: string, v: string): void }> })
        .items.find((i) => i.get('name') === 'mqtt-acme-broker');
      expect(entry, 'an images: entry for the name deployment.yaml uses').toBeDefined();
      entry!.set('newName', 'registry.local:5000/team/mqtt-acme-broker');
      entry!.set('newTag', '1.2.3');
      writeFileSync(file, doc.toString());

      type Pod = { spec: { template: { spec: { containers: Array<{ image: string }> } } } };
      const imageOf = (objects: K8sObject[]): string =>
        (objects.find((o) => o.kind === 'Deployment') as unknown as Pod).spec.template.spec.containers[0]!.image;
      const overridden = kubectlKustomize(kubectl!, copy);
      expect(imageOf(overridden)).toBe('registry.local:5000/team/mqtt-acme-broker:1.2.3');
      const original = kubectlKustomize(kubectl!);
      expect(imageOf(original)).toBe('registry.example.com/mqtt-acme-broker:0.1.0');
      // Apart from the image, the same objects.
      const withoutImage = (objects: K8sObject[]): K8sObject[] => {
        const clone = structuredClone(objects);
        for (const o of clone) if (o.kind === 'Deployment') (o as unknown as Pod).spec.template.spec.containers[0]!.image = '';
        return clone;
      };
      expect(withoutImage(overridden)).toEqual(withoutImage(original));
    },
  );

  it('keeps the example Secret out of what kubectl apply -k sends, and every manifest file in it', () => {
    const applied = renderKustomization();
    expect(applied.some((o) => o.kind === 'Secret')).toBe(false);
    const files = yamlFiles().filter((f) => f !== 'kustomization.yaml' && f !== SECRET_EXAMPLE);
    const fromFiles = files.flatMap((f) => loadManifestFile(f)).map((o) => `${o.kind}/${o.metadata.name}`);
    const appliedNames = applied.map((o) => `${o.kind}/${o.metadata.name}`);
    for (const name of fromFiles) expect(appliedNames, `${name} is not in kustomization.yaml`).toContain(name);
  });
});
