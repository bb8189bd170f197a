/**
 * Guards the streaming reader: bench/format-memory.mjs (the 512 MiB measurement) run small.
 * A child opens a .clp with one 128 MiB entry (zip stored, zip deflated, and the historic tar.gz),
 * hashes it and extracts it; a reader that held the entry in memory would grow by at least
 * 128 MiB, a streaming one grows by what V8 lets garbage buffers pile up before it collects them
 * (about 45–65 MiB measured, whatever the entry size).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = join(import.meta.dirname, '../../..');
const BENCH = join(REPO, 'bench/format-memory.mjs');
const ENTRY_MIB = 128;
const hasProcStatus = existsSync('/proc/self/status');

interface Run {
  variant: string;
  entryBytes: number;
  read: { peakRSSMiB: number; loadedRSSMiB: number; growthMiB: number };
  write: { peakRSSMiB: number } | null;
}

function runBench(args: string[]): Promise<{ runs: Run[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BENCH, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as { runs: Run[] });
      } catch {
        reject(new Error(`format-memory exited with ${code} and no JSON result:\n${err}\n${out}`));
      }
    });
  });
}

describe('memory of the reader', () => {
  if (!hasProcStatus) console.warn('skipped: needs /proc/self/status (Linux) to read VmHWM');

  it.skipIf(!hasProcStatus)(
    `reads, hashes and extracts a ${ENTRY_MIB} MiB entry (zip stored, zip deflated, historic tar.gz) without holding it in memory`,
    async () => {
      const result = await runBench(['--size-mib', String(ENTRY_MIB), '--no-results', '--json']);
      expect(result.runs.map((r) => r.variant)).toEqual(['stored', 'deflate', 'targz']);
      for (const run of result.runs) {
        expect(run.entryBytes).toBe(ENTRY_MIB * 1024 * 1024);
        // Holding the entry would need ENTRY_MIB on top of the loaded library; streaming needs far less.
        expect(run.read.growthMiB, `${run.variant}: grew by ${run.read.growthMiB} MiB`).toBeLessThan(
          ENTRY_MIB * 0.75,
        );
        expect(run.read.peakRSSMiB, `${run.variant}: peak ${run.read.peakRSSMiB} MiB`).toBeLessThan(150);
        // writePatch writes zip only; the tar.gz is built by the benchmark itself.
        const writePeak = run.write?.peakRSSMiB ?? 0;
        if (run.variant !== 'targz') expect(run.write, `${run.variant}: no write figure`).not.toBeNull();
        expect(writePeak, `${run.variant}: writing peaked at ${writePeak} MiB`).toBeLessThan(150);
      }
    },
    180_000,
  );
});
