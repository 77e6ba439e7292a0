/**
 * Nothing from outside reaches a terminal raw: a registry's error text, pod names, images and event
 * messages are escaped in every human-readable output (error lines, tables, `describe pod`), while
 * JSON output stays exact.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describePod } from '../../../src/cli/commands/describe.js';
import { formatEvents } from '../../../src/cli/commands/ensure.js';
import { quote, quoteValue } from '../../../src/errors/index.js';
import type { ManagerEvent } from '../../../src/manager/index.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';
import { toJson, toTable } from '../../../src/cli/output.js';
import type { NodeEvent, PodView } from '../../../src/node/index.js';
import { startFaultServer, type FaultServer } from '../../helpers/fault-server.js';
import { kimg } from '../credentials/helpers.js';

// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;
const HOSTILE = 'denied\x1b]0;pwned\x07\x1b[2J\r\nerror: forged (INTERNAL)\u009b31m';

/** An OCI manifest whose annotations carry C1 controls and DEL (JSON.stringify keeps them raw). */
const ANNOTATED = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: `sha256:${'a'.repeat(64)}`,
      size: 2,
    },
    layers: [],
    annotations: { title: 'x\u009b2J\u009d0;pwned\u009c\u007f' },
  }),
);

let fault: FaultServer;
let dir: string;
before(async () => {
  dir = await makeTempDir('hostile-output-');
  fault = await startFaultServer();
  fault.route('GET', /^\/v2\/app\/manifests\/annotated$/, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(ANNOTATED);
  });
  fault.route('GET', /^\/v2\/app\/manifests\/1$/, (_req, res) => {
    res
      .writeHead(403, { 'content-type': 'application/json' })
      .end(JSON.stringify({ errors: [{ code: 'DENIED', message: HOSTILE }] }));
  });
  fault.route('HEAD', /^\/v2\/app\/manifests\/1$/, (_req, res) => {
    res.writeHead(403, { 'content-type': 'application/json' }).end();
  });
});
after(async () => {
  await fault.close();
  await removeTempDir(dir);
});

test("a registry's error message cannot set the title, clear the screen or forge an error line", async () => {
  const r = await kimg(['manifest', '--plain-http', fault.host, `${fault.host}/app:1`]);
  assert.notEqual(r.status, 0);
  assert.doesNotMatch(r.stderr, RAW_CONTROL);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.filter((l) => l.startsWith('error:')).length, 1, r.stderr);
  assert.match(r.stderr, /\\x1b\]0;pwned\\x07/);
});

test('an invalid reference with control characters is escaped in its error line', async () => {
  const r = await kimg(['ref', 'parse', 'nginx\x1b[2J\nerror: forged']);
  assert.equal(r.status, 2);
  assert.doesNotMatch(r.stderr, RAW_CONTROL);
  assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
  assert.doesNotMatch(r.stdout, RAW_CONTROL);
});

test("commander's own errors quote arguments escaped", async () => {
  const r = await kimg(['no-such\x1b]0;x\x07']);
  assert.equal(r.status, 2);
  assert.doesNotMatch(r.stderr, RAW_CONTROL);
});

const view: PodView = {
  key: 'default/web',
  name: 'web',
  namespace: 'default',
  uid: 'u1',
  file: '/etc/kubernetes/manifests/web\x1b[31m.yaml',
  createdAt: 0,
  syncs: 1,
  containers: [
    {
      name: 'c',
      list: 'containers',
      image: 'reg.example/app:1\x1b]0;x\x07',
      imagePullPolicy: 'IfNotPresent',
      state: 'Waiting',
      reason: 'ErrImagePull',
      message: HOSTILE,
      imageRef: '',
      lastError: `ErrImagePull: ${HOSTILE}`,
    },
  ],
};
const events: NodeEvent[] = [
  {
    type: 'Warning',
    reason: 'Failed',
    message: HOSTILE,
    object: { kind: 'Pod', namespace: 'default', name: 'web', uid: 'u1', container: 'c' },
    firstTimestamp: 0,
    lastTimestamp: 0,
    count: 1,
  },
];

test('describe pod escapes the image, messages, file and events; its layout stays', () => {
  const out = describePod(view, events, 'node1', 1000);
  assert.doesNotMatch(out, RAW_CONTROL);
  assert.ok(!out.split('\n').some((l) => l.startsWith('error:')), out);
  assert.match(out, /^Name:\s+web$/m);
  assert.match(out, /Image:\s+reg\.example\/app:1\\x1b\]0;x\\x07$/m);
});

test('tables escape every cell; JSON output is exact', () => {
  const table = toTable(['name', 'status'], [['web\x1b[2J', HOSTILE]]);
  assert.doesNotMatch(table, RAW_CONTROL);
  assert.equal(table.trimEnd().split('\n').length, 2);
  assert.equal(JSON.parse(toJson({ message: HOSTILE })).message, HOSTILE);
});

test("kimg ensure's Events block escapes a registry's error text (no title, no clear, no forged line)", async () => {
  const pod = join(dir, 'pod.yaml');
  await writeFile(
    pod,
    `apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: default, uid: u1}\nspec:\n  containers:\n  - {name: c, image: ${fault.host}/app:1, imagePullPolicy: Always}\n`,
  );
  const r = await kimg(['ensure', '-f', pod, '--root', join(dir, 'root'), '--plain-http', fault.host]);
  assert.notEqual(r.status, 0);
  assert.doesNotMatch(r.stdout, RAW_CONTROL);
  assert.doesNotMatch(r.stderr, RAW_CONTROL);
  assert.ok(!r.stdout.split('\n').some((l) => l.startsWith('error:')), r.stdout);
  assert.match(r.stdout, /^ {2}Warning\s+Failed\s+.*\\x1b\]0;pwned\\x07/m);
  // JSON keeps the message exact.
  const j = await kimg([
    'ensure',
    '-f',
    pod,
    '--root',
    join(dir, 'root2'),
    '--plain-http',
    fault.host,
    '-o',
    'json',
  ]);
  const out = JSON.parse(j.stdout) as { events: Array<{ message: string }> };
  assert.ok(out.events.some((e) => e.message.includes('\x1b]0;pwned\x07')));
});

test('the events table escapes reasons and messages; one event stays one line', () => {
  const event = {
    type: 'Warning',
    reason: 'Failed\u009b2J',
    message: `Failed to pull image "x": ${HOSTILE}`,
    timestamp: 0,
    object: { pod: { name: 'web', namespace: 'default', uid: 'u1' }, container: 'c' },
  } as unknown as ManagerEvent;
  const out = formatEvents([event], 1000);
  assert.doesNotMatch(out, RAW_CONTROL);
  assert.equal(out.trimEnd().split('\n').length, 4, out);
  assert.match(out, /Failed\\u009b2J/);
});

test("kimg manifest's text mode escapes C1 controls and DEL in registry annotations; -o json stays exact", async () => {
  const r = await kimg(['manifest', '--plain-http', fault.host, `${fault.host}/app:annotated`]);
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stdout, RAW_CONTROL);
  assert.match(r.stdout, /x\\u009b2J\\u009d0;pwned\\u009c\\x7f/);
  const j = await kimg(['manifest', '--plain-http', fault.host, `${fault.host}/app:annotated`, '-o', 'json']);
  const out = JSON.parse(j.stdout) as { manifest: { annotations: { title: string } } };
  assert.equal(out.manifest.annotations.title, 'x\u009b2J\u009d0;pwned\u009c\u007f');
});

test("quoted values in messages escape C1 controls and DEL as Go's %q does", () => {
  assert.equal(quote('a\u009b[2Jb\u007f'), '"a\\u009b[2Jb\\u007f"');
  assert.equal(quoteValue({ k: '\u0085' }), '{"k":"\\u0085"}');
  assert.equal(quote('ünïcode ✓'), '"ünïcode ✓"');
});
