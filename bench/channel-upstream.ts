/**
 * The upstream of the attested-channel benchmark, in a process of its own so that the client's CPU time is its own:
 * the appliance's port-3000 service (lib/appliance/inference-service.ts) with a fresh TLS identity, documents signed
 * by a test chain and bound to that identity, and a stub Ollama that streams its answers as fast as it can.
 * Prints one JSON line: { url, root (PEM), pcrs }.
 */
import { startInferenceService } from '../lib/appliance/inference-service';
import { OllamaClient } from '../lib/appliance/ollama-client';
import { createTlsIdentity } from '../lib/appliance/tls-identity';
import { encodeChannelBinding } from '../lib/attestation/channel-binding';
import { buildTestAttestationDocument, createTestChain, testPcrs } from '../test/attestation/test-attestation';
import { loadTestModel, StubOllama } from '../test/appliance/doubles/stub-ollama';

const MODEL = 'bench-model';

async function main(): Promise<void> {
  const [chain, tls, ollama] = await Promise.all([createTestChain(), createTlsIdentity(), StubOllama.start()]);
  await loadTestModel(ollama, MODEL);
  // A long answer, so that the stream's rate, not the request's fixed costs, is what is measured.
  ollama.answerRepeats = 20;
  const pcrs = testPcrs();
  const binding = encodeChannelBinding(tls.spkiSha256);
  const service = await startInferenceService({
    status: () => ({ phase: 'ready', model: { name: MODEL, sha256: '0'.repeat(64), measurement: '0'.repeat(96) }, since: new Date().toISOString() }),
    ollama: new OllamaClient(ollama.url),
    attest: async (nonce) => ({ document: buildTestAttestationDocument({ chain, pcrs, nonce, userData: binding }), eventLog: [] }),
    log: () => undefined,
  }, { host: '127.0.0.1', port: 0, tls });
  console.log(JSON.stringify({
    url: service.url,
    root: chain.root.certificate.toString(),
    pcrs: { pcr4: pcrs.get(4), pcr12: pcrs.get(12) },
  }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
