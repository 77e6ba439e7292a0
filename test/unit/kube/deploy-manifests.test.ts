/**
 * The node agent's manifests (`deploy/node-agent/`): each object decodes as its Kubernetes kind with
 * the client library's own types, and nothing is lost in decoding (an unknown or misspelled field
 * would be dropped by the typed decoder and fail the round trip); the DaemonSet's probes hit the
 * agent's `/healthz` on the port it serves, the node name comes from the downward API, and the kustomization lists
 * every file. That the RBAC rules match the agent's requests is checked against the API double in
 * `test/integration/kube-node.test.ts`.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  V1ClusterRole,
  V1ClusterRoleBinding,
  V1DaemonSet,
  V1Namespace,
  V1Service,
  V1ServiceAccount,
  loadAllYaml,
} from '@kubernetes/client-node';
import { parse } from 'yaml';

const DIR = new URL('../../../../deploy/node-agent/', import.meta.url).pathname;

const KINDS: Record<string, new () => object> = {
  Namespace: V1Namespace,
  ServiceAccount: V1ServiceAccount,
  ClusterRole: V1ClusterRole,
  ClusterRoleBinding: V1ClusterRoleBinding,
  DaemonSet: V1DaemonSet,
  Service: V1Service,
};

/** Drops empty values the typed decoder does not keep, for the round-trip comparison. */
function normalize(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normalize);
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = normalize(x);
    return out;
  }
  return v;
}

function manifests(): { file: string; raw: Record<string, unknown>; typed: object }[] {
  const out: { file: string; raw: Record<string, unknown>; typed: object }[] = [];
  for (const file of readdirSync(DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')) {
    const text = readFileSync(join(DIR, file), 'utf8');
    const typed = loadAllYaml(text) as object[];
    const raw = text
      .split(/^---$/m)
      .map((d) => parse(d) as Record<string, unknown> | null)
      .filter((d): d is Record<string, unknown> => d !== null);
    assert.equal(typed.length, raw.length, file);
    raw.forEach((r, i) => out.push({ file, raw: r, typed: typed[i]! }));
  }
  return out;
}

describe('deploy/node-agent manifests', () => {
  test('every object decodes as its kind, losslessly', () => {
    const all = manifests();
    assert.deepEqual(all.map((m) => m.raw.kind).sort(), Object.keys(KINDS).sort());
    for (const { file, raw, typed } of all) {
      const cls = KINDS[String(raw.kind)];
      assert.ok(cls !== undefined, `${file}: unexpected kind ${String(raw.kind)}`);
      assert.ok(typed instanceof cls, `${file} decodes as ${cls.name}`);
      assert.deepEqual(normalize(JSON.parse(JSON.stringify(typed))), normalize(raw), `${file} round-trips`);
    }
  });

  test('the DaemonSet: node name from the downward API, probes on /healthz of the served port, store hostPath', () => {
    const ds = manifests().find((m) => m.raw.kind === 'DaemonSet')!.typed as V1DaemonSet;
    const pod = ds.spec!.template.spec!;
    const c = pod.containers[0]!;
    assert.equal(pod.serviceAccountName, 'kimg-node-agent');
    assert.equal(c.env?.find((e) => e.name === 'NODE_NAME')?.valueFrom?.fieldRef?.fieldPath, 'spec.nodeName');
    assert.ok(c.args?.includes('--node-name=$(NODE_NAME)'));
    assert.ok(c.args?.includes('--in-cluster'));
    const addr = c.args?.find((a) => a.startsWith('--metrics-addr='));
    const port = Number(addr?.split(':').at(-1));
    assert.equal(c.ports?.find((p) => p.name === 'http-metrics')?.containerPort, port);
    for (const probe of [c.readinessProbe, c.livenessProbe]) {
      assert.equal(probe?.httpGet?.path, '/healthz');
      assert.equal(probe?.httpGet?.port, 'http-metrics');
    }
    assert.ok(c.resources?.requests?.cpu !== undefined && c.resources?.limits?.memory !== undefined);
    const store = pod.volumes?.find((v) => v.name === 'store');
    assert.equal(store?.hostPath?.path, '/var/lib/kimg');
    assert.ok(c.args?.includes('--root=/var/lib/kimg'));
    assert.equal(ds.spec!.selector.matchLabels?.['app.kubernetes.io/name'], 'kimg-node-agent');
    assert.equal(ds.spec!.template.metadata?.labels?.['app.kubernetes.io/name'], 'kimg-node-agent');
    const svc = manifests().find((m) => m.raw.kind === 'Service')!.typed as V1Service;
    assert.equal(svc.spec?.ports?.[0]?.port, port);
    assert.equal(svc.spec?.selector?.['app.kubernetes.io/name'], 'kimg-node-agent');
  });

  test('the binding names the role and the ServiceAccount; the kustomization lists every file', () => {
    const all = manifests();
    const binding = all.find((m) => m.raw.kind === 'ClusterRoleBinding')!.typed as V1ClusterRoleBinding;
    const role = all.find((m) => m.raw.kind === 'ClusterRole')!.typed as V1ClusterRole;
    const sa = all.find((m) => m.raw.kind === 'ServiceAccount')!.typed as V1ServiceAccount;
    assert.equal(binding.roleRef.name, role.metadata?.name);
    assert.deepEqual(JSON.parse(JSON.stringify(binding.subjects)), [
      { kind: 'ServiceAccount', name: sa.metadata?.name, namespace: sa.metadata?.namespace },
    ]);
    const kustomization = parse(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8')) as {
      resources: string[];
    };
    const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    assert.deepEqual([...kustomization.resources].sort(), files.sort());
  });
});
