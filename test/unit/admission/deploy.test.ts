/** The example manifests under deploy/webhook parse, and agree with what the webhook handles. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseAdmissionPolicy, PINNED_RESOURCES } from '../../../src/admission/index.js';
import { readKubernetesObjects } from '../../../src/credentials/index.js';

const dir = fileURLToPath(new URL('../../../../deploy/webhook/', import.meta.url));
const files = ['mutatingwebhookconfiguration.yaml', 'service.yaml', 'deployment.yaml', 'policy.yaml'].map(
  (f) => dir + f,
);

test('deploy/webhook manifests parse and match the webhook', async () => {
  const objects = await readKubernetesObjects(files);
  const byKind = new Map(objects.map((o) => [o.kind, o.object as any]));
  const mwc = byKind.get('MutatingWebhookConfiguration');
  const hook = mwc.webhooks[0];
  assert.deepEqual(hook.admissionReviewVersions, ['v1']);
  assert.equal(hook.sideEffects, 'None');
  const rules = hook.rules.flatMap((r: any) => r.resources.map((res: string) => `${r.apiGroups[0]}/${res}`));
  assert.deepEqual(rules.sort(), Object.keys(PINNED_RESOURCES).sort());
  assert.ok(
    rules.every((r: string) => !r.includes('/*') && r.split('/').length === 2),
    'no subresources',
  );
  const svc = byKind.get('Service');
  assert.equal(hook.clientConfig.service.name, svc.metadata.name);
  assert.equal(hook.clientConfig.service.namespace, svc.metadata.namespace);
  const cm = byKind.get('ConfigMap');
  const policy = parseAdmissionPolicy(cm.data['policy.yaml'], 'policy.yaml');
  assert.equal(policy.alwaysPullImages, true);
  assert.equal(policy.cacheTTLMs, 300_000);
  const dep = byKind.get('Deployment');
  const args: string[] = dep.spec.template.spec.containers[0].args;
  assert.deepEqual(args.slice(0, 2), ['admission', 'serve']);
  assert.ok(args.includes('--policy=/etc/kimg/policy/policy.yaml'));
  assert.ok((await readFile(files[0] ?? '', 'utf8')).startsWith('# kimg admission webhook'));
});
