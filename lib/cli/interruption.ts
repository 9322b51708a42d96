/**
 * Ctrl-C and `kill` during a long command: the signal stops the work between chunks, the work removes what it had
 * begun as on any failure (temporary files, a multipart upload), and only then does the command end.
 */

/** The signals that stop a long command. */
const STOPPING_SIGNALS = ['SIGINT', 'SIGTERM'] as const;
type StoppingSignal = (typeof STOPPING_SIGNALS)[number];

/** The exit code of a command a signal stopped: 128 + the signal's number, as shells report it. */
const EXIT_CODES: Readonly<Record<StoppingSignal, number>> = { SIGINT: 130, SIGTERM: 143 };

/** A command stopped by a signal, once it has cleaned up; the message says what is left. */
export class InterruptedError extends Error {
  constructor(public readonly signal: StoppingSignal, aftermath?: string) {
    super(aftermath === undefined ? `interrupted by ${signal}` : `interrupted by ${signal}; ${aftermath}`);
    this.name = 'InterruptedError';
  }

  /** 130 for SIGINT, 143 for SIGTERM. */
  public get exitCode(): number {
    return EXIT_CODES[this.signal];
  }
}

/**
 * Runs `work` with a signal that SIGINT or SIGTERM aborts. While it runs, these signals no longer end the process by
 * themselves (a second one while the work cleans up is ignored, so that cleaning up is not cut short).
 *
 * @param aftermath what a stopped `work` has left, said when it failed with the signal's reason itself; a failure of
 * its own (such as a cleanup that failed too) is said instead
 * @throws InterruptedError when a signal came, after `work` settled
 */
export async function runInterruptibly<T>(aftermath: string, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let received: StoppingSignal | undefined;
  const stop = (signal: StoppingSignal) => {
    received ??= signal;
    controller.abort(new InterruptedError(signal));
  };
  for (const signal of STOPPING_SIGNALS) process.on(signal, stop);
  try {
    return await work(controller.signal);
  } catch (error) {
    if (received === undefined) throw error;
    throw new InterruptedError(received, error === controller.signal.reason ? aftermath : (error as Error).message);
  } finally {
    for (const signal of STOPPING_SIGNALS) process.off(signal, stop);
  }
}
