/**
 * The gateway of the attested-channel benchmark, in a process of its own as a user runs it: verifies the upstream
 * that bench/channel-upstream.ts started (argument: the JSON line it printed) and prints one JSON line: { url }.
 */
import { X509Certificate } from 'node:crypto';
import { startGateway } from '../lib/gateway/gateway';
import { parseLoopbackAddress } from '../lib/gateway/loopback-address';

async function main(): Promise<void> {
  const upstream = JSON.parse(process.argv[2]) as { url: string; root: string; pcrs: { pcr4: string; pcr12: string } };
  const gateway = await startGateway({
    serviceUrl: new URL(upstream.url),
    expectations: { images: [{ imageId: 'bench', ...upstream.pcrs }] },
    listen: parseLoopbackAddress('127.0.0.1:0'),
    maxAgeSeconds: 300,
    timeoutSeconds: 10,
    reverifySeconds: 300,
    maxConnections: 4,
    trustedRoots: [new X509Certificate(upstream.root)],
    stdout: () => undefined,
    stderr: (text) => process.stderr.write(text),
  });
  if (!gateway.health().verified) throw new Error('the gateway did not verify the upstream');
  console.log(JSON.stringify({ url: gateway.url }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
