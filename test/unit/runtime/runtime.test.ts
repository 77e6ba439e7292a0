/**
 * `openNodeRuntime`: the backend setting picks the image service (kimg's store, or a CRI runtime
 * reached over a real gRPC socket), every piece is built from the configuration, `close()` closes what
 * the runtime opened in reverse order (and not what was injected), and a failing step closes the steps
 * before it (the backend's CRI client, also after it was used).
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseNodeConfig } from '../../../src/config/index.js';
import * as grpc from '@grpc/grpc-js';
import { CriImageService, loadCriPackage, startCriServer, type CriServer } from '../../../src/cri/index.js';
import { isKimgError } from '../../../src/errors/index.js';
import {
  DEFAULT_PINNED_IMAGES,
  LocalImageService,
  imageGCPolicyFromConfig,
  type ImageInfo,
  type ImageService,
} from '../../../src/manager/index.js';
import { imageServiceBackend, openImageBackend, openNodeRuntime } from '../../../src/runtime/index.js';
import { RegistryClient } from '../../../src/registry/index.js';
import { openStore } from '../../../src/store/index.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

const CONFIG = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
imageGCHighThresholdPercent: 90
imageGCLowThresholdPercent: 70
kimg:
  pinnedImages: [registry.k8s.io/pause:3.10]
`;

const IMAGE: ImageInfo = {
  id: 'sha256:' + 'a'.repeat(64),
  repoTags: ['r.io/app:1'],
  repoDigests: [],
  size: 1000,
  pinned: false,
};

/** ListImages calls the fake runtime answered. */
let listCalls = 0;

const fakeRuntime: ImageService = {
  imageStatus: async () => IMAGE,
  listImages: async () => {
    listCalls++;
    return [IMAGE];
  },
  pullImage: async () => IMAGE.id,
  removeImage: async () => {},
  imageFsInfo: async () => [{ timestamp: 0, mountpoint: '/', usedBytes: 1000, inodesUsed: 1 }],
};

/** A gRPC server answering only RuntimeService.ListContainers with `containers`, on `socket`. */
async function startListContainers(socket: string, containers: object[]): Promise<grpc.Server> {
  const server = new grpc.Server();
  server.addService(loadCriPackage().RuntimeService.service, {
    ListContainers: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { containers }),
  });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (e) =>
      e ? reject(e) : resolve(),
    ),
  );
  return server;
}

/** Replaces `obj.close` by one that records `name` in `order`, then closes. */
function spyClose(obj: { close(): unknown }, name: string, order: string[]): void {
  const original = obj.close.bind(obj);
  obj.close = () => {
    order.push(name);
    return original();
  };
}

describe('openNodeRuntime', () => {
  let dir = '';
  let server: CriServer;
  before(async () => {
    dir = await makeTempDir('rt-');
    server = await startCriServer({ listen: join(dir, 'cri.sock'), imageService: fakeRuntime });
  });
  after(async () => {
    await server.close();
    await removeTempDir(dir);
  });
  const config = parseNodeConfig(CONFIG);

  test('local backend: the store-backed service, manager, GC policy and pinned images from the config', async () => {
    const root = join(dir, 'local');
    const rt = await openNodeRuntime(config, { root, env: {}, credentials: { nodeDockerConfig: false } });
    try {
      assert.equal(rt.backend.kind, 'local');
      assert.ok(rt.local instanceof LocalImageService);
      assert.equal(rt.imageService, rt.local);
      assert.equal(rt.manager.service, rt.imageService);
      assert.equal(rt.store.root, root);
      assert.deepEqual(rt.gcPolicy, imageGCPolicyFromConfig(config.kubelet));
      assert.equal(rt.gcPolicy.highThresholdPercent, 90);
      assert.deepEqual(await rt.imageService.listImages(), []);
      const plan = await rt.gc.plan({ inUse: [] });
      assert.deepEqual(plan.decisions, []);
      // The default sandbox image and the configuration's pinned image reach the GC (no such image here).
      assert.deepEqual(plan.unmatched.pinned, [...DEFAULT_PINNED_IMAGES, 'registry.k8s.io/pause:3.10']);
      const arm = rt.managerFor('linux/arm64');
      assert.notEqual(arm, rt.manager);
      assert.equal(rt.managerFor('linux/arm64'), arm, 'one manager per platform');
      assert.equal(rt.managerFor(undefined), rt.manager);
      assert.equal(arm.backoff, rt.manager.backoff, 'managers share the back-off');
    } finally {
      await rt.close();
    }
  });

  test('cri backend: the runtime socket is the image service; kimg root keeps the state', async () => {
    const notices: string[] = [];
    // The containers come from the configuration's containerRuntimeEndpoint (ListContainers).
    const runtimeSocket = join(dir, 'runtime.sock');
    const containers = await startListContainers(runtimeSocket, [
      { id: 'c1', image: { image: 'r.io/app:1' }, image_ref: IMAGE.id, state: 'CONTAINER_EXITED' },
    ]);
    const criConfig = parseNodeConfig(`${CONFIG}containerRuntimeEndpoint: unix://${runtimeSocket}\n`);
    const rt = await openNodeRuntime(criConfig, {
      root: join(dir, 'cri-root'),
      env: {},
      imageService: { kind: 'cri', endpoint: `unix://${server.address.replace(/^unix:\/\//, '')}` },
      credentials: false,
      onNotice: (m) => notices.push(m),
    });
    try {
      assert.equal(rt.backend.kind, 'cri');
      assert.equal(rt.local, undefined);
      assert.ok(rt.imageService instanceof CriImageService);
      assert.deepEqual(
        (await rt.imageService.listImages()).map((i) => i.id),
        [IMAGE.id],
      );
      assert.equal(await rt.markUsed({ image: 'r.io/app:1' }), false);
      assert.equal(rt.managerFor('linux/arm64'), rt.manager);
      assert.match(notices.join('\n'), /pulls for its own platform: linux\/arm64 is ignored/);
      const usage = await rt.gc.plan({ inUse: [] });
      assert.equal(usage.decisions.length, 1, 'GC lists the runtime images');
      assert.deepEqual(await rt.containersInUse(), [IMAGE.id]);
      assert.equal(usage.decisions[0]?.reason, 'in-use', "an exited container's image is in use");
    } finally {
      await rt.close();
      containers.forceShutdown();
    }
  });

  test('close() closes what it opened in reverse order, once', async () => {
    const order: string[] = [];
    const rt = await openNodeRuntime(config, {
      root: join(dir, 'order'),
      env: {},
      imageService: { kind: 'cri', endpoint: server.address },
      credentials: false,
    });
    spyClose(rt.store, 'store', order);
    spyClose(rt.registry, 'registry', order);
    spyClose(rt.imageService as CriImageService, 'image service', order);
    await rt.close();
    await rt.close();
    assert.deepEqual(order, ['image service', 'registry', 'store']);
  });

  test('an injected store is used and left open', async () => {
    const store = await openStore({ root: join(dir, 'injected'), env: {} });
    const order: string[] = [];
    spyClose(store, 'store', order);
    try {
      const rt = await openNodeRuntime(config, { store, env: {}, credentials: false });
      assert.equal(rt.store, store);
      await rt.close();
      assert.deepEqual(order, []);
    } finally {
      await store.close();
    }
  });

  test('read-only verification writes nothing under the root at open', async () => {
    const root = join(dir, 'readonly');
    const rt = await openNodeRuntime(config, {
      root,
      env: {},
      credentials: false,
      verification: 'read-only',
    });
    try {
      assert.ok(!(await readdir(root)).includes('pull-records'));
      assert.deepEqual(rt.reconcileReport.intents, []);
    } finally {
      await rt.close();
    }
  });

  test('a failing step closes the backend opened before it (plugins; image GC policy after a CRI call)', async () => {
    for (const [what, cfg, gc, code] of [
      [
        'plugins',
        parseNodeConfig(
          CONFIG +
            `  imageCredentialProviderConfig: ${join(dir, 'none.yaml')}\n  imageCredentialProviderBinDir: ${join(dir, 'no-bin')}\n`,
        ),
        undefined,
        'CREDENTIAL_PROVIDER_CONFIG_INVALID',
      ],
      [
        'image GC policy',
        config,
        {
          policy: {
            ...imageGCPolicyFromConfig(config.kubelet),
            highThresholdPercent: 50,
            lowThresholdPercent: 80,
          },
        },
        'CONFIG_INVALID',
      ],
    ] as const) {
      const closed: string[] = [];
      const listed = listCalls;
      let service: ImageService | undefined;
      await assert.rejects(
        openNodeRuntime(cfg, {
          root: join(dir, `failing-${what.replace(/ /g, '-')}`),
          env: {},
          imageService: { kind: 'cri', endpoint: server.address },
          credentials: { nodeDockerConfig: false },
          ...(gc !== undefined ? { gc } : {}),
          wrapImageService: (s) => {
            service = s;
            spyClose(s as CriImageService, 'image service', closed);
            return s;
          },
        }),
        (e: unknown) => isKimgError(e, code),
        what,
      );
      assert.ok(service instanceof CriImageService, what);
      // The GC policy is checked after reconciliation listed the runtime's images over the socket.
      if (what === 'image GC policy') assert.ok(listCalls > listed, 'the CRI connection was in use');
      assert.deepEqual(closed, ['image service'], `${what}: the backend opened before the failure is closed`);
    }
  });

  test('a failing step (plugins) is reported with its code', async () => {
    const bad = parseNodeConfig(
      CONFIG +
        `  imageCredentialProviderConfig: ${join(dir, 'none.yaml')}\n  imageCredentialProviderBinDir: ${join(dir, 'no-bin')}\n`,
    );
    await assert.rejects(
      openNodeRuntime(bad, { root: join(dir, 'bad'), env: {}, credentials: { nodeDockerConfig: false } }),
      (e: unknown) => isKimgError(e, 'CREDENTIAL_PROVIDER_CONFIG_INVALID'),
    );
  });
});

test('imageServiceBackend: a CRI endpoint, else --containerd or kimg.containerd, else kimg store', () => {
  const file = {
    containerd: { address: '/run/c.sock', namespace: 'ns', snapshotter: 'native', directWrite: false },
  };
  const cases: [string, Parameters<typeof imageServiceBackend>, unknown][] = [
    ['nothing', [undefined], { kind: 'local' }],
    [
      'platform and concurrency',
      [{}, { platform: 'linux/arm64', concurrency: 2 }],
      { kind: 'local', platform: 'linux/arm64', concurrency: 2 },
    ],
    [
      'the configuration',
      [file, { platform: 'linux/amd64' }],
      {
        kind: 'containerd',
        address: '/run/c.sock',
        namespace: 'ns',
        snapshotter: 'native',
        directWrite: false,
        platform: 'linux/amd64',
      },
    ],
    [
      'the flag wins over the address and keeps the rest',
      [file, { containerd: '/tmp/other.sock' }],
      {
        kind: 'containerd',
        address: '/tmp/other.sock',
        namespace: 'ns',
        snapshotter: 'native',
        directWrite: false,
      },
    ],
    [
      'the flag alone',
      [undefined, { containerd: '/tmp/c.sock' }],
      { kind: 'containerd', address: '/tmp/c.sock' },
    ],
    ['an empty flag is no flag', [{}, { containerd: '' }], { kind: 'local' }],
    [
      'a CRI endpoint wins',
      [file, { criEndpoint: 'unix:///run/cri.sock', containerd: '/tmp/c.sock' }],
      { kind: 'cri', endpoint: 'unix:///run/cri.sock' },
    ],
  ];
  for (const [what, args, want] of cases) assert.deepEqual(imageServiceBackend(...args), want, what);
});

test('openImageBackend: kimg store alone (no image service unless asked); close leaves an injected store open', async () => {
  const dir = await makeTempDir('rt-backend-');
  try {
    const root = join(dir, 'store');
    const b = await openImageBackend({ kind: 'local' }, { root, env: {} });
    assert.equal(b.store?.root, root);
    assert.equal(b.imageService, undefined);
    assert.equal(b.containerd, undefined);
    assert.deepEqual(await b.store.images.list(), []);
    await assert.rejects(
      b.pull('r.io/app:1', { auth: null }),
      (e: unknown) => isKimgError(e, 'INVALID_ARGUMENT'),
      'a pull needs a registry client',
    );
    await b.close();
    await b.close();

    const store = await openStore({ root, env: {} });
    const registry = new RegistryClient();
    const order: string[] = [];
    spyClose(store, 'store', order);
    try {
      const injected = await openImageBackend({ kind: 'local' }, { store, imageService: true, registry });
      assert.ok(injected.imageService instanceof LocalImageService);
      assert.equal(injected.local, injected.imageService);
      await injected.close();
      assert.deepEqual(order, []);
    } finally {
      await registry.close();
      await store.close();
    }
  } finally {
    await removeTempDir(dir);
  }
});
