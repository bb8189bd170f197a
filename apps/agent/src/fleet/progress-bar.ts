import type { DownloadProgress } from './download.ts';

export interface ProgressBar {
  update(name: string, progress: DownloadProgress): void;
  done(): void;
}

const WIDTH = 30;
/** Redraw at most this often, so a fast download does not flood the terminal. */
const REDRAW_MS = 100;

function human(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}

/** A one-line download bar on STREAM when it is a terminal; a no-op otherwise (logs, pipes, --json). */
export function downloadBar(stream: NodeJS.WriteStream, enabled: boolean): ProgressBar {
  if (!enabled || !stream.isTTY) return { update() {}, done() {} };
  let last = 0;
  let drawn = false;
  return {
    update(name, { received, total }) {
      const now = Date.now();
      if (received < total && now - last < REDRAW_MS) return;
      last = now;
      const ratio = total > 0 ? Math.min(1, received / total) : 1;
      const filled = Math.round(ratio * WIDTH);
      stream.write(
        `\r${name} [${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}] ${String(Math.round(ratio * 100)).padStart(3)}% ${human(received)}/${human(total)}\x1b[K`,
      );
      drawn = true;
    },
    done() {
      if (drawn) stream.write('\n');
      drawn = false;
    },
  };
}
