/**
 * Terminal-safe text. Registries, pod specs, layouts and plugins are untrusted (docs/security.md):
 * their strings reach kimg's human-readable output (error lines, warnings, tables, `describe pod`,
 * `explain`, the status page's text) and must not drive the terminal. An ESC sequence can set the
 * window title, clear the screen or move the cursor; a raw newline or carriage return can forge an
 * extra `error:` line. Every C0 control (U+0000–U+001F), DEL (U+007F) and C1 control (U+0080–U+009F,
 * which some terminals read as CSI and OSC) is written as a visible escape (`\x1b`, `\n`, `\u009b`);
 * printable Unicode, including every non-Latin script, is kept as it is. JSON output never goes
 * through here: it stays byte-exact.
 */

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;
// eslint-disable-next-line no-control-regex
const CONTROL_BUT_LINES = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function visible(ch: string): string {
  const named = NAMED[ch];
  if (named !== undefined) return named;
  const cp = ch.charCodeAt(0);
  return cp < 0x80 ? `\\x${cp.toString(16).padStart(2, '0')}` : `\\u${cp.toString(16).padStart(4, '0')}`;
}

/**
 * One line of terminal-safe text: every control character, newline and tab included, escaped (so a
 * value can never start a new line of output).
 */
export function escapeTerminal(text: string): string {
  return text.replace(CONTROL, visible);
}

/**
 * Multi-line terminal-safe text for a block kimg laid out itself (`describe pod`, `explain`): newlines
 * and tabs are kept, every other control character is escaped. Values that must stay on one line are
 * escaped with `escapeTerminal` before they are laid out.
 */
export function escapeTerminalBlock(text: string): string {
  return text.replace(CONTROL_BUT_LINES, visible);
}

/**
 * A bounded, escaped excerpt of untrusted text (a plugin's stderr, a registry's error body): at most
 * `max` characters of it, escaped for one line, with the number of characters left out.
 */
export function terminalExcerpt(text: string, max = 512): string {
  const cut = text.length > max ? text.slice(0, max) : text;
  const more = text.length > max ? ` …(${text.length - max} more characters)` : '';
  return escapeTerminal(cut) + more;
}
