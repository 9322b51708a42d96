import { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import * as path from 'node:path';
import { ApplianceConfig } from '../shared/appliance-config';
import { PcrEvent } from '../attestation/pcr-event-log';
import { decryptDataKey } from './attested-decrypt';
import { encodeChannelBinding } from '../attestation/channel-binding';
import { Attester } from './attester';
import { ChannelBoundAttester } from './channel-bound-attester';
import { runBootPipeline } from './boot-pipeline';
import { InferenceService, startInferenceService } from './inference-service';
import { ModelPcr } from './model-pcr';
import { NitroTpmAttest } from './nitro-tpm-attest';
import { OllamaClient } from './ollama-client';
import { StatusBoard } from './status-board';
import { createTlsIdentity } from './tls-identity';
import { newMetadataService, readApplianceConfig } from './user-data';

/**
 * The appliance's entry point (bundled into `assets/appliance/appliance.js`, run by sealed-inference-appliance.service):
 * starts the port-3000 service at once, so that the status of the boot pipeline can be watched, then runs the pipeline.
 */

/** Where the appliance keeps its files and finds its neighbours; on the instance, from systemd's environment. */
export interface ApplianceEnvironment {
  /** Memory-backed, private, kept across service restarts: PCR15's event log. */
  readonly stateDirectory: string;
  /** Memory-backed, private, cleared when the service stops: the inputs of `nitro-tpm-attest`. */
  readonly runtimeDirectory: string;
  /** The local Ollama, loopback only. */
  readonly ollamaUrl: string;
  /** The address the service binds. */
  readonly host: string;
  /** The port when the configuration cannot be read (and so cannot name one). */
  readonly defaultPort: number;
  /** The `nitro-tpm-attest` program. */
  readonly attestCommand: string;
  /** Environment of the TPM tools (`TPM_DEVICE`, `TPM2TOOLS_TCTI`). */
  readonly toolEnv: NodeJS.ProcessEnv;
  /** Reads the configuration; by default from user data over IMDSv2. */
  readonly readConfig: () => Promise<ApplianceConfig>;
  /** AWS clients for the configured Region; by default with the instance role's credentials. */
  readonly clients: (region: string) => { readonly s3: S3Client; readonly kms: KMSClient };
  readonly log: (line: string) => void;
}

/** A running appliance. */
export interface RunningAppliance {
  readonly service: InferenceService;
  /** Settles when the boot pipeline ends (ready or failed; the failure is in the status). */
  readonly booted: Promise<void>;
  close(): Promise<void>;
}

/** The environment on an instance, from the service unit's variables. */
export function environmentFromProcess(env: NodeJS.ProcessEnv = process.env): ApplianceEnvironment {
  const required = (name: string) => {
    const value = env[name];
    if (!value) throw new Error(`${name} is not set: run the appliance from sealed-inference-appliance.service`);
    return value;
  };
  const metadata = newMetadataService();
  return {
    stateDirectory: required('STATE_DIRECTORY'),
    runtimeDirectory: required('RUNTIME_DIRECTORY'),
    ollamaUrl: env.OLLAMA_HOST ?? 'http://127.0.0.1:11434',
    host: '0.0.0.0',
    defaultPort: 3000,
    attestCommand: 'nitro-tpm-attest',
    toolEnv: env,
    readConfig: () => readApplianceConfig(metadata),
    clients: (region) => ({ s3: new S3Client({ region }), kms: new KMSClient({ region }) }),
    log: (line) => console.log(line),
  };
}

/** Starts the service and the boot pipeline. */
export async function startAppliance(environment: ApplianceEnvironment): Promise<RunningAppliance> {
  const { log } = environment;
  const status = new StatusBoard();
  // Made before anything is attested, so that every document, KMS's included, binds this key.
  const tls = await createTlsIdentity();
  const attester: Attester = new ChannelBoundAttester(new NitroTpmAttest({
    command: environment.attestCommand,
    workDirectory: environment.runtimeDirectory,
    env: environment.toolEnv,
  }), encodeChannelBinding(tls.spkiSha256));
  const ollama = new OllamaClient(environment.ollamaUrl);

  const failToStart = (error: unknown) => {
    status.fail('starting', (error as Error).message);
    log(`phase starting failed: ${(error as Error).message}`);
  };
  let config: ApplianceConfig | undefined;
  try {
    config = await environment.readConfig();
  } catch (error) {
    failToStart(error);
  }
  let modelPcr: ModelPcr | undefined;
  const service = await startInferenceService(
    {
      status: () => status.current(),
      ollama,
      attest: async (nonce) => {
        const attest = async (eventLog: readonly PcrEvent[]) => ({ document: await attester.attest({ nonce }), eventLog });
        return modelPcr ? modelPcr.whileStable(attest) : attest([]);
      },
      log,
    },
    { host: environment.host, port: config?.servicePort ?? environment.defaultPort, tls, hostNames: config?.hostNames },
  );
  log(`listening on ${service.url} (TLS 1.3, key SPKI SHA-256 ${tls.spkiSha256})`);

  const booted = (async () => {
    if (!config) return;
    try {
      modelPcr = await ModelPcr.open({
        eventLogPath: path.join(environment.stateDirectory, 'pcr15-event-log.json'),
        env: environment.toolEnv,
      });
    } catch (error) {
      failToStart(error);
      return;
    }
    await runBootPipeline({
      config,
      clients: environment.clients,
      attester,
      unwrapDataKey: decryptDataKey,
      measurement: modelPcr,
      ollama,
      status,
      log,
    }).catch(() => undefined); // the failure is in the status, shown on port 3000
  })();
  return { service, booted, close: () => service.close() };
}

if (require.main === module) {
  Promise.resolve().then(() => startAppliance(environmentFromProcess())).catch((error) => {
    console.error(`sealed-inference appliance: ${(error as Error).message}`);
    process.exit(1);
  });
}
