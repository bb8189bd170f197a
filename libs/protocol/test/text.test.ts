import { describe, expect, it } from 'vitest';
import { cleanBlockText, textProblem } from '../src/index.ts';

describe('text the server takes', () => {
  it.each([
    ['a NUL', 'a\u0000b', /control character U\+0000 at offset 1/],
    ['an escape', '\u001b[31m', /control character U\+001B at offset 0/],
    ['DEL', 'x\u007f', /control character U\+007F/],
    ['a tab on a line', 'a\tb', /U\+0009/],
    ['a lone high surrogate', 'ok\ud83d', /lone surrogate \(U\+D83D\) at offset 2/],
    ['a lone low surrogate', '\ude80ok', /lone surrogate \(U\+DE80\) at offset 0/],
  ])('refuses %s in a line', (_what, text, reason) => {
    expect(textProblem(text)).toMatch(reason);
  });

  it('takes tabs and line ends in a block, and any character pair', () => {
    expect(textProblem('a\tb\r\nc\n🚀 東京', 'block')).toBeUndefined();
    expect(textProblem('🚀 東京 é')).toBeUndefined();
    expect(textProblem('a\u0000', 'block')).toMatch(/only tab and line ends are allowed/);
  });

  it('makes a log acceptable by replacing what is refused, keeping the rest', () => {
    const cleaned = cleanBlockText('\u001b[31mred\u001b[0m\tok\r\n🚀\ud83d');
    expect(cleaned).toBe('\ufffd[31mred\ufffd[0m\tok\r\n🚀\ufffd');
    expect(textProblem(cleaned, 'block')).toBeUndefined();
    expect(cleanBlockText('plain')).toBe('plain');
    expect(cleanBlockText('\u0000\u0000')).toBe('\ufffd\ufffd');
  });
});
