/**
 * Loads the manifests in k8s/ for the offline checks: the YAML files as they are, and the objects that
 * `kubectl apply -k k8s/` would send, rendered here from kustomization.yaml (resources, namespace,
 * configMapGenerator, images) so that every check runs without kubectl; a test compares this rendering with
 * `kubectl kustomize` where a kubectl exists.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import type { ConfigMap, Secret } from 'kubernetes-types/core/v1.js';

export const REPO_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const K8S_DIR = join(REPO_DIR, 'k8s');
export const SECRET_EXAMPLE = 'secret.example.yaml';

/** Any Kubernetes object, as parsed. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [key: string]: unknown };
  [key: string]: unknown;
}

/** Kinds of the core API that are not namespaced, among those a kustomization like ours may hold. */
const CLUSTER_SCOPED = new Set(['Namespace', 'PersistentVolume', 'StorageClass', 'ClusterRole', 'ClusterRoleBinding']);

/** Every YAML document of a text; throws on a syntax error, naming the source. */
export function parseYamlDocuments(text: string, source: string): unknown[] {
  const docs = parseAllDocuments(text, { prettyErrors: true });
  const out: unknown[] = [];
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

function asObject(value: unknown, source: string): K8sObject {
  const o = value as Partial<K8sObject> | null;
  if (typeof o !== 'object' || o === null || typeof o.kind !== 'string' || typeof o.apiVersion !== 'string') {
    throw new Error(`${source}: not a Kubernetes object (kind and apiVersion are required)`);
  }
  if (typeof o.metadata?.name !== 'string') throw new Error(`${source}: ${o.kind} without metadata.name`);
  return o as K8sObject;
}

export function loadManifestFile(file: string): K8sObject[] {
  const path = join(K8S_DIR, file);
  return parseYamlDocuments(readFileSync(path, 'utf8'), `k8s/${file}`).map((d) => asObject(d, `k8s/${file}`));
}

/** The YAML files of k8s/ (not the yamllint config). */
export function yamlFiles(): string[] {
  return readdirSync(K8S_DIR)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort();
}

export interface Kustomization {
  apiVersion?: string;
  kind?: string;
  namespace?: string;
  resources?: string[];
  configMapGenerator?: Array<{ name: string; files?: string[]; literals?: string[] }>;
  generatorOptions?: { disableNameSuffixHash?: boolean };
  images?: KustomizeImage[];
  [key: string]: unknown;
}

/** An `images:` entry: containers whose image is `name` (with any tag or digest) get the new name/tag/digest. */
export interface KustomizeImage {
  name: string;
  newName?: string;
  newTag?: string;
  digest?: string;
}

const SUPPORTED_KUSTOMIZATION_KEYS = new Set([
  'apiVersion', 'kind', 'namespace', 'resources', 'configMapGenerator', 'generatorOptions', 'images',
]);

/** An image reference split into its name and its `:tag` / `@digest` suffix. */
export function splitImage(image: string): { name: string; tag?: string; digest?: string } {
  const at = image.indexOf('@');
  const digest = at >= 0 ? image.slice(at + 1) : undefined;
  const rest = at >= 0 ? image.slice(0, at) : image;
  const colon = rest.lastIndexOf(':');
  const hasTag = colon > rest.lastIndexOf('/');
  return {
    name: hasTag ? rest.slice(0, colon) : rest,
    ...(hasTag ? { tag: rest.slice(colon + 1) } : {}),
    ...(digest === undefined ? {} : { digest }),
  };
}

/** kustomize's image transformer, for the containers and init containers of any pod template or pod. */
function transformImages(value: unknown, images: readonly KustomizeImage[]): void {
  if (Array.isArray(value)) {
    for (const v of value) transformImages(v, images);
    return;
  }
  if (value === null || typeof value !== 'object') return;
  for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
    if ((key === 'containers' || key === 'initContainers') && Array.isArray(child)) {
      for (const container of child as Array<{ image?: unknown }>) {
        if (typeof container.image !== 'string') continue;
        const current = splitImage(container.image);
        const rule = images.find((i) => i.name === current.name);
        if (rule === undefined) continue;
        const name = rule.newName ?? current.name;
        const tag = rule.newTag ?? (rule.digest === undefined ? current.tag : undefined);
        const digest = rule.digest ?? (rule.newTag === undefined ? current.digest : undefined);
        container.image = `${name}${tag === undefined ? '' : `:${tag}`}${digest === undefined ? '' : `@${digest}`}`;
      }
    } else {
      transformImages(child, images);
    }
  }
}

export function loadKustomization(): Kustomization {
  const [doc, ...rest] = parseYamlDocuments(readFileSync(join(K8S_DIR, 'kustomization.yaml'), 'utf8'), 'kustomization');
  if (doc === undefined || rest.length > 0) throw new Error('k8s/kustomization.yaml must hold exactly one document');
  return doc as Kustomization;
}

/**
 * What `kubectl kustomize k8s/` gives, for the plain kustomization we keep (which Debian's kubectl 1.20 and
 * its old kustomize render too). Refuses anything it does not implement rather than rendering it wrongly.
 */
export function renderKustomization(): K8sObject[] {
  const k = loadKustomization();
  for (const key of Object.keys(k)) {
    if (!SUPPORTED_KUSTOMIZATION_KEYS.has(key)) {
      throw new Error(`kustomization.yaml uses "${key}", which this renderer (and old kustomize) does not know`);
    }
  }
  const objects: K8sObject[] = [];
  for (const file of k.resources ?? []) objects.push(...loadManifestFile(file));
  for (const gen of k.configMapGenerator ?? []) {
    if (k.generatorOptions?.disableNameSuffixHash !== true) {
      throw new Error('configMapGenerator with a name hash suffix: render with kubectl kustomize instead');
    }
    const data: Record<string, string> = {};
    for (const entry of gen.files ?? []) {
      const [key, file] = entry.includes('=') ? entry.split('=', 2) as [string, string] : [basename(entry), entry];
      data[key] = readFileSync(join(K8S_DIR, file), 'utf8');
    }
    for (const literal of gen.literals ?? []) {
      const at = literal.indexOf('=');
      data[literal.slice(0, at)] = literal.slice(at + 1);
    }
    const cm: ConfigMap = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: gen.name }, data };
    objects.push(cm as K8sObject);
  }
  if (k.namespace !== undefined) {
    for (const o of objects) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
  }
  if (k.images !== undefined) transformImages(objects, k.images);
  return objects;
}

/** The Secret the Deployment expects to exist (created by the user, shaped as in secret.example.yaml). */
export function loadSecretExample(): Secret & K8sObject {
  const [secret, ...rest] = loadManifestFile(SECRET_EXAMPLE);
  if (secret?.kind !== 'Secret' || rest.length > 0) throw new Error(`k8s/${SECRET_EXAMPLE} must hold one Secret`);
  return secret as Secret & K8sObject;
}

/** `KUBECTL` from the environment (e.g. an unpacked Debian kubectl 1.20), else `kubectl` on PATH. */
export function findKubectl(): string | undefined {
  const fromEnv = process.env.KUBECTL;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir !== '' && existsSync(join(dir, 'kubectl'))) return join(dir, 'kubectl');
  }
  return undefined;
}

/** `kubectl kustomize DIR` (default: k8s/), parsed. */
export function kubectlKustomize(kubectl: string, dir = K8S_DIR): K8sObject[] {
  const run = spawnSync(kubectl, ['kustomize', dir], { encoding: 'utf8', timeout: 60_000 });
  if (run.error) throw run.error;
  if (run.status !== 0) throw new Error(`kubectl kustomize failed (${run.status}): ${run.stderr}`);
  return parseYamlDocuments(run.stdout, 'kubectl kustomize').map((d) => asObject(d, 'kubectl kustomize'));
}

export function byKind<T = K8sObject>(objects: readonly K8sObject[], kind: string): Array<T & K8sObject> {
  return objects.filter((o) => o.kind === kind) as Array<T & K8sObject>;
}

export function only<T = K8sObject>(objects: readonly K8sObject[], kind: string): T & K8sObject {
  const found = byKind<T>(objects, kind);
  if (found.length !== 1) throw new Error(`expected exactly one ${kind}, found ${found.length}`);
  return found[0]!;
}

/** Kubernetes resource quantity to a number (bytes for memory, cores for CPU). */
export function quantity(value: string | number): number {
  if (typeof value === 'number') return value;
  const m = /^([0-9.]+)([a-zA-Z]*)$/.exec(value.trim());
  if (!m) throw new Error(`not a quantity: ${value}`);
  const factors: Record<string, number> = {
    '': 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40,
  };
  const factor = factors[m[2]!];
  if (factor === undefined) throw new Error(`unknown quantity suffix in ${value}`);
  return Number(m[1]) * factor;
}

/**
 * A file of k8s/ with its LEGACY block switched on: the comment lines right after the line holding
 * `LEGACY` that are commented-out content (`# listener 8884`, `#   port: 8884`), uncommented. Explanatory
 * comment lines (`# TLS 1.0 ...`) stay; they are recognised by `isContent`.
 */
export function withLegacyBlock(text: string, isContent: (uncommented: string) => boolean): string {
  const lines = text.split('\n');
  const marker = lines.findIndex((l) => l.includes('LEGACY'));
  if (marker < 0) throw new Error('no LEGACY block');
  let switched = 0;
  for (let i = marker + 1; i < lines.length; i++) {
    const m = /^(\s*)# ?(.*)$/.exec(lines[i]!);
    if (m === null) break; // the block ends at the first line that is not a comment
    if (isContent(m[2]!)) {
      lines[i] = `${m[1]!}${m[2]!}`;
      switched++;
    }
  }
  if (switched === 0) throw new Error('the LEGACY block has no commented-out content');
  return lines.join('\n');
}
