/**
 * Terminal-safe text: every C0, C1 and DEL character is made visible, printable Unicode is kept, and
 * no escaped value can start a new line of output.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { escapeTerminal, escapeTerminalBlock, terminalExcerpt } from '../../../src/gotext/index.js';
import { fuzzParams } from '../../helpers/fuzz.js';

// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

test('a registry error that sets the title, clears the screen and forges an error line is made visible', () => {
  const hostile = 'denied\x1b]0;pwned\x07\x1b[2J\nerror: fake (INTERNAL)';
  const out = escapeTerminal(hostile);
  assert.equal(out, 'denied\\x1b]0;pwned\\x07\\x1b[2J\\nerror: fake (INTERNAL)');
  assert.doesNotMatch(out, RAW_CONTROL);
});

test('C1 controls (CSI U+009B), DEL and carriage returns are escaped; printable unicode is kept', () => {
  assert.equal(escapeTerminal('a\u009b31mb\u007fc\rd'), 'a\\u009b31mb\\x7fc\\rd');
  assert.equal(escapeTerminal('pod-名前 ✓ Ωμέγα'), 'pod-名前 ✓ Ωμέγα');
  assert.equal(escapeTerminal('tab\there'), 'tab\\there');
});

test('blocks keep their newlines and tabs, nothing else', () => {
  assert.equal(escapeTerminalBlock('Name:\tx\x1b[31m\nNext'), 'Name:\tx\\x1b[31m\nNext');
});

test('excerpts are bounded and say how much was left out', () => {
  const long = '\x1b'.repeat(10_000);
  const out = terminalExcerpt(long, 100);
  assert.ok(out.length < 100 * 4 + 50, `excerpt of ${out.length} characters`);
  assert.match(out, /…\(9900 more characters\)$/);
});

test('property: escaped text has no control character and only grows by the escapes', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary' }), (s) => {
      const out = escapeTerminal(s);
      assert.doesNotMatch(out, RAW_CONTROL);
      if (!RAW_CONTROL.test(s)) assert.equal(out, s);
      // eslint-disable-next-line no-control-regex
      assert.doesNotMatch(escapeTerminalBlock(s), /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
    }),
    fuzzParams(2000),
  );
});
