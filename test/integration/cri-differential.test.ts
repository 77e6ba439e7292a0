/**
 * Differential CRI conformance: the case table of test/helpers/cri-differential-cases.ts run through
 * kimg's CRI client against two real runtimes — a private **containerd** (1.6, CRI plugin, registries
 * marked plain HTTP in `hosts.toml`) and **kimg serve** (in-process, kimg's store) — over the same
 * registries and images. Each case reduces a runtime's answers to an observation and the two
 * observations must be equal; the table's header lists the deliberate differences it asserts.
 *
 * Not here: runtime_handler. containerd 1.6 ignores `ImageSpec.runtime_handler` for images (one image
 * per name); kimg keys images by handler, so handler cases are in cri.test.ts only.
 */
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CriImageService, startCriServer, storeVerboseInfo, type CriServer } from '../../src/cri/index.js';
import { LocalImageService } from '../../src/manager/index.js';
import { RegistryClient } from '../../src/registry/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { requireBinary } from '../helpers/components.js';
import { startContainerd, type StartedContainerd } from '../helpers/containerd.js';
import {
  CRI_DIFFERENTIAL_CASES,
  prepareCriDiffFixtures,
  type CriDiffContext,
} from '../helpers/cri-differential-cases.js';
import { stopRegistries } from '../helpers/registry.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

describe('cri differential: containerd vs kimg serve', () => {
  let work = '';
  let ctrd: StartedContainerd;
  let store: Store;
  let registry: RegistryClient;
  let server: CriServer;
  const ctx = { label: 'kimg serve', clients: {} } as CriDiffContext;

  before(async () => {
    for (const b of ['containerd', 'ctr', 'skopeo', 'docker-registry']) requireBinary(b);
    work = await makeTempDir('cri-diff-');
    const starting = startContainerd().then((c) => (ctrd = c));
    ctx.fx = await prepareCriDiffFixtures(
      work,
      starting.then((c) => [c]),
    );
    store = await openStore({ root: join(work, 'root') });
    registry = new RegistryClient({
      plainHttp: [...Object.values(ctx.fx.regs).map((r) => r.host), ctx.fx.downHost],
    });
    server = await startCriServer({
      listen: `unix://${work}/kimg.sock`,
      imageService: new LocalImageService({ store, registry, platform: 'linux/amd64' }),
      verboseInfo: storeVerboseInfo(store),
    });
    ctx.clients.containerd = new CriImageService({ endpoint: ctrd.address });
    ctx.clients.kimg = new CriImageService({ endpoint: server.address });
  });

  after(async () => {
    for (const c of Object.values(ctx.clients)) c.close();
    await server?.close({ drainTimeoutMs: 1000 });
    await store?.close().catch(() => undefined);
    await registry?.close().catch(() => undefined);
    await ctrd?.stop();
    await stopRegistries(Object.values(ctx.fx?.regs ?? {}));
    if (work) await removeTempDir(work);
  });

  for (const c of CRI_DIFFERENTIAL_CASES) test(c.name, () => c.run(ctx));
});
