/**
 * What k8s/ must say, checked on the objects `kubectl apply -k k8s/` sends (see test/support/k8s-manifests):
 * drop-in compatibility with the mosquitto + certbot recipe (names, ports, Secret keys, env names, volume
 * paths), internal consistency (selectors, references, ports, probes), and the choices made for the broker.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Deployment } from 'kubernetes-types/apps/v1.js';
import type {
  ConfigMap,
  Container,
  EnvVar,
  Namespace,
  PersistentVolumeClaim,
  PodSpec,
  Probe,
  Service,
  VolumeMount,
} from 'kubernetes-types/core/v1.js';
import { ENV_VARIABLES, SECRET_VARIABLES } from '../../src/config/env.js';
import { loadConfig } from '../../src/config/load.js';
import { parseMosquittoConf } from '../../src/config/mosquitto-conf.js';
import { defaultConfig, type Config } from '../../src/config/schema.js';
import { isManagedListener } from '../../src/config/managed.js';
import { parsePasswd } from '../../src/auth/passwd.js';
import {
  K8S_DIR,
  SECRET_EXAMPLE,
  byKind,
  loadKustomization,
  loadManifestFile,
  loadSecretExample,
  only,
  parseYamlDocuments,
  quantity,
  renderKustomization,
  splitImage,
  withLegacyBlock,
} from '../support/k8s-manifests.js';

const objects = renderKustomization();
const deployment = only<Deployment>(objects, 'Deployment');
const pod = deployment.spec!.template.spec! as PodSpec;
const container = pod.containers[0]! as Container;
const service = only<Service>(objects, 'Service');
const pvc = only<PersistentVolumeClaim>(objects, 'PersistentVolumeClaim');
const configMaps = byKind<ConfigMap>(objects, 'ConfigMap');
const secret = loadSecretExample();
const secretText = readFileSync(join(K8S_DIR, SECRET_EXAMPLE), 'utf8');
const deploymentText = readFileSync(join(K8S_DIR, 'deployment.yaml'), 'utf8');
const tmp = mkdtempSync(join(tmpdir(), 'k8s-manifests-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function env(name: string): EnvVar | undefined {
  return container.env?.find((e) => e.name === name);
}

function mountAt(path: string): VolumeMount {
  const mount = container.volumeMounts?.find((m) => m.mountPath === path);
  if (mount === undefined) throw new Error(`nothing is mounted at ${path}`);
  return mount;
}

function volumeOf(mount: VolumeMount) {
  const volume = pod.volumes?.find((v) => v.name === mount.name);
  if (volume === undefined) throw new Error(`mount ${mount.mountPath} names the undeclared volume ${mount.name}`);
  return volume;
}

function containerPort(ref: string | number | undefined): number | undefined {
  if (typeof ref === 'number') return container.ports?.find((p) => p.containerPort === ref)?.containerPort;
  return container.ports?.find((p) => p.name === ref)?.containerPort;
}

function probePort(probe: Probe | undefined): number | undefined {
  return containerPort(probe?.httpGet?.port);
}

/** The ConfigMaps a volume takes its files from: its configMap, or the configMap sources of a projected one. */
function configMapsOf(mount: VolumeMount): ConfigMap[] {
  const volume = volumeOf(mount);
  const names = volume.configMap
    ? [volume.configMap.name]
    : (volume.projected?.sources ?? []).map((s) => s.configMap?.name);
  return names.map((name) => {
    const cm = configMaps.find((c) => c.metadata!.name === name);
    if (cm === undefined) throw new Error(`volume ${volume.name} names the ConfigMap ${name}, which is not generated`);
    return cm;
  });
}

/** The files the pod sees in /mosquitto/conf: file name -> content (a name in two ConfigMaps is an error). */
function confDirectory(): Map<string, string> {
  const files = new Map<string, string>();
  for (const cm of configMapsOf(mountAt('/mosquitto/conf'))) {
    for (const [key, value] of Object.entries(cm.data ?? {})) {
      if (files.has(key)) throw new Error(`${key} is in two ConfigMaps of /mosquitto/conf`);
      files.set(key, value);
    }
  }
  return files;
}

/** The environment of the container, Secret references resolved from the example Secret (as created). */
function podEnv(): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const e of container.env ?? []) {
    const ref = e.valueFrom?.secretKeyRef;
    if (ref === undefined) out[e.name] = e.value ?? '';
    else if (secret.stringData?.[ref.key] !== undefined) out[e.name] = secret.stringData[ref.key];
    else if (ref.optional !== true) throw new Error(`${e.name}: the Secret has no key ${ref.key}`);
  }
  return out;
}

/** The configuration the broker in this pod loads from a given mosquitto.conf text and the pod's env. */
async function brokerConfig(mosquittoConf: string): Promise<{ config: Config; warnings: string[] }> {
  const dir = mkdtempSync(join(tmp, 'conf-'));
  writeFileSync(join(dir, 'mosquitto.conf'), mosquittoConf);
  const { config, warnings } = await loadConfig({
    mosquittoConf: join(dir, 'mosquitto.conf'),
    env: podEnv(),
    cwd: '/',
    defaults: { mosquittoConf: null, passwordFile: null },
  });
  return { config, warnings };
}

const LEGACY_DIRECTIVE = /^(listener|certfile|keyfile|tls_version|ciphers) \S/;
const LEGACY_SERVICE_FIELD = /^(- |\s+)[a-zA-Z]+: \S+$/;

/** Docker's image reference grammar (distribution/reference), lower-case repository path, optional tag/digest. */
const IMAGE_REFERENCE =
  /^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;

const matches = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean =>
  selector !== undefined &&
  Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);

describe('k8s/: the recipe it replaces, kept', () => {
  it('puts everything in the namespace mqtt, and creates it', () => {
    expect(loadKustomization().namespace).toBe('mqtt');
    expect(only<Namespace>(objects, 'Namespace').metadata!.name).toBe('mqtt');
    for (const o of objects.filter((o) => o.kind !== 'Namespace')) {
      expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe('mqtt');
    }
    expect(secret.metadata!.namespace).toBe('mqtt');
  });

  it('claims a 1Gi ReadWriteOnce volume named mqtt-volumeclaim, mounted at /etc/letsencrypt as a whole', () => {
    expect(pvc.metadata!.name).toBe('mqtt-volumeclaim');
    expect(pvc.spec!.accessModes).toEqual(['ReadWriteOnce']);
    expect(quantity(pvc.spec!.resources!.requests!.storage!)).toBe(2 ** 30);
    const mount = mountAt('/etc/letsencrypt');
    expect(mount.subPath).toBeUndefined();
    expect(mount.readOnly ?? false).toBe(false);
    expect(volumeOf(mount).persistentVolumeClaim?.claimName).toBe('mqtt-volumeclaim');
  });

  it('exposes MQTT over TLS on NodePort 30883 -> 8883, port name mqtts, to the broker pods', () => {
    expect(service.metadata!.name).toBe('mqtt-nodeport');
    expect(service.spec!.type).toBe('NodePort');
    expect(service.spec!.ports).toHaveLength(1);
    const port = service.spec!.ports![0]!;
    expect(port).toMatchObject({ name: 'mqtts', port: 8883, targetPort: 8883, nodePort: 30883 });
    expect(port.protocol ?? 'TCP').toBe('TCP');
    // The Service reaches the container port named mqtts, 8883.
    expect(containerPort(port.targetPort)).toBe(8883);
    expect(containerPort('mqtts')).toBe(8883);
    expect(matches(service.spec!.selector, deployment.spec!.template.metadata!.labels)).toBe(true);
  });

  it('reads the Secret mqtt-credentials with the seed keys, mapped to the seed env names', () => {
    const ref = (name: string) => env(name)?.valueFrom?.secretKeyRef;
    expect(ref('EMAIL')).toMatchObject({ name: 'mqtt-credentials', key: 'letsencrypt-email.secret' });
    expect(ref('EMAIL')?.optional ?? false).toBe(false);
    expect(ref('CLOUDFLARE_EMAIL')).toMatchObject({ name: 'mqtt-credentials', key: 'cloudflare-email.secret' });
    expect(ref('CLOUDFLARE_KEY')).toMatchObject({ name: 'mqtt-credentials', key: 'cloudflare-key.secret' });
    expect(ref('CLOUDFLARE_API_TOKEN')).toMatchObject({
      name: 'mqtt-credentials',
      key: 'cloudflare-api-token.secret',
      optional: true,
    });
    expect(env('DOMAIN')?.value).toBe('*.example.com');
  });

  it('offers TESTCERT (staging) as a commented env entry, as the seed did', () => {
    expect(env('TESTCERT')).toBeUndefined();
    expect(deploymentText).toMatch(/^ +# - name: TESTCERT\n +# {3}value: "true"$/m);
  });

  it('generates the recipe\'s ConfigMaps mosquitto.conf and passwd, under fixed names, one file each', () => {
    expect(configMaps.map((c) => [c.metadata!.name, Object.keys(c.data ?? {})])).toEqual([
      ['mosquitto.conf', ['mosquitto.conf']],
      ['passwd', ['passwd']],
    ]);
    // Fixed names: an edited passwd updates the mounted ConfigMap instead of rolling the pod.
    expect(loadKustomization().generatorOptions?.disableNameSuffixHash).toBe(true);
  });

  it('mounts both at /mosquitto/conf with ONE projected volume, no subPath (atomic swap, hot reload)', () => {
    const mount = mountAt('/mosquitto/conf');
    expect(mount.subPath).toBeUndefined();
    expect(mount.subPathExpr).toBeUndefined();
    expect(mount.readOnly).toBe(true);
    const volume = volumeOf(mount);
    expect(volume.configMap).toBeUndefined();
    expect(volume.projected?.sources?.map((s) => s.configMap?.name)).toEqual(['mosquitto.conf', 'passwd']);
    for (const source of volume.projected!.sources!) {
      // Every key, under its own name (items could rename or drop one); a missing ConfigMap fails the pod.
      expect(source.configMap?.items).toBeUndefined();
      expect(source.configMap?.optional ?? false).toBe(false);
    }
    expect([...confDirectory().keys()].sort()).toEqual(['mosquitto.conf', 'passwd']);
    // Nothing else is mounted into /mosquitto/conf (a subPath file mount there would never update).
    const inside = (container.volumeMounts ?? []).filter((m) => m.mountPath.startsWith('/mosquitto/conf'));
    expect(inside).toEqual([mount]);
  });

  it('requests 50Mi of memory and 0.1 CPU, as the seed did', () => {
    const requests = container.resources!.requests!;
    expect(quantity(requests.memory!)).toBe(50 * 2 ** 20);
    expect(quantity(requests.cpu!)).toBeCloseTo(0.1);
    const limit = quantity(container.resources!.limits!.memory!);
    expect(limit).toBeGreaterThanOrEqual(128 * 2 ** 20); // room for the Cloudflare client during issuance
  });
});

describe('k8s/: consistent within itself', () => {
  it('selects its own pods', () => {
    expect(matches(deployment.spec!.selector.matchLabels, deployment.spec!.template.metadata!.labels)).toBe(true);
  });

  it('declares every volume it mounts, mounts every volume it declares, and each one exists', () => {
    const mounted = new Set((container.volumeMounts ?? []).map((m) => m.name));
    const declared = (pod.volumes ?? []).map((v) => v.name);
    expect([...mounted].sort()).toEqual([...declared].sort());
    for (const volume of pod.volumes ?? []) {
      if (volume.configMap) {
        expect(configMaps.map((c) => c.metadata!.name), volume.name).toContain(volume.configMap.name);
      } else if (volume.projected) {
        for (const source of volume.projected.sources ?? []) {
          expect(source.configMap, `${volume.name}: only ConfigMaps are projected`).toBeDefined();
          expect(configMaps.map((c) => c.metadata!.name), volume.name).toContain(source.configMap!.name);
        }
      } else if (volume.persistentVolumeClaim) {
        expect(byKind(objects, 'PersistentVolumeClaim').map((p) => p.metadata.name)).toContain(
          volume.persistentVolumeClaim.claimName,
        );
      } else {
        expect(volume.emptyDir, `${volume.name} is a ConfigMap, a projection, a PVC or an emptyDir`).toBeDefined();
      }
    }
  });

  it('references only Secret keys that exist in the example Secret, and the example holds every one', () => {
    const refs = (container.env ?? []).flatMap((e) => (e.valueFrom?.secretKeyRef ? [e.valueFrom.secretKeyRef] : []));
    expect(refs.length).toBe(4);
    for (const ref of refs) expect(ref.name).toBe(secret.metadata!.name);
    expect(Object.keys(secret.stringData ?? {}).sort()).toEqual(refs.map((r) => r.key).sort());
    // No other reference to a Secret or ConfigMap that could be missing.
    for (const e of container.env ?? []) expect(e.valueFrom?.configMapKeyRef).toBeUndefined();
    expect(container.envFrom).toBeUndefined();
  });

  it('sets only environment variables the broker reads', () => {
    const known = new Set<string>([...ENV_VARIABLES, ...SECRET_VARIABLES.map((v) => `${v}_FILE`)]);
    for (const e of container.env ?? []) expect(known.has(e.name), `${e.name} is read by the broker`).toBe(true);
  });

  it('has the container ports mqtts 8883 and ops 9883 (the broker default OPS_PORT), probes and scraping on ops', () => {
    expect(container.ports?.map((p) => [p.name, p.containerPort, p.protocol ?? 'TCP'])).toEqual([
      ['mqtts', 8883, 'TCP'],
      ['ops', 9883, 'TCP'],
    ]);
    expect(defaultConfig().ops.port).toBe(9883);
    expect(env('OPS_PORT')).toBeUndefined();
    expect(env('MQTTS_PORT')).toBeUndefined();
    for (const probe of [container.startupProbe, container.livenessProbe, container.readinessProbe]) {
      expect(probePort(probe)).toBe(9883);
    }
    const annotations = deployment.spec!.template.metadata!.annotations ?? {};
    expect(annotations['prometheus.io/port']).toBe('9883');
    expect(annotations['prometheus.io/path']).toBe('/metrics');
    expect(container.livenessProbe?.httpGet?.path).toBe('/healthz');
    expect(container.startupProbe?.httpGet?.path).toBe('/healthz');
    expect(container.readinessProbe?.httpGet?.path).toBe('/readyz');
  });

  it('gives a slow first start several minutes and does not kill the broker for a short hiccup', () => {
    const window = (p: Probe | undefined) => (p?.periodSeconds ?? 10) * (p?.failureThreshold ?? 3);
    expect(window(container.startupProbe)).toBeGreaterThanOrEqual(5 * 60);
    // The broker answers /healthz 503 for a 5 s event-loop stall; liveness must outlast one such answer.
    expect(window(container.livenessProbe)).toBeGreaterThanOrEqual(20);
    for (const probe of [container.startupProbe, container.livenessProbe, container.readinessProbe]) {
      expect(probe?.timeoutSeconds ?? 1).toBeGreaterThanOrEqual(2);
    }
  });

  it('configures mosquitto.conf so that it parses cleanly and agrees with the pod', () => {
    const mount = mountAt('/mosquitto/conf');
    const files = confDirectory();
    const { layer, warnings } = parseMosquittoConf(files.get('mosquitto.conf')!, { file: 'mosquitto.conf', cwd: '/' });
    expect(warnings).toEqual([]);
    // The one listener is the TLS one the Service targets.
    expect(layer.values.listeners?.map((l) => l.port)).toEqual([containerPort('mqtts')]);
    // password_file (and an acl_file, if any) are files of the mounted directory.
    for (const file of [layer.values.passwordFile, layer.values.aclFile]) {
      if (file === undefined) continue;
      expect(posix.dirname(file)).toBe(mount.mountPath);
      expect([...files.keys()]).toContain(posix.basename(file));
    }
    expect(layer.values.passwordFile).toBe('/mosquitto/conf/passwd');
    expect(layer.values.allowAnonymous).toBe(false);
    // Persistence is on and lands on the volume.
    expect(layer.values.persistence).toBe(true);
    expect(layer.values.persistenceLocation?.startsWith(`${mountAt('/mosquitto/data').mountPath}/`)).toBe(true);
  });

  it('ships a passwd placeholder that parses and holds no credentials', () => {
    const passwd = confDirectory().get('passwd')!;
    const { users, warnings } = parsePasswd(passwd, 'passwd');
    expect(warnings).toEqual([]);
    expect(users.size).toBe(0);
    expect(passwd).toContain('npx mqtt-acme-broker passwd k8s/passwd');
    expect(passwd).toContain('mosquitto_passwd');
    expect(passwd).not.toMatch(/OWNER|mqtt-config/);
  });

  it('runs, as the broker loads it (mosquitto.conf + the pod env + the example Secret), ACME on the Service\'s port and ops on the ops port', async () => {
    const { config, warnings } = await brokerConfig(confDirectory().get('mosquitto.conf')!);
    expect(warnings).toEqual([]);
    expect(config.acme.domains).toEqual(['*.example.com']);
    // One Cloudflare credential kind: the example Secret as it is, with empty values unset, is accepted.
    expect(config.acme.cloudflare.apiKey).toMatch(/REPLACE-ME/);
    expect(config.acme.cloudflare.apiToken).toBeUndefined();
    expect(config.acme.letsencryptDir).toBe(mountAt('/etc/letsencrypt').mountPath);
    expect(config.dataDir).toBe(mountAt('/mosquitto/data').mountPath);
    const target = service.spec!.ports![0]!.targetPort;
    expect(config.listeners.map((l) => [l.port, isManagedListener(config, l)])).toEqual([[target, true]]);
    expect(config.ops.port).toBe(containerPort('ops'));
  });
});

describe('k8s/: the TLS 1.0 listener for old cameras (issue 13), off unless the operator opts in', () => {
  const confText = readFileSync(join(K8S_DIR, 'mosquitto.conf'), 'utf8');
  const serviceText = readFileSync(join(K8S_DIR, 'service-nodeport.yaml'), 'utf8');

  it('is off as shipped: one listener, 8883, at the default minimum TLS version; one Service port', async () => {
    const { config } = await brokerConfig(confText);
    expect(config.listeners.map((l) => l.port)).toEqual([8883]);
    expect(config.listeners[0]!.tlsVersion).toBeUndefined();
    expect(service.spec!.ports!.map((p) => p.name)).toEqual(['mqtts']);
  });

  it('switched on, listens on 8884 with tls_version tlsv1 and serves the ACME certificate of DOMAIN there too', async () => {
    const { config, warnings } = await brokerConfig(withLegacyBlock(confText, (l) => LEGACY_DIRECTIVE.test(l)));
    expect(warnings).toEqual([]);
    const [modern, legacy] = config.listeners;
    expect(config.listeners).toHaveLength(2);
    expect(modern).toMatchObject({ port: 8883 });
    expect(modern!.tlsVersion).toBeUndefined();
    expect(isManagedListener(config, modern!)).toBe(true);
    // Its certfile/keyfile are the lineage's: the broker serves the managed certificate from the ACME source
    // itself (no file is read, so it works on a fresh volume, and renewals reach both listeners at once).
    expect(legacy).toMatchObject({ port: 8884, tlsVersion: 'tlsv1', acme: true });
    expect(isManagedListener(config, legacy!)).toBe(true);
    expect(legacy!.certfile).toBeUndefined();
    expect(legacy!.ciphers).toBeUndefined();
  });

  it('switched on, the Service adds NodePort 30884 -> 8884 named mqtts-legacy, next to an unchanged mqtts', () => {
    const [switched] = parseYamlDocuments(withLegacyBlock(serviceText, (l) => LEGACY_SERVICE_FIELD.test(l)), 'service');
    const ports = (switched as Service).spec!.ports!;
    expect(ports).toEqual([
      { name: 'mqtts-legacy', protocol: 'TCP', port: 8884, targetPort: 8884, nodePort: 30884 },
      service.spec!.ports![0],
    ]);
    expect(loadManifestFile('service-nodeport.yaml')[0]).toEqual(
      expect.objectContaining({ spec: expect.objectContaining({ ports: [service.spec!.ports![0]] }) }),
    );
  });
});

describe('k8s/: choices made for the broker', () => {
  it('keeps the broker state on the same volume (subPath mqtt-data) at DATA_DIR', () => {
    const data = mountAt('/mosquitto/data');
    expect(data.subPath).toBe('mqtt-data');
    expect(data.name).toBe(mountAt('/etc/letsencrypt').name);
    expect(env('DATA_DIR')?.value).toBe('/mosquitto/data');
  });

  it('runs one replica, replaced with Recreate (the volume is ReadWriteOnce)', () => {
    expect(deployment.spec!.replicas).toBe(1);
    expect(deployment.spec!.strategy?.type).toBe('Recreate');
  });

  it('leaves room for the 10 s shutdown', () => {
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(15);
  });

  it('runs as the image user 1000, non-root, with a read-only root filesystem and no privileges', () => {
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 1000,
      runAsGroup: 1000,
      fsGroup: 1000,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(container.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(container.securityContext?.privileged ?? false).toBe(false);
    expect(container.securityContext?.capabilities?.add).toBeUndefined();
    // With a read-only root, every place the broker writes is a volume.
    expect(volumeOf(mountAt('/tmp')).emptyDir).toBeDefined();
    for (const path of ['/tmp', '/mosquitto/data', '/etc/letsencrypt']) {
      expect(mountAt(path).readOnly ?? false).toBe(false);
    }
  });

  it('does not inject Service link variables (a Service named mqtts would set MQTTS_PORT=tcp://...)', () => {
    expect(pod.enableServiceLinks).toBe(false);
    expect(pod.automountServiceAccountToken).toBe(false);
  });

  it('names the image once, in kustomization.yaml, as a valid placeholder with a version tag', () => {
    // deployment.yaml says only the bare name the kustomization's images: entry replaces.
    const file = loadManifestFile('deployment.yaml')[0] as unknown as Deployment;
    expect(file.spec!.template.spec!.containers[0]!.image).toBe('mqtt-acme-broker');
    const images = loadKustomization().images ?? [];
    expect(images).toHaveLength(1);
    expect(images[0]).toMatchObject({ name: 'mqtt-acme-broker', newName: 'registry.example.com/mqtt-acme-broker' });
    const rendered = splitImage(container.image!);
    expect(rendered.name).toBe('registry.example.com/mqtt-acme-broker');
    expect(rendered.tag).toBeDefined();
    expect(rendered.tag).not.toBe('latest');
    expect(container.image).toMatch(IMAGE_REFERENCE);
    // The old placeholder was no valid reference at all (upper case: InvalidImageName) (control).
    expect('ghcr.io/OWNER/mqtt-acme-broker:latest').not.toMatch(IMAGE_REFERENCE);
    expect('registry.example.com/mqtt-acme-broker:0.1.0').toMatch(IMAGE_REFERENCE);
  });

  it('ships the example Secret with placeholders only, and says how to create the real one', () => {
    expect(secret.metadata!.name).toBe('mqtt-credentials');
    expect(secret.data).toBeUndefined();
    const values = Object.entries(secret.stringData ?? {});
    expect(values.map(([k]) => k).sort()).toEqual([
      'cloudflare-api-token.secret',
      'cloudflare-email.secret',
      'cloudflare-key.secret',
      'letsencrypt-email.secret',
    ]);
    // Placeholders, or empty (unset) for the Cloudflare credential kind not in use: never both kinds filled.
    for (const [key, value] of values) expect(value, key).toMatch(key === 'cloudflare-api-token.secret' ? /^$/ : /REPLACE-ME/);
    expect(secretText).toMatch(/kubectl -n mqtt create secret generic mqtt-credentials/);
    for (const [key] of values) expect(secretText).toContain(`--from-literal=${key}=`);
    expect(secretText).toContain('echo -n');
  });
});
