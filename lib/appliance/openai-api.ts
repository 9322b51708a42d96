import type * as http from 'http';
import type { Readable } from 'stream';
import { isJsonObject } from '../shared/json-object';
import type { ApplianceStatus } from './appliance-status';
import { Exchange, readBody, Refusal, requireJson, sendJson } from './http-exchange';
import { OllamaChat, OllamaError } from './ollama-client';
import { relayAnswer } from './relay-answer';

/**
 * The appliance's OpenAI-compatible API, `/v1`, relayed to Ollama's own: clients such as the `openai` npm package
 * speak to it exactly as to Ollama, except that the model is always the one this appliance serves.
 */

/** The largest chat request accepted: a conversation of text, not a document store. */
export const MAX_CHAT_REQUEST_BYTES = 64 * 1024;

/** What the `/v1` handlers need of the service. */
export interface OpenAiApiContext {
  status(): ApplianceStatus;
  readonly ollama: OllamaChat;
  /** Chats being answered now, and how many may be. */
  readonly chats: { inFlight: number; readonly limit: number };
  /** How long a streamed answer may wait for a client that has stopped reading. */
  readonly writeStallMs: number;
  /** Writes a line to the appliance's log: never a prompt or an answer. */
  log(line: string): void;
}

/** Seconds a client is asked to wait before trying again: the model loads, or a chat ends. */
const RETRY_AFTER_SECONDS = '5';

/** An OpenAI error body: `{"error": {"message", "type", "code"}}`, its type following the status as OpenAI's do. */
export function openAiError(status: number, message: string, code: string | undefined): unknown {
  const type = status >= 500 ? 'server_error' : status === 429 ? 'rate_limit_error' : 'invalid_request_error';
  return { error: { message, type, param: null, code: code ?? null } };
}

/**
 * `GET /v1/models`: the one served model once ready. Before, 503 with Retry-After, as for a chat: a client waiting
 * for the appliance retries either the same way (an empty list would look like an appliance serving nothing).
 */
export function listModels(
  context: OpenAiApiContext,
  request: http.IncomingMessage,
  response: http.ServerResponse,
  exchange: Exchange,
): void {
  const status = servedStatus(context);
  sendJson(request, response, exchange, 200, {
    object: 'list',
    data: [{ id: status.model.name, object: 'model', created: Math.floor(Date.parse(status.since) / 1000), owned_by: 'sealed-inference' }],
  });
}

/**
 * `POST /v1/chat/completions`: the request goes to Ollama's `/v1/chat/completions` as sent, but for `model`, which is
 * always the served one; the answer comes back as Ollama gives it, a `chat.completion` object or, for
 * `"stream": true`, server-sent events relayed as they arrive.
 */
export async function chatCompletions(
  context: OpenAiApiContext,
  request: http.IncomingMessage,
  response: http.ServerResponse,
  exchange: Exchange,
): Promise<void> {
  const model = servedStatus(context).model.name;
  const { chats } = context;
  if (chats.inFlight >= chats.limit) {
    throw new Refusal(503, `${chats.limit} chats are in progress, the most this appliance answers at once; retry in a moment`, {
      headers: { 'retry-after': RETRY_AFTER_SECONDS },
      code: 'too_many_chats',
    });
  }
  chats.inFlight++;
  response.once('close', () => chats.inFlight--);
  requireJson(request);
  const { body, stream } = withServedModel(await readBody(request, exchange, MAX_CHAT_REQUEST_BYTES), model);

  const upstream = new AbortController();
  response.once('close', () => {
    if (!response.writableFinished) upstream.abort();
  });
  let answer: Readable;
  try {
    answer = await context.ollama.chatCompletions(body, upstream.signal);
  } catch (error) {
    if (upstream.signal.aborted) return;
    throw inferenceServerRefusal(error);
  }
  response.writeHead(200, {
    'content-type': stream ? 'text/event-stream; charset=utf-8' : 'application/json; charset=utf-8',
  });
  const brokenOff = await relayAnswer(answer, response, exchange, context.writeStallMs);
  if (brokenOff !== undefined) context.log(`POST /v1/chat/completions: answer broken off: ${brokenOff}`);
}

/** The status once ready, with the served model; a 503 before. */
function servedStatus(context: OpenAiApiContext): ApplianceStatus & { model: { name: string } } {
  const status = context.status();
  if (status.phase !== 'ready' || status.model === undefined) {
    throw new Refusal(503, `The model is not ready yet: the appliance is ${status.phase} (GET /api/status follows it)`, {
      headers: { 'retry-after': RETRY_AFTER_SECONDS },
      code: 'model_not_ready',
    });
  }
  return status as ApplianceStatus & { model: { name: string } };
}

/** The request body with `model` set to the served model; it must be an object with a non-empty `messages` array. */
function withServedModel(text: string, model: string): { body: string; stream: boolean } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // JSON.parse's message quotes the body: it is not passed on, nor logged.
    throw new Refusal(400, 'The body is not valid JSON', { code: 'invalid_json' });
  }
  if (!isJsonObject(value)) {
    throw new Refusal(400, 'The body must be a JSON object: {"messages": [...]}', { code: 'invalid_request' });
  }
  if (!Array.isArray(value.messages) || value.messages.length === 0) {
    throw new Refusal(400, '"messages" must be a non-empty array of {"role", "content"}', { code: 'invalid_request' });
  }
  return { body: JSON.stringify({ ...value, model }), stream: value.stream === true };
}

/**
 * What a client is told when Ollama refuses or fails: its reason for a request it finds invalid (4xx, the client's
 * to fix), busy for its 503; otherwise a generic 502, the details (Ollama's address among them) going to the log only.
 */
function inferenceServerRefusal(error: unknown): Refusal {
  const detail = (error as Error).message;
  if (error instanceof OllamaError && error.status === 503) {
    return new Refusal(503, 'The inference server is busy; retry in a moment', {
      headers: { 'retry-after': RETRY_AFTER_SECONDS },
      code: 'inference_server_busy',
      detail,
    });
  }
  if (error instanceof OllamaError && error.status >= 400 && error.status < 500) {
    // Not logged: the reason may quote the request.
    return new Refusal(error.status, `The inference server refused the request: ${error.reason || 'no reason given'}`, {
      code: 'invalid_request',
    });
  }
  return new Refusal(502, "The inference server did not answer; the appliance's log has the reason", {
    code: 'inference_server_error',
    detail,
  });
}
