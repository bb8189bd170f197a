import { type KeyObject, sign, verify } from 'node:crypto';
import { TrustError } from './errors.ts';
import { keyIdOf } from './keys.ts';
import { type EntryDigest, parseManifest } from './manifest.ts';
import type { TrustStore } from './trust-store.ts';

export const SIGNATURE_FORMAT = 'clp-signature-1';
/** A manifest of 10,000 entries is about 1 MiB; a SIGNATURE far above that is not ours. */
export const MAX_SIGNATURE_BYTES = 8 * 1024 * 1024;

/** The JSON document stored in the SIGNATURE entry. Only `manifest` is covered by `signature`. */
export interface SignatureDocument {
  format: typeof SIGNATURE_FORMAT;
  algorithm: 'ed25519';
  keyId: string;
  signer: string;
  manifest: string;
  /** base64 of the 64-byte Ed25519 signature over the UTF-8 bytes of `manifest`. */
  signature: string;
}

export interface VerifiedSignature {
  keyId: string;
  /** The signer name written by whoever signed; a label, not covered by the signature. */
  signer: string;
  /** The name of the trusted key file (without .pub) that verified the signature. */
  keyName: string;
  /** The manifest text that the signature covers. */
  manifest: string;
  patchName: string;
  entries: Map<string, EntryDigest>;
}

const KEYS = ['format', 'algorithm', 'keyId', 'signer', 'manifest', 'signature'] as const;

function invalid(message: string): TrustError {
  return new TrustError('CLP_E_SIGNATURE_INVALID', `SIGNATURE ${message}`);
}

/** Signs a manifest text and returns the SIGNATURE entry's content (JSON, UTF-8). */
export function createSignature(manifest: string, privateKey: KeyObject, signer: string): string {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') {
    throw new TrustError('CLP_E_KEY_INVALID', 'signing needs an Ed25519 private key');
  }
  parseManifest(manifest);
  const doc: SignatureDocument = {
    format: SIGNATURE_FORMAT,
    algorithm: 'ed25519',
    keyId: keyIdOf(privateKey),
    signer,
    manifest,
    signature: sign(null, Buffer.from(manifest, 'utf8'), privateKey).toString('base64'),
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** Parses a SIGNATURE entry strictly (exact fields and types), without checking the signature. */
export function parseSignature(signatureJson: string | Uint8Array): SignatureDocument {
  const bytes =
    typeof signatureJson === 'string' ? Buffer.from(signatureJson, 'utf8') : Buffer.from(signatureJson);
  if (bytes.length > MAX_SIGNATURE_BYTES)
    throw invalid(`is ${bytes.length} bytes, more than ${MAX_SIGNATURE_BYTES}`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw invalid('is not valid UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw invalid(`is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid('is not a JSON object');
  const doc = value as Record<string, unknown>;
  const extra = Object.keys(doc).filter((k) => !(KEYS as readonly string[]).includes(k));
  if (extra.length > 0) throw invalid(`has unknown fields: ${extra.join(', ')}`);
  for (const k of KEYS)
    if (typeof doc[k] !== 'string') throw invalid(`field "${k}" is missing or not a string`);
  if (doc.format !== SIGNATURE_FORMAT)
    throw invalid(`format is "${String(doc.format)}", expected "${SIGNATURE_FORMAT}"`);
  if (doc.algorithm !== 'ed25519')
    throw invalid(`algorithm is "${String(doc.algorithm)}"; only ed25519 is accepted`);
  if (!/^[0-9a-f]{16}$/.test(doc.keyId as string)) throw invalid('keyId is not 16 lowercase hex digits');
  if ((doc.signer as string).length > 256) throw invalid('signer is longer than 256 characters');
  const sig = Buffer.from(doc.signature as string, 'base64');
  if (sig.length !== 64 || sig.toString('base64') !== doc.signature) {
    throw invalid('signature is not the base64 of 64 bytes');
  }
  return doc as unknown as SignatureDocument;
}

/**
 * Checks a SIGNATURE entry against the trust store: the key must be known and not revoked, and
 * the Ed25519 signature must cover the manifest. Fails closed: any doubt is an error.
 */
export function verifyManifestSignature(
  signatureJson: string | Uint8Array,
  store: TrustStore,
): VerifiedSignature {
  const doc = parseSignature(signatureJson);
  if (store.isRevoked(doc.keyId)) {
    throw new TrustError(
      'CLP_E_REVOKED_KEY',
      `signed by key ${doc.keyId} (${doc.signer}), which is revoked in ${store.describe()}`,
      {
        details: { keyId: doc.keyId, signer: doc.signer },
      },
    );
  }
  const trusted = store.get(doc.keyId);
  if (!trusted) {
    throw new TrustError(
      'CLP_E_UNKNOWN_KEY',
      `signed by key ${doc.keyId} (${doc.signer}), which is not trusted: no matching .pub in ${store.describe()}`,
      { details: { keyId: doc.keyId, signer: doc.signer } },
    );
  }
  let ok = false;
  try {
    ok = verify(
      null,
      Buffer.from(doc.manifest, 'utf8'),
      trusted.publicKey,
      Buffer.from(doc.signature, 'base64'),
    );
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new TrustError(
      'CLP_E_SIGNATURE_INVALID',
      `SIGNATURE does not verify with key ${doc.keyId} (${trusted.name}): the manifest or signature was altered`,
      {
        details: { keyId: doc.keyId },
      },
    );
  }
  const manifest = parseManifest(doc.manifest);
  return {
    keyId: doc.keyId,
    signer: doc.signer,
    keyName: trusted.name,
    manifest: doc.manifest,
    patchName: manifest.patchName,
    entries: manifest.entries,
  };
}
