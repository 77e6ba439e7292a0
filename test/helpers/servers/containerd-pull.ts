/**
 * A kimg pull into containerd in a child process, so a test can SIGKILL it at a chosen moment:
 * `node containerd-pull.js CONFIG.json` with `{address, image, plainHttp, progressIntervalMs?}`.
 * Writes every pull event as one JSON line on stdout, then `{"type":"result", ...}` with the pull's
 * result (id, digest, stats), and exits 0; on failure `{"type":"failed", code, message}` and exit 1.
 */
import { ContainerdClient, pullIntoContainerd } from '../../../src/containerd/index.js';
import { isKimgError } from '../../../src/errors/index.js';
import { RegistryClient } from '../../../src/registry/index.js';
import { exitWithParent, readChildConfig } from './child.js';

interface Config {
  address: string;
  image: string;
  plainHttp: string[];
  progressIntervalMs?: number;
}

exitWithParent();
const config = readChildConfig<Config>();
const line = (v: unknown): void => void process.stdout.write(`${JSON.stringify(v)}\n`);
const client = new ContainerdClient({ address: config.address });
const registry = new RegistryClient({ plainHttp: config.plainHttp });
try {
  const r = await pullIntoContainerd(config.image, {
    client,
    registry,
    onProgress: line,
    progressIntervalMs: config.progressIntervalMs ?? 10,
  });
  line({ type: 'result', id: r.id, digest: r.digest, stats: r.stats });
  process.exitCode = 0;
} catch (e) {
  line({ type: 'failed', code: isKimgError(e) ? e.code : 'UNKNOWN', message: String(e) });
  process.exitCode = 1;
} finally {
  client.close();
  await registry.close().catch(() => undefined);
}
