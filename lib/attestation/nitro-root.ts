import { X509Certificate } from 'node:crypto';

/** Common name of the AWS Nitro attestation root. */
export const AWS_NITRO_ROOT_COMMON_NAME = 'aws.nitro-enclaves';

/** SHA-256 fingerprint of the AWS Nitro attestation root certificate, as AWS publishes it. */
export const AWS_NITRO_ROOT_SHA256_FINGERPRINT =
  '64:1A:03:21:A3:E2:44:EF:E4:56:46:31:95:D6:06:31:7E:D7:CD:CC:3C:17:56:E0:98:93:F3:C6:8F:79:BB:5B';

/**
 * The AWS Nitro attestation root (G1), `root.pem` from https://aws-nitro-enclaves.amazonaws.com/AWS_NitroEnclaves_Root-G1.zip.
 * Valid until 2049-10-28; its fingerprint is checked against `AWS_NITRO_ROOT_SHA256_FINGERPRINT` before use.
 */
export const AWS_NITRO_ROOT_PEM = `-----BEGIN CERTIFICATE-----
MIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTEL
MAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYD
VQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMwHhcNMTkxMDI4MTMyODA1WhcNNDkxMDI4
MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQL
DANBV1MxGzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEG
BSuBBAAiA2IABPwCVOumCMHzaHDimtqQvkY4MpJzbolL//Zy2YlES1BR5TSksfbb
48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQXCEPZ3BABIeTPYwEoCWZE
h8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkF
R+eWw5b6cp3PmanfS5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYC
MQCjfy+Rocm9Xue4YnwWmNJVA44fA0P5W2OpYow9OYCVRaEevL8uO1XYru5xtMPW
rfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8Yfwr6wPLb+6N
IwLz3/Y=
-----END CERTIFICATE-----
`;

/** The pinned AWS Nitro root; throws if the embedded certificate does not match the pinned fingerprint and name. */
export function awsNitroRoot(): X509Certificate {
  const root = new X509Certificate(AWS_NITRO_ROOT_PEM);
  if (root.fingerprint256 !== AWS_NITRO_ROOT_SHA256_FINGERPRINT
    || !root.subject.split('\n').includes(`CN=${AWS_NITRO_ROOT_COMMON_NAME}`)) {
    throw new Error(`The embedded AWS Nitro root does not match the pinned fingerprint ${AWS_NITRO_ROOT_SHA256_FINGERPRINT}`);
  }
  return root;
}
