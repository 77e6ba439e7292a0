/**
 * Resolving an image config's `User` (`user`, `uid`, `user:group`, `uid:gid`, mixed) against the
 * rootfs's `/etc/passwd` and `/etc/group`, as image-spec `conversion.md` asks: numeric values are
 * copied, names are looked up (an unknown name is `USER_NOT_FOUND`), `additionalGids` come from group
 * membership when the user was given by name and no group was given, and they include the primary gid
 * (containerd's fix for CVE-2023-25173). The files are read through `resolveInRoot`, so a symlinked
 * `/etc/passwd` cannot make the unpacker read a host file, and they are capped in size. Ids above
 * 2^31-1 are refused (`UNPACK_UNSAFE`, CVE-2024-40635: they wrapped to root in containerd).
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { KimgError, quote } from '../../errors/index.js';
import { resolveInRoot } from './resolve.js';

export const MAX_ID = 2 ** 31 - 1;
const MAX_DB_BYTES = 4 * 1024 * 1024;

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids?: number[];
  /** Home directory from /etc/passwd, when the user is listed there. */
  home?: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}
interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** Reads a file of the rootfs (symlinks resolved inside it); undefined when absent or not a file. */
export function readRootfsFile(root: string, path: string): string | undefined {
  const r = resolveInRoot(root, path);
  if (r.missingFrom !== undefined || r.notDir !== undefined) return undefined;
  let fd: number;
  try {
    fd = openSync(r.host, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return undefined;
    const size = Math.min(st.size, MAX_DB_BYTES);
    const buf = Buffer.alloc(size);
    let off = 0;
    while (off < size) {
      const n = readSync(fd, buf, off, size - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.toString('utf8', 0, off);
  } finally {
    closeSync(fd);
  }
}

function parseId(s: string): number | undefined {
  if (!/^[0-9]+$/.test(s)) return undefined;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : undefined;
}

export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 7 || (f[0] as string).startsWith('#')) continue;
    const uid = parseId(f[2] as string);
    const gid = parseId(f[3] as string);
    if (uid === undefined || gid === undefined) continue;
    out.push({ name: f[0] as string, uid, gid, home: f[5] as string });
  }
  return out;
}

export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 4 || (f[0] as string).startsWith('#')) continue;
    const gid = parseId(f[2] as string);
    if (gid === undefined) continue;
    const members = (f[3] as string).split(',').filter((m) => m !== '');
    out.push({ name: f[0] as string, gid, members });
  }
  return out;
}

function checkId(id: number, user: string): number {
  if (id > MAX_ID) {
    throw new KimgError('UNPACK_UNSAFE', `image user ${quote(user)}: id ${id} is above ${MAX_ID}`, {
      input: user,
    });
  }
  return id;
}

/**
 * Resolves `user` (the config's `User`; empty means root). `readFile` reads a file of the image's
 * filesystem (`readRootfsFile` bound to a rootfs, or a lookup through stacked layer directories).
 */
export function resolveUser(readFile: (path: string) => string | undefined, user: string): ResolvedUser {
  if (user === '') return { uid: 0, gid: 0 };
  const colon = user.indexOf(':');
  const userPart = colon === -1 ? user : user.slice(0, colon);
  const groupPart = colon === -1 ? undefined : user.slice(colon + 1);
  let passwd: PasswdEntry[] | undefined;
  let groups: GroupEntry[] | undefined;
  const loadPasswd = () => (passwd ??= parsePasswd(readFile('/etc/passwd') ?? ''));
  const loadGroups = () => (groups ??= parseGroup(readFile('/etc/group') ?? ''));

  let uid: number;
  let gid = 0;
  let home: string | undefined;
  let byName: PasswdEntry | undefined;
  const numericUid = parseId(userPart);
  if (numericUid !== undefined) {
    uid = checkId(numericUid, user);
    const e = loadPasswd().find((p) => p.uid === uid);
    if (e) {
      gid = e.gid;
      home = e.home;
    }
  } else {
    byName = loadPasswd().find((p) => p.name === userPart);
    if (!byName) {
      throw new KimgError(
        'USER_NOT_FOUND',
        `image user ${quote(userPart)} is not in the image's /etc/passwd`,
        { input: user },
      );
    }
    uid = checkId(byName.uid, user);
    gid = byName.gid;
    home = byName.home;
  }
  if (groupPart !== undefined && groupPart !== '') {
    const numericGid = parseId(groupPart);
    if (numericGid !== undefined) gid = numericGid;
    else {
      const g = loadGroups().find((x) => x.name === groupPart);
      if (!g) {
        throw new KimgError(
          'USER_NOT_FOUND',
          `image group ${quote(groupPart)} is not in the image's /etc/group`,
          { input: user },
        );
      }
      gid = g.gid;
    }
  }
  checkId(gid, user);
  const result: ResolvedUser = { uid, gid, ...(home !== undefined ? { home } : {}) };
  if (byName !== undefined && (groupPart === undefined || groupPart === '')) {
    const extra = loadGroups()
      .filter((g) => g.members.includes(byName.name))
      .map((g) => checkId(g.gid, user));
    result.additionalGids = [...new Set([gid, ...extra])];
  }
  return result;
}
