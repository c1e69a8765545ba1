/**
 * What k8s/ must say, checked on the objects `kubectl apply -k k8s/` sends (see test/support/k8s-manifests):
 * drop-in compatibility with the mosquitto + certbot recipe (names, ports, Secret keys, env names, volume
 * paths), internal consistency (selectors, references, ports, probes), and the choices made for the broker.
 */
import { readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { describe, expect, it } from 'vitest';
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
import { parseMosquittoConf } from '../../src/config/mosquitto-conf.js';
import { parsePasswd } from '../../src/auth/passwd.js';
import {
  K8S_DIR,
  SECRET_EXAMPLE,
  byKind,
  loadKustomization,
  loadSecretExample,
  only,
  quantity,
  renderKustomization,
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

  it('mounts mosquitto.conf and passwd at /mosquitto/conf, as a directory (no subPath) for hot reload', () => {
    const mount = mountAt('/mosquitto/conf');
    expect(mount.subPath).toBeUndefined();
    expect(mount.readOnly).toBe(true);
    const name = volumeOf(mount).configMap?.name;
    const cm = configMaps.find((c) => c.metadata!.name === name);
    expect(cm, `ConfigMap ${name}`).toBeDefined();
    expect(Object.keys(cm!.data!).sort()).toEqual(['mosquitto.conf', 'passwd']);
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
      } else if (volume.persistentVolumeClaim) {
        expect(byKind(objects, 'PersistentVolumeClaim').map((p) => p.metadata.name)).toContain(
          volume.persistentVolumeClaim.claimName,
        );
      } else {
        expect(volume.emptyDir, `${volume.name} is a ConfigMap, a PVC or an emptyDir`).toBeDefined();
      }
    }
  });

  it('references only Secret keys that exist in the example Secret, optional ones at least as a comment', () => {
    const refs = (container.env ?? []).flatMap((e) => (e.valueFrom?.secretKeyRef ? [e.valueFrom.secretKeyRef] : []));
    expect(refs.length).toBe(4);
    for (const ref of refs) {
      expect(ref.name).toBe(secret.metadata!.name);
      if (ref.optional === true) expect(secretText).toContain(`${ref.key}:`);
      else expect(Object.keys(secret.stringData ?? {})).toContain(ref.key);
    }
    // No other reference to a Secret or ConfigMap that could be missing.
    for (const e of container.env ?? []) expect(e.valueFrom?.configMapKeyRef).toBeUndefined();
    expect(container.envFrom).toBeUndefined();
  });

  it('sets only environment variables the broker reads', () => {
    const known = new Set<string>([...ENV_VARIABLES, ...SECRET_VARIABLES.map((v) => `${v}_FILE`)]);
    for (const e of container.env ?? []) expect(known.has(e.name), `${e.name} is read by the broker`).toBe(true);
  });

  it('has the container ports mqtts 8883 and ops 9090 (the broker default OPS_PORT), and probes on ops', () => {
    expect(container.ports?.map((p) => [p.name, p.containerPort, p.protocol ?? 'TCP'])).toEqual([
      ['mqtts', 8883, 'TCP'],
      ['ops', 9090, 'TCP'],
    ]);
    expect(env('OPS_PORT')).toBeUndefined();
    expect(env('MQTTS_PORT')).toBeUndefined();
    for (const probe of [container.startupProbe, container.livenessProbe, container.readinessProbe]) {
      expect(probePort(probe)).toBe(9090);
    }
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
    const cm = configMaps.find((c) => c.metadata!.name === volumeOf(mount).configMap?.name)!;
    const { layer, warnings } = parseMosquittoConf(cm.data!['mosquitto.conf']!, { file: 'mosquitto.conf', cwd: '/' });
    expect(warnings).toEqual([]);
    // The one listener is the TLS one the Service targets.
    expect(layer.values.listeners?.map((l) => l.port)).toEqual([containerPort('mqtts')]);
    // password_file (and an acl_file, if any) are keys of the mounted ConfigMap.
    for (const file of [layer.values.passwordFile, layer.values.aclFile]) {
      if (file === undefined) continue;
      expect(posix.dirname(file)).toBe(mount.mountPath);
      expect(Object.keys(cm.data!)).toContain(posix.basename(file));
    }
    expect(layer.values.passwordFile).toBe('/mosquitto/conf/passwd');
    expect(layer.values.allowAnonymous).toBe(false);
    // Persistence is on and lands on the volume.
    expect(layer.values.persistence).toBe(true);
    expect(layer.values.persistenceLocation?.startsWith(`${mountAt('/mosquitto/data').mountPath}/`)).toBe(true);
  });

  it('ships a passwd placeholder that parses and holds no credentials', () => {
    const cm = configMaps.find((c) => c.data?.passwd !== undefined)!;
    const { users, warnings } = parsePasswd(cm.data!.passwd!, 'passwd');
    expect(warnings).toEqual([]);
    expect(users.size).toBe(0);
    expect(cm.data!.passwd).toContain('dist/cli.js passwd k8s/passwd');
    expect(cm.data!.passwd).toContain('mosquitto_passwd');
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

  it('names an image that must be replaced, not one that happens to exist', () => {
    expect(container.image).toMatch(/^ghcr\.io\/OWNER\/mqtt-acme-broker:/);
  });

  it('ships the example Secret with placeholders only, and says how to create the real one', () => {
    expect(secret.metadata!.name).toBe('mqtt-credentials');
    expect(secret.data).toBeUndefined();
    const values = Object.entries(secret.stringData ?? {});
    expect(values.map(([k]) => k).sort()).toEqual([
      'cloudflare-email.secret',
      'cloudflare-key.secret',
      'letsencrypt-email.secret',
    ]);
    for (const [key, value] of values) expect(value, key).toMatch(/REPLACE-ME/);
    expect(secretText).toMatch(/kubectl -n mqtt create secret generic mqtt-credentials/);
    for (const [key] of values) expect(secretText).toContain(`--from-literal=${key}=`);
    expect(secretText).toContain('--from-literal=cloudflare-api-token.secret=');
    expect(secretText).toContain('echo -n');
  });
});
