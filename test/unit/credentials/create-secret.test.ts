/**
 * `kimg create secret docker-registry` against outputs recorded from the real kubectl (v1.32.4), plus
 * kubectl's validation messages.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  buildDockerRegistrySecret,
  dockerConfigJsonFor,
  formatDockerRegistrySecret,
  parseDockerConfig,
} from '../../../src/credentials/index.js';
import { isKimgError } from '../../../src/errors/index.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';
import { DOCKERCONFIG_CONTENT, KUBECTL_GOLDEN } from './fixtures/kubectl-golden.js';
import { kimg } from './helpers.js';

describe('kimg create secret docker-registry', () => {
  let dir: string;
  let cfg: string;
  before(async () => {
    dir = await makeTempDir('creds-cs-');
    cfg = join(dir, 'config.json');
    await writeFile(cfg, DOCKERCONFIG_CONTENT);
  });
  after(async () => {
    await removeTempDir(dir);
  });

  for (const g of KUBECTL_GOLDEN) {
    test(`same bytes as kubectl: ${JSON.stringify(g.args).slice(0, 100)} -o ${g.format}`, async () => {
      const args = g.args.map((a) => a.replace('{DOCKERCONFIG}', cfg));
      const r = await kimg(['create', 'secret', 'docker-registry', ...args, '-o', g.format]);
      assert.equal(r.stderr, '');
      assert.equal(r.status, 0);
      assert.equal(r.stdout, g.stdout);
    });
  }

  test('yaml is the default output and --dry-run=client is accepted', async () => {
    const r = await kimg([
      'create',
      'secret',
      'docker-registry',
      'x',
      '--docker-username=u',
      '--docker-password=p',
      '--dry-run=client',
    ]);
    assert.equal(r.status, 0);
    assert.ok(r.stdout.startsWith('apiVersion: v1\n'));
    const bad = await kimg([
      'create',
      'secret',
      'docker-registry',
      'x',
      '--docker-username=u',
      '--docker-password=p',
      '--dry-run=server',
    ]);
    assert.equal(bad.status, 2);
  });

  test("kubectl's validation messages", async () => {
    const cases: Array<[string[], string, number]> = [
      [
        ['x', '--docker-username=u'],
        'error: either --from-file or the combination of --docker-username, --docker-password and --docker-server is required (USAGE)\n',
        2,
      ],
      [
        ['x', '--docker-username=u', '--docker-password=p', '--docker-server='],
        'error: either --from-file or the combination of --docker-username, --docker-password and --docker-server is required (USAGE)\n',
        2,
      ],
      [
        ['x', `--from-file=${dir}`],
        'error: cannot give a key name for a directory path (INVALID_ARGUMENT)\n',
        2,
      ],
      [
        ['x', `--from-file=a=${cfg}`, `--from-file=a=${cfg}`],
        'error: cannot add key a, another key by that name already exists (INVALID_ARGUMENT)\n',
        2,
      ],
      [
        ['x', `--from-file=${cfg},${cfg}`],
        'error: cannot add key .dockerconfigjson, another key by that name already exists (INVALID_ARGUMENT)\n',
        2,
      ],
      [['x', `--from-file==${cfg}`], `error: key name for file path ${cfg} missing (INVALID_ARGUMENT)\n`, 2],
      [['x', '--from-file=a='], 'error: file path for key name a missing (INVALID_ARGUMENT)\n', 2],
      [
        ['x', `--from-file=..x=${cfg}`],
        `error: "..x" is not valid key name for a Secret must not start with '..' (INVALID_ARGUMENT)\n`,
        2,
      ],
      [
        ['x', `--from-file=.dockerconfigjson=${join(dir, 'none')}`],
        `error: error reading ${join(dir, 'none')}: no such file or directory (FILE_NOT_FOUND)\n`,
        2,
      ],
    ];
    for (const [args, stderr, status] of cases) {
      const r = await kimg(['create', 'secret', 'docker-registry', ...args]);
      assert.equal(r.stderr, stderr, args.join(' '));
      assert.equal(r.status, status);
      assert.equal(r.stdout, '');
    }
  });

  test('the payload reads back through kimg and kubelet semantics', async () => {
    const s = await buildDockerRegistrySecret({
      name: 'n',
      server: 'reg.io:5000',
      username: 'me',
      password: 'p:a:ss',
      email: 'me@x',
    });
    const payload = Buffer.from(s.data['.dockerconfigjson'] ?? '', 'base64').toString();
    assert.equal(payload, dockerConfigJsonFor('reg.io:5000', 'me', 'p:a:ss', 'me@x'));
    const [e] = parseDockerConfig(payload).entries;
    assert.equal(e?.key, 'reg.io:5000');
    assert.equal(e?.auth.username, 'me');
    assert.equal(e?.auth.password?.reveal(), 'p:a:ss');
    assert.ok(formatDockerRegistrySecret(s, 'json').startsWith('{\n    "kind": "Secret",\n'));
  });

  test('invalid key names use the apimachinery wording', async () => {
    await mkdir(join(dir, 'd'), { recursive: true });
    await assert.rejects(
      buildDockerRegistrySecret({ name: 'x', fromFile: [`bad key=${cfg}`] }),
      (e: unknown) =>
        isKimgError(e, 'INVALID_ARGUMENT') &&
        e.message ===
          `"bad key" is not valid key name for a Secret a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')`,
    );
  });
});
