import type * as http from 'node:http';

/** An error as OpenAI's API answers it: `{"error": {"message", "type", "code"}}`. */
export interface OpenAiError {
  readonly message: string;
  readonly type: string;
  readonly code: string;
}

/** Answers `status` with `error` in OpenAI's shape, which its clients raise as an APIError with the message. */
export function sendOpenAiError(response: http.ServerResponse, status: number, error: OpenAiError): void {
  const body = JSON.stringify({ error: { message: error.message, type: error.type, param: null, code: error.code } });
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
}
