/**
 * What text the server takes from machines and operators: Unicode without control characters.
 * A NUL cannot be stored by PostgreSQL at all, a lone surrogate cannot be encoded as UTF-8, and
 * the other C0 controls (ESC, BEL, backspace…) rewrite what a terminal shows of a log or a name.
 * Logs may keep their layout: tab and line ends (LF, CR).
 */

const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const DEL = 0x7f;

type Kind = 'line' | 'block';

/** The offset of the first refused code unit, or -1. */
function firstBad(text: string, kind: Kind): number {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === DEL) {
      if (kind === 'block' && (c === TAB || c === LF || c === CR)) continue;
      return i;
    }
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
      return i;
    }
    if (c >= 0xdc00 && c <= 0xdfff) return i;
  }
  return -1;
}

/** Why `text` is refused, or undefined when it is fine. `block`: a log, which may hold tabs and line ends. */
export function textProblem(text: string, kind: Kind = 'line'): string | undefined {
  const at = firstBad(text, kind);
  if (at < 0) return undefined;
  const code = text.charCodeAt(at);
  const hex = `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
  if (code >= 0xd800) return `holds a lone surrogate (${hex}) at offset ${at}: not valid Unicode text`;
  const allowed =
    kind === 'block' ? 'only tab and line ends are allowed' : 'no control character is allowed here';
  return `holds the control character ${hex} at offset ${at}; ${allowed}`;
}

/**
 * The same text made acceptable, for a log the agent sends: control characters other than tab and
 * line ends become U+FFFD, and so do lone surrogates (e.g. a pair cut in two by truncation).
 */
export function cleanBlockText(text: string): string {
  let out = '';
  let from = 0;
  for (let at = firstBad(text, 'block'); at >= 0; at = firstBad(text.slice(from), 'block')) {
    out += `${text.slice(from, from + at)}\ufffd`;
    from += at + 1;
    if (from > text.length) break;
  }
  return out + text.slice(from);
}
