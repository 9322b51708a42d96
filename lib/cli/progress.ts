import { SingleBar } from 'cli-progress';
import type { CliOutput } from './program';

/** Progress of a long task over a known number of bytes. */
export interface ByteProgress {
  /** Sets the bytes done so far. */
  update(bytes: number): void;
  /** Ends the bar (leaving it on screen). */
  stop(): void;
}

const NO_PROGRESS: ByteProgress = { update: () => undefined, stop: () => undefined };

/**
 * A progress bar with throughput and ETA on `output.progressStream` (stderr when it is a terminal); nothing when
 * the output has no progress stream, as in tests and pipes.
 */
export function startProgress(output: CliOutput, label: string, totalBytes: number): ByteProgress {
  const stream = output.progressStream;
  if (!stream) return NO_PROGRESS;
  const bar = new SingleBar({
    stream,
    format: `${label} [{bar}] {percentage}% | {done} / {size} | {speed} | ETA {eta_formatted}`,
    barsize: 30,
    hideCursor: true,
    etaBuffer: 50,
    fps: 5,
  });
  const started = Date.now();
  bar.start(totalBytes, 0, { done: formatBytes(0), size: formatBytes(totalBytes), speed: '-' });
  return {
    update: (bytes) => {
      const seconds = (Date.now() - started) / 1000;
      bar.update(bytes, {
        done: formatBytes(bytes),
        speed: seconds > 0 ? `${formatBytes(bytes / seconds)}/s` : '-',
      });
    },
    stop: () => bar.stop(),
  };
}

/** `bytes` in binary units, e.g. `1.5 GiB`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${Math.round(value)} B` : `${value.toFixed(1)} ${units[unit]}`;
}
