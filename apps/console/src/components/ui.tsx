import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { absoluteTime, relativeTime } from '../lib/time.ts';

/** A time shown both ways: relative for reading at a glance, absolute (UTC) for the record. */
export function Time({ iso, empty = 'never' }: { iso: string | null | undefined; empty?: string }) {
  if (!iso) return <span class="muted">{empty}</span>;
  return (
    <time dateTime={iso} title={absoluteTime(iso)} class="time">
      {relativeTime(iso)} <span class="muted small">{absoluteTime(iso)}</span>
    </time>
  );
}

export function Pager({
  offset,
  limit,
  total,
  onChange,
}: {
  offset: number;
  limit: number;
  total: number;
  onChange(offset: number): void;
}) {
  const last = Math.min(offset + limit, total);
  return (
    <nav class="pager" aria-label="Pages">
      <button type="button" disabled={offset === 0} onClick={() => onChange(Math.max(0, offset - limit))}>
        ← Previous
      </button>
      <span data-testid="pager-range">
        {total === 0 ? 'none' : `${offset + 1}–${last} of ${total.toLocaleString('en')}`}
      </span>
      <button type="button" disabled={last >= total} onClick={() => onChange(offset + limit)}>
        Next →
      </button>
    </nav>
  );
}

export function StateBadge({ state }: { state: string }) {
  return <span class={`badge badge-${state}`}>{state}</span>;
}

/** A modal confirmation (the native dialog: focus is trapped, Escape cancels). */
export function ConfirmDialog({
  title,
  children,
  confirmLabel,
  danger,
  reason,
  onConfirm,
  onClose,
}: {
  title: string;
  children?: ComponentChildren;
  confirmLabel: string;
  danger?: boolean;
  /** Ask for a reason (kept in the audit log); 'required' when the server needs one. */
  reason?: boolean | 'required';
  onConfirm(reason: string): Promise<void> | void;
  onClose(): void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    ref.current?.showModal();
  }, []);
  return (
    <dialog ref={ref} class="dialog" onClose={onClose} aria-labelledby="dialog-title">
      <form
        method="dialog"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          try {
            await onConfirm(text.trim());
          } finally {
            setBusy(false);
            ref.current?.close();
          }
        }}
      >
        <h2 id="dialog-title">{title}</h2>
        {children}
        {reason ? (
          <label class="field">
            Reason (kept in the audit log)
            <input
              name="reason"
              value={text}
              maxLength={500}
              required={reason === 'required'}
              onInput={(e) => setText((e.target as HTMLInputElement).value)}
              autoFocus
            />
          </label>
        ) : null}
        <div class="actions">
          <button type="button" onClick={() => ref.current?.close()}>
            Cancel
          </button>
          <button type="submit" class={danger ? 'danger' : 'primary'} disabled={busy}>
            {busy ? 'Working…' : confirmLabel}
          </button>
        </div>
      </form>
    </dialog>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty muted">{children}</p>;
}

export function Loading() {
  return (
    <p class="muted" aria-busy="true">
      Loading…
    </p>
  );
}

/** A secret shown once, with a copy button. */
export function SecretOnce({ label, secret }: { label: string; secret: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <section class="secret" aria-label={label}>
      <p>
        <strong>{label}</strong> — shown only now; copy it before leaving this page.
      </p>
      <code data-testid="secret">{secret}</code>
      <button
        type="button"
        onClick={async () => {
          try {
            await navigator.clipboard.writeText(secret);
            setCopied(true);
          } catch {
            setCopied(false);
          }
        }}
      >
        {copied ? 'Copied' : 'Copy'}
      </button>
    </section>
  );
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

export function percent(rate: number): string {
  return `${(rate * 100).toFixed(1)} %`;
}
