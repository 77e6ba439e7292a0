/**
 * The CRI face's pure parts: the proto file loads from dist and round-trips every message with the
 * upstream field numbers (checked against hand-encoded protobuf bytes), AuthConfig → kimg credentials
 * (containerd's ParseAuth rules), error translation both ways (the RegistryUnavailable prefix rule, the
 * kimg-error-code trailer, containerd's Unknown texts), and the OCI ChainID.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { authFromWire, authToWire } from '../../../src/cri/convert.js';
import {
  KIMG_ERROR_CODE_METADATA,
  fromGrpcError,
  grpcCodeName,
  kubeletErrorText,
  toGrpcStatus,
} from '../../../src/cri/errors.js';
import { criProtoPath, loadCriPackage } from '../../../src/cri/proto.js';
import { unixSocketPath } from '../../../src/cri/server.js';
import { chainId } from '../../../src/cri/verbose.js';
import { Secret } from '../../../src/credentials/index.js';
import { KimgError, isKimgError } from '../../../src/errors/index.js';
import type { WireAuthConfig } from '../../../src/cri/proto.js';

const wireAuth = (a: Partial<WireAuthConfig>): WireAuthConfig => ({
  username: '',
  password: '',
  auth: '',
  server_address: '',
  identity_token: '',
  registry_token: '',
  ...a,
});

/** protobuf varint-keyed field: tag = (number << 3) | wiretype. */
function tag(n: number, wt: number): number {
  return (n << 3) | wt;
}
function lenField(n: number, payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag(n, 2), payload.length]), payload]);
}

describe('cri proto', () => {
  test('the proto file is found from dist and loads both services', () => {
    assert.ok(existsSync(criProtoPath()));
    const pkg = loadCriPackage();
    const img = pkg.ImageService.service;
    assert.deepEqual(Object.keys(img).sort(), [
      'ImageFsInfo',
      'ImageStatus',
      'ListImages',
      'PullImage',
      'RemoveImage',
    ]);
    assert.equal(img.PullImage!.path, '/runtime.v1.ImageService/PullImage');
    assert.equal(pkg.RuntimeService.service.Version!.path, '/runtime.v1.RuntimeService/Version');
  });

  test('ImageSpec field numbers: image=1, runtime_handler=19 (decoded from hand-made bytes)', () => {
    const svc = loadCriPackage().ImageService.service;
    // RemoveImageRequest{ image(1): ImageSpec{ image(1)="a", runtime_handler(19)="rh" } }
    const spec = Buffer.concat([
      lenField(1, Buffer.from('a')),
      Buffer.from([0x9a, 0x01, 2]), // tag 19, wire type 2 → varint 154,1
      Buffer.from('rh'),
    ]);
    const req = svc.RemoveImage!.requestDeserialize(lenField(1, spec)) as {
      image: { image: string; runtime_handler: string };
    };
    assert.equal(req.image.image, 'a');
    assert.equal(req.image.runtime_handler, 'rh');
  });

  test('Image round-trips with uid wrapper, size as uint64 and the ImageStatus info map', () => {
    const svc = loadCriPackage().ImageService.service;
    const res = {
      image: {
        id: 'sha256:' + 'a'.repeat(64),
        repo_tags: ['r/x:1'],
        repo_digests: ['r/x@sha256:' + 'b'.repeat(64)],
        size: 5_000_000_000,
        uid: { value: 1000 },
        username: '',
        pinned: true,
        spec: { image: 'sha256:' + 'a'.repeat(64), runtime_handler: 'kata', annotations: {} },
      },
      info: { info: '{"chainID":"x"}' },
    };
    const bytes = svc.ImageStatus!.responseSerialize(res);
    // field 1 (image) is length-delimited, tag byte 0x0a
    assert.equal(bytes[0], tag(1, 2));
    const back = svc.ImageStatus!.responseDeserialize(bytes) as typeof res;
    assert.equal(back.image.size, 5_000_000_000);
    assert.equal(back.image.uid.value, 1000);
    assert.equal(back.image.pinned, true);
    assert.equal(back.image.spec.runtime_handler, 'kata');
    assert.deepEqual(back.info, res.info);
  });

  test('an absent image (ImageStatus response {}) decodes as image null', () => {
    const svc = loadCriPackage().ImageService.service;
    const back = svc.ImageStatus!.responseDeserialize(svc.ImageStatus!.responseSerialize({})) as {
      image: unknown;
    };
    assert.equal(back.image, null);
  });

  test('AuthConfig numbers 1..6 as upstream', () => {
    const svc = loadCriPackage().ImageService.service;
    const auth = Buffer.concat(['u', 'p', 'a', 's', 'i', 'r'].map((v, i) => lenField(i + 1, Buffer.from(v))));
    const req = svc.PullImage!.requestDeserialize(
      Buffer.concat([lenField(1, lenField(1, Buffer.from('img'))), lenField(2, auth)]),
    ) as { auth: WireAuthConfig };
    assert.deepEqual(
      [
        req.auth.username,
        req.auth.password,
        req.auth.auth,
        req.auth.server_address,
        req.auth.identity_token,
        req.auth.registry_token,
      ],
      ['u', 'p', 'a', 's', 'i', 'r'],
    );
  });
});

describe('cri AuthConfig → kimg credentials (containerd ParseAuth)', () => {
  test('null and all-empty are anonymous', () => {
    assert.equal(authFromWire(null, 'r.io/x:1'), undefined);
    assert.equal(authFromWire(wireAuth({}), 'r.io/x:1'), undefined);
  });
  test('username/password', () => {
    const a = authFromWire(wireAuth({ username: 'u', password: 'pw' }), 'r.io/x:1');
    assert.equal(a?.username, 'u');
    assert.equal(a?.password?.reveal(), 'pw');
  });
  test('auth is base64(user:pass); a colon in the password survives', () => {
    const a = authFromWire(wireAuth({ auth: Buffer.from('u:p:w').toString('base64') }), 'r.io/x:1');
    assert.equal(a?.username, 'u');
    assert.equal(a?.password?.reveal(), 'p:w');
  });
  test('malformed auth is INVALID_ARGUMENT and does not echo the value', () => {
    const secret = Buffer.from('nocolon-secret').toString('base64');
    assert.throws(
      () => authFromWire(wireAuth({ auth: secret }), 'r.io/x:1'),
      (e: unknown) =>
        isKimgError(e, 'INVALID_ARGUMENT') && !e.message.includes(secret) && !e.message.includes('nocolon'),
    );
    assert.throws(
      () => authFromWire(wireAuth({ auth: '%%%' }), 'r.io/x:1'),
      (e: unknown) => isKimgError(e, 'INVALID_ARGUMENT'),
    );
  });
  test('identity_token is a refresh token; registry_token a bearer token', () => {
    assert.equal(authFromWire(wireAuth({ identity_token: 'rt' }), 'r.io/x:1')?.identityToken?.reveal(), 'rt');
    assert.equal(authFromWire(wireAuth({ registry_token: 'bt' }), 'r.io/x:1')?.registryToken?.reveal(), 'bt');
  });
  test('username wins over identity_token over auth (containerd order)', () => {
    const a = authFromWire(
      wireAuth({
        username: 'u',
        password: 'p',
        identity_token: 'rt',
        auth: Buffer.from('x:y').toString('base64'),
      }),
      'r.io/x:1',
    );
    assert.equal(a?.username, 'u');
    assert.equal(a?.identityToken, undefined);
  });
  test('server_address of another host → no credentials; same host (any form) → credentials', () => {
    assert.equal(
      authFromWire(wireAuth({ username: 'u', password: 'p', server_address: 'other.io' }), 'r.io/x:1'),
      undefined,
    );
    assert.equal(
      authFromWire(wireAuth({ username: 'u', password: 'p', server_address: 'https://r.io' }), 'r.io/x:1')
        ?.username,
      'u',
    );
    assert.equal(
      authFromWire(wireAuth({ username: 'u', password: 'p', server_address: 'r.io:5000' }), 'r.io:5000/x')
        ?.username,
      'u',
    );
    assert.equal(
      authFromWire(wireAuth({ username: 'u', password: 'p', server_address: 'r.io:5000' }), 'r.io/x')
        ?.username,
      undefined,
    );
    // Docker Hub has several names
    assert.equal(
      authFromWire(
        wireAuth({ username: 'u', password: 'p', server_address: 'https://index.docker.io/v1/' }),
        'busybox',
      )?.username,
      'u',
    );
  });
  test('authToWire reveals secrets only into the wire object', () => {
    const w = authToWire({ username: 'u', password: new Secret('pw'), identityToken: new Secret('rt') });
    assert.deepEqual(w, { username: 'u', password: 'pw', identity_token: 'rt' });
  });
});

describe('cri errors', () => {
  test('REGISTRY_UNAVAILABLE → Unknown with the RegistryUnavailable prefix (kubelet evalCRIPullErr)', () => {
    const st = toGrpcStatus(new KimgError('REGISTRY_UNAVAILABLE', 'cannot reach registry host r.io'));
    assert.equal(st.code, grpc.status.UNKNOWN);
    assert.equal(st.details, 'RegistryUnavailable: cannot reach registry host r.io');
    assert.deepEqual(st.metadata.get(KIMG_ERROR_CODE_METADATA), ['REGISTRY_UNAVAILABLE']);
    // relayed from another runtime: not prefixed twice
    const relayed = toGrpcStatus(new KimgError('REGISTRY_UNAVAILABLE', 'RegistryUnavailable: down'));
    assert.equal(relayed.details, 'RegistryUnavailable: down');
  });
  test("codes map once: NotFound, containerd's Unknown for registry refusals, InvalidArgument, Unknown default, Internal for non-Kimg", () => {
    const code = (c: ConstructorParameters<typeof KimgError>[0]) => toGrpcStatus(new KimgError(c, 'm')).code;
    assert.equal(code('NOT_FOUND'), grpc.status.NOT_FOUND);
    assert.equal(code('PLATFORM_NOT_FOUND'), grpc.status.NOT_FOUND);
    assert.equal(code('UNAUTHORIZED'), grpc.status.UNKNOWN);
    assert.equal(code('TOKEN_REFUSED'), grpc.status.UNKNOWN);
    assert.equal(code('NO_CREDENTIALS_ACCEPTED'), grpc.status.UNKNOWN);
    assert.equal(code('DENIED'), grpc.status.UNKNOWN);
    assert.equal(code('TOO_MANY_REQUESTS'), grpc.status.UNKNOWN);
    assert.equal(code('INVALID_REFERENCE_FORMAT'), grpc.status.INVALID_ARGUMENT);
    assert.equal(code('REGISTRY_ERROR'), grpc.status.UNKNOWN);
    assert.equal(code('MANIFEST_INVALID'), grpc.status.UNKNOWN);
    assert.equal(toGrpcStatus(new Error('boom')).code, grpc.status.INTERNAL);
  });
  test('kubelet text: Unknown is bare, other codes keep rpc error formatting', () => {
    assert.equal(kubeletErrorText(grpc.status.UNKNOWN, 'RegistryUnavailable: x'), 'RegistryUnavailable: x');
    assert.equal(kubeletErrorText(grpc.status.NOT_FOUND, 'gone'), 'rpc error: code = NotFound desc = gone');
    assert.equal(grpcCodeName(grpc.status.PERMISSION_DENIED), 'PermissionDenied');
    assert.equal(grpcCodeName(grpc.status.DEADLINE_EXCEEDED), 'DeadlineExceeded');
  });
  const ctx = { rpc: 'PullImage', endpoint: 'unix:///x.sock', image: 'r/x:1' };
  const se = (code: grpc.status, details: string, kimgCode?: string): grpc.ServiceError => {
    const metadata = new grpc.Metadata();
    if (kimgCode) metadata.set(KIMG_ERROR_CODE_METADATA, kimgCode);
    return Object.assign(new Error(details), { code, details, metadata });
  };
  test('the kimg-error-code trailer wins over everything', () => {
    const e = fromGrpcError(se(grpc.status.UNKNOWN, 'RegistryUnavailable: x', 'REGISTRY_UNAVAILABLE'), ctx);
    assert.equal(e.code, 'REGISTRY_UNAVAILABLE');
    assert.equal(
      fromGrpcError(se(grpc.status.UNAUTHENTICATED, 'x', 'TOKEN_REFUSED'), ctx).code,
      'TOKEN_REFUSED',
    );
    // an unknown trailer value is ignored
    assert.equal(fromGrpcError(se(grpc.status.NOT_FOUND, 'x', 'NOPE'), ctx).code, 'NOT_FOUND');
  });
  test("containerd's real texts (code Unknown) map by text; the message is the kubelet's", () => {
    const basic =
      'failed to pull and unpack image "127.0.0.1:5001/small:1": failed to resolve reference "127.0.0.1:5001/small:1": pulling from host 127.0.0.1:5001 failed with status code [manifests 1]: 401 Unauthorized';
    const token =
      'failed to pull and unpack image "127.0.0.1:5002/small:1": failed to resolve reference "127.0.0.1:5002/small:1": failed to authorize: failed to fetch oauth token: unexpected status: 401 Unauthorized';
    for (const t of [basic, token]) {
      const e = fromGrpcError(se(grpc.status.UNKNOWN, t), ctx);
      assert.equal(e.code, 'UNAUTHORIZED');
      assert.equal(e.message, t);
    }
    const down =
      'failed to pull and unpack image "127.0.0.1:1/x:1": failed to resolve reference: dial tcp 127.0.0.1:1: connect: connection refused';
    assert.equal(fromGrpcError(se(grpc.status.UNKNOWN, down), ctx).code, 'RUNTIME_ERROR');
    assert.equal(
      fromGrpcError(se(grpc.status.UNKNOWN, 'RegistryUnavailable: down'), ctx).code,
      'REGISTRY_UNAVAILABLE',
    );
  });
  test('gRPC codes map back: NotFound, PermissionDenied, Unavailable (runtime down), others RUNTIME_ERROR', () => {
    const nf = fromGrpcError(se(grpc.status.NOT_FOUND, 'failed to pull: not found'), ctx);
    assert.equal(nf.code, 'NOT_FOUND');
    assert.equal(nf.message, 'rpc error: code = NotFound desc = failed to pull: not found');
    assert.equal(fromGrpcError(se(grpc.status.PERMISSION_DENIED, 'x'), ctx).code, 'DENIED');
    const un = fromGrpcError(se(grpc.status.UNAVAILABLE, 'No connection established'), ctx);
    assert.equal(un.code, 'RUNTIME_UNAVAILABLE');
    assert.match(un.message, /unix:\/\/\/x\.sock/);
    assert.equal(fromGrpcError(se(grpc.status.DEADLINE_EXCEEDED, 'x'), ctx).code, 'RUNTIME_ERROR');
  });
});

describe('cri helpers', () => {
  test('unixSocketPath accepts unix:///abs, unix:/abs and /abs; refuses tcp and relative', () => {
    assert.equal(unixSocketPath('unix:///run/kimg/kimg.sock'), '/run/kimg/kimg.sock');
    assert.equal(unixSocketPath('unix:/run/k.sock'), '/run/k.sock');
    assert.equal(unixSocketPath('/run/k.sock'), '/run/k.sock');
    for (const bad of ['tcp://127.0.0.1:1', 'unix://rel.sock', 'k.sock', `/${'x'.repeat(120)}`]) {
      assert.throws(
        () => unixSocketPath(bad),
        (e: unknown) => isKimgError(e, 'INVALID_ARGUMENT'),
        bad,
      );
    }
  });
  test('chainId follows the OCI image-spec definition', () => {
    const d1 = 'sha256:' + '1'.repeat(64);
    const d2 = 'sha256:' + '2'.repeat(64);
    assert.equal(chainId([]), '');
    assert.equal(chainId([d1]), d1);
    // sha256("sha256:111… sha256:222…")
    assert.equal(chainId([d1, d2]), 'sha256:' + createHash('sha256').update(`${d1} ${d2}`).digest('hex'));
  });
});
