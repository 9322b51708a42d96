import type * as http from 'http';
import type { Readable } from 'stream';
import type { Exchange } from './http-exchange';

/**
 * Copies an upstream answer to the client as it arrives, one chunk at a time: the whole answer is never held, and
 * nothing more is read from upstream while the client is behind. A client that stops reading holds the answer for at
 * most `writeStallMs` after a write found its buffer full; the response is then destroyed, and the upstream answer
 * with it, so that the model stops generating for nobody.
 *
 * @returns undefined once the whole answer is sent; otherwise why it was broken off, for the log
 */
export async function relayAnswer(
  answer: Readable,
  response: http.ServerResponse,
  exchange: Exchange,
  writeStallMs: number,
): Promise<string | undefined> {
  let clientLeft = false;
  response.once('close', () => (clientLeft = !response.writableFinished));
  try {
    for await (const chunk of answer as AsyncIterable<Buffer>) {
      exchange.bytesOut += chunk.length;
      if (!response.write(chunk)) await drained(response, writeStallMs);
    }
  } catch (error) {
    // Leaving the loop has destroyed the upstream answer; the client gets a connection closed before the end.
    response.destroy();
    return clientLeft ? 'the client went away' : (error as Error).message;
  }
  response.end();
  return undefined;
}

function drained(response: http.ServerResponse, writeStallMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const settle = (error?: Error) => {
      clearTimeout(timer);
      response.off('drain', onDrain);
      response.off('close', onClose);
      if (error) reject(error);
      else resolve();
    };
    const onDrain = () => settle();
    const onClose = () => settle(new Error('the client went away'));
    const timer = setTimeout(
      () => settle(new Error(`the client read nothing for ${writeStallMs} ms while the answer waited`)),
      writeStallMs,
    );
    response.once('drain', onDrain);
    response.once('close', onClose);
  });
}
