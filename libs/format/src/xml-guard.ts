import { XMLValidator } from 'fast-xml-parser';
import { FormatError } from './errors.ts';

const BUILTIN = /^&(?:lt|gt|amp|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);/;

/**
 * Refuses what an XML parser could be tricked with before any parser sees the text:
 * a DTD, entity declarations, and references to entities other than the five built-in ones.
 */
export function guardXml(text: string, file: string): void {
  if (/<!DOCTYPE/i.test(text)) {
    throw new FormatError(
      'CLP_E_XML_DTD',
      `${file}: a DOCTYPE is not allowed; remove the <!DOCTYPE …> declaration`,
      {
        details: { entry: file },
      },
    );
  }
  if (/<!ENTITY/i.test(text)) {
    throw new FormatError(
      'CLP_E_XML_ENTITY',
      `${file}: entity declarations are not allowed; remove the <!ENTITY …>`,
      {
        details: { entry: file },
      },
    );
  }
  for (let at = text.indexOf('&'); at !== -1; at = text.indexOf('&', at + 1)) {
    const rest = text.slice(at, at + 64);
    if (BUILTIN.test(rest)) continue;
    const ref = /^&([A-Za-z_:][\w.:-]*);/.exec(rest);
    if (ref) {
      throw new FormatError(
        'CLP_E_XML_ENTITY',
        `${file}: entity reference &${ref[1]}; is not allowed; only &lt; &gt; &amp; &quot; &apos; and character references are`,
        { details: { entry: file, entity: ref[1] } },
      );
    }
    throw new FormatError(
      'CLP_E_XML_MALFORMED',
      `${file}: line ${lineOf(text, at)}: a bare & must be written &amp;`,
      {
        details: { entry: file, line: lineOf(text, at) },
      },
    );
  }
  const valid = XMLValidator.validate(text);
  if (valid !== true) {
    throw new FormatError('CLP_E_XML_MALFORMED', `${file}: line ${valid.err.line}: ${valid.err.msg}`, {
      details: { entry: file, line: valid.err.line },
    });
  }
}

function lineOf(text: string, index: number): number {
  let line = 1;
  for (let i = 0; i < index; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** Decodes the built-in entities and character references in one pass. */
export function decodeXmlText(value: string): string {
  return value.replace(/&(lt|gt|amp|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);/g, (_, ref: string) => {
    switch (ref) {
      case 'lt':
        return '<';
      case 'gt':
        return '>';
      case 'amp':
        return '&';
      case 'quot':
        return '"';
      case 'apos':
        return "'";
    }
    const code = ref.startsWith('#x') ? Number.parseInt(ref.slice(2), 16) : Number.parseInt(ref.slice(1), 10);
    return code <= 0x10ffff ? String.fromCodePoint(code) : '\uFFFD';
  });
}

/** Escapes text for an attribute value or element content. */
export function encodeXmlText(value: string): string {
  return value.replace(
    /[<>&"']/g,
    (c) => `&${{ '<': 'lt', '>': 'gt', '&': 'amp', '"': 'quot', "'": 'apos' }[c]};`,
  );
}
