/**
 * Nothing from outside reaches a terminal raw: a registry's error text, pod names, images and event
 * messages are escaped in every human-readable output (error lines, tables, `describe pod`), while
 * JSON output stays exact.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { describePod } from '../../../src/cli/commands/describe.js';
import { toJson, toTable } from '../../../src/cli/output.js';
import type { NodeEvent, PodView } from '../../../src/node/index.js';
import { startFaultServer, type FaultServer } from '../../helpers/fault-server.js';
import { kimg } from '../credentials/helpers.js';

// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;
const HOSTILE = 'denied\x1b]0;pwned\x07\x1b[2J\r\nerror: forged (INTERNAL)\u009b31m';

let fault: FaultServer;
before(async () => {
  fault = await startFaultServer();
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
