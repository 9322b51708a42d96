export * from './attestation-error';
export * from './attestation-document';
export * from './cose-sign1';
export * from './certificate-chain';
export * from './nitro-root';
export * from './verify-attestation';
