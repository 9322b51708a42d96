/**
 * A stand-in for Ollama's blob upload, `POST /api/blobs/sha256:<hex>`, for the sealing benchmark: like Ollama, it
 * writes each piece of the body to a file and then hashes it, on one thread, and answers 400 on a digest mismatch,
 * else 201. It removes the file once it answered, so that its store stays empty and every upload is read and hashed
 * (Ollama answers 200 without reading an upload of a blob it holds).
 * Usage: ollama-blob-stand-in.ts <directory>; prints the URL it listens on, then serves until killed.
 */
import { createHash } from 'crypto';
import { closeSync, openSync, unlinkSync, writeSync } from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as path from 'path';

const directory = process.argv[2];

const server = http.createServer(async (request, response) => {
  const digest = /^\/api\/blobs\/sha256:([0-9a-f]{64})$/.exec(request.url ?? '')?.[1];
  if (request.method !== 'POST' || digest === undefined) {
    response.writeHead(404).end();
    return;
  }
  const file = path.join(directory, `blob-${digest}`);
  const fd = openSync(file, 'w');
  const hash = createHash('sha256');
  try {
    for await (const piece of request as AsyncIterable<Buffer>) {
      writeSync(fd, piece);
      hash.update(piece);
    }
  } finally {
    closeSync(fd);
  }
  const received = hash.digest('hex');
  unlinkSync(file);
  if (received === digest) {
    response.writeHead(201).end();
  } else {
    response.writeHead(400, { 'content-type': 'application/json' })
      .end(JSON.stringify({ error: `digest mismatch, expected "sha256:${digest}", got "sha256:${received}"` }));
  }
});

server.listen(0, '127.0.0.1', () => {
  console.log(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});
