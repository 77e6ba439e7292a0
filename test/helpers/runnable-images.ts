/**
 * Runnable test images: real OCI images whose single layer holds Debian's statically linked busybox
 * (package `busybox-static`), so containerd + runc can start a container from them on a machine that
 * reaches nothing beyond loopback.
 *
 * - {@link generateRunnableImage}: the config runs `/bin/echo <line>`; a container started from it
 *   writes exactly that line to stdout (the CRI log file, `ctr run`'s output) and exits 0.
 * - {@link generateSandboxImage}: a "pause" image for the CRI plugin's `sandbox_image`: the config runs
 *   `/bin/sleep 2147483647`, so the sandbox container keeps the pod's namespaces alive until the
 *   runtime kills it (StopPodSandbox sends SIGKILL to the sandbox task).
 *
 * Both images share one byte-identical layer (`bin/busybox` plus applet symlinks, fixed mtimes, fixed
 * gzip level), so a runtime that already holds one image holds the other's layer too. The layer is
 * built by the same deterministic tar/gzip writer as `images.ts`; the digests depend only on the
 * busybox binary installed here.
 *
 * {@link pushRunnableImages} writes both into one layout and pushes them with skopeo: the app image
 * as OCI (`runnable:1`) and as Docker schema 2 (`runnable-docker:1`, converted by skopeo), and the
 * sandbox image (`pause:1`).
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MediaType } from '../../src/oci/index.js';
import { requireBinary } from './components.js';
import {
  IMAGE_CREATED,
  describeImage,
  tagInLayout,
  writeJsonBlob,
  writeLayerBlob,
  type GeneratedImage,
  type GeneratedManifest,
  type TarEntry,
} from './images.js';
import type { StartedRegistry } from './registry.js';
import { skopeoInspectRaw, skopeoPush } from './skopeo.js';

/** busybox applets linked into `/bin` (what the images' commands and the tests' exec need). */
export const BUSYBOX_APPLETS: readonly string[] = ['sh', 'echo', 'sleep', 'cat', 'ls', 'true'];

/** The sandbox image's command: sleep about 68 years (busybox takes a 32-bit signed count). */
export const SANDBOX_COMMAND: readonly string[] = ['/bin/sleep', '2147483647'];

/** Default line written by {@link generateRunnableImage}'s image. */
export const DEFAULT_RUNNABLE_LINE = 'hello from a kimg runnable test image';

export interface RunnableImageOptions {
  /** Labels the config (`org.kimg.test.image`); the layer does not depend on it. */
  name: string;
  /** Tag in the layout's index.json; default '1'. */
  tag?: string;
  /** The line the container prints; default {@link DEFAULT_RUNNABLE_LINE}. */
  line?: string;
  /** Replaces the config's command (`Cmd`, with no `Entrypoint`); default `['/bin/echo', line]`. */
  command?: readonly string[];
}

export interface RunnableImage extends GeneratedImage {
  /** What the container writes to stdout ('' for the sandbox image). */
  line: string;
  /** The config's command (`Entrypoint` + `Cmd`). */
  command: string[];
  /** The busybox binary packed into the layer. */
  busybox: { path: string; size: number; sha256: string };
}

/** The architecture name OCI uses for this machine's CPU. */
function ociArchitecture(): string {
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ppc64: 'ppc64le', s390x: 's390x' };
  const arch = map[process.arch];
  if (arch === undefined)
    throw new Error(`runnable images: no OCI architecture for node arch ${process.arch}`);
  return arch;
}

/**
 * True when the ELF file at `path` has no program interpreter (PT_INTERP), i.e. it runs in an empty
 * root filesystem. Reads only the ELF and program headers (64-bit little-endian ELF only).
 */
function isStaticElf(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const eh = Buffer.alloc(64);
    readSync(fd, eh, 0, 64, 0);
    if (eh.readUInt32BE(0) !== 0x7f454c46 || eh[4] !== 2 || eh[5] !== 1) return false;
    const phoff = Number(eh.readBigUInt64LE(32));
    const phentsize = eh.readUInt16LE(54);
    const phnum = eh.readUInt16LE(56);
    const ph = Buffer.alloc(phentsize * phnum);
    readSync(fd, ph, 0, ph.length, phoff);
    for (let i = 0; i < phnum; i++) {
      const PT_INTERP = 3;
      if (ph.readUInt32LE(i * phentsize) === PT_INTERP) return false;
    }
    return true;
  } finally {
    closeSync(fd);
  }
}

/**
 * Path of the statically linked busybox (Debian `busybox-static`). Throws, never skips, when busybox
 * is missing or is the dynamically linked build (package `busybox`), which cannot run in an image
 * without a libc.
 */
export function requireStaticBusybox(): string {
  const path = requireBinary('busybox');
  if (!isStaticElf(path)) {
    throw new Error(
      `${path} is dynamically linked (package busybox?); the runnable test images need the static build: apt-get install -y --no-install-recommends busybox-static`,
    );
  }
  return path;
}

interface BusyboxLayer {
  entries: TarEntry[];
  busybox: { path: string; size: number; sha256: string };
}

function busyboxLayer(): BusyboxLayer {
  const path = requireStaticBusybox();
  const bytes = readFileSync(path);
  const entries: TarEntry[] = [
    { name: 'bin/', dir: true },
    { name: 'bin/busybox', size: bytes.length, mode: 0o755, source: () => [bytes] },
    ...BUSYBOX_APPLETS.map((a): TarEntry => ({ name: `bin/${a}`, symlink: 'busybox' })),
    // Mount points the runtime would otherwise create in the container's rootfs.
    { name: 'dev/', dir: true },
    { name: 'etc/', dir: true },
    { name: 'proc/', dir: true },
    { name: 'sys/', dir: true },
    { name: 'tmp/', dir: true, mode: 0o1777 },
  ];
  return {
    entries,
    busybox: { path, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') },
  };
}

async function writeBusyboxImage(
  layoutDir: string,
  o: { name: string; tag: string; entrypoint?: readonly string[]; cmd: readonly string[]; line: string },
): Promise<RunnableImage> {
  await mkdir(join(layoutDir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(layoutDir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const { entries, busybox } = busyboxLayer();
  // Level 6 always: the layer must be byte-identical across the images built here.
  const layer = await writeLayerBlob(layoutDir, entries, 6);
  const architecture = ociArchitecture();
  const config = {
    created: IMAGE_CREATED,
    architecture,
    os: 'linux',
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      ...(o.entrypoint !== undefined ? { Entrypoint: [...o.entrypoint] } : {}),
      Cmd: [...o.cmd],
      WorkingDir: '/',
      Labels: { 'org.kimg.test.image': `${o.name}:${o.tag}` },
    },
    rootfs: { type: 'layers', diff_ids: [layer.diffId] },
    history: [{ created: IMAGE_CREATED, created_by: `kimg test helper: busybox ${busybox.sha256}` }],
  };
  const cfg = await writeJsonBlob(layoutDir, config);
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: cfg.digest, size: cfg.size },
    layers: [{ mediaType: layer.mediaType, digest: layer.digest, size: layer.size }],
  };
  const m = await writeJsonBlob(layoutDir, manifest);
  const generated: GeneratedManifest = {
    digest: m.digest,
    size: m.size,
    mediaType: MediaType.OciManifest,
    platform: { os: 'linux', architecture },
    config: cfg,
    layers: [layer],
  };
  const top = { digest: m.digest, size: m.size, mediaType: MediaType.OciManifest };
  await tagInLayout(layoutDir, o.tag, top);
  return {
    ...describeImage(layoutDir, o.tag, top, [generated]),
    line: o.line,
    command: [...(o.entrypoint ?? []), ...o.cmd],
    busybox,
  };
}

/** Writes an image whose container prints `line` (or runs `command`) into the OCI layout `layoutDir`. */
export async function generateRunnableImage(
  layoutDir: string,
  opts: RunnableImageOptions,
): Promise<RunnableImage> {
  const line = opts.line ?? DEFAULT_RUNNABLE_LINE;
  if (/[\r\n]/.test(line)) throw new Error('generateRunnableImage: the line must not contain a newline');
  return writeBusyboxImage(layoutDir, {
    name: opts.name,
    tag: opts.tag ?? '1',
    cmd: opts.command ?? ['/bin/echo', line],
    line,
  });
}

/** Writes the sandbox ("pause") image: it sleeps until killed. */
export async function generateSandboxImage(
  layoutDir: string,
  opts: { name?: string; tag?: string } = {},
): Promise<RunnableImage> {
  return writeBusyboxImage(layoutDir, {
    name: opts.name ?? 'pause',
    tag: opts.tag ?? 'pause',
    entrypoint: SANDBOX_COMMAND.slice(0, 1),
    cmd: SANDBOX_COMMAND.slice(1),
    line: '',
  });
}

/** One runnable image as pushed to a registry. */
export interface PushedRunnableImage {
  /** Full reference, `<reg.host>/<repo>:<tag>`. */
  ref: string;
  /** Digest of the manifest the registry serves for `ref`. */
  digest: string;
  mediaType: string;
  /** The config digest = the image id containerd's CRI reports. */
  configDigest: string;
  /** The layout image it was pushed from (OCI digests). */
  image: RunnableImage;
}

/** What {@link pushRunnableImages} pushed. */
export interface RunnableImageSet {
  /** `runnable:1`, OCI media types (digests as in the layout). */
  oci: PushedRunnableImage;
  /** `runnable-docker:1`, Docker schema 2 media types (converted by skopeo on push). */
  docker: PushedRunnableImage;
  /** `pause:1`, OCI: the sandbox image for the CRI plugin's `sandbox_image`. */
  sandbox: PushedRunnableImage;
  /** The line the app images print. */
  line: string;
}

async function pushed(
  reg: StartedRegistry,
  image: RunnableImage,
  repoTag: string,
  format?: 'v2s2',
): Promise<PushedRunnableImage> {
  await skopeoPush(image, reg, repoTag, format !== undefined ? { format } : {});
  const raw = await skopeoInspectRaw(repoTag, reg);
  const manifest = JSON.parse(raw) as { mediaType?: string; config?: { digest?: string } };
  const configDigest = manifest.config?.digest;
  if (configDigest === undefined) throw new Error(`pushed ${repoTag}: manifest without a config`);
  return {
    ref: `${reg.host}/${repoTag}`,
    digest: `sha256:${createHash('sha256').update(raw).digest('hex')}`,
    mediaType: manifest.mediaType ?? '',
    configDigest,
    image,
  };
}

/**
 * Builds the runnable app image and the sandbox image into `<workDir>/runnable-layout` and pushes
 * them to `reg` as `runnable:1` (OCI), `runnable-docker:1` (Docker schema 2) and `pause:1`.
 */
export async function pushRunnableImages(
  reg: StartedRegistry,
  workDir: string,
  opts: { line?: string } = {},
): Promise<RunnableImageSet> {
  const layout = join(workDir, 'runnable-layout');
  const app = await generateRunnableImage(layout, {
    name: 'runnable',
    tag: 'runnable',
    ...(opts.line !== undefined ? { line: opts.line } : {}),
  });
  const pause = await generateSandboxImage(layout);
  const oci = await pushed(reg, app, 'runnable:1');
  const docker = await pushed(reg, app, 'runnable-docker:1', 'v2s2');
  const sandbox = await pushed(reg, pause, 'pause:1');
  return { oci, docker, sandbox, line: app.line };
}
