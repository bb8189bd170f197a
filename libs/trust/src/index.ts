export { checkDeclaredHashes } from './declared-hashes.ts';
export { TRUST_ERROR_CODES, TrustError, type TrustErrorCode } from './errors.ts';
export { hashFile } from './hash-file.ts';
export {
  generateKeyPair,
  type KeyPair,
  keyIdOf,
  loadPrivateKey,
  loadPublicKey,
  type WrittenKeyPair,
  writeKeyPair,
} from './keys.ts';
export {
  buildManifest,
  compareEntryNames,
  type EntryDigest,
  MANIFEST_HEADER,
  type Manifest,
  parseManifest,
  SIGNATURE_ENTRY,
} from './manifest.ts';
export { type SignResult, signPatch } from './sign-patch.ts';
export {
  createSignature,
  MAX_SIGNATURE_BYTES,
  parseSignature,
  SIGNATURE_FORMAT,
  type SignatureDocument,
  type VerifiedSignature,
  verifyManifestSignature,
} from './signature.ts';
export { parseRevocationList, REVOKED_FILE, type TrustedKey, TrustStore } from './trust-store.ts';
export {
  readSignatureEntry,
  type VerifiableArchive,
  VerifiedManifest,
  verifyPatch,
  verifySignedEntries,
} from './verify-patch.ts';
