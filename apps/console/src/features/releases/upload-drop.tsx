import type { Release } from '@clp/protocol';
import { useRef, useState } from 'preact/hooks';
import { describeFailure } from '../../components/feedback.tsx';
import { ApiFailure } from '../../lib/api-client.ts';
import { uploadRelease } from './api.ts';

/** The server's refusals of an archive, said in words a release engineer acts on. */
const REFUSALS: Record<string, string> = {
  CLP_E_UNSIGNED: 'The patch is not signed. Sign it with clpctl sign FILE.clp --key KEY and upload again.',
  CLP_E_SIGNATURE_INVALID:
    'The signature does not match the archive: it was changed after signing, or signed wrongly.',
  CLP_E_UNKNOWN_KEY:
    "The patch is signed by a key this server does not trust. Add the key's .pub to the server's trusted keys.",
  CLP_E_REVOKED_KEY: 'The patch is signed by a revoked key. Sign it again with a current release key.',
  CLP_E_MANIFEST_MISMATCH: 'An entry differs from what the signature covers: the archive was tampered with.',
  CLP_E_PATH_TRAVERSAL: 'The archive is hostile: an entry climbs out of its folder (..). Nothing was stored.',
  CLP_E_ABSOLUTE_PATH: 'The archive is hostile: an entry has an absolute path. Nothing was stored.',
  CLP_E_LINK_ENTRY: 'The archive holds a link, which patches may not carry. Nothing was stored.',
  CLP_E_ZIP_BOMB: 'The archive is hostile: it inflates far beyond its size (a zip bomb). Nothing was stored.',
  CLP_E_NOT_AN_ARCHIVE: 'This is not a .clp archive (zip or tar.gz).',
  CLP_E_CONFLICT: 'Another release has this patch name already; give the patch a new revision.',
  CLP_E_UPLOAD_TOO_LARGE: 'The file is larger than the server accepts (CLP_MAX_UPLOAD_BYTES).',
};

export function refusalText(error: unknown): string {
  const base = describeFailure(error);
  const words = error instanceof ApiFailure ? REFUSALS[error.code] : undefined;
  return words ? `${words} Server said: ${base}` : base;
}

/** Drop a .clp here (or pick one): it uploads with a progress bar and says what the server thought. */
export function UploadDrop({ onUploaded }: { onUploaded(release: Release): void }) {
  const [over, setOver] = useState(false);
  const [progress, setProgress] = useState<number | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [done, setDone] = useState<string | undefined>(undefined);
  const input = useRef<HTMLInputElement>(null);

  async function send(file: File) {
    setError(undefined);
    setDone(undefined);
    setProgress(0);
    try {
      const release = await uploadRelease(file, setProgress);
      setDone(
        `Uploaded ${release.name} (${release.sha256.slice(0, 12)}…), signed by ${release.signerKeyId}.`,
      );
      onUploaded(release);
    } catch (failure) {
      setError(`${file.name} was refused. ${refusalText(failure)}`);
    } finally {
      setProgress(undefined);
    }
  }

  return (
    <section
      class={over ? 'drop over' : 'drop'}
      aria-label="Upload a release"
      onDragOver={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => {
        e.preventDefault();
        setOver(false);
        const file = e.dataTransfer?.files[0];
        if (file) void send(file);
      }}
    >
      <p>
        Drop a signed <code>.clp</code> here, or{' '}
        <button type="button" onClick={() => input.current?.click()}>
          choose a file
        </button>
      </p>
      <input
        ref={input}
        type="file"
        accept=".clp"
        hidden
        data-testid="upload-input"
        onChange={(e) => {
          const file = (e.target as HTMLInputElement).files?.[0];
          if (file) void send(file);
          (e.target as HTMLInputElement).value = '';
        }}
      />
      {progress !== undefined ? (
        <p>
          <progress max={1} value={progress} aria-label="Upload progress" /> {Math.round(progress * 100)} %
          {progress >= 1 ? ' — the server is checking the signature…' : ''}
        </p>
      ) : null}
      {error ? (
        <p class="error-text" role="alert" data-testid="upload-error">
          {error}
        </p>
      ) : null}
      {done ? (
        <p class="ok-text" role="status" data-testid="upload-done">
          {done}
        </p>
      ) : null}
    </section>
  );
}
