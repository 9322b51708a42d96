/**
 * Where the appliance's boot pipeline is: starting (configuration, PCR15's event log), waiting (for a model not
 * uploaded yet), fetching (manifest and
 * wrapped key), attesting (key pair, attestation document, KMS), unsealing (streaming the sealed model from S3
 * through the unsealer), loading (into Ollama), then ready; or failed, with the phase it failed in and why.
 */
export type AppliancePhase =
  'starting' | 'waiting' | 'fetching' | 'attesting' | 'unsealing' | 'loading' | 'ready' | 'failed';

/** The model being served, as its manifest and the verified plaintext name it. */
export interface ServedModel {
  readonly name: string;
  /** Lowercase hex SHA-256 of the plaintext model: its identity, and Ollama's blob name. */
  readonly sha256: string;
  /** Lowercase hex SHA-384 of the model's measurement record (`modelMeasurement`): what PCR15 is extended with. */
  readonly measurement: string;
}

/** What `GET /api/status` reports. It never carries prompts, answers or key material. */
export interface ApplianceStatus {
  readonly phase: AppliancePhase;
  /** Bytes done and expected in the current phase, when it moves data. */
  readonly progress?: { readonly bytes: number; readonly total: number };
  /** For `waiting`: what the appliance waits for (the model's manifest, not uploaded yet) and what it last saw. */
  readonly waitingFor?: string;
  /** For `failed`: the phase that failed, then a one-line reason saying what went wrong. */
  readonly failedPhase?: AppliancePhase;
  readonly reason?: string;
  /** The model, once it is known (from `unsealing` on). */
  readonly model?: ServedModel;
  /** When the current phase began (ISO 8601). */
  readonly since: string;
}
