/**
 * `kimg ensure`, `kimg backoff` and `kimg explain` against real registries:
 * Always with an unchanged tag downloads no blob (registry access log), Always after the tag moved
 * pulls the new digest, Never with an absent image gives ErrImageNeverPull (exit 8), a missing
 * repository gives ErrImagePull and then — in a new process — ImagePullBackOff without a registry
 * request until `kimg backoff clear`, pull Secrets made by `kimg create secret docker-registry` open a
 * Basic registry (and without them the pull is UNAUTHORIZED), 6 pods with maxParallelImagePulls=2 never
 * have more than 2 pulls in flight (library level), and every image-name example of the concept page
 * gets the defaulted policy the page states. Needs docker-registry and skopeo (fails, never skips).
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CliContext } from '../../src/cli/context.js';
import { runCli } from '../../src/cli/program.js';
import type { AuthConfig } from '../../src/credentials/index.js';
import {
  ImageManager,
  LocalImageService,
  type ImageSpec,
  type PodSandboxInfo,
  type ImageServiceCallOptions,
} from '../../src/manager/index.js';
import { MemoryEventRecorder } from '../../src/testing/index.js';
import { RegistryClient } from '../../src/registry/index.js';
import { openStore } from '../../src/store/index.js';
import { generateImage, type GeneratedImage } from '../helpers/images.js';
import { runCommand, type CommandResult } from '../helpers/proc.js';
import {
  startRegistries,
  stopRegistries,
  type AccessLogEntry,
  type StartedRegistry,
} from '../helpers/registry.js';
import { skopeoPush } from '../helpers/skopeo.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { Sink } from '../helpers/output.js';

const CLI = new URL('../../src/cli/main.js', import.meta.url).pathname;

interface EnsureJson {
  pod: { name: string; namespace: string; uid: string };
  ready: boolean;
  containers: {
    name: string;
    image: string;
    ready: boolean;
    reason: string;
    message: string;
    imageRef: string;
  }[];
  events: { type: string; reason: string; message: string; timestamp: string }[];
}

const blobGets = (entries: AccessLogEntry[]): AccessLogEntry[] =>
  entries.filter((e) => e.method === 'GET' && /\/blobs\/sha256:[0-9a-f]{64}$/.test(e.path));

function podYaml(
  name: string,
  containers: { name: string; image: string; policy?: string }[],
  secrets: string[] = [],
): string {
  const lines = [
    'apiVersion: v1',
    'kind: Pod',
    'metadata:',
    `  name: ${name}`,
    '  namespace: default',
    `  uid: uid-${name}`,
    'spec:',
  ];
  if (secrets.length > 0) {
    lines.push('  imagePullSecrets:');
    for (const s of secrets) lines.push(`  - name: ${s}`);
  }
  lines.push('  containers:');
  for (const c of containers) {
    lines.push(`  - name: ${c.name}`, `    image: ${JSON.stringify(c.image)}`);
    if (c.policy !== undefined) lines.push(`    imagePullPolicy: ${c.policy}`);
  }
  return lines.join('\n') + '\n';
}

describe('kimg ensure against real registries', () => {
  let dir: string;
  let root: string;
  let regs: Record<'plain' | 'basic', StartedRegistry>;
  let imgA: GeneratedImage;
  let imgB: GeneratedImage;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    dir = await makeTempDir('ensure-');
    root = join(dir, 'root');
    regs = await startRegistries(['plain', 'basic']);
    imgA = await generateImage(join(dir, 'a'), {
      name: 'app-a',
      layers: [{ size: 40_000 }, { size: 9_000 }],
    });
    imgB = await generateImage(join(dir, 'b'), { name: 'app-b', layers: [{ size: 30_000 }] });
    await skopeoPush(imgA, regs.plain, 'app:v1');
    await skopeoPush(imgA, regs.basic, 'private:v1');
    // HOME and the kubelet root dir point at empty places: no docker config of this machine leaks in.
    env = { ...process.env, HOME: dir, KIMG_ROOT: root, XDG_DATA_HOME: dir };
  });
  after(async () => {
    await stopRegistries(Object.values(regs ?? {}));
    if (dir) await removeTempDir(dir);
  });

  const common = (reg: StartedRegistry): string[] => [
    '--root',
    root,
    '--plain-http',
    reg.host,
    '--no-node-config',
    '--kubelet-root-dir',
    join(dir, 'kubelet'),
  ];

  /** `kimg ensure` in a new process. */
  async function ensure(
    files: string[],
    reg: StartedRegistry,
    extra: string[] = [],
  ): Promise<CommandResult & { json: EnsureJson }> {
    const r = await runCommand(
      'node',
      [CLI, 'ensure', ...files.flatMap((f) => ['-f', f]), ...common(reg), '-o', 'json', ...extra],
      {
        env,
        allowFailure: true,
      },
    );
    let json: EnsureJson;
    try {
      json = JSON.parse(r.stdout) as EnsureJson;
    } catch {
      throw new Error(`kimg ensure printed no JSON (exit ${String(r.code)}): ${r.stdout}\n${r.stderr}`);
    }
    return { ...r, json };
  }

  async function write(name: string, text: string): Promise<string> {
    const f = join(dir, name);
    await writeFile(f, text);
    return f;
  }

  test('Always with an unchanged tag downloads no blob; after the tag moved it pulls the new digest', async () => {
    const image = `${regs.plain.host}/app:v1`;
    const pod = await write('always.yaml', podYaml('always', [{ name: 'app', image, policy: 'Always' }]));
    const first = await ensure([pod], regs.plain);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.json.containers[0]?.imageRef, imgA.manifests[0]!.config.digest);
    assert.deepEqual(
      first.json.events.map((e) => e.reason),
      ['Pulling', 'Pulled'],
    );
    assert.equal(first.json.events[0]?.message, `Pulling image "${image}"`);
    assert.match(
      first.json.events[1]?.message ?? '',
      new RegExp(
        `^Successfully pulled image "${image.replace(/[.]/g, '\\.')}" in .* Image size: \\d+ bytes\\.$`,
      ),
    );

    const before = (await regs.plain.accessLog()).length;
    const second = await ensure([pod], regs.plain);
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(
      second.json.events.map((e) => e.reason),
      ['Pulling', 'Pulled'],
    );
    const slice = (await regs.plain.accessLog()).slice(before);
    assert.ok(
      slice.some((e) => e.path.includes('/manifests/')),
      'Always asks the registry for the manifest',
    );
    assert.deepEqual(blobGets(slice), [], 'no blob is downloaded for an unchanged tag');

    // Move the tag.
    await skopeoPush(imgB, regs.plain, 'app:v1');
    const mark = (await regs.plain.accessLog()).length;
    const third = await ensure([pod], regs.plain);
    assert.equal(third.code, 0, third.stderr);
    assert.equal(third.json.containers[0]?.imageRef, imgB.manifests[0]!.config.digest);
    assert.ok(
      blobGets((await regs.plain.accessLog()).slice(mark)).length > 0,
      'the new content is downloaded',
    );

    // explain --resolve: the tag resolves to the present digest (Always costs one manifest request).
    const resolved = await runCommand(
      'node',
      [CLI, 'explain', '-f', pod, ...common(regs.plain), '--resolve', '-o', 'json'],
      { env, allowFailure: true },
    );
    assert.equal(resolved.code, 0, resolved.stderr);
    const rx = JSON.parse(resolved.stdout) as {
      resolved: { digest: string; unchanged: boolean };
      presence: { imageId: string };
      next: string;
    }[];
    assert.equal(rx[0]?.resolved.digest, imgB.digest);
    assert.equal(rx[0]?.resolved.unchanged, true);
    assert.equal(rx[0]?.presence.imageId, imgB.manifests[0]!.config.digest);
    assert.match(rx[0]?.next ?? '', /no blob download/);

    // The table form prints the events like kubectl describe.
    const table = await runCommand('node', [CLI, 'ensure', '-f', pod, ...common(regs.plain)], {
      env,
      allowFailure: true,
    });
    assert.equal(table.code, 0, table.stderr);
    assert.match(
      table.stdout,
      /^Events:\n {2}Type +Reason +Age +From +Message\n {2}-{4} +-{6} +-{4} +-{4} +-{7}\n {2}Normal +Pulling +\d+s +kubelet +Pulling image "/,
    );
    assert.match(table.stdout, /CONTAINER +IMAGE +STATE +IMAGE ID\napp +\S+ +Ready \(pulled\) +sha256:/);
  });

  test('IfNotPresent with a present image: Pulled "already present on machine" and no registry request', async () => {
    const image = `${regs.plain.host}/app:v1`;
    const pod = await write(
      'present.yaml',
      podYaml('present', [{ name: 'app', image, policy: 'IfNotPresent' }]),
    );
    const mark = (await regs.plain.accessLog()).length;
    const r = await ensure([pod], regs.plain);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      r.json.events.map((e) => [e.type, e.reason, e.message]),
      [
        [
          'Normal',
          'Pulled',
          `Container image "${image}" already present on machine and can be accessed by the pod`,
        ],
      ],
    );
    assert.equal((await regs.plain.accessLog()).length, mark);
  });

  test('Never with an absent image: ErrImageNeverPull, exit 8', async () => {
    const image = `${regs.plain.host}/absent:1`;
    const pod = await write('never.yaml', podYaml('never', [{ name: 'app', image, policy: 'Never' }]));
    const r = await ensure([pod], regs.plain);
    assert.equal(r.code, 8, r.stderr);
    assert.deepEqual(
      r.json.events.map((e) => [e.type, e.reason, e.message]),
      [
        [
          'Warning',
          'ErrImageNeverPull',
          `Container image "${image}" is not present with pull policy of Never`,
        ],
        ['Warning', 'Failed', 'Error: ErrImageNeverPull'],
      ],
    );
    assert.equal(r.json.containers[0]?.reason, 'ErrImageNeverPull');
    assert.equal(r.json.ready, false);
  });

  test('a missing repository: ErrImagePull, then ImagePullBackOff in the next process without a registry request, until backoff clear', async () => {
    const image = `${regs.plain.host}/does-not-exist:1`;
    const pod = await write('missing.yaml', podYaml('missing', [{ name: 'app', image }]));
    const first = await ensure([pod], regs.plain);
    assert.equal(first.code, 3, first.stderr);
    assert.deepEqual(
      first.json.events.map((e) => [e.type, e.reason]),
      [
        ['Normal', 'Pulling'],
        ['Warning', 'Failed'],
        ['Warning', 'Failed'],
      ],
    );
    assert.equal(first.json.events[2]?.message, 'Error: ErrImagePull');
    assert.match(
      first.json.events[1]?.message ?? '',
      new RegExp(`^Failed to pull image "${image.replace(/[.]/g, '\\.')}": `),
    );
    assert.equal(first.json.containers[0]?.reason, 'ErrImagePull');

    const mark = (await regs.plain.accessLog()).length;
    const second = await ensure([pod], regs.plain);
    assert.equal(second.code, 8, second.stderr);
    assert.deepEqual(
      second.json.events.map((e) => [e.type, e.reason, e.message]),
      [
        ['Normal', 'BackOff', `Back-off pulling image "${image}"`],
        ['Warning', 'Failed', 'Error: ImagePullBackOff'],
      ],
    );
    assert.equal(second.json.containers[0]?.reason, 'ImagePullBackOff');
    assert.match(
      second.json.containers[0]?.message ?? '',
      new RegExp(`^Back-off pulling image "${image.replace(/[.]/g, '\\.')}": ErrImagePull: `),
    );
    assert.equal((await regs.plain.accessLog()).length, mark, 'a pod in back-off does not ask the registry');

    const ls = await runCommand('node', [CLI, 'backoff', 'ls', '--root', root, '-o', 'json'], { env });
    const entries = JSON.parse(ls.stdout) as {
      podUID: string;
      image: string;
      inBackOff: boolean;
      lastError?: string;
    }[];
    const entry = entries.find((e) => e.image === image);
    assert.ok(entry, ls.stdout);
    assert.equal(entry.podUID, 'uid-missing');
    assert.equal(entry.inBackOff, true);
    assert.match(entry.lastError ?? '', /^ErrImagePull: /);

    const explained = await runCommand(
      'node',
      [CLI, 'explain', '-f', pod, '--root', root, '--no-node-config', '-o', 'json'],
      { env },
    );
    const ex = JSON.parse(explained.stdout) as { backoff: { inBackOff: boolean }[]; next: string }[];
    assert.equal(ex[0]?.backoff[0]?.inBackOff, true);
    assert.match(ex[0]?.next ?? '', /^refuse with ImagePullBackOff until /);

    const cleared = await runCommand(
      'node',
      [CLI, 'backoff', 'clear', '--root', root, '--pod', 'uid-missing', '-o', 'json'],
      { env },
    );
    assert.deepEqual(JSON.parse(cleared.stdout), { removed: [`uid-missing_${image}`] });
    const third = await ensure([pod], regs.plain);
    assert.equal(third.code, 3, third.stderr);
    assert.deepEqual(
      third.json.events.map((e) => e.reason),
      ['Pulling', 'Failed', 'Failed'],
    );
    assert.ok((await regs.plain.accessLog()).length > mark, 'after clear the registry is asked again');
  });

  test('pull Secrets from kimg create secret docker-registry open a Basic registry; without them UNAUTHORIZED', async () => {
    const image = `${regs.basic.host}/private:v1`;
    const secret = await runCommand(
      'node',
      [
        CLI,
        'create',
        'secret',
        'docker-registry',
        'regcred',
        `--docker-server=${regs.basic.host}`,
        `--docker-username=${regs.basic.username ?? ''}`,
        `--docker-password=${regs.basic.password ?? ''}`,
      ],
      { env, secrets: [regs.basic.password ?? ''] },
    );
    const secretFile = await write('regcred.yaml', secret.stdout);
    const without = await write('nosecret.yaml', podYaml('nosecret', [{ name: 'app', image }]));
    const denied = await ensure([without], regs.basic);
    assert.equal(denied.code, 4, denied.stderr);
    assert.equal(denied.json.containers[0]?.reason, 'ErrImagePull');
    assert.match(denied.json.events[1]?.message ?? '', /401|unauthorized|UNAUTHORIZED/i);

    const withSecret = await write(
      'withsecret.yaml',
      podYaml('withsecret', [{ name: 'app', image }], ['regcred']),
    );
    const ok = await ensure([withSecret, secretFile], regs.basic);
    assert.equal(ok.code, 0, ok.stderr + JSON.stringify(ok.json));
    assert.equal(ok.json.containers[0]?.imageRef, imgA.manifests[0]!.config.digest);
    const explained = await runCommand(
      'node',
      [CLI, 'explain', '-f', withSecret, '-f', secretFile, ...common(regs.basic), '-o', 'json'],
      { env },
    );
    const ex = JSON.parse(explained.stdout) as {
      credentials: { matches: { key: string; username: string; source: string }[] };
      presence: { present: boolean };
      next: string;
    }[];
    assert.deepEqual(ex[0]?.credentials.matches, [
      { key: regs.basic.host, username: regs.basic.username, source: 'secret default/regcred' },
    ]);
    assert.equal(ex[0]?.presence.present, true);
    assert.match(ex[0]?.next ?? '', /^use the present image sha256:/);
    // Credential verification through the CLI: the image is now present, but the secret-less pod's credentials were
    // never verified for it (default NeverVerifyPreloadedImages): kimg ensure re-pulls and is refused.
    // (a new pod: the first secret-less pod is in back-off after its 401, as the kubelet would keep it)
    const without2 = await write('nosecret2.yaml', podYaml('nosecret2', [{ name: 'app', image }]));
    const refused = await ensure([without2], regs.basic);
    assert.equal(refused.code, 4, refused.stderr);
    assert.equal(refused.json.containers[0]?.reason, 'ErrImagePull');
    assert.match(
      refused.json.containers[0]?.message ?? '',
      /present on the node, but this pod's credentials were not verified/,
    );
    const why = await runCommand(
      'node',
      [CLI, 'explain', '-f', without2, ...common(regs.basic), '-o', 'json'],
      { env },
    );
    const whyJson = JSON.parse(why.stdout) as {
      verification?: { verdict: { mustPull: boolean } };
      next: string;
    }[];
    assert.equal(whyJson[0]?.verification?.verdict.mustPull, true);
    // it was just refused, so the pod is in back-off now, exactly as the kubelet would have it
    assert.match(whyJson[0]?.next ?? '', /^refuse with ImagePullBackOff/);
    const all =
      ok.stdout +
      ok.stderr +
      denied.stdout +
      denied.stderr +
      explained.stdout +
      explained.stderr +
      refused.stdout +
      why.stdout;
    assert.ok(!all.includes(regs.basic.password ?? 'never'), 'no password in any output');
  });

  test('--all with a KubeletConfiguration (--config): every pod of the file, parallel puller', async () => {
    const config = await write(
      'kubelet.yaml',
      'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nserializeImagePulls: false\nmaxParallelImagePulls: 2\n',
    );
    const image = `${regs.plain.host}/app:v1`;
    const pods = await write(
      'all.yaml',
      [1, 2, 3].map((i) => podYaml(`all${i}`, [{ name: 'c', image, policy: 'Always' }])).join('---\n'),
    );
    const r = await runCommand(
      'node',
      [CLI, 'ensure', '-f', pods, '--all', '--config', config, ...common(regs.plain), '-o', 'json'],
      {
        env,
        allowFailure: true,
      },
    );
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as EnsureJson[];
    assert.deepEqual(
      out.map((p) => [p.pod.name, p.ready, p.events.map((e) => e.reason).join(',')]),
      [
        ['all1', true, 'Pulling,Pulled'],
        ['all2', true, 'Pulling,Pulled'],
        ['all3', true, 'Pulling,Pulled'],
      ],
    );
    const several = await runCommand('node', [CLI, 'ensure', '-f', pods, ...common(regs.plain)], {
      env,
      allowFailure: true,
    });
    assert.equal(several.code, 2);
    assert.match(several.stderr, /choose one with --pod, or use --all/);
  });

  test('6 pods with maxParallelImagePulls=2 never have more than 2 pulls in flight', async () => {
    const images: string[] = [];
    for (let i = 0; i < 6; i++) {
      const img = await generateImage(join(dir, `par${i}`), { name: `par-${i}`, layers: [{ size: 20_000 }] });
      await skopeoPush(img, regs.plain, `par${i}:1`);
      images.push(`${regs.plain.host}/par${i}:1`);
    }
    const store = await openStore({ root: join(dir, 'par-root') });
    const registry = new RegistryClient({ plainHttp: [regs.plain.host] });
    let inFlight = 0;
    let maxInFlight = 0;
    class Counting extends LocalImageService {
      override async pullImage(
        spec: ImageSpec,
        auth: AuthConfig | undefined,
        sandbox?: PodSandboxInfo,
        options?: ImageServiceCallOptions,
      ): Promise<string> {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        try {
          // Hold each pull a moment so the puller's limit, not the registry's speed, decides the overlap.
          await new Promise((r) => setTimeout(r, 50));
          return await super.pullImage(spec, auth, sandbox, options);
        } finally {
          inFlight--;
        }
      }
    }
    try {
      const recorder = new MemoryEventRecorder();
      const manager = new ImageManager({
        imageService: new Counting({ store, registry }),
        serializeImagePulls: false,
        maxParallelImagePulls: 2,
        recorder,
      });
      const results = await Promise.all(
        images.map((image, i) =>
          manager.ensurePodImages({
            metadata: { name: `pod${i}`, uid: `par-uid-${i}` },
            spec: { containers: [{ name: 'c', image, imagePullPolicy: 'Always' }] },
          }),
        ),
      );
      assert.ok(
        results.every((r) => r.ok),
        JSON.stringify(results.map((r) => r.results[0]?.result?.message)),
      );
      assert.equal(maxInFlight, 2);
      assert.equal(recorder.events.filter((e) => e.reason === 'Pulled').length, 6);
      assert.equal((await store.images.list()).length, 6);
    } finally {
      await registry.close();
      await store.close();
    }
  });
});

describe('kimg explain: the concept page examples get the policy the page states', () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir('explain-');
  });
  after(async () => {
    if (dir) await removeTempDir(dir);
  });

  const DIGEST = 'sha256:1ff6c18fbef2045af6b9c16bf034cc421a29027b800e4f9b68ae9b1cb3e9ae07';
  const EXAMPLES: [string, 'Always' | 'IfNotPresent', string][] = [
    ['busybox', 'Always', 'docker.io/library/busybox:latest'],
    ['busybox:1.32.0', 'IfNotPresent', 'docker.io/library/busybox:1.32.0'],
    ['registry.k8s.io/pause:latest', 'Always', 'registry.k8s.io/pause:latest'],
    ['registry.k8s.io/pause:3.5', 'IfNotPresent', 'registry.k8s.io/pause:3.5'],
    [`registry.k8s.io/pause@${DIGEST}`, 'IfNotPresent', `registry.k8s.io/pause@${DIGEST}`],
    [`registry.k8s.io/pause:3.5@${DIGEST}`, 'IfNotPresent', `registry.k8s.io/pause@${DIGEST}`],
    ['pause', 'Always', 'docker.io/library/pause:latest'],
    ['example/mycontainer', 'Always', 'docker.io/example/mycontainer:latest'],
    ['kube-apiserver', 'Always', 'docker.io/library/kube-apiserver:latest'],
    ['fictional.registry.example/imagename', 'Always', 'fictional.registry.example/imagename:latest'],
    [
      'fictional.registry.example:10443/imagename',
      'Always',
      'fictional.registry.example:10443/imagename:latest',
    ],
    ['janedoe/awesomeapp:v1', 'IfNotPresent', 'docker.io/janedoe/awesomeapp:v1'],
  ];

  async function explain(args: string[]): Promise<{ code: number; out: string; err: string }> {
    const stdout = new Sink();
    const stderr = new Sink();
    const ctx: CliContext = { stdout, stderr, env: { HOME: dir }, exitStatus: 0 };
    const code = await runCli(
      [
        'node',
        'kimg',
        'explain',
        ...args,
        '--root',
        join(dir, 'root'),
        '--no-node-config',
        '--kubelet-root-dir',
        join(dir, 'kubelet'),
      ],
      ctx,
    );
    return { code, out: stdout.text, err: stderr.text };
  }

  for (const [image, policy, pullRef] of EXAMPLES) {
    test(`${image} → ${policy}`, async () => {
      const r = await explain([image, '-o', 'json']);
      assert.equal(r.code, 0, r.err);
      const x = JSON.parse(r.out) as {
        policy: { value: string; origin: string };
        reference: { pullRef: string };
        next: string;
      };
      assert.equal(x.policy.value, policy);
      assert.equal(x.policy.origin, 'defaulted');
      assert.equal(x.reference.pullRef, pullRef);
      assert.match(x.next, /^pull .* anonymously/);
    });
  }

  test('a pod: every container defaulted as the API server does, and a set policy is kept', async () => {
    const pod = join(dir, 'pod.yaml');
    await writeFile(
      pod,
      podYaml('seed', [
        { name: 'a', image: 'busybox' },
        { name: 'b', image: 'busybox:1.32.0' },
        { name: 'c', image: 'busybox', policy: 'Never' },
      ]),
    );
    const r = await explain(['-f', pod, '-o', 'json']);
    assert.equal(r.code, 0, r.err);
    const xs = JSON.parse(r.out) as {
      container: string;
      policy: { value: string; origin: string };
      next: string;
    }[];
    assert.deepEqual(
      xs.map((x) => [x.container, x.policy.value, x.policy.origin]),
      [
        ['a', 'Always', 'defaulted'],
        ['b', 'IfNotPresent', 'defaulted'],
        ['c', 'Never', 'set'],
      ],
    );
    assert.match(xs[2]?.next ?? '', /^fail with ErrImageNeverPull/);
    const text = await explain(['-f', pod, '--container', 'a']);
    assert.match(text.out, /Policy: +Always \(defaulted: imagePullPolicy was not set; the image has no tag/);
  });

  test('an invalid image name is explained, not thrown', async () => {
    const r = await explain(['Not/Valid', '-o', 'json']);
    assert.equal(r.code, 0, r.err);
    const x = JSON.parse(r.out) as { reference: { valid: boolean; error: { code: string } }; next: string };
    assert.equal(x.reference.valid, false);
    assert.equal(x.reference.error.code, 'NAME_CONTAINS_UPPERCASE');
    assert.match(x.next, /InvalidImageName/);
  });
});
