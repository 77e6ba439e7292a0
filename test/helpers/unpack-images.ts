/**
 * Builds OCI image layouts from hand-written layer entries, for the unpack tests: a small tar writer
 * (ustar, with pax records for long names, xattrs and big ids), gzip / zstd (the `zstd` CLI) / plain
 * layers with OCI media types, a config with the right diff_ids, and `umoci`-compatible layout files.
 * Entries are written exactly as given — including hostile names — because the point is to feed the
 * unpacker what an attacker would.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { requireBinary } from './components.js';

export type EntrySpec =
  | {
      type: 'file';
      name: string;
      data?: string | Buffer;
      mode?: number;
      uid?: number;
      gid?: number;
      xattrs?: Record<string, string>;
      mtime?: number;
    }
  | { type: 'dir'; name: string; mode?: number; uid?: number; gid?: number; mtime?: number }
  | { type: 'symlink'; name: string; target: string; uid?: number; gid?: number }
  | { type: 'hardlink'; name: string; target: string }
  | { type: 'char' | 'block'; name: string; major: number; minor: number; mode?: number }
  | { type: 'fifo'; name: string; mode?: number };

export type LayerCompression = 'gzip' | 'zstd' | 'none';

export interface LayerDef {
  entries: EntrySpec[];
  compression?: LayerCompression;
  /** Bytes appended after the end-of-archive blocks (still part of the diff ID). */
  trailer?: Buffer;
  /** Rewrites the serialized tar (to damage it) before compression. */
  mangle?: (tar: Buffer) => Buffer;
}

export interface ImageDef {
  layers: LayerDef[];
  config?: Record<string, unknown>;
  /** Override the diff_ids written into the config (to test mismatches). */
  diffIds?: string[];
  tag?: string;
  /** Docker image manifest v2 schema 2 media types for the manifest, config and layers (default OCI). */
  mediaTypes?: 'oci' | 'docker';
}

const TYPEFLAG = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  dir: '5',
  fifo: '6',
} as const;

function octal(n: number, len: number): string {
  return n.toString(8).padStart(len - 1, '0') + '\0';
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function header(fields: {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  flag: string;
  linkname: string;
  major?: number;
  minor?: number;
}): Buffer {
  const h = Buffer.alloc(512);
  h.write(fields.name.slice(0, 100), 0, 'utf8');
  h.write(octal(fields.mode, 8), 100, 'latin1');
  h.write(octal(Math.min(fields.uid, 0o7777777), 8), 108, 'latin1');
  h.write(octal(Math.min(fields.gid, 0o7777777), 8), 116, 'latin1');
  h.write(octal(fields.size, 12), 124, 'latin1');
  h.write(octal(fields.mtime, 12), 136, 'latin1');
  h.write('        ', 148, 'latin1');
  h.write(fields.flag, 156, 'latin1');
  h.write(fields.linkname.slice(0, 100), 157, 'utf8');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  h.write(octal(fields.major ?? 0, 8), 329, 'latin1');
  h.write(octal(fields.minor ?? 0, 8), 337, 'latin1');
  let sum = 0;
  for (const c of h) sum += c;
  h.write(octal(sum, 7) + ' ', 148, 'latin1');
  return h;
}

function pad(b: Buffer): Buffer {
  const rem = b.length % 512;
  return rem === 0 ? b : Buffer.concat([b, Buffer.alloc(512 - rem)]);
}

/** Serializes entries to a tar (pax headers where ustar fields do not suffice). */
export function buildTar(entries: readonly EntrySpec[], trailer?: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = e.type === 'file' ? Buffer.from(e.data ?? '') : Buffer.alloc(0);
    const linkname = e.type === 'symlink' || e.type === 'hardlink' ? e.target : '';
    const uid = 'uid' in e && e.uid !== undefined ? e.uid : 0;
    const gid = 'gid' in e && e.gid !== undefined ? e.gid : 0;
    const pax: Buffer[] = [];
    if (Buffer.byteLength(e.name) > 99) pax.push(paxRecord('path', Buffer.from(e.name)));
    if (Buffer.byteLength(linkname) > 99) pax.push(paxRecord('linkpath', Buffer.from(linkname)));
    if (uid > 0o7777777) pax.push(paxRecord('uid', Buffer.from(String(uid))));
    if (gid > 0o7777777) pax.push(paxRecord('gid', Buffer.from(String(gid))));
    if (e.type === 'file')
      for (const [k, v] of Object.entries(e.xattrs ?? {}))
        pax.push(paxRecord(`SCHILY.xattr.${k}`, Buffer.from(v)));
    if (pax.length > 0) {
      const body = Buffer.concat(pax);
      parts.push(
        header({
          name: 'PaxHeaders/x',
          mode: 0o644,
          uid: 0,
          gid: 0,
          size: body.length,
          mtime: 0,
          flag: 'x',
          linkname: '',
        }),
      );
      parts.push(pad(body));
    }
    const defMode = e.type === 'dir' ? 0o755 : e.type === 'symlink' ? 0o777 : 0o644;
    parts.push(
      header({
        name: e.name,
        mode: 'mode' in e && e.mode !== undefined ? e.mode : defMode,
        uid,
        gid,
        size: data.length,
        mtime: 'mtime' in e && e.mtime !== undefined ? e.mtime : 1_700_000_000,
        flag: TYPEFLAG[e.type],
        linkname,
        ...(e.type === 'char' || e.type === 'block' ? { major: e.major, minor: e.minor } : {}),
      }),
    );
    if (data.length > 0) parts.push(pad(data));
  }
  parts.push(Buffer.alloc(1024));
  if (trailer) parts.push(trailer);
  return Buffer.concat(parts);
}

function sha(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

export function compress(tar: Buffer, c: LayerCompression): Buffer {
  if (c === 'gzip') return gzipSync(tar);
  if (c === 'zstd')
    return execFileSync(requireBinary('zstd'), ['-q', '-c', '-3'], { input: tar, maxBuffer: 1 << 30 });
  return tar;
}

const MEDIA: Record<LayerCompression, string> = {
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  none: 'application/vnd.oci.image.layer.v1.tar',
};

const DOCKER_MEDIA: Record<LayerCompression, string> = {
  gzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  zstd: 'application/vnd.docker.image.rootfs.diff.tar.zstd',
  none: 'application/vnd.docker.image.rootfs.diff.tar',
};

export interface BuiltImage {
  layout: string;
  tag: string;
  manifestDigest: string;
  configDigest: string;
  diffIds: string[];
  layerDigests: string[];
}

function writeBlob(layout: string, data: Buffer): string {
  const d = sha(data);
  const p = join(layout, 'blobs', 'sha256', d.slice(7));
  if (!existsSync(p)) writeFileSync(p, data);
  return d;
}

/** Writes (or adds to) an OCI layout `layout` holding the image under `tag`. */
export function buildImage(layout: string, def: ImageDef): BuiltImage {
  mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const tag = def.tag ?? 'latest';
  const docker = def.mediaTypes === 'docker';
  const manifestType = docker
    ? 'application/vnd.docker.distribution.manifest.v2+json'
    : 'application/vnd.oci.image.manifest.v1+json';
  const layers = def.layers.map((l) => {
    const built = buildTar(l.entries, l.trailer);
    const tar = l.mangle ? l.mangle(built) : built;
    const c = l.compression ?? 'gzip';
    const blob = compress(tar, c);
    const mediaType = (docker ? DOCKER_MEDIA : MEDIA)[c];
    return { diffId: sha(tar), digest: writeBlob(layout, blob), size: blob.length, mediaType };
  });
  const diffIds = def.diffIds ?? layers.map((l) => l.diffId);
  const config = {
    created: '2024-01-01T00:00:00Z',
    architecture: 'amd64',
    os: 'linux',
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      ...(def.config ?? {}),
    },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: layers.map(() => ({ created: '2024-01-01T00:00:00Z', created_by: 'kimg test' })),
  };
  const configBuf = Buffer.from(JSON.stringify(config));
  const configDigest = writeBlob(layout, configBuf);
  const manifest = {
    schemaVersion: 2,
    mediaType: manifestType,
    config: {
      mediaType: docker
        ? 'application/vnd.docker.container.image.v1+json'
        : 'application/vnd.oci.image.config.v1+json',
      digest: configDigest,
      size: configBuf.length,
    },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  const mBuf = Buffer.from(JSON.stringify(manifest));
  const manifestDigest = writeBlob(layout, mBuf);
  const indexPath = join(layout, 'index.json');
  const index = existsSync(indexPath)
    ? (JSON.parse(readFileSync(indexPath, 'utf8')) as {
        manifests: { annotations?: Record<string, string> }[];
      })
    : { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] };
  index.manifests = index.manifests.filter(
    (m) => m.annotations?.['org.opencontainers.image.ref.name'] !== tag,
  );
  index.manifests.push({
    mediaType: manifestType,
    digest: manifestDigest,
    size: mBuf.length,
    platform: { architecture: 'amd64', os: 'linux' },
    annotations: { 'org.opencontainers.image.ref.name': tag },
  } as never);
  writeFileSync(indexPath, JSON.stringify(index));
  return { layout, tag, manifestDigest, configDigest, diffIds, layerDigests: layers.map((l) => l.digest) };
}
